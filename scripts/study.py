#!/usr/bin/env python
"""The variants study: every variant on the ring, the grid and the built-in digits, over seeds.

Runs each (section, variant, seed) as its own `python -m gan_exp.train ...` command, several at
a time (`--jobs`, each job limited to its share of the cores), then writes `docs/results.md`
(mean +- std over seeds next to the published reference rows) and the figures
(`docs/study_*.png`). Every command it runs is listed in the results, so any row can be
reproduced by hand.

    python scripts/study.py                  # the full study (92 minutes on 2 CPU cores)
    python scripts/study.py --quick --out /tmp/study   # a smoke version in a few minutes
    python scripts/study.py --only ring      # train one section; report every run on disk
    python scripts/study.py --report-only    # rebuild the tables and figures from the runs
    python scripts/study.py --long           # the reference protocol to 100k / 200k steps

`--long` trains the GAN reference rows until their metrics level off (ring 100,000 steps, grid
200,000, 5 seeds each: about 4.5 hours on 2 CPU cores) and writes `docs/results_long.md`; it is
kept apart because it alone is four times the main study's 2-hour budget.

The runs live under `<out>/runs/<section>/<variant>/seed<k>/`. A finished run is reused, an
unfinished one (the study was interrupted) continues from its checkpoint with `resume=auto`,
and a failed one is shown as failed with its reason, never silently dropped.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gan_exp.atomic import atomic_write_text

ROOT = Path(__file__).resolve().parent.parent

# (row label, slug, overrides): the variants, each with its paper's defaults from `loss=`.
VARIANTS: list[tuple[str, str, list[str]]] = [
    ("GAN (non-saturating)", "gan", ["loss=gan"]),
    ("WGAN (weight clipping)", "wgan", ["loss=wgan"]),
    ("WGAN-GP", "wgan_gp", ["loss=wgan_gp"]),
    ("DRAGAN, `loss=dragan` (Wasserstein loss, seed 000)", "dragan", ["loss=dragan"]),
    (
        "DRAGAN, paper form (`loss=gan penalty=dragan`)",
        "gan_dragan",
        ["loss=gan", "penalty=dragan", "optimizer=adam_dragan"],
    ),
    (
        "DRAGAN, `loss=dragan`, the paper's Gaussian perturbation",
        "dragan_gaussian",
        ["loss=dragan", "penalty.perturbation=gaussian"],
    ),
    (
        "DRAGAN, paper form, the paper's Gaussian perturbation",
        "gan_dragan_gaussian",
        ["loss=gan", "penalty=dragan", "optimizer=adam_dragan", "penalty.perturbation=gaussian"],
    ),
    ("Loss-Sensitive GAN", "loss_sensitive", ["loss=loss_sensitive"]),
    ("EBGAN", "ebgan", ["loss=ebgan"]),
    ("Least squares", "least_squares", ["loss=least_squares"]),
    ("Hinge", "hinge", ["loss=hinge"]),
]

# Per-section changes for a variant, beyond its `loss=` preset (stated in the results).
# The WGAN-GP authors' own toy settings (gan_toy.py in github.com/igul222/improved_wgan_training:
# lambda 0.1, "smaller lambda seems to help for toy tasks", Adam betas (0.5, 0.9)); with the
# paper's image settings (lambda 10, betas (0, 0.9)) it collapses here (docs/toy_analysis.md).
WGAN_GP_TOY = ["penalty.lam=0.1", "optimizer.betas=[0.5,0.9]"]
# Loss-sensitive GAN as its authors' PyTorch code trains it (lsgan-gp.py in
# github.com/maple-research-lab/glsgan-gp): the hinge alone on a raw L, kept Lipschitz by a
# two-sided slope-1 penalty (here WGAN-GP's, at its authors' toy lambda 0.1). The paper's
# E[L(x)] term pushes L into softplus's flat tail (or to -inf raw) and collapses on the toys.
LOSS_SENSITIVE_TOY = ["loss.transform=none", "loss.real_weight=0", "penalty=gp",
                      "penalty.lam=0.1"]
SECTION_OVERRIDES: dict[tuple[str, str], list[str]] = {
    ("ring", "wgan_gp"): WGAN_GP_TOY,
    ("grid", "wgan_gp"): WGAN_GP_TOY,
    ("ring", "loss_sensitive"): LOSS_SENSITIVE_TOY,
    ("grid", "loss_sensitive"): LOSS_SENSITIVE_TOY,
    # DRAGAN as the paper pairs it starts slowly and is still gaining modes at 7,500 steps
    # (ring 7.0 +- 1.0 at step 7,000 over 5 seeds); its preset (experiment=dragan_ring) trains
    # 15,000
    ("ring", "gan_dragan_gaussian"): ["train.steps=15000"],
    ("grid", "gan_dragan_gaussian"): ["train.steps=15000"],
    # seed 004's conv EBGAN pair runs ~2 steps/s on a CPU; half the channels
    ("digits", "ebgan"): ["model.g_width=64", "model.d_width=32"],
}

MAX_CURVE_ROWS = 20  # a longer history: every k-th evaluation, counted back from the last
TOY_TAGS = ["metrics/modes", "metrics/high_quality_pct", "metrics/mode_kl"]
IMAGE_TAGS = [
    "metrics/fd_classifier",
    "metrics/precision",
    "metrics/recall",
    "metrics/coverage",
    "metrics/classes_hit",
]
DIAGNOSTIC_TAGS = ["critic/real", "critic/fake", "loss/penalty", "loss/d", "loss/g"]

# Published rows (mean +- standard error over trials) on exactly this toy protocol.
REFERENCE = {
    "ring": [
        ("GAN (PacGAN, Lin et al. 2018, Table 1; 10 trials)", "6.3 +- 0.5", "98.2 +- 0.2",
         "0.45 +- 0.09"),
        ("PacGAN2 (ibid.)", "7.9 +- 0.1", "95.6 +- 2.0", "0.07 +- 0.03"),
        ("Unrolled GAN (VEEGAN, Srivastava et al. 2017, Table 1; 5 runs)", "7.6", "35.6", ""),
        ("VEEGAN (ibid.)", "8", "52.9", ""),
    ],
    "grid": [
        ("GAN (PacGAN, Lin et al. 2018, Table 1; 10 trials)", "17.3 +- 0.8", "94.8 +- 0.7",
         "0.70 +- 0.07"),
        ("PacGAN2 (ibid.)", "23.8 +- 0.7", "91.3 +- 0.8", "0.13 +- 0.04"),
        ("Unrolled GAN (VEEGAN, Srivastava et al. 2017, Table 1; 5 runs)", "23.6", "16", ""),
        ("VEEGAN (ibid.)", "24.6", "40", ""),
    ],
}


# On 2-D data the authors' DRAGAN perturbation covers only a patch beside each mode; the
# toys also run the paper's Gaussian form (docs/toy_analysis.md). Images run the default only.
IMAGE_VARIANTS = [slug for _, slug, _ in VARIANTS if not slug.endswith("_gaussian")]
SLUGS = [slug for _, slug, _ in VARIANTS]
SECTIONS = ("pacgan_ring", "pacgan_grid", "ring", "grid", "digits")
TOY_DATA = {"pacgan_ring": "ring", "pacgan_grid": "grid", "ring": "ring", "grid": "grid"}


@dataclass(frozen=True)
class Plan:
    """What one study trains: per section its seeds, base overrides and (if not all) variants.

    `pacgan_*` is the published GAN protocol at PacGAN's full width (the reference row);
    `ring` / `grid` every variant on the narrower toy preset; `digits` every variant on the
    built-in digits.
    """

    seeds: dict[str, list[int]]
    base: dict[str, list[str]]
    variants: dict[str, list[str]]

    @staticmethod
    def full() -> Plan:
        return Plan(
            seeds={"pacgan_ring": [0, 1, 2, 3, 4], "pacgan_grid": [0, 1, 2, 3, 4],
                   "ring": [0, 1, 2], "grid": [0, 1, 2], "digits": [0, 1, 2]},
            base={
                "pacgan_ring": ["experiment=pacgan_ring"],
                "pacgan_grid": ["experiment=pacgan_grid"],
                "ring": ["experiment=toy_ring"],
                "grid": ["experiment=toy_grid"],
                "digits": ["train.steps=1500", "metrics.every=750"],
            },
            variants={"pacgan_ring": ["gan"], "pacgan_grid": ["gan"], "digits": IMAGE_VARIANTS},
        )

    @staticmethod
    def quick() -> Plan:
        tiny = ["train.steps=20", "log.every=5", "log.sample_every=10", "checkpoint.every=10",
                "metrics.every=10"]
        toy = [*tiny, "metrics.toy_samples=500"]
        return Plan(
            seeds={"pacgan_ring": [0, 1], "pacgan_grid": [0], "ring": [0], "grid": [0],
                   "digits": [0]},
            base={
                "pacgan_ring": ["experiment=pacgan_ring", *toy],
                "pacgan_grid": ["experiment=pacgan_grid", *toy],
                "ring": ["experiment=toy_ring", *toy],
                "grid": ["experiment=toy_grid", *toy],
                "digits": [
                    *tiny, "dataset.size=2000", "metrics.n_samples=200", "metrics.n_real=200",
                    "metrics.classifier.epochs=1", "metrics.classifier.max_images=2000",
                ],
            },
            variants={"pacgan_ring": ["gan"], "pacgan_grid": ["gan"], "grid": ["gan"],
                      "digits": ["gan", "ebgan"]},
        )

    @staticmethod
    def long() -> Plan:
        """The reference protocol until its metrics level off (docs/toy_analysis.md)."""
        every = ["metrics.every=5000", "checkpoint.every=10000"]
        return Plan(
            seeds={"pacgan_ring": [0, 1, 2, 3, 4], "pacgan_grid": [0, 1, 2, 3, 4]},
            base={
                "pacgan_ring": ["experiment=pacgan_ring", "train.steps=100000", *every],
                "pacgan_grid": ["experiment=pacgan_grid", "train.steps=200000", *every],
            },
            variants={"pacgan_ring": ["gan"], "pacgan_grid": ["gan"]},
        )

    def with_seeds(self, seeds: list[int]) -> Plan:
        return Plan({k: list(seeds) for k in self.seeds}, self.base, self.variants)


@dataclass
class Job:
    section: str
    variant: str  # slug
    seed: int
    overrides: list[str]
    run_dir: Path
    status: str = "pending"  # done | reused | failed
    reason: str = ""
    seconds: float = 0.0
    final: dict[str, float] = field(default_factory=dict)


def make_jobs(plan: Plan, out: Path, sections: Sequence[str]) -> list[Job]:
    jobs = []
    for section in sections:
        for _, slug, overrides in VARIANTS:
            if slug not in plan.variants.get(section, [slug]):
                continue
            seeds = plan.seeds[section]
            extra = SECTION_OVERRIDES.get((section, slug), [])
            for seed in seeds:
                run_dir = out / "runs" / section / slug / f"seed{seed}"
                # the section's base last: a quick plan's tiny schedule wins over a variant's
                jobs.append(
                    Job(section, slug, seed, [*overrides, *extra, *plan.base[section]], run_dir)
                )
    return jobs


def report_jobs(plan: Plan, out: Path, trained: list[Job]) -> list[Job]:
    """Every run the report covers: the plan's, other seeds found on disk, this invocation's.

    A partial invocation (`--only`, `--seeds`, `--variants`) trains part of the study but
    reports all of it, so adding seeds 3 and 4 adds them to the table instead of replacing
    it with a two-seed one.
    """
    planned = make_jobs(plan, out, list(plan.seeds))
    by_key = {(j.section, j.variant, j.seed): j for j in planned}
    one_per_row = {(j.section, j.variant): j for j in planned}.values()
    for job in one_per_row:  # each row's folder of seeds, read once
        for path in job.run_dir.parent.glob("seed*"):
            seed = path.name.removeprefix("seed")
            key = (job.section, job.variant, int(seed)) if seed.isdigit() else None
            if key is not None and key not in by_key:
                by_key[key] = Job(*key, job.overrides, path)
    by_key.update({(j.section, j.variant, j.seed): j for j in trained})
    return sorted(by_key.values(), key=lambda j: (SECTIONS.index(j.section),
                                                  SLUGS.index(j.variant), j.seed))


def latest_config(run_dir: Path) -> Path | None:
    """The run's last config record (a resumed run adds one per resume, maybe longer)."""
    from gan_exp.summary import config_records

    records = config_records(run_dir)
    return records[-1] if records else None


