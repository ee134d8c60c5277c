"""Hostile inputs and environment faults, from the command line as a user or a cluster makes them.

Every case asserts the exit status, that no Python traceback reaches the user, that the
message names the key, value or path, and that the folders involved are byte-for-byte what
they were (a refused command must never rewrite a run that exists, nor leave a folder behind).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from gan_exp import checkpoint
from tests import zygote
from tests.vision_files import write_image_folder

FAULTS = Path(__file__).parent / "faults"
QUICK = [
    "dataset.size=64",
    "train.batch_size=16",
    "log.progress=false",
    "log.every=5",
    "log.sample_every=5",
    "metrics.enabled=false",
]


def cli(args: list[str], cwd: Path, env: dict | None = None, timeout: int = 300):
    full_env = {**os.environ, "HYDRA_FULL_ERROR": "0"}  # the session's data caches
    full_env.update(env or {})
    return zygote.run(["-m", "gan_exp.train", *args], cwd=cwd, env=full_env, timeout=timeout)


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every folder under `folder` (None: a folder)."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A folder with one finished run (10 steps, checkpoints at 5 and 10) in run/."""
    root = tmp_path_factory.mktemp("hostile")
    proc = cli([*QUICK, "train.steps=10", "checkpoint.every=5", f"hydra.run.dir={root / 'run'}"],
               root)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    (root / "garbage.pt").write_bytes(os.urandom(4096))
    (root / "a_file").write_text("not a folder")
    return root


def case(args, status, message, *, nothing_left=True):
    return pytest.param(args, status, message, nothing_left, id=" ".join(args)[:60])


# {run} is the finished run, {root} the test's folder
CASES = [
    # resume targets that do not exist: refused before Hydra makes a folder of their name
    case(["resume={run}/checkpoints/step_0000001.pt"], 2,
         "no such run folder or checkpoint file; {run}/checkpoints holds step_0000005.pt"),
    case(["resume={root}/nonexistent"], 2, "resume={root}/nonexistent: no such run folder"),
    # a fresh command aimed at a run's folder, a command refused by another run's lock
    case(["hydra.run.dir={run}", "loss=wgan", "seed=7"], 2, "{run} already holds checkpoints"),
    case(["resume={run}", "train.steps=20", "LOCKED"], 2, "is in use by process"),
    # values checked before anything reads them
    case(["seed=abc"], 2, "seed='abc' must be an integer in [0,"),
    case([f"seed={2**64}"], 2, f"seed={2**64} must be an integer"),
    case([f"seed={2**64 - 1}"], 2, f"seed={2**64 - 1} must be an integer"),
    case(["seed=-3"], 2, "seed=-3 must be an integer"),
    case(["+penalty.lam=10"], 2, "penalty.lam is not an option of penalty=none"),
    case(["+train.step=10"], 2, "train.step is not a gan_exp setting; nothing would read it; "
                                "did you mean train.steps?"),
    case(["+log.evry=3"], 2, "did you mean log.every?"),
    case(["loss=wgan", "+penalty.lamda=3"], 2, "penalty.lamda is not an option of penalty=clip"),
    # resume: groups, presets and seed stay; a step count below the checkpoint trains nothing
    case(["resume={run}", "train.steps=5"], 2,
         "train.steps=5 is below the checkpoint's step 10"),
    case(["resume={run}", "loss=wgan"], 2, "loss=wgan differs from the checkpoint's loss=gan"),
    case(["resume={run}", "experiment=pacgan_ring"], 2, "experiment=pacgan_ring on resume"),
    case(["resume={run}", "debug=fast"], 2, "debug=fast on resume"),
    case(["resume={run}", "seed=3"], 2, "seed=3 differs from the checkpoint's seed=0"),
    case(["resume={run}", "train.steps=20", "dataset.size=32"], 2,
         "dataset.size=32 differs from the checkpoint's dataset.size=64"),
    # a checkpoint that is not one
    case(["resume={root}/garbage.pt"], 2, "not a PyTorch checkpoint archive"),
    # environment: folders that cannot be created or written
    case(["hydra.run.dir={root}/a_file/run"], 3, "{root}/a_file is a file, not a folder"),
    case(["hydra.run.dir="], 2, "hydra.run.dir is empty"),
    case(["paths.data_dir={root}/a_file/data"], 3,
         "dataset.cache_dir={root}/a_file/data/digits cannot be written: {root}/a_file is a file"),
    # more memory than there is: estimated before allocating, the key to reduce named
    case(["model.g_hidden=[100000000]"], 2, "parameters with gradients and optimiser state"),
    case(["train.n_critic=1000000"], 2, "reduce train.n_critic x train.batch_size"),
    case(["log.n_samples=1000000000"], 2, "the largest part is 1,000,000,000 fixed preview "
                                          "samples (3,293.2 GiB): reduce log.n_samples"),
]


