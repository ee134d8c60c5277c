"""The tools around a run meet the train command's standard: a bad input gets one line naming
the file, the table is still printed when it can be, and nothing is left half-written."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests import zygote

ROOT = Path(__file__).resolve().parent.parent


def fake_job(folder: Path, overrides: str, history: list[dict]) -> None:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(overrides)
    (folder / ".hydra" / "config.yaml").write_text("train:\n  steps: 20\n")
    (folder / "status.json").write_text('{"state": "finished", "step": 20, "reason": ""}')
    final = {"metrics/modes": 8.0}
    (folder / "metrics.json").write_text(
        json.dumps({"final": final, "final_step": 20, "history": history}))


def summarize(*args: str) -> subprocess.CompletedProcess:
    return zygote.run(["scripts/summarize.py", *args], cwd=ROOT, timeout=120)


def test_summary_reads_damaged_records_and_says_which(tmp_path):
    sweep = tmp_path / "sweep"
    fake_job(sweep / "0_loss=gan,seed=0", "- loss=gan\n- seed=0\n",
             [{"step": 10, "metrics/modes": 7.0}, {"step": 20, "metrics/modes": 7.5},
              {"metrics/modes": 8.0}])  # the last entry has no step
    fake_job(sweep / "1_loss=hinge,seed=0", "- [unclosed\n", [{"step": 10, "metrics/modes": 8.0}])
    proc = summarize(str(sweep))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| gan | finished |" in proc.stdout and "| hinge | finished |" in proc.stdout
    assert "| final modes ↑ |" in proc.stdout and "↑ higher is better" in proc.stdout
    err = proc.stderr.strip().splitlines()
    assert len(err) == 3 and "Traceback" not in proc.stderr
    assert err[-1] == f"summarize: wrote summary.md, summary.csv, summary_curves.png into {sweep}"
    assert any("1_loss=hinge,seed=0/.hydra/overrides.yaml: unreadable" in e for e in err)
    assert any("0_loss=gan,seed=0/metrics.json: 1 history entries without a step" in e
               for e in err)
    assert (sweep / "summary.csv").read_text().startswith("loss,status,n,seeds")


def test_summary_of_a_folder_of_single_runs_invents_no_setting(tmp_path):
    """outputs/runs is not a multirun folder: runs without overrides are one row, said so."""
    runs = tmp_path / "runs"
    fake_job(runs / "2026-12-01_08-00-00-000001_gan_mlp_digits", "[]\n", [])
    fake_job(runs / "2026-12-01_09-00-00-000002_gan_mlp_digits", "[]\n", [])
    proc = summarize(str(runs))
    assert proc.returncode == 0, proc.stderr
    assert "(not a Hydra multirun folder: no multirun.yaml)" in proc.stdout
    assert "Swept: nothing" in proc.stdout and "| finished | - |" in proc.stdout
    assert "no curves: fewer than two evaluations per job" in proc.stderr


def test_summary_that_cannot_write_its_files_still_prints_the_table(tmp_path):
    sweep = tmp_path / "sweep"
    fake_job(sweep / "0_loss=gan,seed=0", "- loss=gan\n- seed=0\n", [])
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    proc = summarize(str(sweep), "--out", str(blocker / "sub"))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "| finished |" in proc.stdout and "Traceback" not in proc.stderr
    assert f"could not write summary.md/.csv/_curves.png into {blocker / 'sub'}" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "sweep"]
    assert not list(sweep.glob("summary*")) and not list(sweep.glob("*.tmp*"))


def test_a_printed_resume_argument_pastes_back_through_the_shell_and_hydra(tmp_path):
    """A stopped run prints `resume=<its folder>`; a sweep job's folder name holds `=` and `,`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from gan_exp.train import resume_argument

    for name in ("dataset=ring,loss=gan,seed=0", "it's a run", "plain"):
        run = tmp_path / name
        word = subprocess.run(["bash", "-c", f"printf %s {resume_argument(run)}"],
                              capture_output=True, text=True, check=True).stdout
        (override,) = OverridesParser.create().parse_overrides([word])
        assert (override.key_or_group, override.value()) == ("resume", str(run)), word


def test_a_run_piped_into_head_finishes_without_a_logging_traceback(tmp_path):
    """`python -m gan_exp.train ... | head -1`: the closed pipe ends the console output only."""
    run = tmp_path / "run"
    proc = zygote.popen(["-m", "gan_exp.train", "dataset=ring", "debug=fast",
                         "log.progress=false", f"hydra.run.dir={run}"], cwd=ROOT)
    assert proc.stdout.readline().startswith("[")
    proc.stdout.close()  # what head does after its line
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 0, err
    assert "Traceback" not in err and "Logging error" not in err
    assert "finished 20 steps" in (run / "train.log").read_text()


def test_a_one_image_folder_is_refused_as_too_small_with_one_message(tmp_path):
    from tests.vision_files import write_image_folder

    root = write_image_folder(tmp_path / "one", None, n=1)
    for batch in ([], ["train.batch_size=2"]):
        proc = zygote.run(["-m", "gan_exp.train", "dataset=image_folder",
                           f"dataset.root={root}", "debug=fast",
                           f"hydra.run.dir={tmp_path / 'run'}",
                           f"paths.data_dir={tmp_path / 'data'}", *batch], cwd=ROOT, timeout=300)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 2, out
        errors = [line for line in out.splitlines() if "ERROR" in line]
        assert len(errors) == 1 and "(1 samples of shape" in errors[0], out
        assert "is too small to train: a batch needs at least 2 samples" in errors[0]
        assert not (tmp_path / "run").exists()


