#!/usr/bin/env python
"""The variants study: every row of docs/results.md as Hydra multiruns, then the report.

    python scripts/study.py                  # the whole study, two runs at a time
    python scripts/study.py --quick --out /tmp/study   # a smoke version in a few minutes
    python scripts/study.py --only toys      # one sweep; the report covers every sweep on disk
    python scripts/study.py --report-only    # the tables and figures from the sweeps on disk
    python scripts/study.py --long           # the reference protocol to 100k/200k steps

Each sweep is a config of conf/study/, run as `python -m gan_exp.train -m study=NAME` (the
parallel launcher; resume=auto makes a finished job free) into `<out>/NAME/`. The report reads
the folders with gan_exp.summary's reader; a row's command is its jobs' overrides but the seed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import sys
import time
from collections import defaultdict
from importlib import metadata
from pathlib import Path

import yaml

from gan_exp import signals
from gan_exp.atomic import atomic_write_text
from gan_exp.summary import Job, find_jobs, last_config, mean_std, plot_curves, rows_of

ROOT = Path(__file__).resolve().parent.parent
STUDY = ("reference", "toys", "toys_dragan_paper", "digits", "digits_dragan_paper")
QUICK = ("debug=fast", "train.steps=10", "metrics.every=5", "seed=0")  # a 10-step smoke test
DATA = yaml.safe_load((ROOT / "scripts" / "study.yaml").read_text())
TOY, IMAGE, DIAGNOSTICS = (DATA["tags"][k] for k in ("toy", "image", "diagnostics"))


def run_sweeps(names: list[str], out: Path, jobs: int, extra: tuple[str, ...]) -> bool:
    """Each sweep through Hydra's multirun; True when every job of every sweep succeeded.
    A stop signal goes on to the running sweep (its jobs checkpoint), then the study exits."""
    ok = True
    for name in names:
        cmd = [sys.executable, "-m", "gan_exp.train", "-m", f"study={name}",
               f"hydra.sweep.dir={out / name}", f"hydra.launcher.n_jobs={jobs}", *extra]
        print(f"study: {' '.join(cmd[1:])}", flush=True)
        ok &= signals.run_passing_stops(cmd, cwd=ROOT) == 0
        if (signum := signals.requested()) is not None:
            print(f"study: stopped by {signal.Signals(signum).name} in sweep {name}, report "
                  "unchanged; the same command resumes it", file=sys.stderr)
            sys.exit(128 + signum)
    return ok


def variant(job: Job) -> str:
    return job.overrides.get("loss") or job.overrides.get("experiment") or "?"


def section(job: Job) -> str:
    # a job that wrote nothing yet (refused, or still starting) is known by its folder's name
    data = (last_config(job.path).get("dataset") or {}).get("name") or job.overrides.get(
        "dataset", "?")
    reference = job.overrides.get("experiment", "").startswith("pacgan")
    return f"pacgan_{data}" if reference else data


def command(job: Job) -> str:
    return " ".join(f"{k}={v}" for k, v in job.overrides.items() if k != "seed")


def collect(out: Path, names: tuple[str, ...]) -> tuple[dict, list[str]]:
    """{section: {variant: [jobs]}} in the labels' order, and the sweeps not on disk."""
    found: dict[str, dict[str, list[Job]]] = defaultdict(lambda: defaultdict(list))
    missing = [n for n in names if not (out / n).is_dir()]
    for name in names:
        for job in find_jobs(out / name) if name not in missing else []:
            found[section(job)][variant(job)].append(job)
    order = list(DATA["labels"])
    return {s: dict(sorted(v.items(), key=lambda kv: (order + [kv[0]]).index(kv[0])))
            for s, v in found.items()}, missing


def done(jobs: list[Job]) -> list[Job]:
    return [j for j in jobs if j.status == "finished" and j.final]


def cells(jobs: list[Job], tags: list[str], digits: list[int]) -> str:
    return " | ".join(mean_std([j.final[t] for j in jobs if t in j.final], d)
                      for t, d in zip(tags, digits, strict=True))


def n_cell(jobs: list[Job]) -> str:
    bad = len(jobs) - len(done(jobs))
    return f"{len(done(jobs))}" + (f" ({bad} not finished)" if bad else "")


