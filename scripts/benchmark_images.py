#!/usr/bin/env python
"""What today's image practice costs per training step (docs/images.md):

  - the papers' ResNets (model=resnet_wgan_gp with WGAN-GP, model=sngan_32 with the hinge loss)
    on 32x32 images at batch 64: this project's step functions (`bare`, as in benchmark.py)
    against the same architecture trained the plain way (`naive`: separate critic forwards,
    default optimisers, a host sync every step; benchmark.py's reference loop);
  - generator EMA (`train.ema.decay=0.999`) and DiffAugment (`augment=diffaugment`): the same
    bare loop with and without each, on the built-in digits (MLP and DCGAN pairs).

Each figure is the best of `--repeats` interleaved timings (this machine's load drifts).

    python scripts/benchmark_images.py                  # about 6 minutes on 2 CPU cores
    python scripts/benchmark_images.py --width 128      # the ResNets nearer their real widths
    python scripts/benchmark_images.py --device cuda --width 256 --steps 50
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import bare_loop, naive_loop, table  # noqa: E402

from gan_exp.components import build, resolve_device  # noqa: E402
from gan_exp.data.base import DataSpec, InMemoryDataset  # noqa: E402
from gan_exp.train import compose_config  # noqa: E402


def images32(n: int = 2048) -> InMemoryDataset:
    """Random grey 32x32 images (uint8, as the datasets store them): the ResNets' input size."""
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, 256, (n, 1, 32, 32), generator=g, dtype=torch.uint8)
    return InMemoryDataset("noise32", data, torch.zeros(n, dtype=torch.long),
                           DataSpec((1, 32, 32), True))


def best(fn, repeats: int) -> float:
    return min(fn() for _ in range(repeats))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=5, help="generator steps per timing")
    p.add_argument("--width", type=int, default=32, help="ResNet g_width and d_width")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    common = ["train.batch_size=64", "metrics.enabled=false", f"device={device.type}"]
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"batch 64, best of {args.repeats}")

    data32 = images32()
    rows = []
    for loss, model in (("wgan_gp", "resnet_wgan_gp"), ("hinge", "sngan_32")):
        cfg = compose_config([*common, f"loss={loss}", f"model={model}",
                              f"model.g_width={args.width}", f"model.d_width={args.width}"])
        naive = best(lambda cfg=cfg: naive_loop(cfg, data32, device, args.steps), args.repeats)
        bare = best(lambda cfg=cfg: bare_loop(cfg, data32, device, args.steps), args.repeats)
        params = sum(q.numel() for m in build(cfg.model, data=data32.spec).__dict__.values()
                     if isinstance(m, torch.nn.Module) for q in m.parameters())
        rows.append([f"{model} ({loss}, width {args.width}, {params / 1e6:.2f} M params)",
                     f"{args.steps / naive:.3g}", f"{args.steps / bare:.3g}",
                     f"{naive / bare:.2f}x"])
    print("\nThe papers' ResNets, 32x32, generator steps/s\n")
    print(table(["model", "naive", "bare", "bare / naive"], rows))

    from gan_exp.data.digits import build as digits

    dataset = digits(size=2048, seed=0, cache_dir=None)
    rows = []
    for loss, model, extra, what in (
        ("wgan_gp", "mlp", ["train.ema.decay=0.999"], "EMA"),
        ("wgan_gp", "dcgan", ["train.ema.decay=0.999"], "EMA"),
        ("hinge", "dcgan", ["augment=diffaugment"], "DiffAugment"),
        ("wgan_gp", "dcgan", ["augment=diffaugment"], "DiffAugment"),
    ):
        base = [*common, f"loss={loss}", f"model={model}"]
        plain_cfg, with_cfg = compose_config(base), compose_config([*base, *extra])
        steps = args.steps * 4
        plain = with_ = float("inf")
        for _ in range(args.repeats):  # interleaved: both see the same load
            plain = min(plain, bare_loop(plain_cfg, dataset, device, steps))
            with_ = min(with_, bare_loop(with_cfg, dataset, device, steps))
        rows.append([f"{what}: {loss}/{model}", f"{steps / plain:.3g}", f"{steps / with_:.3g}",
                     f"{100 * (with_ / plain - 1):+.1f}%"])
    print("\nEMA and DiffAugment on the built-in digits, generator steps/s (bare loop)\n")
    print(table(["case", "without", "with", "cost per step"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
