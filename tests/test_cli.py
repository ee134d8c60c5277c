"""The command line as a user types it, in a process of its own (tests/zygote.py)."""

import os
import subprocess
from pathlib import Path

import pytest

from tests import zygote
from tests.conftest import FAST, read_events


def cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return zygote.run(["-m", "gan_exp.train", *args], cwd=cwd, env=env, timeout=300)


@pytest.mark.heavy
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


@pytest.mark.parametrize("arg,message", [
    ("loss=wgangp", "loss=wgangp: no such loss option; did you mean wgan_gp? (options: dragan,"),
    ("loss=gan,hinje", "loss=hinje: no such loss option; did you mean hinge?"),
    ("train.step=10", "train.step is not a gan_exp setting; did you mean train.steps"),
    ("optimizer.lr=1e-3", "optimizer.lr is not a key of any optimizer option; did you mean "
                          "optimizer.lr_g or optimizer.lr_d?"),
    ("model.g_widht=8", "did you mean model.g_width"),
])
def test_a_typo_gets_the_nearest_real_key_or_option_first(tmp_path, arg, message):
    """Before Hydra, whose advice for a misspelt key (append it with +) is wrong."""
    proc = cli([arg], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "append" not in proc.stderr
    assert not (tmp_path / "outputs").exists()


def test_help_says_what_the_tool_is_with_groups_options_and_examples(tmp_path):
    proc = cli(["--help"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert text.startswith("gan_exp: config-driven GAN experiments")
    assert "Examples:" in text and "python -m gan_exp.train loss=wgan_gp dataset=ring" in text
    for line in ("   *gan                    Goodfellow et al. 2014",
                 "    wgan_gp                Gulrajani et al. 2017",
                 "   *digits                 Built-in offline digits",
                 "    pacgan_ring            PacGAN's synthetic-data protocol"):
        assert line in text, line
    assert all(len(line) <= 100 for line in text.splitlines())
    assert not (tmp_path / "outputs").exists()
