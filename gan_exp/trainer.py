"""The one training loop: n_critic critic steps, then one generator step, for any variant.

`train.updates=simultaneous` instead updates both players from one batch and one forward,
each with its gradient at the current weights of the other (simultaneous gradient descent, as
the ALI/PacGAN code trains its toy GANs); it requires n_critic 1.

The loop only talks to the interfaces in `losses`, `penalties` and `models.base`; which
variant runs is decided entirely by the config. Scalars are accumulated on the device and
read back (one host sync) only every `log.every` generator steps and before a checkpoint.
A run resumes bit-exactly from any checkpoint, saves one when asked to stop (Ctrl-C,
SIGTERM), and refuses to write a non-finite model to disk.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor
from tqdm import tqdm

from gan_exp import checkpoint, signals, speed, sweep
from gan_exp.augment import through
from gan_exp.components import Components
from gan_exp.directions import ema_tag
from gan_exp.ema import GeneratorEMA
from gan_exp.errors import ConfigError, Interrupted, TrainingDiverged, check_choice
from gan_exp.metrics import Evaluator
from gan_exp.metrics.tracker import MetricsTracker
from gan_exp.models.base import CriticOutput, split_output
from gan_exp.tb import RunLogger
from gan_exp.validation import UPDATES

log = logging.getLogger(__name__)


def submitit_handler() -> tuple[signal.Signals, Any] | None:
    """(signal, handler) when submitit handles this process's preemption signal, else None."""
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    sig = getattr(signal, f"SIG{name}", None)
    if sig is None:
        return None
    current = signal.getsignal(sig)
    owner = getattr(current, "__self__", None)
    if owner is not None and type(owner).__module__.startswith("submitit"):
        return sig, current
    return None


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

    def peek(self) -> dict[str, float]:
        """Means since the last read, left in place: one device-to-host copy for all tags."""
        if not self.sums:
            return {}
        tags = list(self.sums)
        means = torch.stack([self.sums[t] / self.counts[t] for t in tags]).float().cpu().tolist()
        return dict(zip(tags, means, strict=True))

    def read(self) -> dict[str, float]:
        """Means since the last read, then start a new interval."""
        means = self.peek()
        self.sums.clear()
        self.counts.clear()
        return means


def updates_mode(train: DictConfig) -> str:
    """`train.updates`, checked: simultaneous updates have no critic phase to repeat."""
    mode = str(train.get("updates", "alternating"))
    check_choice("train.updates", mode, UPDATES)
    if mode == "simultaneous" and int(train.n_critic) != 1:
        raise ConfigError(
            f"train.updates=simultaneous updates both players once per step; it needs "
            f"train.n_critic=1 (got {train.n_critic}). Use train.updates=alternating for "
            "n_critic > 1."
        )
    return mode


def check_finite(values: dict[str, float], step: int, max_critic: float | None) -> None:
    """Stop on NaN/inf in any logged value, or a critic output beyond `max_critic`."""
    bad = {k: v for k, v in values.items() if not math.isfinite(v)}
    if bad:
        raise TrainingDiverged(f"non-finite {', '.join(bad)} at step {step} (values: {bad})")
    if max_critic is not None:
        big = {k: v for k, v in values.items() if k.startswith("critic/") and abs(v) > max_critic}
        if big:
            raise TrainingDiverged(
                f"critic output exploded at step {step}: {big} beyond divergence.max_critic="
                f"{max_critic:g}"
            )


