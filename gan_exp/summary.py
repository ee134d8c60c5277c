"""Read a multirun folder and say what it found: swept settings against final and best metrics,
grouped over seeds as mean +- std (n), with every failed, killed or running job as a row of its
own and its reason. Works on a sweep that is still running or was interrupted.

    python scripts/summarize.py outputs/multirun/<sweep>      (or: gan-exp-summarize ...)

Prints the Markdown table and writes `summary.md`, `summary.csv` and `summary_curves.png`
(each metric's evaluation curve, mean over seeds, per setting) into the sweep folder.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gan_exp import checkpoint
from gan_exp.atomic import atomic_write_bytes, atomic_write_text
from gan_exp.directions import arrow
from gan_exp.keys import NOT_SETTINGS
from gan_exp.run_folder import holds_a_run, read_holder, read_status

IGNORED = NOT_SETTINGS  # overrides that never define a setting
SEED_KEYS = ("seed",)


@dataclass
class Job:
    """One job folder of a sweep."""

    path: Path
    overrides: dict[str, str]
    status: str = "finished"  # finished | failed | running | stopped | incomplete
    reason: str = ""
    step: int | None = None
    final: dict[str, float] = field(default_factory=dict)
    best: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)


def warn(message: str) -> None:
    print(f"summarize: {message}", file=sys.stderr)


def _overrides(path: Path) -> dict[str, str]:
    found = path / ".hydra" / "overrides.yaml"
    try:
        items = yaml.safe_load(found.read_text()) if found.is_file() else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        warn(f"{found}: unreadable ({type(err).__name__}); its settings are read from the "
             "folder name")
        items = None
    if not isinstance(items, list):
        # no record (an old or foreign folder): Hydra's job folder name, `[<number>_]<overrides>`
        name = re.sub(r"^\d+_", "", path.name)
        items = name.split(",") if "=" in name else []
    out = {}
    for item in items:
        key, _, value = str(item).lstrip("+~").partition("=")
        if key and not key.startswith(IGNORED):
            out[key] = value
    return out


def config_records(path: Path) -> list[Path]:
    """A run's config records, oldest first: `.hydra/config.yaml`, then one per resume.

    A resumed run keeps its first record and adds `.hydra/resumed_<time>/config.yaml`
    (gan_exp.train), so the last one says what the run was last asked to do, e.g. a longer
    `train.steps`. Ordered by the time in the folder name, which survives a copy.
    """
    hydra = path / ".hydra"
    first = [hydra / "config.yaml"] if (hydra / "config.yaml").is_file() else []
    return first + sorted(hydra.glob("resumed_*/config.yaml"), key=lambda p: p.parent.name)


def steps_wanted(path: Path) -> int | None:
    """`train.steps` of the run's last readable config record: the step it is done at."""
    for config in reversed(config_records(path)):
        try:
            return int(yaml.safe_load(config.read_text())["train"]["steps"])
        except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
            continue
    return None


def read_job(path: Path) -> Job:
    job = Job(path, _overrides(path))
    metrics = path / "metrics.json"
    if metrics.is_file():
        try:
            data = json.loads(metrics.read_text())
            job.final = {k: float(v) for k, v in data.get("final", {}).items()
                         if k.startswith(("metrics/", "metrics_ema/"))}
            job.best = {k: float(v["value"]) for k, v in data.get("best", {}).items()}
            history = data.get("history", [])
            job.history = [h for h in history if isinstance(h, dict)
                           and isinstance(h.get("step"), int | float)]
            if len(job.history) < len(history):
                warn(f"{metrics}: {len(history) - len(job.history)} history entries without "
                     "a step left out of the curves")
        except (ValueError, TypeError, AttributeError):
            job.reason = "metrics.json unreadable"
    newest = checkpoint.latest(path)
    job.step = checkpoint.step_of(newest) if newest is not None else None
    holder = read_holder(path)
    status = read_status(path)
    state = status["state"] if status else None
    wanted = steps_wanted(path)
    if holder is not None and holder.alive():
        job.status, job.reason = "running", f"at step {job.step or 0} of {wanted or '?'}"
    elif state == "finished" or (wanted is not None and job.step == wanted):
        job.status = "finished"
    elif state in ("failed", "stopped"):
        job.status, job.reason = state, str(status.get("reason", ""))
    else:  # "running" with no live holder, or no status at all: the process was killed
        job.status = "incomplete"
        job.reason = f"no final checkpoint (killed?); last at step {job.step or 0}"
    return job


