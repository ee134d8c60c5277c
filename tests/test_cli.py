"""The command line as a user types it, in a subprocess."""

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import FAST, read_events


def cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, "-m", "gan_exp.train", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_single_run_leaves_a_complete_run_folder(tmp_path):
    proc = cli([*FAST, "loss=dragan"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (tmp_path / "outputs" / "runs").iterdir()
    assert run_dir.name.endswith("_dragan_mlp_digits")
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert "penalty=dragan" in (run_dir / "train.log").read_text()
    assert list((run_dir / "checkpoints").glob("step_*.pt"))
    assert "loss/penalty" in read_events(run_dir).Tags()["scalars"]


def test_two_job_multirun_gives_one_folder_and_one_tensorboard_run_each(tmp_path):
    sweep = tmp_path / "sweep"
    proc = cli(["-m", "loss=wgan,wgan_gp", *FAST, f"hydra.sweep.dir={sweep}"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name.split(",")[0] for p in jobs] == ["0_dataset.size=256", "1_dataset.size=256"]
    assert ["loss=wgan," in p.name for p in jobs] == [True, False]
    assert ["loss=wgan_gp," in p.name for p in jobs] == [False, True]
    assert all("log.every" not in p.name for p in jobs)
    for job, loss in zip(jobs, ["wgan", "wgan_gp"], strict=True):
        assert len(list(job.glob("events.out.tfevents.*"))) == 1
        assert "critic/wasserstein_estimate" in read_events(job).Tags()["scalars"]
        assert f"name: {loss}" in (job / ".hydra" / "config.yaml").read_text()


def test_bad_combination_exits_with_a_clear_message(tmp_path):
    proc = cli([*FAST, "loss=ebgan", "model=mlp"], tmp_path)
    assert proc.returncode == 2
    assert "loss=ebgan needs an autoencoder critic" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_unknown_option_lists_choices(tmp_path):
    proc = cli(["loss=wgangp"], tmp_path)
    assert proc.returncode != 0
    assert "Available options" in proc.stderr and "wgan_gp" in proc.stderr
