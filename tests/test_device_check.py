"""scripts/device_check.py's CPU part: what a machine without CUDA can check passes, and every
CUDA-only check says it was skipped and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import zygote

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.heavy
def test_device_check_passes_its_cpu_part_and_names_what_it_skipped(tmp_path):
    proc = zygote.run(["scripts/device_check.py", "--no-benchmark", "--out", tmp_path],
                      cwd=ROOT, timeout=600)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    for name in ("device=auto", "generator EMA", "every model at its real width",
                 "two-job parallel sweep", "bit-exact resume on the device"):
        assert any(line.startswith("pass") and name in line for line in out.splitlines()), name
    for name in ("in-memory data on the device", "train.amp=bf16", "train.compile"):
        assert any(line.startswith("skip") and name in line and "needs CUDA" in line
                   for line in out.splitlines()), name
    assert "0 failed" in out and "(no CUDA here)" in out