@pytest.mark.parametrize("args,status,message,nothing_left", CASES)
def test_refused_commands_change_nothing(work, args, status, message, nothing_left):
    run = work / "run"
    fill = {"run": str(run), "root": str(work)}
    args = [a.format(**fill) for a in args]
    lock = run / ".lock"
    if "LOCKED" in args:
        args.remove("LOCKED")
        lock.write_text(str(os.getpid()))  # a live process holds the run
    before_run, before_root = snapshot(run), sorted(p.name for p in work.iterdir())
    try:
        proc = cli([*QUICK, *args], work)
    finally:
        if lock.exists() and lock.read_text() == str(os.getpid()):
            lock.unlink()
    out = proc.stdout + proc.stderr
    assert proc.returncode == status, out
    assert "Traceback" not in out, out
    assert message.format(**fill) in out, out
    if "is in use by process" in message:
        before_run.pop(".lock", None)
    assert snapshot(run) == before_run, "a refused command changed the existing run"
    assert sorted(p.name for p in work.iterdir()) == before_root, "a refused command left files"
    assert not (work / "outputs").exists() or not any((work / "outputs").rglob("*"))


def test_a_resume_with_exponent_values_trains_and_keeps_the_first_record(work, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(work / "run", run)
    first = snapshot(run / ".hydra")
    proc = cli([*QUICK, f"resume={run}", "optimizer.lr_d=1e-4", "optimizer.lr_g=2.5E-4",
                "train.steps=15"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    state = checkpoint.load(checkpoint.latest(run))
    assert state["step"] == 15
    assert "lr_d: 0.0001" in state["config"] and "lr_g: 0.00025" in state["config"]
    assert all(snapshot(run / ".hydra").get(k) == v for k, v in first.items())
    # a finished run asked for the same steps again: nothing to train, nothing written
    before = snapshot(run)
    proc = cli([*QUICK, f"resume={run}", "train.steps=15"], tmp_path)
    assert proc.returncode == 0 and "nothing to train" in proc.stdout + proc.stderr
    assert snapshot(run) == before


def test_corrupt_image_with_dataloader_workers_is_one_line(tmp_path):
    folder = write_image_folder(tmp_path / "imgs", ["a", "b"], n=6)
    bad = next(folder.rglob("*.png"))
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    proc = cli(["dataset=image_folder", f"dataset.root={folder}", "dataset.image_size=16",
                "dataset.num_workers=2", "dataset.in_memory=true", *QUICK[1:]], tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out and "DataLoader worker" not in out, out
    assert f"could not read image {bad}" in out
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("*"))


def test_full_disk_during_a_checkpoint_keeps_the_earlier_ones_and_says_so(tmp_path):
    run = tmp_path / "run"
    proc = cli([*QUICK, "train.steps=10", "checkpoint.every=5", f"hydra.run.dir={run}"],
               tmp_path, env={"GAN_EXP_FAULT": "full_disk", "PYTHONPATH": str(FAULTS)})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 3, out
    assert "Traceback" not in out, out
    line = f"storage error: could not write {run}/checkpoints/step_0000010.pt: No space left"
    assert line in out
    assert line in (run / "train.log").read_text()  # the run's own log says why it ended
    assert [p.name for p in checkpoint.listing(run)] == ["step_0000005.pt"]
    assert checkpoint.load(run / "checkpoints" / "step_0000005.pt")["step"] == 5
    assert not list((run / "checkpoints").glob(".*.tmp"))


def test_out_of_memory_during_training_names_the_step_and_keeps_the_checkpoint(tmp_path):
    run = tmp_path / "run"
    proc = cli([*QUICK, "train.steps=10", "checkpoint.every=3", f"hydra.run.dir={run}"],
               tmp_path, env={"GAN_EXP_FAULT": "oom_at_step_5", "PYTHONPATH": str(FAULTS)})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 3, out
    assert "Traceback" not in out, out
    line = "out of memory: out of memory on cpu at step 4 ("
    assert line in out and "reduce train.batch_size" in out
    assert f"the last good checkpoint is {run}/checkpoints/step_0000003.pt" in out
    assert line in (run / "train.log").read_text()
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "failed" and status["step"] == 3
    assert checkpoint.load(run / "checkpoints" / "step_0000003.pt")["step"] == 3


def test_sigterm_during_start_up_exits_like_a_preemption_and_leaves_nothing(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "GAN_EXP_DATA": str(tmp_path / "data")}
    # 20,000 digits take seconds to render: the signal lands while the run is being built
    proc = zygote.popen(
        ["-m", "gan_exp.train", "dataset.size=20000", "log.progress=false",
         f"hydra.run.dir={run}"],
        cwd=tmp_path, env=env, stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 60
    while time.time() < deadline and not run.exists():
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "stopped by SIGTERM during start-up" in out and "Traceback" not in out, out
    assert not run.exists()


def test_checkpoint_listing_ignores_folders_and_other_files(tmp_path):
    ckpts = tmp_path / "run" / "checkpoints"
    ckpts.mkdir(parents=True)
    torch.save({"x": 1}, ckpts / "step_0000002.pt")
    (ckpts / "step_0000009.pt").mkdir()  # what an old bug made of a mistyped resume path
    (ckpts / "step_0000001.pt.bak").write_text("")
    assert [p.name for p in checkpoint.listing(tmp_path / "run")] == ["step_0000002.pt"]
    assert checkpoint.latest(tmp_path / "run").name == "step_0000002.pt"