def finished(run_dir: Path) -> dict | None:
    """metrics.json of a run that reached its last step, else None."""
    path = run_dir / "metrics.json"
    if not path.is_file():
        return None
    from gan_exp.summary import steps_wanted

    data = json.loads(path.read_text())
    steps = steps_wanted(run_dir)
    return data if steps is not None and data.get("final_step") == steps else None


# Config keys added after runs on disk were made, with the value that reproduces the old
# behaviour: a run without the key counts as the same run when the job wants that value.
ADDED_KEYS = {"train.updates": "alternating", "loss.real_weight": 1.0}


def same_run(job: Job) -> bool:
    """Whether the folder's run was trained from this job's config (presets may have changed)."""
    from omegaconf import OmegaConf

    from gan_exp.train import compose_config

    saved = latest_config(job.run_dir)
    if saved is None:
        return True
    keys = ("seed", "train", "model", "loss", "penalty", "optimizer", "dataset")
    want = compose_config([*job.overrides, f"seed={job.seed}"])
    have = OmegaConf.load(saved)
    wanted = {k: OmegaConf.to_container(want[k]) for k in keys if k != "seed"}
    for key, old_value in ADDED_KEYS.items():
        if OmegaConf.select(have, key) is None and OmegaConf.select(want, key) == old_value:
            section, name = key.split(".")
            del wanted[section][name]
    return want.seed == have.seed and all(
        wanted[k] == OmegaConf.to_container(have[k]) for k in wanted)


