"""The variants study (scripts/study.py) end to end in its quick mode, as the README runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_study_writes_tables_figures_and_keeps_a_failed_run_visible(tmp_path):
    out = tmp_path / "study"
    # a run folder that holds another config's run must be reported, not reused or overwritten
    foreign = out / "runs" / "grid" / "gan" / "seed0" / ".hydra"
    foreign.mkdir(parents=True)
    (foreign / "config.yaml").write_text("seed: 99\n")
    proc = subprocess.run(
        [sys.executable, "scripts/study.py", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr  # one run failed
    docs = out / "docs"
    report = (docs / "results.md").read_text()
    for label in ("WGAN-GP", "Loss-Sensitive GAN", "EBGAN", "Hinge", "Least squares"):
        assert f"</a>{label}" in report
    assert "DRAGAN, paper form (`loss=gan penalty=dragan`)" in report
    assert "</a>WGAN-GP, with `penalty.lam=0.1 optimizer.betas=[0.5,0.9]` |" in report
    assert "| **GAN, this study** (`loss=gan experiment=pacgan_ring" in report
    assert "| GAN (PacGAN, Lin et al. 2018, Table 1; 10 trials) | 6.3 +- 0.5 |" in report
    assert "| FD (classifier) |" in report
    # the failed run is a row of its own and is named with its reason; nothing was overwritten
    assert '<a id="grid-gan"></a>GAN (non-saturating) | n/a | n/a | n/a | 0 (1 failed) |' in report
    assert "`grid/gan/seed0`:" in report and "holds a run of another config" in report
    assert (foreign / "config.yaml").read_text() == "seed: 99\n"
    for name in ("study_ring.png", "study_digits.png", "study_reference_curves.png"):
        assert (docs / name).stat().st_size > 1000
    records = json.loads((docs / "results.json").read_text())
    assert {r["status"] for r in records} == {"done", "failed"}
    ring = [r for r in records if r["section"] == "ring"]
    assert len(ring) == 11 and all(r["final"]["metrics/modes"] >= 0 for r in ring)
    # a second invocation reuses every finished run instead of training it again
    again = subprocess.run(
        [sys.executable, "scripts/study.py", "--quick", "--out", str(out), "--only", "ring"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    # ... and still reports the whole study, not only the part this invocation covered
    records = json.loads((docs / "results.json").read_text())
    assert {r["status"] for r in records if r["section"] == "ring"} == {"reused"}
    assert {r["section"] for r in records} == {"pacgan_ring", "pacgan_grid", "ring", "grid",
                                               "digits"}
    assert [r["status"] for r in records if r["section"] == "grid"] == ["failed"]
    # an added seed (as `--seeds 3`) joins its row instead of replacing the table
    extra = subprocess.run(
        [sys.executable, "scripts/study.py", "--quick", "--out", str(out), "--only",
         "pacgan_ring", "--seeds", "5"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert extra.returncode == 0, extra.stdout + extra.stderr
    records = json.loads((docs / "results.json").read_text())
    assert [r["seed"] for r in records if r["section"] == "pacgan_ring"] == [0, 1, 5]
    ref = [line for line in (docs / "results.md").read_text().splitlines()
           if line.startswith("| **GAN, this study** (`loss=gan experiment=pacgan_ring")]
    assert len(ref) == 1 and ref[0].endswith("| 3 |")


def test_long_study_reports_resumed_runs_at_their_last_config_apart_from_the_main_report(
    tmp_path,
):
    """`--long` reads the runs its commands make, including one extended by a resume."""
    out, docs = tmp_path / "long", tmp_path / "docs"
    (docs).mkdir()
    (docs / "results.md").write_text("the main study's report\n")
    run = out / "runs" / "pacgan_grid" / "gan" / "seed0"
    # first trained to 100,000 steps, then resumed with train.steps=200000 (a later record)
    (run / ".hydra" / "resumed_2026-01-02_00-00-00").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("train:\n  steps: 100000\n")
    (run / ".hydra" / "resumed_2026-01-02_00-00-00" / "config.yaml").write_text(
        "train:\n  steps: 200000\n")
    history = [{"step": s, "metrics/modes": 18.0, "metrics/high_quality_pct": 90.0,
                "metrics/mode_kl": 0.6} for s in range(5000, 200001, 5000)]
    final = {k: v for k, v in history[-1].items() if k != "step"}
    (run / "metrics.json").write_text(
        json.dumps({"final": final, "final_step": 200000, "history": history}))
    proc = subprocess.run(
        [sys.executable, "scripts/study.py", "--long", "--report-only", "--out", str(out),
         "--docs", str(docs)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = (docs / "results_long.md").read_text()
    assert "`loss=gan experiment=pacgan_grid train.steps=200000" in report
    assert "| 18.0 +- 0.0 | 90.0 +- 0.0 | 0.60 +- 0.00 | 1 |" in report
    # 40 evaluations shown as at most 20 rows, counted back from the last
    rows = [line for line in report.splitlines() if line[:3] == "| 1" or line[:3] == "| 2"]
    assert "| 200000 | 18.0 +- 0.0 |" in report and "| 190000 | " in report
    assert "| 195000 | " not in report and len(rows) <= 21
    # the other runs are named as not trained yet, with the command that trains them
    assert "`python scripts/study.py --long` trains them" in report
    assert "`pacgan_ring/gan/seed4`" in report
    assert (docs / "results.md").read_text() == "the main study's report\n"
    bad = subprocess.run(
        [sys.executable, "scripts/study.py", "--long", "--only", "digits", "--report-only"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert bad.returncode == 2 and "--long trains pacgan_ring and pacgan_grid only" in bad.stderr
