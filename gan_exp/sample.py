"""Use what was trained: load a run's generator, write samples for FID tools, interpolate.

    gan-exp-sample outputs/runs/<run> --n 10000 --out samples/         # PNGs, one per image
    gan-exp-sample outputs/runs/<run> --n 50000 --out samples.npz      # uint8 NHWC array
    gan-exp-sample outputs/runs/<run>/checkpoints/best.pt --interpolate walk.png

A folder of PNGs is what clean-fid and torch-fidelity read (`fid.compute_fid(dir1, dir2)`,
`fidelity --input1 dir`); an `.npz` holds `arr_0` as StudioGAN's and OpenAI's evaluation
scripts expect. 2-D toy runs write their points as float32 to an `.npz`. Nothing is
overwritten: an existing output is refused, and a folder of PNGs appears only when complete.

In Python:

    from gan_exp import load_generator
    G = load_generator("outputs/runs/<run>")          # eval mode, on the CPU
    z = torch.randn(16, G.latent_dim)
    images = G(z)                                     # in [-1, 1], N x C x H x W
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from gan_exp import checkpoint
from gan_exp.atomic import atomic_write_bytes
from gan_exp.errors import CheckpointError, GanExpError, StorageError


def load_generator(run_or_checkpoint: str | Path, device: str | torch.device = "cpu",
                   *, ema: bool = False) -> torch.nn.Module:
    """The generator of a run folder's newest checkpoint (or of one checkpoint file), in eval
    mode on `device`, with `latent_dim` set: `G(torch.randn(n, G.latent_dim))`. `ema=True`:
    the average of its weights (a run trained with `train.ema.decay`)."""
    from gan_exp.components import build, model_inputs
    from gan_exp.data.base import DataSpec

    ckpt, state = checkpoint.load_given(run_or_checkpoint)
    cfg = OmegaConf.create(state["config"])
    if "data_spec" in state:
        spec = DataSpec(tuple(state["data_spec"]["shape"]), bool(state["data_spec"]["bounded"]))
    else:  # a checkpoint from before the spec was stored: the dataset says it
        spec = build(cfg.dataset).spec
    models = build(cfg.model, **model_inputs(cfg, build(cfg.loss), spec))
    generator = models.generator
    key = "generator_ema" if ema else "generator"
    if key not in state:
        raise CheckpointError(f"{ckpt} holds no averaged generator: its run was trained "
                              "without train.ema.decay; leave out --ema / ema=True")
    checkpoint.restore_module(generator, state[key], key.replace("_", " "), ckpt)
    generator.latent_dim = int(models.latent_dim)
    generator.checkpoint = ckpt
    generator.step = int(state["step"])
    return generator.to(device).eval()


@torch.no_grad()
def generate(generator: torch.nn.Module, n: int, seed: int, batch_size: int = 500
             ) -> torch.Tensor:
    """`n` samples on the CPU from seeded noise (the same seed gives the same samples)."""
    device = next(generator.parameters()).device
    noise = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, n, batch_size):
        z = torch.randn(min(batch_size, n - start), generator.latent_dim, generator=noise)
        out.append(generator(z.to(device)).float().cpu())
    return torch.cat(out)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] N x C x H x W -> uint8 N x H x W x C, rounded as torchvision's save_image."""
    x = ((images.clamp(-1, 1) + 1) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between Gaussian latents (White 2016): the path stays where
    the prior puts its mass, unlike a straight line through the origin's neighbourhood."""
    cos = (a * b).sum(-1, keepdim=True) / (a.norm(dim=-1, keepdim=True) *
                                             b.norm(dim=-1, keepdim=True))
    omega = torch.acos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b


@torch.no_grad()
def interpolation_grid(generator: torch.nn.Module, rows: int, cols: int, seed: int
                       ) -> torch.Tensor:
    """`rows` latent walks of `cols` steps each, from one random latent to another."""
    noise = torch.Generator().manual_seed(seed)
    a, b = (torch.randn(rows, 1, generator.latent_dim, generator=noise) for _ in range(2))
    t = torch.linspace(0, 1, cols).view(1, cols, 1)
    z = slerp(a, b, t).reshape(rows * cols, generator.latent_dim)
    device = next(generator.parameters()).device
    return generator(z.to(device)).float().cpu()


def write_samples(samples: torch.Tensor, out: Path) -> None:
    """An `.npz` (`arr_0`), or a new folder of PNGs that appears only once complete."""
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise StorageError(f"--out {out} exists; give a new file or folder (nothing is "
                           "overwritten)")
    if out.suffix == ".npz":
        arr = samples.numpy().astype(np.float32) if samples.dim() == 2 else to_uint8(samples)
        buf = io.BytesIO()
        np.savez(buf, arr)
        atomic_write_bytes(out, buf.getvalue())
        return
    if samples.dim() != 4:
        raise StorageError(f"--out {out}: these samples are 2-D points, not images; write "
                           "them to an .npz file")
    from PIL import Image

    parent = out.absolute().parent
    if not parent.is_dir():
        raise StorageError(f"--out {out}: its folder {parent} does not exist")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    try:
        width = len(str(len(samples) - 1))
        for i, img in enumerate(to_uint8(samples)):
            Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(
                tmp / f"{i:0{width}d}.png")
        if out.exists():
            out.rmdir()  # the empty folder given
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gan-exp-sample", description=__doc__.split("\n")[0],
        epilog="Examples: gan-exp-sample RUN --n 10000 --out samples/ ; "
               "gan-exp-sample RUN --n 50000 --out samples.npz ; "
               "gan-exp-sample RUN --interpolate walk.png")
    parser.add_argument("path", help="run folder (its newest checkpoint) or checkpoint file")
    parser.add_argument("--n", type=int, default=10000, help="samples to write (default 10000)")
    parser.add_argument("--out", type=Path, help="new folder of PNGs, or FILE.npz")
    parser.add_argument("--interpolate", type=Path, help="write a latent interpolation grid PNG")
    parser.add_argument("--rows", type=int, default=8, help="interpolation walks (default 8)")
    parser.add_argument("--cols", type=int, default=10, help="steps per walk (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (default cpu)")
    parser.add_argument("--ema", action="store_true",
                        help="the averaged generator (a run trained with train.ema.decay)")
    args = parser.parse_args(argv)
    if args.out is None and args.interpolate is None:
        parser.error("give --out DIR|FILE.npz for samples, --interpolate FILE.png, or both")
    for name in ("n", "rows", "cols"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}={getattr(args, name)}: must be at least 1")
    if args.interpolate is not None and args.interpolate.exists():
        parser.error(f"--interpolate {args.interpolate} exists; give a new file name")
    try:
        generator = load_generator(args.path, args.device, ema=args.ema)
        print(f"sample: {'averaged ' if args.ema else ''}generator of {generator.checkpoint} "
              f"(step {generator.step})", file=sys.stderr)
        if args.out is not None:
            samples = generate(generator, args.n, args.seed)
            write_samples(samples, args.out)
            print(f"sample: {args.n} samples (seed {args.seed}) written to {args.out}",
                  file=sys.stderr)
        if args.interpolate is not None:
            grid = interpolation_grid(generator, args.rows, args.cols, args.seed)
            if grid.dim() != 4:
                raise StorageError("--interpolate: a 2-D toy generator makes points, not "
                                   "images")
            from torchvision.utils import save_image

            png = io.BytesIO()
            save_image(grid, png, nrow=args.cols, normalize=True, value_range=(-1, 1),
                       format="png")
            atomic_write_bytes(args.interpolate, png.getvalue())
            print(f"sample: {args.rows} x {args.cols} interpolation grid written to "
                  f"{args.interpolate}", file=sys.stderr)
    except GanExpError as err:
        print(f"sample: {err.kind}: {err}", file=sys.stderr)
        return err.exit_status
    return 0


if __name__ == "__main__":
    sys.exit(main())