def check_existing(job: Job) -> None:
    """Mark a job whose folder already holds its finished run (reused) or another run (failed).

    Runs in the main thread: Hydra's compose API is not thread-safe.
    """
    if not same_run(job):
        job.status = "failed"
        job.reason = (f"{job.run_dir} holds a run of another config; move it away or use "
                      "another --out")
        print(f"[failed] {job.reason}", flush=True)
        return
    done = finished(job.run_dir)
    if done is not None:
        job.status, job.final = "reused", done["final"]


def run_job(job: Job, threads: int) -> Job:
    resume = ["resume=auto"] if (job.run_dir / "checkpoints").is_dir() else []
    cmd = [
        sys.executable, "-m", "gan_exp.train", *job.overrides, f"seed={job.seed}",
        f"hydra.run.dir={job.run_dir}", "log.progress=false", *resume,
    ]
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    job.run_dir.parent.mkdir(parents=True, exist_ok=True)
    log_path = job.run_dir.parent / f"seed{job.seed}.console.log"
    start = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        LIVE.add(proc)
        proc.wait()
        LIVE.discard(proc)
    job.seconds = time.perf_counter() - start
    done = finished(job.run_dir)
    if proc.returncode == 0 and done is not None:
        job.status, job.final = "done", done["final"]
    else:
        lines = [ln.strip() for ln in log_path.read_text().splitlines() if ln.strip()]
        job.status, job.reason = "failed", (lines[-1] if lines else f"exit {proc.returncode}")
    print(f"[{job.status}] {job.section}/{job.variant}/seed{job.seed} "
          f"{job.seconds:.0f}s {job.reason}", flush=True)
    return job


