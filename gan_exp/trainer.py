"""The one training loop: n_critic critic steps, then one generator step, for any variant.

The loop only talks to the interfaces in `losses`, `penalties` and `models.base`; which
variant runs is decided entirely by the config. Scalars are accumulated on the device and
read back (one host sync) only every `log.every` generator steps.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor
from torchvision.utils import save_image
from tqdm import tqdm

from gan_exp.atomic import atomic_torch_save
from gan_exp.components import Components, build_components, resolve_device, seed_everything
from gan_exp.tb import RunLogger, flatten_config

log = logging.getLogger(__name__)

# Tags every run writes; the HParams tab shows their final values next to the config.
HPARAM_METRICS = ["loss/d", "loss/g", "loss/penalty", "critic/real", "critic/fake"]


class TrainingDiverged(RuntimeError):
    """A loss or critic output became NaN or infinite."""


class Meter:
    """Sums of detached scalars per tag, kept on the device until `read()`."""

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.counts: dict[str, int] = defaultdict(int)

    def add(self, values: dict[str, Tensor]) -> None:
        for tag, value in values.items():
            value = value.detach()
            self.sums[tag] = self.sums[tag] + value if tag in self.sums else value.clone()
            self.counts[tag] += 1

    def read(self) -> dict[str, float]:
        """Means since the last read: one device-to-host copy for all tags."""
        if not self.sums:
            return {}
        tags = list(self.sums)
        means = torch.stack([self.sums[t] / self.counts[t] for t in tags]).float().cpu().tolist()
        self.sums.clear()
        self.counts.clear()
        return dict(zip(tags, means, strict=True))


class Trainer:
    def __init__(self, cfg: DictConfig, run_dir: Path, parts: Components, device: torch.device):
        self.cfg, self.run_dir, self.parts, self.device = cfg, run_dir, parts, device
        self.G, self.D = parts.models.generator, parts.models.critic
        self.latent_dim = parts.models.latent_dim
        self.batches = parts.dataset.make_batches(cfg.train.batch_size, device)
        n_preview = cfg.log.n_samples or parts.dataset.preview_size
        noise_gen = torch.Generator().manual_seed(int(cfg.seed) + 1)
        self.fixed_noise = torch.randn(n_preview, self.latent_dim, generator=noise_gen).to(device)
        self.meter = Meter()
        self.step = 0

    def noise(self) -> Tensor:
        return torch.randn(self.cfg.train.batch_size, self.latent_dim, device=self.device)

    def critic_step(self) -> None:
        p = self.parts
        x_real = self.batches.next_batch()
        with torch.no_grad():
            x_fake = self.G(self.noise())
        real, fake = self.D(x_real), self.D(x_fake)
        d_loss = p.loss.d_loss(real, fake, x_real, x_fake)
        penalty = p.penalty(self.D, x_real, x_fake)
        total = d_loss if penalty is None else d_loss + penalty
        p.opt_d.zero_grad(set_to_none=True)
        total.backward()
        p.opt_d.step()
        p.penalty.after_d_step(self.D)
        stats = p.loss.stats(real, fake)
        stats["loss/d"] = d_loss
        stats["loss/penalty"] = (
            penalty if penalty is not None else torch.zeros((), device=self.device)
        )
        stats["loss/d_total"] = total
        self.meter.add(stats)

    def generator_step(self) -> None:
        p = self.parts
        self.D.requires_grad_(False)  # no critic weight gradients needed for G's update
        x_fake = self.G(self.noise())
        g_loss = p.loss.g_loss(self.D(x_fake), x_fake)
        p.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        p.opt_g.step()
        self.D.requires_grad_(True)
        self.meter.add({"loss/g": g_loss})

    @torch.no_grad()
    def preview(self) -> Tensor:
        was_training = self.G.training
        self.G.eval()
        fake = self.G(self.fixed_noise)
        self.G.train(was_training)
        return self.parts.dataset.preview(fake)

    def checkpoint(self) -> Path:
        ckpt_dir = self.run_dir / "checkpoints"
        state = {
            "step": self.step,
            "generator": self.G.state_dict(),
            "critic": self.D.state_dict(),
            "opt_g": self.parts.opt_g.state_dict(),
            "opt_d": self.parts.opt_d.state_dict(),
            "fixed_noise": self.fixed_noise.cpu(),
            "batches": self.batches.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "config": OmegaConf.to_yaml(self.cfg, resolve=True),
        }
        path = atomic_torch_save(state, ckpt_dir / f"step_{self.step:07d}.pt")
        for old in sorted(ckpt_dir.glob("step_*.pt"))[: -self.cfg.checkpoint.keep]:
            old.unlink()
        return path

    def run(self, logger: RunLogger) -> dict[str, float]:
        cfg = self.cfg
        steps, n_critic = cfg.train.steps, cfg.train.n_critic
        last: dict[str, float] = {}
        start = time.perf_counter()
        bar = tqdm(total=steps, desc="train", disable=not cfg.log.progress, dynamic_ncols=True)
        logger.image("samples", self.preview(), 0)
        while self.step < steps:
            for _ in range(n_critic):
                self.critic_step()
            self.generator_step()
            self.step += 1
            bar.update(1)
            done = self.step == steps
            if self.step % cfg.log.every == 0 or done:
                last = self.meter.read()
                bad = [k for k, v in last.items() if not math.isfinite(v)]
                if bad:
                    raise TrainingDiverged(
                        f"non-finite {', '.join(bad)} at step {self.step} "
                        f"(values: { {k: last[k] for k in bad} }); stopping"
                    )
                elapsed = time.perf_counter() - start
                last["perf/steps_per_sec"] = self.step / max(elapsed, 1e-9)
                logger.scalars(self.step, last)
                bar.set_postfix(d=f"{last['loss/d']:.4g}", g=f"{last['loss/g']:.4g}", refresh=False)
            if self.step % cfg.log.sample_every == 0 or done:
                logger.image("samples", self.preview(), self.step)
            if self.step % cfg.checkpoint.every == 0 or done:
                self.checkpoint()
        bar.close()
        last["time/train_sec"] = time.perf_counter() - start
        return last


def train(cfg: DictConfig, run_dir: str | Path) -> dict[str, float]:
    """Train one run into `run_dir` and return the last logged scalars.

    Usable without Hydra's decorator (tests, notebooks): pass a composed config.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    seed_everything(int(cfg.seed))
    parts = build_components(cfg, device)
    seed_everything(int(cfg.seed))  # the loop's randomness does not depend on how models were built
    trainer = Trainer(cfg, run_dir, parts, device)
    log.info(
        "run %s: loss=%s penalty=%s model=%s %s optimizer=%s on %s",
        run_dir,
        cfg.loss.name,
        cfg.penalty.name,
        cfg.model.name,
        parts.dataset.describe(),
        cfg.optimizer.name,
        device,
    )
    logger = RunLogger(run_dir)
    metrics: dict[str, Any] = {}
    success = False
    try:
        logger.start_hparams(flatten_config(cfg), HPARAM_METRICS)
        metrics = trainer.run(logger)
        save_image(trainer.preview(), run_dir / "samples.png")
        success = True
    finally:
        logger.close(success)
    log.info("finished %d steps: %s", trainer.step, {k: round(v, 5) for k, v in metrics.items()})
    return metrics
