"""The variants study (scripts/study.py) end to end in its quick mode, as docs/study.md runs it:
Hydra multiruns of conf/study/, then the report read from the sweep folders."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests import zygote

ROOT = Path(__file__).resolve().parent.parent


# One run at a time (the parallel launcher with one worker): the suite's other pytest-xdist
# worker holds the other core, so a second job process would add only its start-up.
ONE = ("--jobs", "1")


def study(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return zygote.run(["scripts/study.py", *args], cwd=ROOT, timeout=timeout)


@pytest.mark.heavy
def test_quick_study_runs_every_sweep_reports_every_row_and_keeps_a_failed_job_visible(
    tmp_path,
):
    out = tmp_path / "study"
    # a job whose folder another live process holds: it fails, the others go on
    held = out / "toys" / "dataset=grid,debug=fast,loss=gan,metrics.every=5,seed=0,train.steps=10"
    held.mkdir(parents=True)
    (held / ".lock").write_text(str(os.getpid()))
    proc = study("--quick", *ONE, "--out", str(out))
    assert proc.returncode == 1, proc.stdout + proc.stderr  # one job failed
    for name in ("reference", "toys", "toys_dragan_paper", "digits", "digits_dragan_paper"):
        assert f"-m study={name} hydra.sweep.dir={out / name} hydra.launcher.n_jobs=1" \
            in proc.stdout
    docs = out / "docs"
    report = (docs / "results.md").read_text()
    # every row: its label, its anchor and the command that trains it (seed added)
    for anchor, command in [("ring-wgan_gp", "loss=wgan_gp dataset=ring"),
                            ("ring-dragan_ring", "experiment=dragan_ring"),
                            ("grid-loss_sensitive", "loss=loss_sensitive dataset=grid"),
                            ("digits-ebgan", "loss=ebgan dataset=digits train.steps=10"),
                            ("digits-dragan_digits", "experiment=dragan_digits train.steps=10"),
                            ("pacgan_ring-pacgan_ring", "experiment=pacgan_ring")]:
        line = next(x for x in report.splitlines() if f'<a id="{anchor}"></a>' in x)
        assert f"`{command}" in line, line
    assert "| GAN (PacGAN, Lin et al. 2018, Table 1; 10 trials) | 6.3 +- 0.5 |" in report
    assert "| FD (classifier) |" in report and "Quick mode" in report
    # the job refused by the lock is counted in its row and listed: its folder is still held
    # by a live process (this test), so it reads as running, not finished
    row = next(x for x in report.splitlines() if '<a id="grid-gan"></a>' in x)
    assert "| 0 (1 not finished) |" in row
    assert f"`toys/{held.name}`: running, at step 0 of ?" in report  # it wrote no record
    assert [p.name for p in held.iterdir()] == [".lock"]  # the refused job wrote nothing there
    for name in ("results_ring.png", "results_digits.png", "results_pacgan_ring_curves.png"):
        assert (docs / name).stat().st_size > 1000
    records = json.loads((docs / "results.json").read_text())
    assert len(records) == 29 and {r["status"] for r in records} == {"finished", "running"}
    ring = [r for r in records if r["section"] == "ring"]
    assert len(ring) == 9 and all(r["final"]["metrics/modes"] >= 0 for r in ring)
    wgan_gp = next(r for r in ring if r["variant"] == "wgan_gp")
    assert wgan_gp["config"]["penalty"]["lam"] == 0.1  # conf/loss_dataset/wgan_gp_ring.yaml
    # a second invocation of one sweep trains nothing again and still reports every sweep
    (held / ".lock").unlink()
    again = study("--quick", *ONE, "--out", str(out), "--only", "reference")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing to train" in again.stdout + again.stderr
    # the refused job's folder, released, holds nothing: no longer a job
    assert len(json.loads((docs / "results.json").read_text())) == 28


def test_long_study_reports_a_resumed_run_at_its_last_config_apart_from_the_main_report(
    tmp_path,
):
    """`--long --report-only` reads the long sweep's folders, including one extended by a
    resume, thins a long history, names the sweeps not run and never touches results.md."""
    out, docs = tmp_path / "long", tmp_path / "docs"
    docs.mkdir()
    (docs / "results.md").write_text("the main study's report\n")
    run = out / "long" / "experiment=pacgan_grid_long,seed=0"
    (run / ".hydra" / "resumed_2026-01-02_00-00-00").mkdir(parents=True)
    record = {"dataset": {"name": "grid"}, "train": {"steps": 100000}}
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(record))
    record["train"]["steps"] = 200000  # resumed with train.steps=200000: a later record
    (run / ".hydra" / "resumed_2026-01-02_00-00-00" / "config.yaml").write_text(
        yaml.safe_dump(record))
    (run / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump(["experiment=pacgan_grid_long", "seed=0", "study=long"]))
    (run / "status.json").write_text('{"state": "finished", "step": 200000, "reason": ""}')
    history = [{"step": s, "metrics/modes": 18.0, "metrics/high_quality_pct": 90.0,
                "metrics/mode_kl": 0.6} for s in range(5000, 200001, 5000)]
    final = {k: v for k, v in history[-1].items() if k != "step"}
    (run / "metrics.json").write_text(
        json.dumps({"final": final, "final_step": 200000, "history": history}))
    proc = study("--long", "--report-only", "--out", str(out), "--docs", str(docs))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = (docs / "results_long.md").read_text()
    assert "| 18.0 +- 0.0 | 90.0 +- 0.0 | 0.60 +- 0.00 | 1 | `experiment=pacgan_grid_long` |" \
        in report
    # 40 evaluations shown as at most 20 rows, counted back from the last
    rows = [line for line in report.splitlines() if line[:3] in ("| 1", "| 2", "| 5")]
    assert "| 200000 | 18.0 +- 0.0 |" in report and "| 190000 | " in report
    assert "| 195000 | " not in report and len(rows) <= 21
    assert (docs / "results.md").read_text() == "the main study's report\n"


def test_bad_study_arguments_are_refused_with_one_line_and_change_nothing(tmp_path):
    afile = tmp_path / "a_file"
    afile.write_text("x")
    for args, message in [(["--jobs", "0"], "--jobs=0: must be at least 1"),
                          (["--out", str(afile)], "is a file, not a folder"),
                          (["--only", "toyz"], "--only toyz: not a sweep of this study"),
                          (["--long", "--only", "digits"], "--only digits: not a sweep"),
                          (["--long", "--quick"], "--long and --quick: choose one")]:
        proc = study(*args, "--report-only", timeout=120)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert afile.read_text() == "x" and sorted(tmp_path.iterdir()) == [afile]
    # a report with no runs behind it never replaces one (the committed docs/ included)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "results.md").write_text("kept\n")
    proc = study("--report-only", "--out", str(tmp_path / "no_runs"), "--docs", str(docs))
    assert proc.returncode == 2 and "no runs under" in proc.stderr, proc.stderr
    assert (docs / "results.md").read_text() == "kept\n" and len(list(docs.iterdir())) == 1


@pytest.mark.heavy
def test_ctrl_c_reaches_the_running_sweep_and_the_study_stops_without_a_report(tmp_path):
    """Ctrl-C in the terminal (SIGINT to the study's process group): the running sweep stops as
    a stopped sweep does (it is not killed: it names where each job stopped), the study says so
    in one line, exits 130, starts no further sweep, writes no report and leaves no process."""
    out = tmp_path / "study"
    proc = subprocess.Popen([sys.executable, "scripts/study.py", "--quick", *ONE, "--out",
                             str(out), "--only", "toys", "toys_dragan_paper"], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / "toys").glob("*/.hydra")):
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout + stderr
    assert "study: stopped by SIGINT in sweep toys, report unchanged" in stderr
    assert "sweep stopped by SIGINT" in stderr and "resume the whole sweep" in stderr
    assert "Traceback" not in stdout + stderr and "study=toys_dragan_paper" not in stdout
    assert not (out / "docs").exists()

    def left() -> list[str]:  # processes of the study's group: its sweep and their workers
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int(stat.read_text().rsplit(")", 1)[1].split()[2]) == proc.pid:
                    found.append(stat.parent.name)
        return found

    deadline = time.time() + 30
    while left() and time.time() < deadline:
        time.sleep(0.2)
    assert not left()
