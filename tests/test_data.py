"""The offline datasets: deterministic, in the right format, and what the protocols say."""

import hashlib

import torch

from gan_exp.data import digits, toy
from gan_exp.data.base import InMemoryBatches


def test_digits_are_deterministic_balanced_and_mnist_shaped():
    a = digits.build(size=500, seed=3)
    b = digits.build(size=500, seed=3)
    c = digits.build(size=500, seed=4)
    assert a.data.shape == (500, 1, 28, 28) and a.data.dtype == torch.uint8
    assert torch.equal(a.data, b.data) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.data, c.data)
    assert torch.bincount(a.labels, minlength=10).tolist() == [50] * 10
    # strokes on a dark background, like MNIST (mean intensity ~ 0.13)
    assert 0.05 < a.data.float().mean().item() / 255 < 0.25
    assert (a.data.flatten(1).amax(1) > 200).all()  # no blank images


def test_the_digits_are_the_renderer_version_s_bytes():
    """Every committed digits result was trained and scored on these bytes: a renderer change
    that alters them must bump digits.RENDER_VERSION (and the results are re-run)."""
    images, labels = digits.generate(200, 0)
    found = hashlib.sha256(images.numpy().tobytes() + labels.numpy().tobytes()).hexdigest()
    assert digits.RENDER_VERSION == 1
    assert found == "f40a1eb7cf59eaea14d45561d01be246111e9f7f99a7a6c5fc0db9e83608adda"


def test_digit_classes_are_visually_distinct():
    ds = digits.build(size=2000, seed=0)
    x = ds.data.float().flatten(1) / 255
    means = torch.stack([x[ds.labels == k].mean(0) for k in range(10)])
    dist = torch.cdist(means, means)
    off_diag = dist[~torch.eye(10, dtype=torch.bool)]
    spread = (x - means[ds.labels]).norm(dim=1).mean()
    assert off_diag.min() > 0.25 * spread
    # nearest-class-mean classification is far above chance (10%)
    pred = torch.cdist(x, means).argmin(1)
    assert (pred == ds.labels).float().mean() > 0.6


def test_digits_cache_round_trip(tmp_path):
    first = digits.build(size=100, seed=1, cache_dir=str(tmp_path))
    files = list(tmp_path.glob("digits_*.pt"))
    assert len(files) == 1
    again = digits.build(size=100, seed=1, cache_dir=str(tmp_path))
    assert torch.equal(first.data, again.data)
    files[0].write_bytes(b"corrupt")
    assert torch.equal(digits.build(size=100, seed=1, cache_dir=str(tmp_path)).data, first.data)


def test_ring_has_eight_distinct_modes_on_the_unit_circle():
    means = toy.ring_means()
    assert means.shape == (8, 2)
    assert torch.cdist(means, means)[~torch.eye(8, dtype=torch.bool)].min() > 0.7  # no duplicate
    assert torch.allclose(means.norm(dim=1), torch.ones(8))
    ds = toy.ring(size=4000, seed=0)
    dist = torch.cdist(ds.data, means).min(1).values
    assert dist.max() < 6 * 0.01
    assert len(ds.labels.unique()) == 8


def test_grid_has_25_modes():
    means = toy.grid_means()
    assert means.shape == (25, 2)
    assert sorted(set(means[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    ds = toy.grid(size=5000, seed=0)
    assert torch.cdist(ds.data, means).min(1).values.max() < 6 * 0.05


def test_batches_cover_an_epoch_without_repeats_and_decode_to_unit_range():
    ds = digits.build(size=100, seed=0)
    batches = InMemoryBatches(ds, batch_size=20, device=torch.device("cpu"))
    seen = []
    for _ in range(5):
        batch = batches.next_batch()
        assert batch.shape == (20, 1, 28, 28) and batch.dtype == torch.float32
        assert batch.min() >= -1 and batch.max() <= 1
        seen.append(batch)
    rows = torch.cat(seen).flatten(1)
    assert torch.equal(rows.unique(dim=0), ds.decode(ds.data).flatten(1).unique(dim=0))


def test_scatter_preview_is_an_rgb_image():
    ds = toy.ring(size=500)
    img = ds.preview(torch.zeros(100, 2))
    assert img.shape == (3, 256, 256)
    red = (img[0] > 0.8) & (img[1] < 0.2)
    assert red.any()  # generated points drawn
