"""Score a saved checkpoint on demand and write its sample grid: old runs can be ranked too.

python scripts/evaluate.py outputs/runs/<run>                 # newest checkpoint
python scripts/evaluate.py outputs/runs/<run>/checkpoints/step_0004000.pt --n-samples 10000

The scores go to stdout as JSON; what was scored (the checkpoint, how many generated and real
samples) and where the files went, to stderr. Output paths are checked before any scoring.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from gan_exp import checkpoint
from gan_exp.atomic import atomic_write_bytes, atomic_write_text
from gan_exp.components import build_components, resolve_device
from gan_exp.errors import GanExpError, StorageError
from gan_exp.metrics import Evaluator
from gan_exp.trainer import Trainer


def say(message: str) -> None:
    print(f"evaluate: {message}", file=sys.stderr)


def evaluate(
    path: str | Path, n_samples: int | None = None, out: Path | None = None, device: str = "auto"
) -> dict[str, float]:
    """Metrics of the checkpoint at `path` (a file or a run folder); the grid goes to `out`."""
    ckpt, state = checkpoint.load_given(path)
    cfg = OmegaConf.create(state["config"])
    cfg.device = device
    trained_n = (int(cfg.metrics.n_samples), int(cfg.metrics.n_real))
    if n_samples is not None:
        cfg.metrics.n_samples = cfg.metrics.toy_samples = n_samples
    dev = resolve_device(cfg.device)
    parts = build_components(cfg, dev)
    run_dir = ckpt.parent.parent
    out = out or run_dir / f"samples_step_{int(state['step']):07d}.png"
    check_output(out, "--out")
    toy = parts.dataset.spec.shape == (2,)
    n_gen = int(cfg.metrics.toy_samples if toy else cfg.metrics.n_samples)
    say(f"checkpoint {ckpt} (step {int(state['step'])}), {n_gen} generated samples"
        + ("" if toy else f" against {int(cfg.metrics.n_real)} real ones"))
    if not toy and (n_gen, int(cfg.metrics.n_real)) != trained_n:
        say(f"training scored {trained_n[0]} generated against {trained_n[1]} real samples; FD, "
            "KID, precision/recall and density/coverage depend on these counts, so compare "
            "scores made with the same ones")
    trainer = Trainer(cfg, run_dir, parts, dev, Evaluator(cfg, parts.dataset, dev))
    checkpoint.restore_module(trainer.G, state["generator"], "generator", ckpt)
    if trainer.ema is not None:
        checkpoint.restore_module(trainer.ema.module, state["generator_ema"],
                                  "averaged generator", ckpt)
        say("scoring the trained generator (metrics/*) and its average (metrics_ema/*)")
    trainer.fixed_noise = state["fixed_noise"].to(dev)
    scores = trainer.evaluate()
    scores["step"] = int(state["step"])
    from torchvision.utils import save_image

    png = io.BytesIO()
    save_image(trainer.preview(), png, format="png")
    atomic_write_bytes(out, png.getvalue())
    say(f"sample grid written to {out}")
    return scores


def check_output(path: Path, flag: str) -> None:
    """Refuse an output path whose folder is missing or is not a folder, before scoring."""
    parent = path.absolute().parent
    if path.is_dir():
        raise StorageError(f"{flag} {path} is a folder; give a file name")
    if not parent.is_dir():
        what = "is a file" if parent.exists() else "does not exist"
        raise StorageError(f"{flag} {path}: its folder {parent} {what}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", help="run folder or checkpoint file")
    parser.add_argument("--n-samples", type=int, default=None, help="generated samples to score")
    parser.add_argument("--out", type=Path, default=None, help="sample grid PNG to write")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, default=None, help="also write the scores here")
    args = parser.parse_args(argv)
    if args.n_samples is not None and args.n_samples < 2:
        parser.error(f"--n-samples={args.n_samples}: must be at least 2")
    try:
        if args.json is not None:
            check_output(args.json, "--json")
        if args.out is not None:
            check_output(args.out, "--out")
        scores = evaluate(args.path, args.n_samples, args.out, args.device)
        text = json.dumps(scores, indent=2)
        if args.json is not None:
            atomic_write_text(args.json, text + "\n")
            say(f"scores written to {args.json}")
    except GanExpError as err:
        print(f"evaluate: {err.kind}: {err}", file=sys.stderr)
        return err.exit_status
    print(text)
    return 0


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())
