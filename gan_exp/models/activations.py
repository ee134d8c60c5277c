"""Critic activations whose gradient graph stops at a second derivative known to be zero.

A gradient penalty differentiates the critic's input gradient a second time. For (leaky) ReLU
autograd's rule for that second pass, the derivative of `leaky_relu_backward` with respect to
its input, is a tensor of zeros, and autograd then carries those zeros back through every
earlier layer of the penalty's forward: full matmuls and convolutions whose results are all
zero. These modules compute the same function with torch's own kernels, but their backward
treats the slope pattern as the constant it is, so the second pass ends at the activation.

Forward values, first gradients and penalty gradients are bitwise equal to `nn.LeakyReLU` /
`nn.ReLU` (tested); docs/performance.md has what it saves. When the input
needs no gradient (sampling, evaluation) they call the stock op, in place if asked.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _MaskedLeakyReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, slope: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.slope = slope
        return F.relu(x) if slope == 0.0 else F.leaky_relu(x, slope)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        # torch's own first-derivative kernel, but fed a detached input: the slope it picks
        # is piecewise constant in x, so no second-order path back into the forward is built.
        (x,) = ctx.saved_tensors
        if ctx.slope == 0.0:
            return torch.ops.aten.threshold_backward(grad, x.detach(), 0.0), None
        return torch.ops.aten.leaky_relu_backward(grad, x.detach(), ctx.slope, False), None


def masked_leaky_relu(x: Tensor, slope: float, inplace: bool) -> Tensor:
    """Leaky ReLU (plain ReLU for slope 0) with the masked backward when x needs gradients."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _MaskedLeakyReLU.apply(x, slope)
    return F.relu(x, inplace=inplace) if slope == 0.0 else F.leaky_relu(x, slope, inplace=inplace)


class LeakyReLU(nn.LeakyReLU):
    """`nn.LeakyReLU` for critics (see the module docstring)."""

    def forward(self, x: Tensor) -> Tensor:
        return masked_leaky_relu(x, self.negative_slope, self.inplace)


class ReLU(nn.ReLU):
    """`nn.ReLU` for critics (see the module docstring)."""

    def forward(self, x: Tensor) -> Tensor:
        return masked_leaky_relu(x, 0.0, self.inplace)


def stock_activations(module: nn.Module) -> nn.Module:
    """Swap these modules back to torch's own, in place: the reference the tests and the
    benchmark's naive loop (written as PyTorch-GAN writes it) compare against."""
    for name, child in module.named_children():
        if isinstance(child, LeakyReLU):
            setattr(module, name, nn.LeakyReLU(child.negative_slope, child.inplace))
        elif isinstance(child, ReLU):
            setattr(module, name, nn.ReLU(child.inplace))
        else:
            stock_activations(child)
    return module
