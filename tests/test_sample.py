"""Using what was trained: `gan_exp.load_generator`, `gan-exp-sample` (PNG folders and .npz for
FID tools, interpolation grids) and `checkpoint.keep_best`, from the command line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gan_exp import checkpoint, load_generator
from gan_exp.sample import generate, to_uint8
from tests import zygote
from tests.conftest import FAST

ROOT = Path(__file__).resolve().parent.parent


def train(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return zygote.run(["-m", "gan_exp.train", *args], cwd=cwd, timeout=300)


def sample(*args: str) -> subprocess.CompletedProcess:
    return zygote.run(["-m", "gan_exp.sample", *args], cwd=ROOT, timeout=300)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    """A digits run that kept its best checkpoint by the classifier FD."""
    root = tmp_path_factory.mktemp("sample")
    run = root / "run"
    proc = train([*FAST, "metrics.every=3", "checkpoint.keep_best=true",
                  "optimized_metric=metrics/fd_classifier", f"hydra.run.dir={run}"], root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return run


def test_keep_best_keeps_the_best_evaluation_and_rotation_leaves_it(digits_run):
    best = json.loads((digits_run / "metrics.json").read_text())["best"]["metrics/fd_classifier"]
    kept = checkpoint.load(digits_run / checkpoint.BEST)
    assert kept["step"] == best["step"]
    assert [p.name for p in checkpoint.listing(digits_run)] == [
        "step_0000003.pt", "step_0000006.pt"]
    assert checkpoint.latest(digits_run).name == "step_0000006.pt"  # resume ignores best.pt


def test_keep_best_needs_a_ranked_optimized_metric(tmp_path):
    proc = train([*FAST, "checkpoint.keep_best=true", f"hydra.run.dir={tmp_path / 'r'}"],
                 tmp_path)
    assert proc.returncode == 2
    assert "checkpoint.keep_best=true needs optimized_metric set to an evaluated metric" in \
        proc.stdout + proc.stderr
    assert "metrics/fd_classifier" in proc.stdout + proc.stderr
    assert not (tmp_path / "r").exists()


def test_load_generator_gives_the_trained_weights_in_eval_mode(digits_run):
    G = load_generator(digits_run)
    state = checkpoint.load(checkpoint.latest(digits_run))["generator"]
    assert not G.training and G.step == 6
    for name, tensor in G.state_dict().items():
        assert torch.equal(tensor, state[name]), name
    with torch.no_grad():
        out = G(torch.randn(5, G.latent_dim))
    assert out.shape == (5, 1, 28, 28) and out.min() >= -1 and out.max() <= 1
    assert load_generator(digits_run / checkpoint.BEST).step == checkpoint.load(
        digits_run / checkpoint.BEST)["step"]


def test_sample_writes_pngs_and_npz_that_fid_tools_read_and_never_overwrites(digits_run,
                                                                            tmp_path):
    folder, npz = tmp_path / "samples", tmp_path / "samples.npz"
    proc = sample(digits_run, "--n", 12, "--out", folder, "--seed", 3)
    assert proc.returncode == 0, proc.stderr
    assert f"12 samples (seed 3) written to {folder}" in proc.stderr
    assert f"generator of {digits_run / 'checkpoints' / 'step_0000006.pt'}" in proc.stderr
    files = sorted(folder.iterdir())
    assert [p.name for p in files] == [f"{i:02d}.png" for i in range(12)]
    expected = to_uint8(generate(load_generator(digits_run), 12, seed=3))
    assert np.array_equal(np.asarray(Image.open(files[4])), expected[4, ..., 0])
    assert sample(digits_run, "--n", 12, "--out", npz, "--seed", 3).returncode == 0
    arr = np.load(npz)["arr_0"]
    assert arr.dtype == np.uint8 and arr.shape == (12, 28, 28, 1)
    assert np.array_equal(arr, expected)
    # an existing output is refused and left as it was
    before = npz.read_bytes()
    proc = sample(digits_run, "--n", 5, "--out", npz)
    assert proc.returncode == 3 and f"--out {npz} exists" in proc.stderr
    assert npz.read_bytes() == before and len(list(folder.iterdir())) == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples", "samples.npz"]


def test_interpolation_grid_and_bad_input(digits_run, tmp_path):
    grid = tmp_path / "walk.png"
    proc = sample(digits_run, "--interpolate", grid, "--rows", 3, "--cols", 5)
    assert proc.returncode == 0, proc.stderr
    width, height = Image.open(grid).size
    assert (width, height) == (5 * 28 + 6 * 2, 3 * 28 + 4 * 2)  # save_image's 2-px padding
    assert "3 x 5 interpolation grid" in proc.stderr
    proc = sample(tmp_path / "nope", "--out", tmp_path / "x.npz")
    assert proc.returncode == 2 and "no such run folder or checkpoint file" in proc.stderr
    proc = sample(digits_run)
    assert proc.returncode == 2 and "give --out DIR|FILE.npz" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_toy_points_go_to_npz_and_not_to_pngs(tmp_path):
    run = tmp_path / "toy"
    proc = train(["dataset=ring", "train.steps=3", "metrics.enabled=false",
                  "log.progress=false", f"hydra.run.dir={run}"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sample(run, "--n", 7, "--out", tmp_path / "p.npz").returncode == 0
    assert np.load(tmp_path / "p.npz")["arr_0"].shape == (7, 2)
    proc = sample(run, "--n", 7, "--out", tmp_path / "pngs")
    assert proc.returncode == 3 and "2-D points, not images" in proc.stderr
    assert not (tmp_path / "pngs").exists()