def find_jobs(sweep: Path) -> list[Job]:
    folders = [p for p in sweep.iterdir()
               if p.is_dir() and not p.name.startswith(".") and holds_a_run(p, or_its_lock=True)]
    folders.sort(key=lambda p: (int(p.name.split("_")[0]) if p.name.split("_")[0].isdigit()
                                else math.inf, p.name))
    from gan_exp.progress import bar

    progress = bar(len(folders), f"reading {sweep.name}", unit="job")
    jobs = []
    for p in folders:
        jobs.append(read_job(p))
        progress.update(1)
    progress.close()
    return jobs


def swept_keys(jobs: list[Job]) -> list[str]:
    """Keys whose value differs between jobs (or that only some jobs set), seeds excluded."""
    keys: dict[str, set[str | None]] = defaultdict(set)
    for job in jobs:
        for key in {k for j in jobs for k in j.overrides}:
            keys[key].add(job.overrides.get(key))
    return [k for k, values in keys.items() if len(values) > 1 and k not in SEED_KEYS]


def mean_std(values: list[float], digits: int) -> str:
    """`mean +- std` with a fixed number of decimals (std 0 for one value; n/a for none)."""
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return "n/a"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} +- {std:.{digits}f}"


def last_config(path: Path) -> dict[str, Any]:
    """The run's last readable config record ({} if none): what it was last asked to do."""
    for config in reversed(config_records(path)):
        try:
            data = yaml.safe_load(config.read_text())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict):
            return data
    return {}


def _fmt(values: list[float]) -> str:
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return "-"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.4g} (n=1)"
    return f"{mean:.4g} +- {statistics.stdev(values):.2g} (n={len(values)})"


@dataclass
class Row:
    setting: tuple[str, ...]
    status: str
    jobs: list[Job]

    @property
    def reason(self) -> str:
        reasons = sorted({j.reason for j in self.jobs if j.reason})
        return "; ".join(reasons)


def rows_of(jobs: list[Job], keys: list[str]) -> list[Row]:
    groups: dict[tuple[tuple[str, ...], str], list[Job]] = defaultdict(list)
    for job in jobs:
        setting = tuple(job.overrides.get(k, "") for k in keys)
        groups[(setting, job.status)].append(job)
    order = {"finished": 0, "running": 1, "stopped": 2, "incomplete": 3, "failed": 4}
    return [Row(s, st, js) for (s, st), js in
            sorted(groups.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 9)))]


def metric_names(jobs: list[Job]) -> list[str]:
    names = {k for j in jobs for k in j.final} - {"metrics/classifier_test_accuracy",
                                                  "metrics_ema/classifier_test_accuracy"}
    return sorted(names)