LIVE: set[subprocess.Popen] = set()  # training processes running now


def stop_live_runs() -> None:
    """SIGTERM every training run: each saves a checkpoint, so the next invocation resumes it."""
    for proc in list(LIVE):
        proc.terminate()
    for proc in list(LIVE):
        proc.wait()


def run_all(jobs: list[Job], n_jobs: int) -> None:
    threads = max(1, (os.cpu_count() or 1) // n_jobs)
    for job in jobs:
        check_existing(job)
    # the slow ones first, so the last minutes are not one long job on one core
    todo = [j for j in jobs if j.status == "pending"]
    order = sorted(todo, key=lambda j: j.variant not in ("wgan_gp", "wgan", "ebgan"))
    pool = ThreadPoolExecutor(n_jobs)
    try:
        list(pool.map(lambda j: run_job(j, threads), order))
    finally:  # Ctrl-C / SIGTERM of the study stops its runs too, resumably
        pool.shutdown(wait=False, cancel_futures=True)
        stop_live_runs()


# ---------------------------------------------------------------- tables
def mean_std(values: list[float], digits: int) -> str:
    if not values:
        return "n/a"
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.{digits}f} +- {std:.{digits}f}"


def ok_jobs(jobs: list[Job], section: str, slug: str | None = None) -> list[Job]:
    return [
        j for j in jobs
        if j.section == section and j.status != "failed" and slug in (None, j.variant)
    ]


