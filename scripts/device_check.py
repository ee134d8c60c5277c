#!/usr/bin/env python
"""Every CUDA path of gan_exp, pass/fail, then the benchmark on the device: for the first
session that has a GPU (under 5 minutes on one). On a machine without CUDA it runs what the
CPU can check and says what it skipped (the tests run that part).

    python scripts/device_check.py                 # every check, then scripts/benchmark.py
    python scripts/device_check.py --no-benchmark  # the checks only
    python scripts/device_check.py --out DIR       # keep the runs it trains (default: a temp dir)

Datasets come from the usual data folder (`paths.data_dir`: GAN_EXP_DATA, else data/), as every
run's do, so the digits are rendered once per machine, not once per check.

Checks: device=auto picks the GPU; in-memory data on the device; a streamed image folder
through pinned memory; train.amp=bf16; train.channels_last; train.compile; generator EMA;
every model at its real width (one training step each); a two-job parallel sweep spreading
over the GPUs; and a resume on the device, bit-exact against an uninterrupted run.
Exit status 0 when nothing failed (skips are not failures), 1 otherwise.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

from gan_exp import checkpoint
from gan_exp.components import build_components, resolve_device
from gan_exp.run import train
from gan_exp.train import compose_config

ROOT = Path(__file__).resolve().parent.parent
TINY = ["train.steps=4", "train.batch_size=16", "log.every=2", "log.sample_every=4",
        "log.progress=false", "checkpoint.every=2", "metrics.enabled=false", "dataset.size=256"]
# (model, dataset, loss): each model on data of its shape, at its shipped (real) width
MODELS = [("mlp", "digits", "wgan_gp"), ("dcgan", "digits", "wgan_gp"),
          ("ebgan", "digits", "ebgan"), ("toy_mlp", "ring", "gan"),
          ("resnet_wgan_gp", "noise32", "wgan_gp"), ("sngan_32", "noise32", "hinge"),
          ("sngan_48", "noise48", "hinge"), ("sngan_64", "noise64", "hinge")]


class Skip(Exception):
    """A check this machine cannot make (says why)."""


def write_images(folder: Path, side: int, n: int = 32) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(side)
    for i in range(n):
        pixels = torch.randint(0, 256, (side, side, 3), generator=g, dtype=torch.uint8)
        Image.fromarray(pixels.numpy()).save(folder / f"{i:03d}.png")
    return folder


class Checks:
    def __init__(self, out: Path, cuda: bool) -> None:
        self.out, self.cuda, self.results = out, cuda, []
        self.device = "cuda" if cuda else "cpu"

    def need_cuda(self) -> None:
        if not self.cuda:
            raise Skip("needs CUDA")

    def run(self, name: str, check: Callable[[], str]) -> None:
        start = time.perf_counter()
        try:
            detail, status = check(), "pass"
        except Skip as why:
            detail, status = str(why), "skip"
        except Exception as err:  # noqa: BLE001 (a check's failure is a result)
            detail, status = f"{type(err).__name__}: {err}", "FAIL"
            traceback.print_exc(file=sys.stderr)
        seconds = time.perf_counter() - start
        self.results.append((status, name, detail))
        print(f"{status:>4}  {name:<38} {seconds:6.1f} s  {detail}", flush=True)

    def train(self, name: str, args: list[str]) -> dict[str, float]:
        cfg = compose_config([*TINY, f"device={self.device}", *args])
        return train(cfg, self.out / name)

    def image_args(self, dataset: str) -> list[str]:
        if not dataset.startswith("noise"):
            return [f"dataset={dataset}"]
        side = int(dataset[len("noise"):])
        root = write_images(self.out / "images" / str(side), side)
        return ["dataset=image_folder", f"dataset.root={root}", f"dataset.image_size={side}"]

    # ------------------------------------------------------------------ the checks
    def auto_device(self) -> str:
        picked = resolve_device("auto")
        if self.cuda and picked.type != "cuda":
            raise AssertionError(f"device=auto picked {picked} with CUDA available")
        return f"device=auto -> {picked}"

    def in_memory(self) -> str:
        self.need_cuda()
        cfg = compose_config([*TINY, "device=cuda"])
        parts = build_components(cfg, torch.device("cuda"))
        batch = parts.dataset.make_batches(16, torch.device("cuda")).next_batch()
        assert batch.device.type == "cuda", batch.device
        self.train("in_memory", [])
        return "batches made on the device; 4 steps trained"

    def pinned_streaming(self) -> str:
        self.need_cuda()
        self.train("streaming", [*self.image_args("noise32"), "dataset.in_memory=false",
                                 "dataset.num_workers=2", "model=dcgan"])
        return "an image folder streamed by 2 workers through pinned memory"

    def flag(self, name: str, args: list[str], needs_cuda: bool = True) -> Callable[[], str]:
        def check() -> str:
            if needs_cuda:
                self.need_cuda()
            metrics = self.train(name, args)
            assert all(v == v for v in metrics.values()), metrics  # no NaN
            return f"{' '.join(args)}: trained, losses finite"
        return check

    def models(self) -> str:
        done = []
        for model, dataset, loss in MODELS:
            if not self.cuda and model.startswith(("resnet", "sngan")):
                continue  # their real widths take minutes per step on a CPU
            self.train(f"model_{model}", [f"model={model}", f"loss={loss}", "train.steps=1",
                                          "checkpoint.every=1", *self.image_args(dataset)])
            done.append(model)
        skipped = "" if self.cuda else " (the ResNets at their real widths: CUDA only)"
        return ", ".join(done) + skipped

    def parallel_sweep(self) -> str:
        gpus = torch.cuda.device_count() if self.cuda else 0
        sweep = self.out / "sweep"
        proc = subprocess.run(
            [sys.executable, "-m", "gan_exp.train", "-m", "hydra/launcher=parallel",
             "hydra.launcher.n_jobs=2", "dataset=ring", "train.steps=20", "seed=0,1",
             "metrics.enabled=false", "log.progress=false", "device=auto",
             f"hydra.sweep.dir={sweep}"], cwd=ROOT, capture_output=True, text=True,
            timeout=600)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        logs = [p.read_text() for p in sorted(sweep.glob("*/train.log"))]
        devices = sorted({line.rsplit(" on ", 1)[-1].strip() for log in logs
                          for line in log.splitlines() if "] - run " in line})
        if gpus >= 2 and len(devices) < 2:
            raise AssertionError(f"two jobs on {gpus} GPUs both ran on {devices}")
        return f"2 jobs on {', '.join(devices)} ({gpus} GPUs)"

    def resume(self) -> str:
        args = ["train.steps=6", "checkpoint.every=3", "train.ema.decay=0.9"]
        self.train("straight", args)
        self.train("split", [*args, "train.steps=3"])
        split = self.out / "split"
        cfg = compose_config([f"resume={split}"])
        train(cfg, split, [f"resume={split}", "train.steps=6"])
        a = torch.load(self.out / "straight" / "checkpoints" / "step_0000006.pt",
                       weights_only=True)
        b = torch.load(checkpoint.latest(split), weights_only=True)
        for key in ("generator", "critic", "generator_ema"):
            assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
        return f"3 + 3 steps on {self.device} == 6 steps (generator, critic, EMA)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=None, help="keep the runs here")
    p.add_argument("--no-benchmark", action="store_true")
    p.add_argument("--benchmark-steps", type=int, default=100)
    args = p.parse_args(argv)
    cuda = torch.cuda.is_available()
    name = torch.cuda.get_device_name(0) if cuda else "no CUDA device"
    print(f"device check: torch {torch.__version__}, {name}, "
          f"{torch.cuda.device_count() if cuda else 0} GPU(s)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        c = Checks(out, cuda)
        c.run("device=auto", c.auto_device)
        c.run("in-memory data on the device", c.in_memory)
        c.run("pinned streaming (image folder)", c.pinned_streaming)
        c.run("train.amp=bf16", c.flag("amp", ["train.amp=bf16", "model=dcgan", "loss=hinge"]))
        c.run("train.channels_last", c.flag("channels_last", ["model=dcgan",
                                                               "train.channels_last=true"]))
        c.run("train.compile", c.flag("compile", ["train.compile=true", "loss=hinge"]))
        c.run("generator EMA", c.flag("ema", ["train.ema.decay=0.999"], needs_cuda=False))
        c.run("every model at its real width", c.models)
        c.run("two-job parallel sweep", c.parallel_sweep)
        c.run("bit-exact resume on the device", c.resume)
    failed = [r for r in c.results if r[0] == "FAIL"]
    skipped = [r for r in c.results if r[0] == "skip"]
    print(f"\n{len(c.results) - len(failed) - len(skipped)} passed, {len(failed)} failed, "
          f"{len(skipped)} skipped" + (" (no CUDA here)" if skipped and not cuda else ""))
    if not args.no_benchmark:
        if cuda:
            subprocess.run([sys.executable, "scripts/benchmark.py", "--device", "cuda",
                            "--steps", str(args.benchmark_steps), "--main-only"], cwd=ROOT)
        else:
            print("benchmark: skipped (no CUDA; the CPU figures: python scripts/benchmark.py)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