def markdown(rows: list[Row], keys: list[str], metrics: list[str]) -> str:
    short = [f"{m.replace('metrics_ema/', 'ema ').removeprefix('metrics/')} {arrow(m)}".strip()
             for m in metrics]
    head = [*keys, "status", "seeds", *[f"final {m}" for m in short],
            *[f"best {m}" for m in short], "reason"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        seeds = ",".join(sorted(j.overrides["seed"] for j in row.jobs if "seed" in j.overrides))
        seeds = seeds or "-"
        cells = [*row.setting, row.status, seeds,
                 *[_fmt([j.final[m] for j in row.jobs if m in j.final]) for m in metrics],
                 *[_fmt([j.best[m] for j in row.jobs if m in j.best]) for m in metrics],
                 row.reason.replace("|", "/")[:160]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def csv_text(rows: list[Row], keys: list[str], metrics: list[str]) -> str:
    head = [*keys, "status", "n", "seeds", "reason"]
    for kind in ("final", "best"):
        for m in metrics:
            head += [f"{kind} {m} mean", f"{kind} {m} std"]
    buffer = io.StringIO(newline="")
    out = csv.writer(buffer)
    out.writerow(head)
    for row in rows:
        line: list[Any] = [*row.setting, row.status, len(row.jobs),
                           " ".join(sorted(j.overrides.get("seed", "-") for j in row.jobs)),
                           row.reason]
        for kind in ("final", "best"):
            for m in metrics:
                values = [getattr(j, kind)[m] for j in row.jobs if m in getattr(j, kind)]
                values = [v for v in values if math.isfinite(v)]
                line.append(f"{statistics.fmean(values):.6g}" if values else "")
                line.append(f"{statistics.stdev(values):.6g}" if len(values) > 1 else "")
        out.writerow(line)
    return buffer.getvalue()


def plot_curves(path: Path, rows: list[Row], keys: list[str], metrics: list[str]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    shown = metrics[:6]
    if not shown or max((len(j.history) for r in rows for j in r.jobs), default=0) < 2:
        return False  # one evaluation per job is a dot, not a curve: the table has it
    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], shown, strict=True):
        for row in rows:
            if row.status == "failed":
                continue
            by_step: dict[int, list[float]] = defaultdict(list)
            for job in row.jobs:
                for h in job.history:
                    if metric in h and math.isfinite(h[metric]):
                        by_step[int(h["step"])].append(float(h[metric]))
            if not by_step:
                continue
            steps = sorted(by_step)
            mean = [statistics.fmean(by_step[s]) for s in steps]
            sd = [statistics.stdev(by_step[s]) if len(by_step[s]) > 1 else 0.0 for s in steps]
            label = ",".join(f"{k}={v}" for k, v in zip(keys, row.setting, strict=True)) or "all"
            ax.plot(steps, mean, marker="o", ms=3, label=f"{label} ({row.status})")
            ax.fill_between(steps, [m - s for m, s in zip(mean, sd, strict=True)],
                            [m + s for m, s in zip(mean, sd, strict=True)], alpha=0.2)
        ax.set_title(metric.removeprefix("metrics/"))
        ax.set_xlabel("generator step")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, png.getvalue())
    return True


def summarize(sweep: Path, out: Path | None = None) -> str:
    """The summary's text, after writing summary.md, .csv and _curves.png into `out` (the sweep
    folder by default); an OSError from the writes carries the text as `err.summary`."""
    jobs = find_jobs(sweep)
    if not jobs:
        raise SystemExit(f"summarize: no job folders (with a run record, log or checkpoints) "
                         f"in {sweep}")
    keys = swept_keys(jobs)
    metrics = metric_names(jobs)
    rows = rows_of(jobs, keys)
    counts = defaultdict(int)
    for job in jobs:
        counts[job.status] += 1
    table = markdown(rows, keys, metrics)
    blank = " A blank cell: that job did not set the key (its config's default)." if any(
        "" in row.setting for row in rows) else ""
    single = " (not a Hydra multirun folder: no multirun.yaml)" if not (
        sweep / "multirun.yaml").is_file() else ""
    text = (f"# Sweep {sweep}{single}\n\n{len(jobs)} jobs: "
            + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
            + f". Swept: {', '.join(keys) or 'nothing'}; seeds grouped; ↑ higher is better, "
            f"↓ lower.{blank}\n\n{table}\n")
    out = out or sweep
    try:
        atomic_write_text(out / "summary.md", text)
        atomic_write_text(out / "summary.csv", csv_text(rows, keys, metrics))
        curves = plot_curves(out / "summary_curves.png", rows, keys, metrics)
    except OSError as err:
        err.summary = text  # type: ignore[attr-defined]
        raise
    written = ["summary.md", "summary.csv"] + (["summary_curves.png"] if curves else [])
    warn(f"wrote {', '.join(written)} into {out}" + ("" if curves else
         " (no curves: fewer than two evaluations per job)"))
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sweep", type=Path, help="a multirun folder (outputs/multirun/<time>)")
    parser.add_argument("--out", type=Path, default=None, help="where the files go (the sweep)")
    args = parser.parse_args(argv)
    if not args.sweep.is_dir():
        print(f"summarize: {args.sweep} is not a folder", file=sys.stderr)
        return 2
    try:
        print(summarize(args.sweep, args.out))
    except OSError as err:
        print(getattr(err, "summary", ""))
        where = args.out or args.sweep
        warn(f"could not write summary.md/.csv/_curves.png into {where}: "
             f"{err.strerror or err}; the table above is complete (--out DIR writes them "
             "elsewhere)")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