def metric_cells(runs: list[Job], tags: list[str], digits: list[int]) -> list[str]:
    return [
        mean_std([j.final[t] for j in runs if t in j.final], d)
        for t, d in zip(tags, digits, strict=True)
    ]


def variant_rows(jobs: list[Job], section: str, tags: list[str], digits: list[int]) -> list[str]:
    rows = []
    for label, slug, _ in VARIANTS:
        mine = [j for j in jobs if j.section == section and j.variant == slug]
        if not mine:
            continue
        ok = ok_jobs(mine, section, slug)
        failed = len(mine) - len(ok)
        n = f"{len(ok)}" + (f" ({failed} failed)" if failed else "")
        cells = " | ".join(metric_cells(ok, tags, digits))
        extra = SECTION_OVERRIDES.get((section, slug))
        if extra:  # a change from the variant's paper settings is part of its label
            label = f"{label}, with `{' '.join(extra)}`"
        # an anchor per row, so the README's variants table can link to it
        rows.append(f'| <a id="{section}-{slug}"></a>{label} | {cells} | {n} |')
    return rows


def history(job: Job) -> dict[int, dict[str, float]]:
    data = json.loads((job.run_dir / "metrics.json").read_text())
    return {h["step"]: h for h in data["history"]}


def curves(runs: list[Job]) -> tuple[list[int], list[dict[int, dict[str, float]]]]:
    """The evaluation steps every run reached, and each run's history."""
    hists = [history(j) for j in runs]
    steps = sorted(set.intersection(*[set(h) for h in hists])) if hists else []
    return steps, hists


def curve_table(runs: list[Job]) -> list[str]:
    """Mean +- std over seeds of the toy metrics at every evaluation."""
    steps, hists = curves(runs)
    if not steps:
        return []
    rows = ["| step | modes | high-quality % | mode KL |", "|---|---|---|---|"]
    stride = math.ceil(len(steps) / MAX_CURVE_ROWS)
    for step in [s for i, s in enumerate(steps) if (len(steps) - 1 - i) % stride == 0]:
        cells = [
            mean_std([h[step][t] for h in hists], d)
            for t, d in zip(TOY_TAGS, (1, 1, 2), strict=True)
        ]
        rows.append(f"| {step} | " + " | ".join(cells) + " |")
    return rows


