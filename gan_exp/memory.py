"""What a run will hold in memory, estimated before anything large is allocated, and the one
message for an out-of-memory error during training.

The estimate builds the models on torch's `meta` device (shapes only, no storage) and runs one
forward pass there with hooks that add up every module's output: parameters with their
gradients and optimiser state, the activations a training step keeps for its backward pass,
the fake batches one generator forward makes for a critic phase (`train.batch_fakes`) and the
fixed preview noise. It is a lower bound (allocator overhead and temporaries are left out),
so a run it refuses could not have fitted; one it lets through may still run out, which
`out_of_memory` then reports with the step and what to reduce.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig

from gan_exp.errors import ResourceError

log = logging.getLogger(__name__)

FLOAT = 4  # bytes of a float32
# per parameter: the weight, its gradient and an optimiser's state (Adam keeps two moments)
PER_PARAMETER = 4
GiB = 1024**3


@dataclass(frozen=True)
class Need:
    """One part of the estimate: bytes, what it is and the keys that set it."""

    bytes: int
    what: str
    keys: str


def gib(n: int) -> str:
    x = n / GiB
    return f"{x:,.1f} GiB" if x >= 10 else f"{x:.2g} GiB"


def available(device: torch.device) -> int | None:
    """Bytes this process may still allocate on `device` (None where that is unknown)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:  # a cgroup v2 limit (containers, SLURM jobs) below the machine's memory
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            found.append(int(limit) - used)
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def _activations(module: torch.nn.Module, *inputs: torch.Tensor) -> int:
    """Bytes of all module outputs of one forward pass on the meta device."""
    total = 0

    def add(_m: torch.nn.Module, _i: object, out: object) -> None:
        nonlocal total
        if isinstance(out, torch.Tensor):
            items: list[object] = [out]
        elif isinstance(out, tuple | list):
            items = list(out)
        else:  # e.g. a CriticOutput
            items = list(getattr(out, "__dict__", {}).values())
        total += sum(t.numel() * t.element_size() for t in items if isinstance(t, torch.Tensor))

    handles = [m.register_forward_hook(add) for m in module.modules() if not list(m.children())]
    try:
        module(*inputs)
    finally:
        for h in handles:
            h.remove()
    return total


def estimate(cfg: DictConfig, build_models: Callable[[], object], shape: tuple[int, ...],
             preview: int) -> list[Need] | None:
    """The parts of what `cfg` needs at once, or None where the models cannot be built on the
    meta device (a user's model doing real computation in its constructor)."""
    try:
        with torch.device("meta"):
            models = build_models()
            g, d = models.generator, models.critic  # type: ignore[attr-defined]
            batch, n_critic = int(cfg.train.batch_size), int(cfg.train.n_critic)
            z = torch.empty(batch, int(models.latent_dim), device="meta")  # type: ignore[attr-defined]
            x = torch.empty(2 * batch, *shape, device="meta")
            acts = _activations(g, z) + _activations(d, x)
    except Exception as err:  # noqa: BLE001 (any failure only skips the estimate)
        log.debug("memory estimate skipped: %s", err)
        return None
    sample = FLOAT * int(torch.Size(shape).numel())
    params = sum(p.numel() for m in (g, d) for p in m.parameters())
    fakes = n_critic if str(cfg.train.get("batch_fakes", "auto")) != "false" else 1
    return [
        Need(PER_PARAMETER * FLOAT * params, f"{params:,} parameters with gradients and "
             "optimiser state", "the model's widths (model.*)"),
        Need(acts, f"one step's activations at batch {batch}", "train.batch_size"),
        Need(fakes * batch * sample, f"{fakes} fake batches of {batch} for a critic phase",
             "train.n_critic x train.batch_size"),
        Need(preview * (sample + FLOAT * int(models.latent_dim)),  # type: ignore[attr-defined]
             f"{preview:,} fixed preview samples", "log.n_samples"),
    ]


def check(cfg: DictConfig, build_models: Callable[[], object], shape: tuple[int, ...],
          preview: int, device: torch.device) -> None:
    """Refuse a configuration that cannot fit, naming the key of its largest part."""
    needs = estimate(cfg, build_models, shape, preview)
    free = available(device)
    if not needs or free is None:
        return
    total = sum(n.bytes for n in needs)
    if total <= free:
        return
    top = max(needs, key=lambda n: n.bytes)
    parts = "; ".join(f"{n.what}: {gib(n.bytes)}" for n in needs if n is not top)
    raise ResourceError(
        f"this configuration needs at least {gib(total)} on {device} and {gib(free)} is "
        f"available; the largest part is {top.what} ({gib(top.bytes)}): reduce {top.keys} "
        f"(the rest: {parts})"
    )


def is_out_of_memory(err: BaseException) -> bool:
    """torch's CUDA/MPS out-of-memory error, or the CPU allocator's failure."""
    if isinstance(err, torch.OutOfMemoryError | MemoryError):
        return True
    return isinstance(err, RuntimeError) and any(
        text in str(err) for text in ("can't allocate memory", "out of memory",
                                      "not enough memory")
    )


def out_of_memory(err: BaseException, step: int, device: torch.device,
                  checkpoint: Path | None) -> ResourceError:
    """The one message for running out of memory at `step`."""
    kept = f"the last good checkpoint is {checkpoint}" if checkpoint else "no checkpoint yet"
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ResourceError(
        f"out of memory on {device} at step {step} ({first[:160]}); reduce train.batch_size, "
        f"the model's widths (model.*), metrics.n_samples or log.n_samples; {kept}",
        during_training=True,
    )