def test_the_run_lock_names_its_holder_and_outlives_neither_it_nor_a_reused_pid(tmp_path):
    import os

    import pytest

    from gan_exp.errors import ConfigError, StorageError
    from gan_exp.run_folder import Holder, read_holder, run_folder_lock

    with run_folder_lock(tmp_path):
        assert read_holder(tmp_path) == Holder.me() and Holder.me().alive()
    assert not (tmp_path / ".lock").exists()
    lock = tmp_path / ".lock"
    # the pid is alive (this test's parent) but belongs to another process than the holder
    lock.write_text(json.dumps({"pid": os.getppid(), "host": Holder.me().host,
                                "started": "1@another-boot"}))
    with run_folder_lock(tmp_path):
        pass
    lock.write_text(json.dumps({"pid": 1, "host": "node-7", "started": "5@b"}))
    with pytest.raises(ConfigError, match="in use by process 1 on node-7.*remove .*\\.lock"), \
            run_folder_lock(tmp_path):
        pass
    lock.unlink()
    lock.mkdir()
    with pytest.raises(StorageError, match=r"\.lock is a folder, not a run's lock file"), \
            run_folder_lock(tmp_path):
        pass


def test_folder_names_past_the_file_system_limit(tmp_path):
    """A run folder named longer than a file system allows is refused in one line; a sweep
    job's folder (named by its overrides) is shortened with a stable hash instead."""
    long = "x" * 300
    proc = zygote.run(["-m", "gan_exp.train", "dataset=ring", "debug=fast",
                       f"hydra.run.dir={tmp_path / long}"], cwd=ROOT, timeout=120)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr, proc.stderr
    assert "is 300 bytes, and file systems allow 255" in proc.stderr
    sweep = tmp_path / "sweep"
    proc = zygote.run(["-m", "gan_exp.train", "-m", "dataset=ring", "debug=fast",
                       "train.steps=2", "log.progress=false",
                       f"metrics.cache_dir=c{long},d{long}", f"hydra.sweep.dir={sweep}"],
                      cwd=ROOT, timeout=300)
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 2 and all(len(name) == 255 for name in jobs), proc.stderr
    assert all((sweep / name / "metrics.json").is_file() for name in jobs), proc.stderr


def test_a_resumed_run_records_its_own_choices_so_the_requeue_form_still_resumes(tmp_path):
    """`resume=RUN train.steps=N` on a preset run must not record the resume command's default
    choices (model=mlp, dataset=digits, experiment=null) in its new checkpoints."""
    from gan_exp import checkpoint

    run = tmp_path / "run"

    def cli(*args: str) -> subprocess.CompletedProcess:
        return zygote.run(["-m", "gan_exp.train", *args, "checkpoint.every=2",
                           "metrics.every=100", "log.progress=false",
                           "metrics.toy_samples=200"], cwd=ROOT, timeout=300)

    first = cli("experiment=pacgan_ring", "train.steps=2", f"hydra.run.dir={run}")
    assert first.returncode == 0, first.stderr
    plain = cli(f"resume={run}", "train.steps=4")
    assert plain.returncode == 0, plain.stderr
    choices = checkpoint.load(checkpoint.latest(run))["choices"]
    assert (choices["experiment"], choices["dataset"], choices["model"]) == (
        "pacgan_ring", "ring", "toy_mlp")
    requeued = cli("experiment=pacgan_ring", "train.steps=6", "resume=auto",
                   f"hydra.run.dir={run}")
    assert requeued.returncode == 0, requeued.stderr
    assert checkpoint.latest(run).name == "step_0000006.pt"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_a_resume_never_trains_in_another_runs_folder_nor_over_newer_checkpoints(tmp_path):
    from gan_exp import checkpoint

    run_a, run_b, branch = tmp_path / "a", tmp_path / "b", tmp_path / "branch"

    def cli(*args: str) -> subprocess.CompletedProcess:
        return zygote.run(["-m", "gan_exp.train", "dataset=ring", "debug=fast",
                           "checkpoint.every=2", "checkpoint.keep=5", *args],
                          cwd=ROOT, timeout=300)

    for run, seed in ((run_a, 0), (run_b, 1)):
        done = cli("train.steps=4", f"seed={seed}", f"hydra.run.dir={run}")
        assert done.returncode == 0, done.stderr
    before = snapshot(run_a)
    into_other = cli(f"resume={run_b}/checkpoints/step_0000004.pt", f"hydra.run.dir={run_a}",
                     "train.steps=6")
    assert into_other.returncode == 2, into_other.stdout
    out = into_other.stdout + into_other.stderr
    assert f"hydra.run.dir={run_a}: that folder holds another run" in out
    older = cli(f"resume={run_a}/checkpoints/step_0000002.pt", "train.steps=6")
    assert older.returncode == 2, older.stdout
    out = older.stdout + older.stderr
    assert "older than this run's newest checkpoint step_0000004.pt" in out
    assert "would delete step_0000004.pt" in out and "hydra.run.dir=NEW" in out
    assert snapshot(run_a) == before
    branched = cli(f"resume={run_a}/checkpoints/step_0000002.pt", f"hydra.run.dir={branch}",
                   "train.steps=6")
    assert branched.returncode == 0, branched.stderr
    assert (branch / "checkpoints" / "step_0000006.pt").is_file()
    assert snapshot(run_a) == before
    # the explicit opt-in: continue this run from step 2, deleting step 4 (and saying so)
    assert "checkpoint.discard_newer=true" in out
    discard = cli(f"resume={run_a}/checkpoints/step_0000002.pt", "train.steps=6",
                  "checkpoint.discard_newer=true")
    assert discard.returncode == 0, discard.stdout + discard.stderr
    assert f"deleting {run_a}/checkpoints/step_0000004.pt" in discard.stdout + discard.stderr
    assert checkpoint.load(checkpoint.latest(run_a))["step"] == 6
