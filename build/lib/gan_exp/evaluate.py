"""Score a saved checkpoint on demand and write its sample grid: old runs can be ranked too.

python scripts/evaluate.py outputs/runs/<run>                 # newest checkpoint
python scripts/evaluate.py outputs/runs/<run>/checkpoints/step_0004000.pt --n-samples 10000
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torchvision.utils import save_image

from gan_exp import checkpoint
from gan_exp.components import build_components, resolve_device
from gan_exp.errors import ConfigError
from gan_exp.metrics import Evaluator
from gan_exp.trainer import Trainer


def evaluate(
    path: str | Path, n_samples: int | None = None, out: Path | None = None, device: str = "auto"
) -> dict[str, float]:
    """Metrics of the checkpoint at `path` (a file or a run folder); the grid goes to `out`."""
    path = Path(path)
    ckpt = checkpoint.resolve(str(path), path.parent)
    assert ckpt is not None
    state = checkpoint.load(ckpt)
    cfg = OmegaConf.create(state["config"])
    cfg.device = device
    if n_samples is not None:
        cfg.metrics.n_samples = cfg.metrics.toy_samples = n_samples
    dev = resolve_device(cfg.device)
    parts = build_components(cfg, dev)
    run_dir = ckpt.parent.parent
    trainer = Trainer(cfg, run_dir, parts, dev)
    checkpoint.restore_module(trainer.G, state["generator"], "generator", ckpt)
    trainer.fixed_noise = state["fixed_noise"].to(dev)
    scores = Evaluator(cfg, parts.dataset, dev)(trainer.G, trainer.latent_dim)
    scores["step"] = int(state["step"])
    out = out or run_dir / f"samples_step_{int(state['step']):07d}.png"
    save_image(trainer.preview(), out)
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", help="run folder or checkpoint file")
    parser.add_argument("--n-samples", type=int, default=None, help="generated samples to score")
    parser.add_argument("--out", type=Path, default=None, help="sample grid PNG to write")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, default=None, help="also write the scores here")
    args = parser.parse_args(argv)
    try:
        scores = evaluate(args.path, args.n_samples, args.out, args.device)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    text = json.dumps(scores, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())