def table(sec: str, rows: dict[str, list[Job]], tags: list[str], digits: list[int]) -> list[str]:
    head = ["variant", *DATA["columns"][len(tags) == 3], "n", "command (add seed=K)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for var, jobs in rows.items():
        label = DATA["labels"].get(var, var)
        lines.append(f'| <a id="{sec}-{var}"></a>{label} | {cells(jobs, tags, digits)} | '
                     f"{n_cell(jobs)} | `{command(jobs[0])}` |")
    return lines


def curve_table(jobs: list[Job], max_rows: int = 20) -> list[str]:
    """At most `max_rows` of the evaluations every run reached, every k-th back from the last."""
    hists = [{int(h["step"]): h for h in j.history} for j in jobs]
    steps = sorted(set.intersection(*[set(h) for h in hists])) if hists else []
    stride = math.ceil(len(steps) / max_rows) if steps else 1
    lines = ["| step | modes | high-quality % | mode KL |", "|---|---|---|---|"]
    for step in [s for i, s in enumerate(steps) if (len(steps) - 1 - i) % stride == 0]:
        lines.append(f"| {step} | " + " | ".join(mean_std([h[step][t] for h in hists], d)
                     for t, d in zip(TOY, (1, 1, 2), strict=True)) + " |")
    return lines


def samples_figure(rows: dict[str, list[Job]], path: Path) -> bool:
    """Each row's final samples from its lowest seed (never the best one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    firsts = [(v, min(done(js), key=lambda j: int(j.overrides.get("seed", 0))))
              for v, js in rows.items() if done(js)]
    if not (shown := [(v, j) for v, j in firsts if (j.path / "samples.png").is_file()]):
        return False
    cols, n_rows = min(5, len(shown)), math.ceil(len(shown) / 5)
    fig, axes = plt.subplots(n_rows, cols, squeeze=False, figsize=(3.2 * cols, 3.6 * n_rows))
    for ax in axes.flat:
        ax.axis("off")
    for ax, (var, job) in zip(axes.flat, shown, strict=False):
        ax.imshow(plt.imread(job.path / "samples.png"), interpolation="nearest")
        ax.set_title(f"{var}\nseed {job.overrides.get('seed', 0)}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def last_scalars(job: Job) -> dict[str, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (acc := EventAccumulator(str(job.path), size_guidance={"scalars": 0, "images": 1})).Reload()
    tags = acc.Tags().get("scalars", [])
    return {t: acc.Scalars(t)[-1].value for t in DIAGNOSTICS if t in tags}


def curve_figure(rows: dict[str, list[Job]], tags: list[str], path: Path) -> bool:
    """The sweep summary's curves (mean +- std over seeds per row)."""
    groups = rows_of([j for js in rows.values() for j in done(js)], ["loss", "experiment"])
    return plot_curves(path, groups, ["loss", "experiment"], tags)


def report(found: dict, missing: list[str], docs: Path, head: str, long: bool) -> Path:
    docs.mkdir(parents=True, exist_ok=True)
    stem = "results_long" if long else "results"
    lines = [f"# {DATA['titles'][stem]}", "", head, "", DATA["preamble"], ""]
    for sec in [s for s in DATA["sections"] if s in found]:
        rows, toy = found[sec], sec != "digits"
        tags, digits = (TOY, [1, 1, 2]) if toy else (IMAGE, [2, 3, 3, 3, 1])
        published = [f"| {' | '.join(r)} | | |" for r in DATA["published"].get(sec, [])]
        lines += [f"## {DATA['sections'][sec]}", "", *table(sec, rows, tags, digits),
                  *published, ""]
        if published:
            for jobs in rows.values():
                lines += [f"Metrics during training, `{command(jobs[0])}`, mean +- std over "
                          "seeds:", "", *curve_table(done(jobs)), ""]
        if samples_figure(rows, docs / f"{stem}_{sec}.png"):
            lines += [f"![{sec} samples]({stem}_{sec}.png)", ""]
        if toy and curve_figure(rows, tags, docs / f"{stem}_{sec}_curves.png"):
            lines += [f"Metric curves, mean +- std over seeds: [{stem}_{sec}_curves.png]"
                      f"({stem}_{sec}_curves.png).", ""]
        if toy and not sec.startswith("pacgan"):
            lines += [DATA["diagnostics"], "", "| variant | " + " | ".join(DIAGNOSTICS) + " |",
                      "|---|" + "---|" * len(DIAGNOSTICS)]
            for var, jobs in rows.items():
                scalars = [last_scalars(j) for j in done(jobs)]
                lines.append(f"| {var} | " + " | ".join(
                    mean_std([s[t] for s in scalars if t in s], 3) for t in DIAGNOSTICS) + " |")
            lines.append("")
    unfinished = [j for s in found.values() for js in s.values() for j in js
                  if j not in done(js)]
    if unfinished or missing:
        lines += ["## Not finished", "", "Runs that failed, stopped or have not been trained "
                  "(the same study command trains what is missing and resumes what stopped):", "",
                  *[f"- `{j.path.parent.name}/{j.path.name}`: {j.status}, {j.reason}"
                    for j in unfinished], *[f"- sweep `{m}`: not run yet" for m in missing], ""]
    atomic_write_text(docs / f"{stem}.md", "\n".join(lines) + "\n")
    records = [{"section": s, "variant": v, "command": command(j), "status": j.status,
                "seed": int(j.overrides.get("seed", 0)), "reason": j.reason, "final": j.final,
                "config": {k: last_config(j.path).get(k) for k in DATA["config_keys"]}}
               for s, rows in found.items() for v, js in rows.items() for j in js]
    atomic_write_text(docs / f"{stem}.json", json.dumps(records, indent=1) + "\n")
    return docs / f"{stem}.md"


def machine() -> str:
    text = info.read_text() if (info := Path("/proc/cpuinfo")).is_file() else ""
    names = [x.split(":", 1)[1].strip() for x in text.splitlines() if x.startswith("model name")]
    cpu = f"{os.cpu_count()} CPU cores ({names[0] if names else platform.machine()})"
    return f"{cpu}, torch {metadata.version('torch')}"  # two torch builds' runs differ


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="every sweep at 10 steps, seed 0")
    parser.add_argument("--long", action="store_true", help="conf/study/long.yaml (~4.5 h)")
    parser.add_argument("--only", nargs="+", metavar="SWEEP", help=f"of {', '.join(STUDY)}")
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at once (default 2)")
    parser.add_argument("--out", type=Path, help="sweep folders (default outputs/study)")
    parser.add_argument("--docs", type=Path, help="report folder (default docs/ or <out>/docs)")
    parser.add_argument("--report-only", action="store_true", help="train nothing")
    args = parser.parse_args(argv)
    names = ("long",) if args.long else STUDY
    wrong = [n for n in args.only or [] if n not in names]
    if args.long and args.quick or args.jobs < 1:
        parser.error("--long and --quick: choose one (--quick is the smoke test)"
                     if args.long and args.quick else f"--jobs={args.jobs}: must be at least 1")
    if wrong:
        parser.error(f"--only {' '.join(wrong)}: not a sweep of this study; of {', '.join(names)}")
    out = (args.out or ROOT / "outputs" / "study").resolve()
    docs = (args.docs or (out / "docs" if args.out or args.quick else ROOT / "docs")).resolve()
    if bad := [f"{f} {p}" for p, f in ((out, "--out"), (docs, "--docs")) if p.is_file()]:
        parser.error(f"{bad[0]}: is a file, not a folder")
    start = time.perf_counter()
    ok = args.report_only or run_sweeps(list(args.only or names), out, args.jobs,
                                        QUICK if args.quick else ())
    flags = " --long" if args.long else " --quick" if args.quick else ""
    head = (f"Written by `python scripts/study.py{flags}` on {machine()}. "
            + ("Tables rebuilt from the sweeps on disk (`--report-only`)." if args.report_only
               else f"Wall time of this invocation: {(time.perf_counter() - start) / 60:.1f} "
               f"min, {args.jobs} runs at a time (finished runs it found are not trained again)."))
    if args.quick:
        head += " **Quick mode: 10 steps per run, a smoke test; the numbers mean nothing.**"
    if not (found := collect(out, names))[0]:  # never replace a report with an empty one
        print(f"study: no runs under {out}; {docs} left as it is", file=sys.stderr)
        return 2
    print(f"study: wrote {report(*found, docs, head, args.long)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
