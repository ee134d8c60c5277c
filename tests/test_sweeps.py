"""Sweeps through Hydra's own plugins, as a user runs them: joblib in parallel, submitit's local
executor (the SLURM path, with a real preemption signal and requeue), Optuna with a trial
that diverges, and the summary of a multirun folder."""

from __future__ import annotations

import csv
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from gan_exp import checkpoint
from gan_exp.run_folder import read_holder
from tests import zygote

ROOT = Path(__file__).resolve().parent.parent
TOY = ["dataset=ring", "log.progress=false", "log.every=10",
       "log.sample_every=1000"]


def have(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def cli(args, cwd, timeout=400, **popen):
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONUNBUFFERED": "1"}
    cmd = ["-m", "gan_exp.train", *args]
    if popen:
        return zygote.popen(cmd, cwd=cwd, env=env, stderr=subprocess.STDOUT)
    return zygote.run(cmd, cwd=cwd, env=env, timeout=timeout)


def jobs(sweep: Path) -> list[Path]:
    return sorted((p for p in sweep.iterdir() if p.is_dir() and p.name[0].isdigit()),
                  key=lambda p: int(p.name.split("_")[0]))


@pytest.mark.skipif(not have("hydra_plugins.hydra_joblib_launcher"),
                    reason="hydra-joblib-launcher not installed (pip install -e '.[sweep]')")
def test_a_streamed_dataset_in_a_joblib_job_reads_in_the_job_and_says_so(tmp_path):
    from tests.vision_files import write_image_folder

    folder = write_image_folder(tmp_path / "imgs", ["a", "b"], n=4)
    sweep = tmp_path / "sweep"
    proc = cli(["-m", "hydra/launcher=parallel", "dataset=image_folder", f"dataset.root={folder}",
                "dataset.image_size=16", "dataset.in_memory=false", "dataset.num_workers=2",
                "train.batch_size=4", "train.steps=4", "metrics.enabled=false",
                "log.progress=false", "hydra.launcher.n_jobs=1", "seed=0",
                f"hydra.sweep.dir={sweep}"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (job,) = jobs(sweep)  # dataset.root is left out of the folder name (no nesting)
    assert checkpoint.latest(job).name == "step_0000004.pt"
    assert "DataLoader workers cannot start inside a joblib sweep job" in (
        job / "train.log").read_text()


@pytest.mark.heavy
@pytest.mark.skipif(not have("hydra_plugins.hydra_submitit_launcher"),
                    reason="hydra-submitit-launcher not installed (pip install -e '.[sweep]')")
def test_submitit_preemption_saves_requeues_and_resumes_in_the_same_folder(tmp_path):
    sweep = tmp_path / "sweep"
    steps = 1500
    proc = cli(["-m", "hydra/launcher=local", *TOY, f"train.steps={steps}",
                f"metrics.every={steps}",
                "model.g_hidden=[32]", "model.d_hidden=[32]",
                "checkpoint.every=100000", "seed=0,1", f"hydra.sweep.dir={sweep}"], tmp_path,
               popen=True)
    # preempt job 0 once it is training: its lock file holds the pid of the process running it
    deadline, lock = time.time() + 180, None
    while time.time() < deadline:
        locks = list(sweep.glob("0_*/.lock")) if sweep.exists() else []
        if locks and list(locks[0].parent.glob("events.out.tfevents.*")):
            lock = locks[0]
            break
        time.sleep(0.1)
    assert lock is not None, "job 0 never started"
    time.sleep(1.0)
    os.kill(read_holder(lock.parent).pid, signal.SIGUSR2)
    out, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, out
    job0, job1 = jobs(sweep)
    log0 = (job0 / "train.log").read_text()
    assert "stopped by SIGUSR2" in log0 and "submitit requeues the job" in log0
    assert "holds this job's checkpoints: resuming" in log0 and "resumed from" in log0
    assert list((job0 / ".hydra").glob("resumed_*/config.yaml"))
    for job in (job0, job1):
        assert checkpoint.load(checkpoint.latest(job))["step"] == steps
    # the preempted job's one TensorBoard run continues across the requeue
    from tests.conftest import read_events

    logged = [e.step for e in read_events(job0).Scalars("loss/g")]
    assert logged == sorted(set(logged)) and logged[-1] == steps


@pytest.mark.skipif(not have("hydra_plugins.hydra_optuna_sweeper"),
                    reason="hydra-optuna-sweeper not installed (pip install -e '.[sweep]')")
def test_optuna_study_survives_a_diverging_trial_and_records_the_best(tmp_path):
    # the shipped search's settings over two lr_d, one that trains and one that diverges
    # (not Optuna's grid sampler: hydra-optuna-sweeper 1.3 crashes when a grid's last trial
    # fails, telling a finished grid study twice)
    shipped = yaml.safe_load((ROOT / "conf/hparams_search/ring_wgan_gp.yaml").read_text())
    search = tmp_path / "my_conf" / "hparams_search" / "diverge.yaml"
    search.parent.mkdir(parents=True)
    sweeper = {**shipped["hydra"]["sweeper"], "study_name": "diverge", "n_trials": 2,
               "params": {"optimizer.lr_d": "choice(1e-4, 1e30)"}}
    defaults = [{"override /dataset": "ring"}, {"override /loss": "gan"},
                {"override /optimizer": "sgd"}, {"override /hydra/sweeper": "optuna"},
                {"override /hydra/sweeper/sampler": "tpe"}]  # seed 0 draws both values
    config = {"defaults": defaults, "optimized_metric": shipped["optimized_metric"],
              "hydra": {"sweeper": sweeper}}
    search.write_text("# @package _global_\n" + yaml.safe_dump(config))
    sweep, db = tmp_path / "sweep", tmp_path / "study.db"
    proc = cli(["--config-dir", str(tmp_path / "my_conf"), "-m", "hparams_search=diverge",
                "train.steps=40", "metrics.every=40", "log.progress=false",
                f"hydra.sweeper.storage=sqlite:///{db}", f"hydra.sweep.dir={sweep}"], tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert result["best_params"] == {"optimizer.lr_d": 1e-4}
    assert 0 <= result["best_value"] <= 100
    assert "Failed experiment" in out
    assert any("training diverged" in (job / "train.log").read_text() for job in jobs(sweep))
    import optuna

    study = optuna.load_study(study_name="diverge", storage=f"sqlite:///{db}")
    assert sorted(t.state.name for t in study.trials) == ["COMPLETE", "FAIL"]


def test_summary_groups_seeds_and_keeps_the_failed_job(tmp_path):
    sweep = tmp_path / "sweep"
    proc = cli(["-m", *TOY, "train.steps=30", "metrics.every=15", "loss=gan,wgan",
                "seed=0,1", f"hydra.sweep.dir={sweep}"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bad = cli(["-m", *TOY, "train.steps=30", "metrics.every=30", "loss=gan", "seed=2",
               "optimizer=sgd", "optimizer.lr_d=1e30", f"hydra.sweep.dir={tmp_path / 'bad'}"],
              tmp_path)
    assert bad.returncode != 0
    (failed,) = jobs(tmp_path / "bad")
    failed.rename(sweep / "4_loss=gan,optimizer.lr_d=1e30,optimizer=sgd,seed=2")
    summary = zygote.run([ROOT / "scripts" / "summarize.py", sweep], cwd=ROOT, timeout=120)
    assert summary.returncode == 0, summary.stdout + summary.stderr
    text = summary.stdout
    assert "| loss |" in text and "(n=2)" in text.replace(" (n=2)", "(n=2)")
    assert "failed" in text and "training diverged" in text
    with open(sweep / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    by = {(r["loss"], r["status"]): r for r in rows}
    assert by[("gan", "finished")]["n"] == "2" and by[("wgan", "finished")]["n"] == "2"
    assert "final metrics/modes mean" in rows[0]
    assert by[("gan", "failed")]["n"] == "1" and "diverged" in by[("gan", "failed")]["reason"]
    assert (sweep / "summary.md").is_file() and (sweep / "summary_curves.png").is_file()


def generator_weights(job: Path) -> dict:
    return torch.load(checkpoint.latest(job), weights_only=True)["generator"]


@pytest.mark.heavy
@pytest.mark.skipif(not have("hydra_plugins.hydra_joblib_launcher"),
                    reason="hydra-joblib-launcher not installed (pip install -e '.[sweep]')")
def test_a_stopped_parallel_sweep_checkpoints_every_job_and_resumes_to_the_same_weights(tmp_path):
    """Two jobs at once share the cores. SIGTERM to the parent, and Ctrl-C in its terminal
    (SIGINT to the process group): each running job saves the step it reached, no lock or
    temporary file is left, one message says where each job stopped and the one command that
    resumes the sweep, which (run after the Ctrl-C) trains both jobs to the weights of an
    uninterrupted sweep."""
    args = ["-m", "hydra/launcher=parallel", *TOY, "train.steps=600", "metrics.every=600",
            "checkpoint.every=100000", "seed=0,1"]
    straight = tmp_path / "straight"
    proc = cli([*args, f"hydra.sweep.dir={straight}"], tmp_path)
    assert proc.returncode == 0, proc.stdout
    found = jobs(straight)
    assert len(found) == 2  # two jobs at once, sharing the cores
    for job in found:
        assert checkpoint.latest(job).name == "step_0000600.pt"
        log = (job / "train.log").read_text()
        assert "torch threads: " in log and "2 jobs at once" in log
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for sig, ctrl_c in ((signal.SIGTERM, False), (signal.SIGINT, True)):
        stopped = tmp_path / signal.Signals(sig).name
        sweep = zygote.popen(["-m", "gan_exp.train", *args, f"hydra.sweep.dir={stopped}"],
                             cwd=tmp_path, env=env, stderr=subprocess.STDOUT,
                             start_new_session=True)
        deadline = time.time() + 120  # both jobs in their training loops
        while time.time() < deadline and len(list(stopped.glob("*/events.out.tfevents.*"))) < 2:
            time.sleep(0.1)
        time.sleep(0.5)
        if ctrl_c:  # the terminal signals its whole foreground process group
            os.killpg(sweep.pid, sig)
        else:
            sweep.send_signal(sig)
        out, _ = sweep.communicate(timeout=120)
        assert sweep.returncode == 128 + sig, out
        found = jobs(stopped)
        steps = [checkpoint.step_of(checkpoint.latest(job)) for job in found]
        assert len(found) == 2 and all(0 < step < 600 for step in steps), (steps, out)
        assert not list(stopped.rglob(".lock")) and not list(stopped.rglob("*.tmp")), out
        for job, step in zip(found, steps, strict=True):
            assert f"  {job.name}: stopped at step {step}" in out
        assert "Traceback" not in out and "nothing was written" not in out
        (line,) = [x for x in out.splitlines() if "resume the whole sweep" in x]
        command = line.split(" with: ", 1)[1]
        assert command.endswith(f"hydra.sweep.dir={stopped}")
        if not ctrl_c:  # both stops leave the same state; one resume checks where it leads
            continue
        resumed = cli(shlex.split(command)[3:], tmp_path)
        assert resumed.returncode == 0, resumed.stdout
        for a, b in zip(jobs(straight), jobs(stopped), strict=True):
            assert checkpoint.latest(b).name == "step_0000600.pt"
            wa, wb = generator_weights(a), generator_weights(b)
            assert all(torch.equal(wa[k], wb[k]) for k in wa), a.name


def test_the_launcher_process_does_not_load_torch():
    # a joblib/submitit sweep's parent only composes configs and dispatches jobs; torch (~2.5 s
    # with torch._dynamo) is paid by the processes that train
    code = ("import sys, gan_exp.train; "
            "print(sorted(m for m in sys.modules if m.startswith('torch')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_threads_and_gpus_are_shared_out_by_job(monkeypatch):
    """What the launchers' jobs get (no GPU needed: the CUDA queries are stood in for)."""
    from gan_exp import sweep

    monkeypatch.setattr(sweep, "available_cores", lambda: 16)
    lone, joblib4 = sweep.JobSlot(), sweep.JobSlot(num=5, parallel=4, launcher="joblib")
    slurm = sweep.JobSlot(num=5, parallel=1, launcher="submitit", cpus=6)
    assert sweep.torch_threads("auto", lone) is None  # a single run keeps torch's default
    assert sweep.torch_threads("auto", joblib4) == 4 and sweep.torch_threads(3, joblib4) == 3
    assert sweep.torch_threads("auto", slurm) == 6
    monkeypatch.setattr(sweep.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(sweep.torch.cuda, "device_count", lambda: 2)
    assert sweep.spread_device("auto", joblib4) == "cuda:1"  # job 5 of a parallel sweep
    assert sweep.spread_device("auto", sweep.JobSlot(num=4, parallel=4)) == "cuda:0"
    assert sweep.spread_device("auto", lone) == "auto"
    assert sweep.spread_device("cpu", joblib4) == "cpu"
    assert sweep.spread_device("auto", slurm) == "auto"  # SLURM jobs see only their own GPUs


@pytest.mark.skipif(not have("hydra_plugins.hydra_optuna_sweeper"),
                    reason="hydra-optuna-sweeper not installed (pip install -e '.[sweep]')")
@pytest.mark.parametrize("search,metric,direction,dataset,loss", [
    ("ring_wgan_gp", "metrics/high_quality_pct", "maximize", "ring", "wgan_gp"),
    ("grid_wgan_gp", "metrics/modes", "maximize", "grid", "wgan_gp"),
    ("digits_dragan", "metrics/fd_classifier", "minimize", "digits", "dragan"),
])
def test_shipped_searches_compose_with_their_objective(tmp_path, search, metric, direction,
                                                        dataset, loss):
    job = yaml.safe_load(cli([f"hparams_search={search}", "--cfg", "job"], tmp_path).stdout)
    hydra = yaml.safe_load(cli([f"hparams_search={search}", "--cfg", "hydra"], tmp_path).stdout)
    sweeper = hydra["hydra"]["sweeper"]
    assert job["optimized_metric"] == metric and sweeper["direction"] == direction
    assert (job["dataset"]["name"], job["loss"]["name"]) == (dataset, loss)
    assert sweeper["max_failure_rate"] == 1.0  # a failed trial never ends the study
    assert set(sweeper["params"]) == {"optimizer.lr_g", "optimizer.lr_d", "optimizer.betas.0",
                                      "optimizer.betas.1", "penalty.lam", "train.n_critic"}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_failed_and_refused_jobs_are_one_line_each_and_leave_others_folders_alone(tmp_path):
    """A job with an invalid value fails with one line and a status record; a job whose folder
    another live sweep holds writes nothing there; the sweep names both, keeps the good job's
    results, and exits 1 with no traceback."""
    sweep = tmp_path / "sweep"
    held = sweep / "2_dataset=ring,metrics.enabled=False,train.batch_size=12,train.steps=4"
    (held / ".hydra").mkdir(parents=True)
    (held / ".hydra" / "config.yaml").write_text("the other sweep's record\n")
    (held / "train.log").write_text("the other sweep's log\n")
    (held / ".lock").write_text(str(os.getpid()))  # a live process: the other sweep's job
    before = snapshot(held)
    proc = cli(["-m", *TOY, "train.steps=4", "metrics.enabled=false",
                "train.batch_size=8,-1,12", f"hydra.sweep.dir={sweep}"], tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Traceback" not in out and "Error executing job" not in out, out
    assert "2 sweep job(s) failed" in out
    assert "1_dataset=ring,metrics.enabled=False,train.batch_size=-1,train.steps=4: " \
           "config error: train.batch_size=-1 must be an integer >= 2" in out
    assert f"{held.name}: not run, its folder is in use by another process" in out
    assert snapshot(held) == before  # byte for byte
    good, bad = jobs(sweep)[:2]
    assert yaml.safe_load((good / "status.json").read_text())["state"] == "finished"
    assert checkpoint.latest(good).name == "step_0000004.pt"
    status = yaml.safe_load((bad / "status.json").read_text())
    assert status["state"] == "failed" and "train.batch_size=-1" in status["reason"]
    assert "train.batch_size=-1 must be" in (bad / "train.log").read_text()
