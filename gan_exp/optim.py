"""Optimiser pairs (G, D) with separate learning rates: the `optimizer` config group.

Each function takes both networks and returns `(opt_g, opt_d)`, so a config can set separate
G and D learning rates (TTUR) without the loop knowing which optimiser runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.optim import Optimizer

from gan_exp.errors import ConfigError


def _check_lr(lr_g: float, lr_d: float) -> None:
    for key, value in (("optimizer.lr_g", lr_g), ("optimizer.lr_d", lr_d)):
        if not value > 0:
            raise ConfigError(f"{key}={value} must be > 0")


def adam(
    generator: nn.Module,
    critic: nn.Module,
    lr_g: float = 2e-4,
    lr_d: float = 2e-4,
    betas: Sequence[float] = (0.5, 0.999),
    weight_decay: float = 0.0,
) -> tuple[Optimizer, Optimizer]:
    _check_lr(lr_g, lr_d)
    for i, beta in enumerate(betas):
        if not 0 <= beta < 1:
            raise ConfigError(f"optimizer.betas[{i}]={beta} must be in [0, 1)")
    b = (float(betas[0]), float(betas[1]))
    return (
        torch.optim.Adam(generator.parameters(), lr=lr_g, betas=b, weight_decay=weight_decay),
        torch.optim.Adam(critic.parameters(), lr=lr_d, betas=b, weight_decay=weight_decay),
    )


def rmsprop(
    generator: nn.Module,
    critic: nn.Module,
    lr_g: float = 5e-5,
    lr_d: float = 5e-5,
    alpha: float = 0.99,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
) -> tuple[Optimizer, Optimizer]:
    _check_lr(lr_g, lr_d)
    kw = {"alpha": alpha, "momentum": momentum, "weight_decay": weight_decay}
    return (
        torch.optim.RMSprop(generator.parameters(), lr=lr_g, **kw),
        torch.optim.RMSprop(critic.parameters(), lr=lr_d, **kw),
    )


def sgd(
    generator: nn.Module,
    critic: nn.Module,
    lr_g: float = 1e-2,
    lr_d: float = 1e-2,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
) -> tuple[Optimizer, Optimizer]:
    _check_lr(lr_g, lr_d)
    kw = {"momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay}
    return (
        torch.optim.SGD(generator.parameters(), lr=lr_g, **kw),
        torch.optim.SGD(critic.parameters(), lr=lr_d, **kw),
    )