class Trainer:
    def __init__(
        self,
        cfg: DictConfig,
        run_dir: Path,
        parts: Components,
        device: torch.device,
        evaluator: Evaluator | None = None,
        choices: dict[str, str | None] | None = None,
    ):
        self.cfg, self.run_dir, self.parts, self.device = cfg, run_dir, parts, device
        self.choices = choices or {}  # group -> option, kept in checkpoints for resume checks
        self.evaluator = evaluator
        self.tracker = MetricsTracker(run_dir / "metrics.json")
        self.G, self.D = parts.models.generator, parts.models.critic
        self.latent_dim = parts.models.latent_dim
        # plain ints for the hot path: an OmegaConf lookup is slow next to a small step
        self.batch_size, self.n_critic = int(cfg.train.batch_size), int(cfg.train.n_critic)
        self.batches = parts.dataset.make_batches(self.batch_size, device)
        n_preview = cfg.log.n_samples or parts.dataset.preview_size
        noise_gen = torch.Generator().manual_seed(int(cfg.seed) + 1)
        self.fixed_noise = torch.randn(n_preview, self.latent_dim, generator=noise_gen).to(device)
        self.meter = Meter()
        self.step = 0
        speed.tune_malloc(cfg.train.malloc_tuning)  # process-wide, applied once per process
        self.speed = speed.SpeedSettings.resolve(
            cfg.train, self.G, self.D, device, parts.penalty.per_sample_gradients
        )
        self.batch_critic, self.batch_fakes = self.speed.batch_critic, self.speed.batch_fakes
        self.autocast = speed.autocast(device, self.speed.amp)
        self.channels_last = self.speed.channels_last
        if self.channels_last:
            self.G.to(memory_format=torch.channels_last)
            self.D.to(memory_format=torch.channels_last)
        # the step calls these; checkpoints and previews use the plain modules
        self.G_step = speed.maybe_compile(self.G, self.speed.compile_generator)
        # every batch the critic sees passes `augment` first (augment=none: as it is)
        self.D_step = through(parts.augment,
                              speed.maybe_compile(self.D, self.speed.compile_critic))
        self.zero = torch.zeros((), device=device)
        self.simultaneous = updates_mode(cfg.train) == "simultaneous"
        ema = cfg.train.get("ema") or {}
        self.ema = (GeneratorEMA(self.G, ema["decay"], ema.get("start", 0))
                    if ema.get("decay") is not None else None)

    def noise(self, rows: int | None = None) -> Tensor:
        return torch.randn(rows or self.batch_size, self.latent_dim, device=self.device)

    def fake_batches(self, n: int) -> list[Tensor]:
        """`n` fake batches from one generator forward (`train.batch_fakes`)."""
        with torch.no_grad(), self.autocast(), speed.per_part_batchnorm(self.G, n):
            return list(self.G_step(self.noise(n * self.batch_size)).chunk(n))

    def critic_phase(self) -> None:
        """The n_critic critic steps before each generator step."""
        if self.batch_fakes and self.n_critic > 1:
            for x_fake in self.fake_batches(self.n_critic):
                self.critic_step(x_fake)
        else:
            for _ in range(self.n_critic):
                self.critic_step()

    def real_batch(self) -> Tensor:
        x = self.batches.next_batch()
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def critic_outputs(
        self, x_real: Tensor, x_fake: Tensor
    ) -> tuple[CriticOutput, CriticOutput, Tensor | None]:
        """Critic outputs on real and fake, and the penalty term (None without one).

        The penalty keeps a forward of its own even when real and fake share one: its input
        gradient through a joint forward would also run the backward over the real and fake
        rows (zeros), which costs more than the separate forward saves.
        """
        with self.autocast():
            if self.batch_critic:
                real, fake = split_output(self.D_step(torch.cat([x_real, x_fake])), 2)
            else:
                real, fake = self.D_step(x_real), self.D_step(x_fake)
        return real, fake, self.parts.penalty(self.D_step, x_real, x_fake)

    def critic_objective(
        self, x_real: Tensor, x_fake: Tensor
    ) -> tuple[Tensor, CriticOutput, dict[str, Tensor]]:
        """D's total loss on one batch (its loss plus the penalty term), the critic's output on
        the fakes (the simultaneous step's G loss reuses it) and the scalars to log."""
        p = self.parts
        real, fake, penalty = self.critic_outputs(x_real, x_fake)
        with self.autocast():
            d_loss = p.loss.d_loss(real, fake, x_real, x_fake)
        total = d_loss if penalty is None else d_loss + penalty
        stats = p.loss.stats(real, fake)
        stats["loss/d"] = d_loss
        stats["loss/penalty"] = penalty if penalty is not None else self.zero
        stats["loss/d_total"] = total
        return total, fake, stats

    def critic_step(self, x_fake: Tensor | None = None) -> None:
        p = self.parts
        x_real = self.real_batch()
        if x_fake is None:
            with torch.no_grad(), self.autocast():
                x_fake = self.G_step(self.noise())
        total, _, stats = self.critic_objective(x_real, x_fake)
        p.opt_d.zero_grad(set_to_none=True)
        total.backward()
        p.opt_d.step()
        p.penalty.after_d_step(self.D)
        self.meter.add(stats)

    def generator_step(self) -> None:
        p = self.parts
        self.D.requires_grad_(False)  # no critic weight gradients needed for G's update
        with self.autocast():
            x_fake = self.G_step(self.noise())
            g_loss = p.loss.g_loss(self.D_step(x_fake), x_fake)
        p.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        p.opt_g.step()
        self.D.requires_grad_(True)
        self.meter.add({"loss/g": g_loss})

    def simultaneous_step(self) -> None:
        """Both players from one batch: D's gradient of its loss and G's gradient of its own,
        both taken before either moves (one G forward, so batch norm sees the batch once)."""
        p = self.parts
        x_real = self.real_batch()
        with self.autocast():
            x_fake = self.G_step(self.noise())
        total, fake, stats = self.critic_objective(x_real, x_fake)  # penalties detach x_fake
        with self.autocast():
            g_loss = p.loss.g_loss(fake, x_fake)
        g_params = [w for w in self.G.parameters() if w.requires_grad]
        d_params = [w for w in self.D.parameters() if w.requires_grad]
        g_grads = torch.autograd.grad(g_loss, g_params, retain_graph=True)
        d_grads = torch.autograd.grad(total, d_params)  # reaches D's weights only, not G's
        for params, grads in ((g_params, g_grads), (d_params, d_grads)):
            for w, grad in zip(params, grads, strict=True):
                w.grad = grad
        p.opt_d.step()
        p.opt_g.step()
        p.penalty.after_d_step(self.D)
        stats["loss/g"] = g_loss
        self.meter.add(stats)

    def train_step(self) -> None:
        """One step of the loop: `n_critic` critic steps, then one generator step (or one
        simultaneous update of both, `train.updates=simultaneous`).

        Public so that scripts (the benchmark, a notebook) can drive the loop step by step
        without logging, evaluation or checkpoints; `run()` adds those around it.
        """
        if self.simultaneous:
            self.simultaneous_step()
        else:
            self.critic_phase()
            self.generator_step()
        self.step += 1
        if self.ema is not None:
            self.ema.update(self.step)

    @torch.no_grad()
    def preview(self, generator: torch.nn.Module | None = None) -> Tensor:
        """The fixed-noise grid (or scatter) of the trained generator, or of `generator`."""
        G = generator if generator is not None else self.G
        was_training = G.training
        G.eval()
        fake = G(self.fixed_noise)
        G.train(was_training)
        return self.parts.dataset.preview(fake)

    def images(self, logger: RunLogger) -> None:
        logger.image("samples", self.preview(), self.step)
        if self.ema is not None:
            logger.image("samples_ema", self.preview(self.ema.module), self.step)

    def evaluate(self) -> dict[str, float]:
        """The metrics of the trained generator, and of its average as metrics_ema/*."""
        assert self.evaluator is not None
        scores = self.evaluator(self.G, self.latent_dim)
        if self.ema is not None:
            averaged = self.evaluator(self.ema.module, self.latent_dim)
            scores.update({ema_tag(k): v for k, v in averaged.items()})
        return scores

    def state_dict(self) -> dict[str, Any]:
        return {
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
            "choices": dict(self.choices),
            # what gan_exp.load_generator needs to build the generator without the dataset
            "data_spec": {"shape": list(self.parts.dataset.spec.shape),
                          "bounded": bool(self.parts.dataset.spec.bounded)},
            **({"generator_ema": self.ema.state_dict()} if self.ema is not None else {}),
        }

    def load_state_dict(self, state: dict[str, Any], path: Path) -> None:
        """Everything the next step depends on, so a resumed run continues bit-exactly."""
        checkpoint.restore_module(self.G, state["generator"], "generator", path)
        checkpoint.restore_module(self.D, state["critic"], "critic", path)
        if self.ema is not None:
            if "generator_ema" in state:
                checkpoint.restore_module(self.ema.module, state["generator_ema"],
                                          "averaged generator", path)
            else:  # train.ema.decay added on resume: the average starts from these weights
                self.ema.module.load_state_dict(self.G.state_dict())
                log.info("train.ema: %s holds no average; it starts from its generator", path)
        try:
            self.parts.opt_g.load_state_dict(state["opt_g"])
            self.parts.opt_d.load_state_dict(state["opt_d"])
        except (ValueError, KeyError) as err:
            raise checkpoint.CheckpointError(
                f"checkpoint {path} has optimiser state for another optimiser config: {err}"
            ) from err
        self.fixed_noise = state["fixed_noise"].to(self.device)
        if hasattr(self.batches, "load_state_dict"):
            self.batches.load_state_dict(state["batches"])
        torch.set_rng_state(state["rng_cpu"])
        if self.device.type == "cuda" and state.get("rng_cuda"):
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        self.step = int(state["step"])

    def checkpoint(self) -> Path:
        """Check the pending scalars and weights are finite (two syncs), then save atomically."""
        check_finite(self.meter.peek(), self.step, self.cfg.divergence.max_critic)
        nets = {"generator": self.G, "critic": self.D}
        finite = torch.stack(
            [
                torch.stack([torch.isfinite(p).all() for p in net.parameters()]).all()
                for net in nets.values()
            ]
        ).tolist()
        for name, ok in zip(nets, finite, strict=True):
            if not ok:
                raise TrainingDiverged(f"non-finite {name} weights at step {self.step}")
        return checkpoint.save(self.state_dict(), self.run_dir, self.cfg.checkpoint.keep)

    def keep_if_best(self) -> None:
        """`checkpoint.keep_best`: checkpoints/best.pt is this step's state when this
        evaluation is the best so far of `optimized_metric`."""
        key = self.cfg.get("optimized_metric")
        if not self.cfg.checkpoint.get("keep_best", False) or not key:
            return
        best = self.tracker.data["best"].get(key)
        if best is not None and best["step"] == self.step:
            checkpoint.save_best(self.state_dict(), self.run_dir)
            log.info("best %s so far (%.5g) at step %d: kept as %s", key, best["value"],
                     self.step, checkpoint.BEST)

    @contextmanager
    def stop_on_signals(self) -> Iterator[None]:
        """A stop signal only records itself (gan_exp.signals); the loop saves and stops at the
        end of the step. Under submitit SIGTERM is left to submitit, which ignores it, and its
        preemption/timeout signal (USR2) is taken instead: the loop saves a checkpoint, then
        hands the signal back to submitit, which requeues the job."""
        submitit = submitit_handler()
        self.handover: Any = None if submitit is None else submitit[1]
        sigs = signals.STOP_SIGNALS if submitit is None else tuple(
            s for s in (*signals.STOP_SIGNALS, submitit[0]) if s != signal.SIGTERM)
        with signals.handling(signals.request, sigs):
            yield

    def run(self, logger: RunLogger) -> dict[str, float]:
        cfg = self.cfg
        steps = int(cfg.train.steps)
        max_critic = cfg.divergence.max_critic
        log_every, sample_every = int(cfg.log.every), int(cfg.log.sample_every)
        eval_every, checkpoint_every = int(cfg.metrics.every), int(cfg.checkpoint.every)
        last: dict[str, float] = {}
        first_step, start = self.step, time.perf_counter()
        mark_step, mark_time = first_step, start  # the last log interval's start
        # jobs of a parallel sweep share one terminal: a log line per tenth of the run each,
        # named by the job, instead of bars overwriting each other on one line
        slot = sweep.current_slot()
        job_lines = bool(cfg.log.progress) and slot.parallel > 1
        tenth = max(1, (steps - first_step) // 10)
        bar = tqdm(
            total=steps,
            initial=self.step,
            desc="train",
            disable=not cfg.log.progress or job_lines,
            dynamic_ncols=True,
        )
        if self.step == 0:
            self.images(logger)
        with self.stop_on_signals():
            if signals.requested() is not None:  # a sweep job stopped during its start-up
                bar.close()
                raise Interrupted(signals.requested(), self.step, None)
            while self.step < steps:
                self.train_step()
                bar.update(1)
                done = self.step == steps
                if self.step % log_every == 0 or done:
                    last = self.meter.read()
                    check_finite(last, self.step, max_critic)
                    now = time.perf_counter()
                    # this interval's rate (a stall shows) and the rate since the start
                    last["perf/steps_per_sec"] = (self.step - mark_step) / max(
                        now - mark_time, 1e-9)
                    last["perf/steps_per_sec_avg"] = (self.step - first_step) / max(
                        now - start, 1e-9)
                    mark_step, mark_time = self.step, now
                    logger.scalars(self.step, last)
                    bar.set_postfix(
                        d=f"{last['loss/d']:.4g}", g=f"{last['loss/g']:.4g}", refresh=False
                    )
                if job_lines and ((self.step - first_step) % tenth == 0 or done):
                    log.info("%s: step %d/%d (%d%%), %.3g steps/s, loss/d %.4g, loss/g %.4g",
                             self.run_dir.name, self.step, steps, 100 * self.step // steps,
                             last.get("perf/steps_per_sec_avg", 0.0), last.get("loss/d", 0.0),
                             last.get("loss/g", 0.0))
                if self.step % sample_every == 0 or done:
                    self.images(logger)
                if self.evaluator is not None and (self.step % eval_every == 0 or done):
                    scores = self.evaluate()
                    logger.scalars(self.step, scores)
                    self.tracker.update(self.step, scores)
                    last.update(scores)
                    self.keep_if_best()
                saved = None
                if self.step % checkpoint_every == 0 or done:
                    saved = self.checkpoint()
                stop_signal = signals.requested()
                if stop_signal is not None:
                    bar.close()
                    stop = Interrupted(stop_signal, self.step, saved or self.checkpoint())
                    if self.handover is not None and stop_signal != signal.SIGINT:
                        stop.handover = self.handover
                    raise stop
        bar.close()
        last["time/train_sec"] = time.perf_counter() - start
        return last
