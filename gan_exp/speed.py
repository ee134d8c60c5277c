"""Execution choices that change speed, never the maths: the `train.*` speed settings.

- `batch_critic`: one critic forward over [real; fake] instead of two. Only valid when no layer
  mixes samples (BatchNorm does) and no layer updates state per forward (spectral norm's power
  iteration would run once instead of twice). `auto` batches on CUDA, where it halves the
  kernel launches; on a CPU one forward of 2N rows costs the same as two of N (measured).
- `compile`: torch.compile for the generator, and for the critic unless a gradient penalty
  needs its double backward (which compiled graphs do not support).
- `amp`: bf16 autocast for the adversarial forwards, refused with gradient penalties (their
  double backward in bf16 has not been shown to match float32).
- `channels_last`: NHWC memory layout for conv models on CUDA, where cuDNN is faster with it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from gan_exp.errors import ConfigError
from gan_exp.models.base import has_batchnorm

AMP = ("none", "bf16")


def critic_is_batchable(critic: nn.Module) -> bool:
    stateful = any(parametrize.is_parametrized(m) for m in critic.modules())
    return not has_batchnorm(critic) and not stateful


def resolve_batch_critic(setting: Any, critic: nn.Module, device: torch.device) -> bool:
    if setting == "auto":
        return device.type == "cuda" and critic_is_batchable(critic)
    if setting is True and has_batchnorm(critic):
        raise ConfigError(
            "train.batch_critic=true with a BatchNorm critic would mix real and fake batch "
            "statistics; use auto or false"
        )
    if setting not in (True, False):
        raise ConfigError(
            f"train.batch_critic={setting!r} is not supported; allowed: auto, true, false"
        )
    return bool(setting)


def resolve_amp(setting: str, per_sample_gradients: bool) -> str:
    if setting not in AMP:
        raise ConfigError(f"train.amp={setting!r} is not supported; allowed: {', '.join(AMP)}")
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
    if setting == "auto":
        return device.type == "cuda" and any(has_conv(m) for m in modules)
    if setting not in (True, False):
        raise ConfigError(
            f"train.channels_last={setting!r} is not supported; allowed: auto, true, false"
        )
    return bool(setting)


def maybe_compile(module: nn.Module, enabled: bool) -> nn.Module:
    """The module to call in the training step (its state stays in the original)."""
    return torch.compile(module) if enabled else module