def last_scalars(run_dir: Path) -> dict[str, float]:
    """Each diagnostic tag's last logged value (the mean over the last `log.every` steps)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 1})
    acc.Reload()
    tags = acc.Tags().get("scalars", [])
    return {t: acc.Scalars(t)[-1].value for t in DIAGNOSTIC_TAGS if t in tags}


# ---------------------------------------------------------------- figures
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_samples(jobs: list[Job], section: str, path: Path) -> bool:
    """Each variant's final samples, from its first seed (never the best one)."""
    import matplotlib.image as mpimg

    plt = _pyplot()
    shown = []
    for label, slug, _ in VARIANTS:
        mine = sorted(ok_jobs(jobs, section, slug), key=lambda j: j.seed)
        if mine and (mine[0].run_dir / "samples.png").is_file():
            shown.append((label.replace("`", ""), mine[0]))
    if not shown:
        return False
    cols = min(5, len(shown))
    rows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (label, job) in zip(axes.flat, shown, strict=False):
        ax.imshow(mpimg.imread(job.run_dir / "samples.png"), interpolation="nearest")
        title = label if len(label) < 34 else label.replace(" (", "\n(").replace(", ", ",\n", 1)
        ax.set_title(f"{title}\nseed {job.seed}", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def figure_curves(groups: list[tuple[str, list[Job]]], path: Path) -> bool:
    """Toy metrics against steps, one row per group: every seed (grey), mean and +- std."""
    drawn = [(name, *curves(runs)) for name, runs in groups]
    drawn = [(name, steps, hists) for name, steps, hists in drawn if steps]
    if not drawn:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(len(drawn), 3, figsize=(12, 3 * len(drawn)), squeeze=False)
    for row, (name, steps, hists) in enumerate(drawn):
        for col, tag in enumerate(TOY_TAGS):
            vals = torch.tensor([[h[s][tag] for s in steps] for h in hists], dtype=torch.float64)
            mean = vals.mean(0)
            std = vals.std(0) if len(hists) > 1 else torch.zeros(len(steps))
            ax = axes[row][col]
            for v in vals:
                ax.plot(steps, v, color="0.75", lw=0.8)
            ax.plot(steps, mean, color="C0", lw=2)
            ax.fill_between(steps, mean - std, mean + std, color="C0", alpha=0.2)
            ax.set_title(f"{name}: {tag.split('/')[1]} (n={len(hists)})", fontsize=9)
            ax.set_xlabel("generator step", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ---------------------------------------------------------------- report
def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPU cores ({cpu}), no GPU, torch {torch.__version__}"


def reference_table(section: str, ours: list[Job]) -> list[str]:
    rows = ["| model | modes | high-quality % | mode KL | n |", "|---|---|---|---|---|"]
    if ours:
        rows.append(
            f"| **GAN, this study** (`{' '.join(ours[0].overrides)}`) | "
            + " | ".join(metric_cells(ours, TOY_TAGS, [1, 1, 2])) + f" | {len(ours)} |"
        )
    rows += [f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | |" for r in REFERENCE[TOY_DATA[section]]]
    return rows


def toy_sections(jobs: list[Job], plan: Plan, docs: Path, long: bool = False) -> list[str]:
    lines: list[str] = []
    refs = [s for s in ("pacgan_ring", "pacgan_grid") if ok_jobs(jobs, s)]
    prefix = "study_long" if long else "study"
    if refs:
        lines += [
            "## The reference protocol: GAN on PacGAN's synthetic setup",
            "",
            "PacGAN's generator and maxout discriminator at full width, its Adam, batch 100 "
            "(`experiment=pacgan_ring` / `pacgan_grid`): final values at the last step, next "
            "to the published rows (theirs: mean +- standard error over their trials, after "
            "400 epochs = 400,000 steps). "
            + (
                "Trained until the metrics level off: 100,000 steps on the ring, 200,000 on "
                "the grid; what the curves show: [toy_analysis.md](toy_analysis.md#the-"
                "reference-protocol-at-100000-and-200000-steps)."
                if long
                else "At the preset's 15,000 steps the modes agree and the high-quality share "
                "is still rising; trained until it levels off (ring 100,000 steps, grid "
                "200,000) the protocol reaches the published band: "
                "[results_long.md](results_long.md)."
            ),
            "",
        ]
        for section in refs:
            table = reference_table(section, ok_jobs(jobs, section))
            lines += [f"**{TOY_DATA[section]}**", "", *table, ""]
        groups = [(s, ok_jobs(jobs, s)) for s in refs]
        if figure_curves(groups, docs / f"{prefix}_reference_curves.png"):
            lines += [f"![GAN reference metric curves]({prefix}_reference_curves.png)", ""]
        for section in refs:
            lines += [f"Metrics during training, {TOY_DATA[section]} (mean +- std over seeds):",
                      "", *curve_table(ok_jobs(jobs, section)), ""]
    for section in ("ring", "grid"):
        if not any(j.section == section for j in jobs):
            continue
        base = " ".join(plan.base[section])
        lines += [
            f"## Every variant on the {section}",
            "",
            f"Each row: `python -m gan_exp.train <variant> {base} seed=<k>`, the variant's "
            "own paper settings (README's variants table) on the narrower toy preset.",
            "",
            "| variant | modes | high-quality % | mode KL | n |",
            "|---|---|---|---|---|",
            *variant_rows(jobs, section, TOY_TAGS, [1, 1, 2]),
            "",
        ]
        if figure_samples(jobs, section, docs / f"study_{section}.png"):
            lines += [
                f"![{section} samples](study_{section}.png)",
                "",
                "Final samples of each variant's first seed (red: 1,000 generated points from "
                "the fixed noise; blue: real points).",
                "",
            ]
        groups = [(slug, ok_jobs(jobs, section, slug)) for _, slug, _ in VARIANTS]
        if figure_curves(groups, docs / f"study_{section}_curves.png"):
            lines += [f"Curves of every variant: [study_{section}_curves.png]"
                      f"(study_{section}_curves.png).", ""]
    diag = [(s, slug, ok_jobs(jobs, s, slug)) for s in ("ring", "grid") for _, slug, _ in VARIANTS]
    diag = [d for d in diag if d[2]]
    if diag:
        lines += [
            "## Training diagnostics at the last step",
            "",
            "The last logged value of each training scalar (a mean over the last 100 steps), "
            "mean +- std over seeds: mean critic output on real and on generated points, the "
            "penalty term and both losses. A critic whose values run into the tens or hundreds "
            "is not tracking the generator.",
            "",
            "| toy | variant | " + " | ".join(DIAGNOSTIC_TAGS) + " |",
            "|---|---|" + "---|" * len(DIAGNOSTIC_TAGS),
        ]
        for section, slug, runs in diag:
            scalars = [last_scalars(j.run_dir) for j in runs]
            cells = [mean_std([s[t] for s in scalars if t in s], 3) for t in DIAGNOSTIC_TAGS]
            lines.append(f"| {section} | {slug} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def digits_section(jobs: list[Job], plan: Plan, docs: Path) -> list[str]:
    if not any(j.section == "digits" for j in jobs):
        return []
    lines = [
        "## Every variant on the built-in digits",
        "",
        f"Each row: `python -m gan_exp.train <variant> {' '.join(plan.base['digits'])} "
        "seed=<k>` with the variant's defaults (the seeds' MLP pair; EBGAN its autoencoder "
        "critic). Metrics in the offline classifier's feature space (README, Metrics): FD "
        "lower is better, the others higher; 10 classes.",
        "",
        "| variant | FD (classifier) | precision | recall | coverage | classes hit | n |",
        "|---|---|---|---|---|---|---|",
        *variant_rows(jobs, "digits", IMAGE_TAGS, [2, 3, 3, 3, 1]),
        "",
    ]
    if figure_samples(jobs, "digits", docs / "study_digits.png"):
        lines += ["![digits samples](study_digits.png)", "",
                  "Final samples (fixed noise) of each variant's first seed.", ""]
    return lines


def write_report(
    jobs: list[Job], plan: Plan, docs: Path, wall: float | None, quick: bool, long: bool = False
) -> Path:
    docs.mkdir(parents=True, exist_ok=True)
    for job in jobs:  # --report-only: what the folders hold
        if job.status == "pending":
            done = finished(job.run_dir)
            if done is not None:
                job.status, job.final = "reused", done["final"]
            elif job.run_dir.is_dir():
                job.status = "failed"
                job.reason = "its folder holds no finished run (still training, or stopped)"
    missing = [j for j in jobs if j.status == "pending"]
    jobs = [j for j in jobs if j.status != "pending"]
    flags = (" --quick" if quick else "") + (" --long" if long else "")
    command = f"python scripts/study.py{flags}"
    timing = (
        f"Wall time of this invocation: {wall / 60:.1f} min, two runs at a time (runs reused "
        "from an earlier invocation not counted)."
        if wall is not None
        else "Tables rebuilt with `--report-only` from the runs on disk."
    )
    lines = [
        "# Results: the reference protocol, trained until its metrics level off"
        if long
        else "# Results: every variant on the toy benchmarks and the built-in digits",
        "",
        f"Written by `{command}` on {machine()}. {timing}",
        "",
        "Every number is the mean +- standard deviation over seeds, with n; no seed is picked "
        "and every value is the final one (last step), not the best step. What the numbers "
        "mean, variant by variant: [toy_analysis.md](toy_analysis.md).",
        "",
    ]
    if quick:
        lines += ["**Quick mode: a few steps per run, a smoke test of the pipeline only; the "
                  "numbers mean nothing.**", ""]
    lines += toy_sections(jobs, plan, docs, long)
    lines += digits_section(jobs, plan, docs)
    if missing:
        lines += ["## Not trained yet", "",
                  f"The study was stopped before these runs; `{command}` trains them and "
                  "keeps the rest:", "",
                  *[f"- `{j.section}/{j.variant}/seed{j.seed}`" for j in missing], ""]
    failed = [j for j in jobs if j.status == "failed"]
    if failed:
        lines += ["## Failed runs", "",
                  *[f"- `{j.section}/{j.variant}/seed{j.seed}`: {j.reason}" for j in failed], ""]
    lines += ["## Commands", "", "Each row's runs, as trained (add `seed=<k>`):", ""]
    seen = set()
    for job in jobs:
        if (job.section, job.variant) not in seen:
            seen.add((job.section, job.variant))
            lines.append(f"- {job.section} / {job.variant}: `python -m gan_exp.train "
                         f"{' '.join(job.overrides)}`")
    stem = "results_long" if long else "results"
    path = docs / f"{stem}.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    records = [
        {"section": j.section, "variant": j.variant, "seed": j.seed, "status": j.status,
         "reason": j.reason, "seconds": round(j.seconds, 1), "final": j.final}
        for j in jobs
    ]
    atomic_write_text(docs / f"{stem}.json", json.dumps(records, indent=1) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few-minute smoke version")
    parser.add_argument("--out", type=Path, default=None,
                        help="where runs and the report go (default outputs/study, or "
                             "outputs/study_quick; the report to docs/ only with the default "
                             "outputs/study, else beside the runs)")
    parser.add_argument("--docs", type=Path, default=None, help="report folder")
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at the same time")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="sections to train (the report covers the runs present)")
    parser.add_argument("--variants", nargs="+", default=None,
                        help="train only these variants (slugs) in every section")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="train only these seeds in every section")
    parser.add_argument("--long", action="store_true",
                        help="the reference rows until they level off (ring 100k, grid 200k "
                             "steps, 5 seeds; ~4.5 h on 2 CPU cores) into docs/results_long.md")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    if args.long and args.quick:
        parser.error("--long and --quick: choose one (--quick is the smoke test)")
    whole = Plan.long() if args.long else Plan.quick() if args.quick else Plan.full()
    if args.long:
        wrong = [s for s in args.only if s not in whole.seeds]
        if wrong and args.only != list(SECTIONS):
            parser.error(f"--long trains pacgan_ring and pacgan_grid only, not {wrong}")
        args.only = [s for s in args.only if s in whole.seeds]
    plan = whole if args.seeds is None else whole.with_seeds(args.seeds)
    name = "study_long" if args.long else "study_quick" if args.quick else "study"
    out = (args.out or ROOT / "outputs" / name).resolve()
    # the committed docs/ only from the default runs folder: another --out reports beside it
    docs = args.docs or (out / "docs" if args.quick or args.out else ROOT / "docs")
    jobs = make_jobs(plan, out, args.only)
    if args.variants is not None:
        jobs = [j for j in jobs if j.variant in args.variants]
    start = time.perf_counter()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if not args.report_only:
        print(f"{len(jobs)} runs, {args.jobs} at a time, into {out}", flush=True)
        run_all(jobs, args.jobs)
    wall = None if args.report_only else time.perf_counter() - start
    report = write_report(report_jobs(whole, out, jobs), whole, docs, wall, args.quick, args.long)
    print(f"wrote {report}")
    return 1 if any(j.status == "failed" for j in jobs) else 0


if __name__ == "__main__":
    sys.exit(main())
