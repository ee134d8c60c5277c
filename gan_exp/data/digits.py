"""`dataset=digits`: the built-in offline image dataset, MNIST-shaped (1x28x28, 10 classes).

Each digit 0-9 is a set of pen strokes (polylines through arcs, lines and curves) in a unit
box. Every sample jitters the stroke vertices (handwriting wobble), applies a random affine
map (rotation, anisotropic scale, shear, shift), picks a pen width, and is rendered with an
anti-aliased distance-to-stroke falloff into a 20x20 box centred in 28x28, like MNIST. The
whole dataset is a pure function of `seed`, so runs are reproducible and nothing is
downloaded. It is deliberately harder than a fixed font: a GAN must learn the shape variation.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from gan_exp.atomic import atomic_torch_save, check_writable
from gan_exp.data.base import DataSpec, InMemoryDataset
from gan_exp.errors import ConfigError
from gan_exp.progress import bar

SIDE = 28
_Point = tuple[float, float]


def _arc(
    cx: float, cy: float, rx: float, ry: float, t0: float, t1: float, n: int = 9
) -> list[_Point]:
    """Points on an ellipse, angles in degrees, y pointing down (so -90 is the top)."""
    ts = [math.radians(t0 + (t1 - t0) * i / n) for i in range(n + 1)]
    return [(cx + rx * math.cos(t), cy + ry * math.sin(t)) for t in ts]


def _curve(p0: _Point, p1: _Point, p2: _Point, n: int = 6) -> list[_Point]:
    """Quadratic Bezier from p0 to p2 pulled towards p1."""
    out = []
    for i in range(n + 1):
        t = i / n
        a, b, c = (1 - t) ** 2, 2 * (1 - t) * t, t**2
        out.append((a * p0[0] + b * p1[0] + c * p2[0], a * p0[1] + b * p1[1] + c * p2[1]))
    return out


# Strokes per digit, in a unit box (x right, y down).
GLYPHS: dict[int, list[list[_Point]]] = {
    0: [_arc(0.5, 0.5, 0.28, 0.42, 0, 360, 16)],
    1: [[(0.33, 0.22), (0.52, 0.06), (0.52, 0.94)]],
    2: [_arc(0.5, 0.3, 0.26, 0.22, 190, 380) + [(0.2, 0.93), (0.82, 0.93)]],
    3: [_arc(0.48, 0.28, 0.24, 0.2, 200, 450), _arc(0.48, 0.7, 0.27, 0.22, 270, 510)],
    4: [[(0.66, 0.94), (0.66, 0.06), (0.15, 0.66), (0.86, 0.66)]],
    5: [[(0.78, 0.07), (0.3, 0.07), (0.27, 0.45)] + _arc(0.5, 0.66, 0.27, 0.26, 235, 510)],
    6: [_curve((0.72, 0.08), (0.26, 0.18), (0.24, 0.68)), _arc(0.5, 0.69, 0.26, 0.24, 0, 360, 12)],
    7: [[(0.18, 0.08), (0.82, 0.08), (0.4, 0.94)]],
    8: [_arc(0.5, 0.28, 0.21, 0.2, 0, 360, 12), _arc(0.5, 0.71, 0.26, 0.23, 0, 360, 12)],
    9: [_arc(0.5, 0.31, 0.25, 0.23, 0, 360, 12), _curve((0.75, 0.32), (0.76, 0.75), (0.56, 0.94))],
}


def _segments(strokes: list[list[_Point]]) -> Tensor:
    """(S, 2, 2) start/end points of every segment of every stroke."""
    segs = [(a, b) for s in strokes for a, b in zip(s[:-1], s[1:], strict=True)]
    return torch.tensor(segs, dtype=torch.float32)


def _render(segs: Tensor, width: Tensor) -> Tensor:
    """Anti-aliased strokes: segs (B, S, 2, 2) in pixels, width (B,) -> (B, 28, 28) in [0, 1].

    Each pixel's ink falls off with its distance to the nearest segment. x and y are kept in
    separate (B, P, S) planes, updated in place: a reduction over a trailing size-2 axis is
    slow on a CPU, and the planes give bit-identical values.
    """
    centres = torch.arange(SIDE, dtype=torch.float32) + 0.5
    py = centres.repeat_interleave(SIDE).reshape(1, -1, 1)  # (1, P, 1), pixels row by row
    px = centres.repeat(SIDE).reshape(1, -1, 1)
    ax, ay = segs[:, None, :, 0, 0], segs[:, None, :, 0, 1]  # (B, 1, S)
    abx, aby = segs[:, None, :, 1, 0] - ax, segs[:, None, :, 1, 1] - ay
    apx, apy = px - ax, py - ay  # (B, P, S)
    # t: where the pixel's projection falls along each segment, clamped to the segment
    t = (apx * abx).add_(apy * aby).div_((abx * abx).add_(aby * aby).clamp_min_(1e-8))
    t.clamp_(0, 1)
    dx, dy = apx.sub_(t * abx), apy.sub_(t.mul_(aby))
    dist = dx.mul_(dx).add_(dy.mul_(dy)).amin(dim=-1).sqrt_()  # (B, P)
    ink = (width[:, None] / 2 - dist + 0.5).clamp(0, 1)
    return ink.reshape(-1, SIDE, SIDE)


_CHUNK = 128  # digits per _render call: its (B, 784, S) planes then stay in the CPU's caches


def render_digits(labels: Tensor, generator: torch.Generator) -> Tensor:
    """(N,) labels -> (N, 1, 28, 28) uint8 images, deterministic given the generator state."""
    n = labels.shape[0]
    out = torch.empty(n, 1, SIDE, SIDE, dtype=torch.uint8)
    progress = bar(n, "rendering digits", unit="img")
    for digit, strokes in GLYPHS.items():
        idx = (labels == digit).nonzero().flatten()
        if idx.numel() == 0:
            continue
        base = _segments(strokes)  # (S, 2, 2)
        m = idx.numel()

        def u(*shape: int, lo: float, hi: float) -> Tensor:
            return torch.rand(*shape, generator=generator) * (hi - lo) + lo

        # Wobble: jitter each stroke vertex; shared endpoints move together because they
        # are the same vertex in two segments only up to the jitter size (fine for pen wobble).
        segs = base.expand(m, -1, -1, -1) + 0.025 * torch.randn(m, *base.shape, generator=generator)
        angle = u(m, lo=-0.22, hi=0.22)
        sx, sy = u(m, lo=0.8, hi=1.1), u(m, lo=0.85, hi=1.1)
        shear = u(m, lo=-0.25, hi=0.25)
        cos, sin = angle.cos(), angle.sin()
        # A = R @ Shear @ Scale, applied around the box centre, mapped to a 20 px box.
        a11, a12 = cos * sx, (cos * shear - sin) * sy
        a21, a22 = sin * sx, (sin * shear + cos) * sy
        mat = torch.stack([torch.stack([a11, a12], -1), torch.stack([a21, a22], -1)], -2) * 20.0
        shift = torch.full((m, 2), SIDE / 2) + u(m, 2, lo=-1.8, hi=1.8)
        pts = (segs - 0.5) @ mat[:, None].transpose(-1, -2) + shift[:, None, None, :]
        width = u(m, lo=1.6, hi=3.0)
        for start in range(0, m, _CHUNK):
            sl = slice(start, start + _CHUNK)
            ink = _render(pts[sl], width[sl])
            out[idx[sl], 0] = (ink * 255).round().to(torch.uint8)
            progress.update(len(idx[sl]))
    progress.close()
    return out


# Bump when the renderer changes so stale caches are not reused.
RENDER_VERSION = 1


def generate(size: int, seed: int) -> tuple[Tensor, Tensor]:
    """(images uint8 (N, 1, 28, 28), labels (N,)): classes balanced, a pure function of seed."""
    generator = torch.Generator().manual_seed(seed)
    labels = (torch.arange(size) % 10)[torch.randperm(size, generator=generator)]
    return render_digits(labels, generator), labels


FULL_SIZE = 60000  # the whole dataset, MNIST's training-set size; `size: null` means this


def build(
    size: int | None = FULL_SIZE, seed: int = 0, cache_dir: str | None = None,
    name: str = "digits",
) -> InMemoryDataset:
    """`size` samples drawn from `seed` (independent of the training seed).

    Fewer than FULL_SIZE is a slice for limited-data experiments: the image metrics then
    measure against the FULL_SIZE set (`unsliced`).

    Rendering 60k digits takes seconds, so the result is cached in `cache_dir` (written
    atomically; a cache is only ever a copy of what `generate` returns).
    """
    size = FULL_SIZE if size is None else size
    if size < 10:
        raise ConfigError(f"dataset.size={size} must be >= 10 (one sample per class)")
    cache = None
    if cache_dir:
        cache = Path(cache_dir) / f"digits_v{RENDER_VERSION}_n{size}_seed{seed}.pt"
    if cache is not None and cache.is_file():
        try:
            stored = torch.load(cache, weights_only=True)
            images, labels = stored["images"], stored["labels"]
        except Exception:  # an unreadable cache is regenerated, never trusted
            images, labels = generate(size, seed)
    else:
        if cache is not None:
            check_writable(cache.parent, "dataset.cache_dir",
                           "; set paths.data_dir to a writable folder, or dataset.cache_dir=null")
        images, labels = generate(size, seed)
        if cache is not None:
            atomic_torch_save({"images": images, "labels": labels}, cache)
    dataset = InMemoryDataset(name, images, labels, DataSpec(shape=(1, SIDE, SIDE), bounded=True))
    dataset.unsliced = {"size": FULL_SIZE} if size < FULL_SIZE else None
    return dataset
