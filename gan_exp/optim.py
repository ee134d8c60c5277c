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


def _pair(
    opt_cls: type[Optimizer],
    generator: nn.Module,
    critic: nn.Module,
    lr_g: float,
    lr_d: float,
    **kwargs: object,
) -> tuple[Optimizer, Optimizer]:
    """One optimiser of `opt_cls` per network, same settings but their own learning rate."""
    for key, value in (("optimizer.lr_g", lr_g), ("optimizer.lr_d", lr_d)):
        if not value > 0:
            raise ConfigError(f"{key}={value} must be > 0")
    return (
        opt_cls(generator.parameters(), lr=lr_g, **kwargs),
        opt_cls(critic.parameters(), lr=lr_d, **kwargs),
    )


def adam(
    generator: nn.Module,
    critic: nn.Module,
    lr_g: float = 2e-4,
    lr_d: float = 2e-4,
    betas: Sequence[float] = (0.5, 0.999),
    weight_decay: float = 0.0,
) -> tuple[Optimizer, Optimizer]:
    for i, beta in enumerate(betas):
        if not 0 <= beta < 1:
            raise ConfigError(f"optimizer.betas[{i}]={beta} must be in [0, 1)")
    b = (float(betas[0]), float(betas[1]))
    return _pair(
        torch.optim.Adam, generator, critic, lr_g, lr_d, betas=b, weight_decay=weight_decay
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
    return _pair(
        torch.optim.RMSprop,
        generator,
        critic,
        lr_g,
        lr_d,
        alpha=alpha,
        momentum=momentum,
        weight_decay=weight_decay,
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
    return _pair(
        torch.optim.SGD,
        generator,
        critic,
        lr_g,
        lr_d,
        momentum=momentum,
        nesterov=nesterov,
        weight_decay=weight_decay,
    )
