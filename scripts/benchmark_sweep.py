"""Wall time of one toy sweep with Hydra's basic launcher (jobs one after another) and with the
joblib launcher (`hydra/launcher=parallel`, n_jobs jobs at once, threads=auto each).

    python scripts/benchmark_sweep.py [--jobs 8] [--steps 500] [--n-jobs 2] [--out DIR]

Prints both wall times and the speed-up, the speed-up of the training alone (steps per second
of the jobs, read from their event files: the ceiling the sweep approaches as jobs get longer),
then the summary of the parallel sweep. Figures, not a test: docs/sweeps.md quotes them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gan_exp.summary import summarize
from gan_exp.sweep import available_cores


def sweep(args: list[str], out: Path) -> float:
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "gan_exp.train", "-m", *args,
                           f"hydra.sweep.dir={out}"], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"sweep failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall


def steps_per_sec(sweep_dir: Path) -> float:
    """Mean training speed of a sweep's jobs (each job's last logged steps per second)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    speeds = []
    for job in sweep_dir.glob("*/"):
        events = EventAccumulator(str(job), size_guidance={"scalars": 0}).Reload()
        speeds.append(events.Scalars("perf/steps_per_sec_avg")[-1].value)
    return sum(speeds) / len(speeds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=8, help="jobs in the sweep (seeds)")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--n-jobs", type=int, default=2, help="joblib jobs at once")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="gan_exp_sweep_bench_"))
    seeds = ",".join(str(s) for s in range(args.jobs))
    common = ["dataset=ring", f"train.steps={args.steps}",
              f"metrics.every={args.steps}", "log.progress=false", f"seed={seeds}"]
    print(f"{args.jobs} ring jobs x {args.steps} steps (dataset=ring, loss=gan) on "
          f"{available_cores()} cores", flush=True)
    basic = sweep(common, out / "basic")
    print(f"basic launcher (one at a time):       {basic:6.1f} s", flush=True)
    parallel = sweep(["hydra/launcher=parallel", f"hydra.launcher.n_jobs={args.n_jobs}",
                      *common], out / "parallel")
    print(f"joblib launcher (n_jobs={args.n_jobs}, threads=auto): {parallel:6.1f} s")
    print(f"speed-up: {basic / parallel:.2f}x")
    alone, together = steps_per_sec(out / "basic"), steps_per_sec(out / "parallel")
    print(f"training alone: {alone:.0f} steps/s per job one at a time, {together:.0f} steps/s per "
          f"job {args.n_jobs} at once: {args.n_jobs * together / alone:.2f}x (the ceiling; the "
          "rest is each process's start-up)")
    print()
    print(summarize(out / "parallel"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
