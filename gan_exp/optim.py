"""Optimiser pairs (G, D) with separate learning rates: the `optimizer` config group.

Each function takes both networks and returns `(opt_g, opt_d)`, so a config can set separate
G and D learning rates (TTUR) without the loop knowing which optimiser runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.optim import Optimizer

from gan_exp.errors import ConfigError, check_choice
from gan_exp.validation import IMPLS, check_value


def _impl_kwargs(opt_cls: type[Optimizer], impl: str, device: torch.device) -> dict[str, bool]:
    """`optimizer.impl`: auto = fused where this optimiser has a fused kernel, else foreach.

    Fused and foreach run the same update with fewer kernel launches; results agree to
    float rounding, not bit for bit, so a run keeps one implementation throughout.
    """
    check_choice("optimizer.impl", impl, IMPLS)
    if impl == "for_loop":
        return {"foreach": False}
    if impl == "foreach":
        return {"foreach": True}
    fused_ok = opt_cls in (torch.optim.Adam, torch.optim.SGD) and device.type in ("cuda", "cpu")
    if impl == "fused" and not fused_ok:
        raise ConfigError(f"optimizer.impl=fused is not available for {opt_cls.__name__} here")
    return {"fused": True} if fused_ok else {"foreach": True}


def _pair(
    opt_cls: type[Optimizer],
    generator: nn.Module,
    critic: nn.Module,
    lr_g: float,
    lr_d: float,
    impl: str = "auto",
    **kwargs: object,
) -> tuple[Optimizer, Optimizer]:
    """One optimiser of `opt_cls` per network, same settings but their own learning rate."""
    check_value("optimizer.lr_g", lr_g)
    check_value("optimizer.lr_d", lr_d)
    device = next(generator.parameters()).device
    kwargs = {**kwargs, **_impl_kwargs(opt_cls, impl, device)}
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
    impl: str = "auto",
) -> tuple[Optimizer, Optimizer]:
    check_value("optimizer.betas", betas)
    b = (float(betas[0]), float(betas[1]))
    return _pair(
        torch.optim.Adam, generator, critic, lr_g, lr_d, impl, betas=b, weight_decay=weight_decay
    )


def rmsprop(
    generator: nn.Module,
    critic: nn.Module,
    lr_g: float = 5e-5,
    lr_d: float = 5e-5,
    alpha: float = 0.99,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    impl: str = "auto",
) -> tuple[Optimizer, Optimizer]:
    return _pair(
        torch.optim.RMSprop,
        generator,
        critic,
        lr_g,
        lr_d,
        impl,
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
    impl: str = "auto",
) -> tuple[Optimizer, Optimizer]:
    return _pair(
        torch.optim.SGD,
        generator,
        critic,
        lr_g,
        lr_d,
        impl,
        momentum=momentum,
        nesterov=nesterov,
        weight_decay=weight_decay,
    )
