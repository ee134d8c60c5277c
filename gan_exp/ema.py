"""An exponential moving average of the generator's weights (Yazici et al. 2019, "The Unusual
Effectiveness of Averaging in GAN Training"), `train.ema.decay`.

As in StudioGAN's `Ema` (github.com/POSTECH-CVLab/PyTorch-StudioGAN, utils/ema.py) and the
BigGAN/StyleGAN code: parameters are averaged, buffers (BatchNorm's running statistics) are
copied from the trained generator, and before `train.ema.start` generator steps the average is
a plain copy, so it does not remember the random initialisation. One fused in-place
`_foreach_lerp_` per step on the device: no host synchronisation, no extra kernel per tensor.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class GeneratorEMA:
    """`module` is the averaged generator: evaluate it like the trained one (eval mode)."""

    def __init__(self, generator: nn.Module, decay: float, start: int) -> None:
        self.decay, self.start = float(decay), int(start)
        self.module = copy.deepcopy(generator).eval().requires_grad_(False)
        self._source = generator
        self._pairs()

    def _pairs(self) -> None:
        self.params = list(self.module.parameters())
        self.source_params = list(self._source.parameters())
        self.buffers = list(self.module.buffers())
        self.source_buffers = list(self._source.buffers())

    @torch.no_grad()
    def update(self, step: int) -> None:
        """After generator step `step` (1-based): average, or copy before `start`."""
        source = [p.detach() for p in self.source_params]
        if step <= self.start:
            torch._foreach_copy_(self.params, source)
        else:
            torch._foreach_lerp_(self.params, source, 1.0 - self.decay)
        if self.buffers:
            torch._foreach_copy_(self.buffers, [b.detach() for b in self.source_buffers])

    def state_dict(self) -> dict[str, Any]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state)
