"""Resume, interruption, checkpoint safety, divergence and bad input."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from gan_exp import checkpoint
from gan_exp.components import build_components, resolve_device
from gan_exp.errors import ConfigError, TrainingDiverged
from gan_exp.run import train
from gan_exp.validation import CHOICES, validate
from tests import zygote
from tests.conftest import FAST, compose_cfg, read_events

CPU = resolve_device("cpu")
BASE = [*FAST, "log.every=1", "checkpoint.every=4", "checkpoint.keep=10"]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["generator"]


@pytest.mark.parametrize("loss", ["wgan_gp", "dragan", "wgan"])
def test_resume_is_bit_identical(tmp_path, loss):
    straight = [*BASE, f"loss={loss}", "train.steps=8"]
    train(compose_cfg(straight), tmp_path / "straight")
    half = [*BASE, f"loss={loss}", "train.steps=4"]
    train(compose_cfg(half), tmp_path / "split")
    # continue with the stored config; only train.steps changes
    train(
        compose_cfg([f"resume={tmp_path / 'split'}"]),
        tmp_path / "split",
        overrides=[f"resume={tmp_path / 'split'}", "train.steps=8"],
    )
    a = weights(tmp_path / "straight" / "checkpoints" / "step_0000008.pt")
    b = weights(tmp_path / "split" / "checkpoints" / "step_0000008.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # one TensorBoard run whose steps continue
    steps = [e.step for e in read_events(tmp_path / "split").Scalars("loss/g")]
    assert steps == list(range(1, 9))


def test_resume_auto_continues_in_the_same_folder_or_starts_fresh(tmp_path):
    run = tmp_path / "run"
    train(compose_cfg([*BASE, "train.steps=4", "resume=auto"]), run)  # nothing yet: fresh
    metrics = train(
        compose_cfg([*BASE, "train.steps=6", "resume=auto"]), run, ["train.steps=6", "resume=auto"]
    )
    assert checkpoint.latest(run).name == "step_0000006.pt"
    assert "loss/g" in metrics


def test_fresh_run_refuses_a_folder_with_checkpoints(tmp_path):
    train(compose_cfg(BASE), tmp_path / "run")
    with pytest.raises(ConfigError, match="already holds checkpoints; pass resume=auto"):
        train(compose_cfg(BASE), tmp_path / "run")


def test_resume_keeps_the_groups(tmp_path):
    train(compose_cfg([*BASE, "loss=wgan_gp"]), tmp_path / "run")
    cfg = compose_cfg([f"resume={tmp_path / 'run'}", "loss=hinge"])
    with pytest.raises(
        checkpoint.CheckpointError, match="loss=hinge differs from the checkpoint's loss=wgan_gp"
    ):
        train(cfg, tmp_path / "run", [f"resume={tmp_path / 'run'}", "loss=hinge"])


def test_incompatible_checkpoint_names_file_and_mismatch(tmp_path):
    train(compose_cfg(BASE), tmp_path / "run")
    run = tmp_path / "run"
    ckpt = checkpoint.latest(run)
    with pytest.raises(
        checkpoint.CheckpointError,
        match=rf"(?s){ckpt.name} does not fit this generator.*size mismatch",
    ):
        train(
            compose_cfg([f"resume={ckpt}"]),
            run,
            [f"resume={ckpt}", "model.latent_dim=7", "train.steps=20"],
        )


def test_corrupt_and_truncated_checkpoints_are_named(tmp_path):
    train(compose_cfg(BASE), tmp_path / "run")
    ckpt = checkpoint.latest(tmp_path / "run")
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        checkpoint.CheckpointError, match=rf"checkpoint {ckpt} cannot be read.*corrupt or truncated"
    ):
        checkpoint.load(ckpt)
    ckpt.write_bytes(b"garbage")
    with pytest.raises(checkpoint.CheckpointError, match="cannot be read"):
        train(compose_cfg([f"resume={ckpt}"]), tmp_path / "run", [f"resume={ckpt}"])
    with pytest.raises(checkpoint.CheckpointError, match="no such run folder or checkpoint file"):
        checkpoint.resolve(str(tmp_path / "missing.pt"), tmp_path)


def test_checkpoints_load_weights_only_and_keep_the_newest(tmp_path):
    train(
        compose_cfg([*FAST, "train.steps=12", "checkpoint.every=2", "checkpoint.keep=3"]),
        tmp_path / "r",
    )
    names = sorted(p.name for p in (tmp_path / "r" / "checkpoints").iterdir())
    assert names == ["step_0000008.pt", "step_0000010.pt", "step_0000012.pt"]
    state = checkpoint.load(tmp_path / "r" / "checkpoints" / names[-1])  # weights_only=True inside
    assert state["step"] == 12 and "loss:" in state["config"]


def test_stale_temporary_files_are_cleaned(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / ".step_0000004.pt.abc.tmp").write_bytes(b"half")
    train(compose_cfg(BASE), run)
    assert not list((run / "checkpoints").glob("*.tmp"))


def test_a_live_run_locks_its_folder_and_a_dead_ones_lock_is_taken_over(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (run / ".lock").write_text(str(other.pid))
        with pytest.raises(ConfigError, match=rf"in use by process {other.pid}"):
            train(compose_cfg(BASE), run)
    finally:
        other.kill()
        other.wait()
    train(compose_cfg(BASE), run)  # the pid is gone: the lock is stale
    assert not (run / ".lock").exists()


def test_divergence_keeps_the_last_good_checkpoint(tmp_path):
    # an unconstrained WGAN critic grows without bound (about +15 per step here)
    run = tmp_path / "run"
    overrides = [
        *BASE,
        "train.steps=40",
        "loss=wgan",
        "penalty=none",
        "train.n_critic=1",
        "optimizer.lr_d=2e-4",
        "divergence.max_critic=100",
        "checkpoint.every=1",
    ]
    with pytest.raises(
        TrainingDiverged, match=r"critic output exploded at step \d+.*max_critic=100"
    ):
        train(compose_cfg(overrides), run)
    state = checkpoint.load(checkpoint.latest(run))
    assert 1 <= state["step"] < 40
    assert read_events(run).Scalars("loss/d")  # logs intact


def test_nan_is_never_checkpointed(tmp_path):
    run = tmp_path / "run"
    cfg = compose_cfg(
        [
            *FAST,
            "optimizer=sgd",
            "optimizer.lr_d=1e30",
            "optimizer.lr_g=1e30",
            "log.every=100",
            "checkpoint.every=1",
            "train.steps=50",
        ]
    )
    with pytest.raises(TrainingDiverged, match="non-finite"):
        train(cfg, run)
    for ckpt in (run / "checkpoints").glob("*.pt"):
        state = checkpoint.load(ckpt)
        assert all(torch.isfinite(t).all() for t in state["generator"].values())


BAD_INPUTS = [
    (["train.steps=0"], "train.steps=0 must be an integer >= 1"),
    (["train.steps=abc"], "train.steps='abc' must be an integer >= 1"),
    (["train.n_critic=-2"], "train.n_critic=-2 must be an integer >= 1"),
    (["train.batch_size=1"], "train.batch_size=1 must be an integer >= 2"),
    (["seed=-1"], "seed=-1 must be an integer in [0, 9223372036854775806]"),
    (["optimizer.lr_g=0"], "optimizer.lr_g=0 must be a number > 0"),
    (["optimizer.lr_d=-1e-4"], "optimizer.lr_d=-0.0001 must be a number > 0"),
    (["optimizer.betas=[0.5,1.0]"], "optimizer.betas=[0.5, 1.0] must be two numbers in [0, 1)"),
    (["optimizer.betas=[0.9]"], "optimizer.betas=[0.9] must be two numbers in [0, 1)"),
    (
        ["optimizer=rmsprop", "optimizer.alpha=1.5"],
        "optimizer.alpha=1.5 must be a number in (0, 1)",
    ),
    (["optimizer=sgd", "optimizer.momentum=-0.1"], "optimizer.momentum=-0.1 must be a number >= 0"),
    (["penalty=gp", "penalty.lam=-10"], "penalty.lam=-10 must be a number >= 0"),
    (["penalty=clip", "penalty.c=0"], "penalty.c=0 must be a number > 0"),
    (["penalty=real_grad", "penalty.gamma=nan"], "penalty.gamma=nan must be a number >= 0"),
    (
        ["penalty=dragan", "penalty.perturbation=paper"],
        "penalty.perturbation='paper' is not supported; allowed: authors, gaussian, symmetric",
    ),
    (["loss=ebgan", "loss.margin=0"], "loss.margin=0 must be null or a number > 0"),
    (
        ["loss=ebgan", "loss.hinge=mean"],
        "loss.hinge='mean' is not supported; allowed: per_sample, batch_mean",
    ),
    (
        ["loss=loss_sensitive", "loss.distance=l3"],
        "loss.distance='l3' is not supported; allowed: l1, l2",
    ),
    (["model.latent_dim=0"], "model.latent_dim=0 must be an integer >= 1"),
    (["model.g_hidden=[128,0]"], "model.g_hidden=[128, 0] must be a list of integers >= 1"),
    (
        ["model.d_norm=group"],
        "model.d_norm='group' is not supported; allowed: none, batch, layer, spectral",
    ),
    (["model=dcgan", "dataset=ring"], "model=dcgan needs square images of side [28, 32, 64]"),
    (["dataset.size=5"], "dataset.size=5 must be >= 10"),
    (["dataset=ring", "dataset.std=0"], "dataset.std=0 must be a number > 0"),
    (["dataset=mnist", "dataset.channels=2"], "dataset.channels=2 is not supported; allowed: 1, 3"),
    (
        ["dataset=mnist", "dataset.in_memory=maybe"],
        "dataset.in_memory='maybe' is not supported; allowed: auto, true, false",
    ),
    (
        ["train.batch_fakes=maybe"],
        "train.batch_fakes='maybe' is not supported; allowed: auto, true, false",
    ),
    (["train.amp=fp16"], "train.amp='fp16' is not supported; allowed: none, bf16"),
    (
        ["optimizer.impl=jit"],
        "optimizer.impl='jit' is not supported; allowed: auto, fused, foreach, for_loop",
    ),
    (
        ["loss=loss_sensitive", "loss.transform=exp"],
        "loss.transform='exp' is not supported; allowed: softplus, abs, none",
    ),
    (["log.every=0"], "log.every=0 must be an integer >= 1"),
    (["checkpoint.keep=0"], "checkpoint.keep=0 must be an integer >= 1"),
    (["divergence.max_critic=-5"], "divergence.max_critic=-5 must be null or a number > 0"),
    (["device=tpu"], "device='tpu' is not a device; allowed: auto, cpu, cuda, cuda:N"),
    (["loss=ebgan", "model=mlp"], "loss=ebgan needs an autoencoder critic"),
    (["loss=wgan_gp", "model.d_norm=batch"], "penalty=gp uses per-sample input gradients"),
]


@pytest.mark.parametrize("overrides,message", BAD_INPUTS, ids=[" ".join(o) for o, _ in BAD_INPUTS])
def test_bad_input_is_named_before_training(tmp_path, overrides, message):
    cfg = compose_cfg(["dataset.size=64", "metrics.classifier.epochs=1",
                       "metrics.classifier.max_images=3000", *overrides])
    with pytest.raises(ConfigError) as err:
        train(cfg, tmp_path / "run")
    assert message in str(err.value)
    assert not (tmp_path / "run" / "checkpoints").exists()


def _cli(args, cwd, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return zygote.popen(["-m", "gan_exp.train", *args], cwd=cwd, env=env,
                        stderr=subprocess.STDOUT, **kw)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])  # SIGHUP: the terminal closed
def test_a_stop_signal_saves_a_checkpoint_and_exits(tmp_path, sig):
    run = tmp_path / "run"
    proc = _cli(
        [
            "dataset.size=256",
            "train.steps=1000000",
            "checkpoint.every=1000000",
            "metrics.enabled=false",  # the signal's handling, not the metrics' classifier
            "log.progress=false",
            f"hydra.run.dir={run}",
        ],
        tmp_path,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list(run.glob("events.out.tfevents.*")):
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, out
    saved = checkpoint.latest(run)
    assert saved is not None and f"stopped by {signal.Signals(sig).name}" in out
    assert f"resume with \"resume='{run}'\"" in out  # pasteable: quoted for the shell and Hydra
    assert checkpoint.load(saved)["step"] > 0


def test_multirun_reports_a_diverged_job_and_keeps_the_others(tmp_path):
    sweep = tmp_path / "sweep"
    proc = _cli(
        [
            "-m",
            "optimizer=sgd",
            "optimizer.lr_d=1e-3,1e30",
            *FAST,
            "train.steps=20",
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
    )
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, out  # a sweep with a failed job
    assert "1 sweep job(s) failed" in out and "Traceback" not in out, out
    assert "training diverged: " in out and "non-finite" in out
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 2
    assert (jobs[0] / "samples.png").exists()  # the good job finished and kept its results


def test_build_rejects_bad_values_without_touching_disk():
    with pytest.raises(ConfigError, match="train.n_critic=0"):
        build_components(compose_cfg(["train.n_critic=0", "dataset.size=64"]), CPU)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_streamed_dataset_resumes_in_exactly_the_same_order(tmp_path, workers):
    from tests.vision_files import write_image_folder

    folder = write_image_folder(tmp_path / "imgs", ["a", "b"], n=5)  # 10 images: 2 batches/epoch
    data = ["dataset=image_folder", f"dataset.root={folder}", "dataset.image_size=16",
            "dataset.in_memory=false", f"dataset.num_workers={workers}", "train.batch_size=4",
            "model.latent_dim=8", "model.g_hidden=[16]", "model.d_hidden=[16]",
            "metrics.enabled=false", "log.progress=false", "log.every=1", "checkpoint.every=3",
            "checkpoint.keep=10"]
    train(compose_cfg([*data, "train.steps=7"]), tmp_path / "straight")
    train(compose_cfg([*data, "train.steps=3"]), tmp_path / "split")  # stops mid-epoch
    resume = f"resume={tmp_path / 'split'}"
    train(compose_cfg([resume]), tmp_path / "split", [resume, "train.steps=7"])
    a = weights(tmp_path / "straight" / "checkpoints" / "step_0000007.pt")
    b = weights(tmp_path / "split" / "checkpoints" / "step_0000007.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    state = checkpoint.load(tmp_path / "split" / "checkpoints" / "step_0000003.pt")["batches"]
    assert (state["epoch"], state["taken"]) == (1, 1)


@pytest.mark.parametrize("key", sorted(CHOICES))
def test_a_fixed_choice_setting_is_named_before_anything_is_built(key):
    """validate() names a value outside a setting's choices, before the data, the models and
    the metrics' classifier (a minute's training on a fresh machine) are built."""
    cfg = compose_cfg(["dataset=cifar10"] if key.startswith("dataset.") else [])
    OmegaConf.update(cfg, key, "maybe")
    with pytest.raises(ConfigError, match=rf"{re.escape(key)}='maybe' is not supported; allowed"):
        validate(cfg)
