"""Shared helpers: compose the real configs (no decorator), read TensorBoard events back."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gan_exp.train import CONF_DIR, compose_config

# A pytest-xdist worker (`-n 2` in pyproject.toml): two of them share the cores.
XDIST_WORKER = bool(os.environ.get("PYTEST_XDIST_WORKER"))
# Each worker trains with one torch thread (with other work on the cores, one beats two for
# these small models: docs/performance.md), and an OpenMP thread that waits for work sleeps
# instead of spinning on the other worker's core. Set before torch is imported (gan_exp.train
# does not import it), which reads them once per process; the test zygote and every process
# the tests start inherit them. A sweep's jobs still get their share from gan_exp.sweep.
if XDIST_WORKER:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Small and quick: a few steps on a small slice of the offline digits.
FAST = [
    "train.steps=6",
    "train.batch_size=16",
    "log.every=2",
    "log.sample_every=3",
    "log.progress=false",
    "checkpoint.every=3",
    "dataset.size=256",
    "metrics.n_samples=200",
    "metrics.n_real=200",
    "metrics.toy_samples=500",
    "metrics.classifier.epochs=1",
    "metrics.classifier.max_images=3000",  # of the whole digits, which the metrics measure on
]
# Shrink the conv models so CPU tests stay in seconds.
SMALL_EBGAN = ["model.g_width=16", "model.d_width=8"]


compose_cfg = compose_config  # the real configs, composed without the Hydra decorator


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def read_events(run_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The heavy tests (marked `heavy`: sweeps, the study, whole scripts) run first, so that
    the two pytest-xdist workers (`-n 2` in pyproject.toml) share them out and neither is left
    running one alone at the end. Every worker collects the same order, as xdist requires."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)


@pytest.fixture(autouse=True, scope="session")
def data_dir(tmp_path_factory):
    """Dataset caches go to a temporary folder, never into the checkout's data/. Under
    pytest-xdist the workers share one (the folder above each worker's own): the digits are
    rendered and the metrics' classifier trained once per session, as the jobs of a parallel
    sweep share them (atomic cache writes, the classifier under a lock)."""
    if XDIST_WORKER:
        path = tmp_path_factory.getbasetemp().parent / "data"
        path.mkdir(exist_ok=True)
    else:
        path = tmp_path_factory.mktemp("data")
    mp = pytest.MonkeyPatch()
    mp.setenv("GAN_EXP_DATA", str(path))
    yield path
    mp.undo()
