"""Execution choices that change speed, never the maths: the `train.*` speed settings.

- `batch_critic`: one critic forward over [real; fake] instead of two. Only valid when no layer
  mixes samples (BatchNorm does) and no layer updates state per forward (spectral norm's power
  iteration would run once instead of twice). `auto` batches wherever that is valid: on CUDA it
  halves the kernel launches; on a CPU each weight gradient becomes one product instead of two
  plus an add (docs/performance.md has the figures).
- `compile`: torch.compile for the generator, and for the critic unless a gradient penalty
  needs its double backward (which compiled graphs do not support).
- `amp`: bf16 autocast for the adversarial forwards, refused with gradient penalties (their
  double backward in bf16 has not been shown to match float32).
- `batch_fakes`: the n_critic fake batches of one critic phase from one generator forward of
  n_critic x B rows. G does not change during the critic phase, and its batch-norm layers
  normalise each B-row part on its own (running statistics updated once per part, in order),
  so this computes what n_critic forwards compute, with larger products. Only the order of
  random draws changes. `auto`: on unless `compile` (the per-part batch norm is a
  Python-level patch).
- `channels_last`: NHWC memory layout for conv models on CUDA, where cuDNN is faster with it.
- `malloc_tuning`: keep freed host memory for reuse (glibc's `mallopt`). By default glibc hands
  every freed block over 128 KB-32 MB back to the kernel, so each step's activations and
  gradients arrive as fresh pages: 600-3,000 page faults (each zeroing a page) per WGAN-GP MLP
  generator step on a CPU. The process keeps its peak heap instead (memory stays flat).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils import parametrize

from gan_exp.errors import AUTO_BOOL, ConfigError, check_choice
from gan_exp.models.base import has_batchnorm
from gan_exp.validation import AMP


def critic_is_batchable(critic: nn.Module) -> bool:
    stateful = any(parametrize.is_parametrized(m) for m in critic.modules())
    return not has_batchnorm(critic) and not stateful


def resolve_batch_critic(setting: Any, critic: nn.Module) -> bool:
    check_choice("train.batch_critic", setting, AUTO_BOOL)
    if setting == "auto":
        return critic_is_batchable(critic)
    if setting is True and has_batchnorm(critic):
        raise ConfigError(
            "train.batch_critic=true with a BatchNorm critic would mix real and fake batch "
            "statistics; use auto or false"
        )
    return bool(setting)


def resolve_batch_fakes(setting: Any, compiled: bool) -> bool:
    check_choice("train.batch_fakes", setting, AUTO_BOOL)
    if setting == "auto":
        return not compiled
    if setting and compiled:
        raise ConfigError("train.batch_fakes=true does not combine with train.compile=true")
    return bool(setting)


def _per_part(forward: Callable[[Tensor], Tensor], parts: int, x: Tensor) -> Tensor:
    return torch.cat([forward(part) for part in x.chunk(parts)])


@contextlib.contextmanager
def per_part_batchnorm(module: nn.Module, parts: int) -> Iterator[None]:
    """Inside, each batch-norm layer of `module` treats its input as `parts` stacked batches:
    torch's own batch norm runs on each part in turn, so outputs and running statistics are
    those of `parts` separate forwards."""
    layers = [m for m in module.modules() if isinstance(m, _BatchNorm)]
    for m in layers:
        m.forward = functools.partial(_per_part, type(m).forward.__get__(m), parts)
    try:
        yield
    finally:
        for m in layers:
            del m.forward


def resolve_amp(setting: str, per_sample_gradients: bool) -> str:
    check_choice("train.amp", setting, AMP)
    if setting != "none" and per_sample_gradients:
        raise ConfigError(
            "train.amp=bf16 with a gradient penalty is refused: the penalty's double backward in "
            "bf16 has not been shown to match float32. Use train.amp=none."
        )
    return setting


def autocast(device: torch.device, amp: str) -> Callable[[], contextlib.AbstractContextManager]:
    if amp == "none":
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def has_conv(module: nn.Module) -> bool:
    return any(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in module.modules())


def resolve_channels_last(setting: Any, device: torch.device, *modules: nn.Module) -> bool:
    check_choice("train.channels_last", setting, AUTO_BOOL)
    if setting == "auto":
        return device.type == "cuda" and any(has_conv(m) for m in modules)
    return bool(setting)


def maybe_compile(module: nn.Module, enabled: bool) -> nn.Module:
    """The module to call in the training step (its state stays in the original)."""
    return torch.compile(module) if enabled else module


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
_MMAP_THRESHOLD_MAX = 32 * 2**20  # glibc's ceiling on 64-bit: blocks above it still use mmap


_malloc_tuned: bool | None = None  # process-wide: applied once, whatever the number of runs


def tune_malloc(enabled: bool) -> bool:
    """Apply `train.malloc_tuning` to this process once; True when glibc accepted it."""
    global _malloc_tuned
    if not enabled or not sys.platform.startswith("linux"):
        return False
    if _malloc_tuned is not None:
        return _malloc_tuned
    _malloc_tuned = _mallopt()
    return _malloc_tuned


def _mallopt() -> bool:
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(
        mallopt(_M_TRIM_THRESHOLD, 2**30)
    )


@dataclass(frozen=True)
class SpeedSettings:
    """`train.*` speed settings resolved once for one run's models and device (none of them
    changes the maths; each `resolve_*` above says when `auto` turns a setting on)."""

    batch_critic: bool
    batch_fakes: bool
    compile_generator: bool
    compile_critic: bool
    amp: str
    channels_last: bool

    @staticmethod
    def resolve(
        train: Any, generator: nn.Module, critic: nn.Module, device: torch.device,
        per_sample_gradients: bool,
    ) -> SpeedSettings:
        compiled = bool(train.compile)
        return SpeedSettings(
            batch_critic=resolve_batch_critic(train.batch_critic, critic),
            batch_fakes=resolve_batch_fakes(train.batch_fakes, compiled),
            compile_generator=compiled,
            compile_critic=compiled and not per_sample_gradients,
            amp=resolve_amp(train.amp, per_sample_gradients),
            channels_last=resolve_channels_last(train.channels_last, device, generator, critic),
        )
