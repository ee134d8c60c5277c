#!/usr/bin/env python
"""Training-step throughput of gan_exp's loop against a naive loop of the same maths.

Prints, per variant and model on MNIST-shaped data (the built-in digits, 1x28x28):
generator steps/s, real samples/s, peak memory, for
  - naive:   PyTorch-GAN's way (github.com/eriklindernoren/PyTorch-GAN): a DataLoader
             applying its PIL transforms per sample,
             separate critic forwards for real, fake and penalty points, torch's own
             activations, default optimisers, a .item() host sync every step;
  - bare:    this project's step functions with no logging at all;
  - project: this project's full loop (trainer.run) with logging at the default intervals;
and the ratio project / naive (naive in a process of its own). Then throughput against
batch size, memory over a long run, and the cost of logging and evaluation at their default
intervals.

    python scripts/benchmark.py                 # the full set (about 8 minutes on 2 CPU cores)
    python scripts/benchmark.py --quick         # a smoke run in seconds
    python scripts/benchmark.py --device cuda --steps 300
    python scripts/benchmark.py --naive-workers 8   # PyTorch-GAN's DataLoader(num_workers=8)
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from gan_exp.components import build, build_components, resolve_device, seed_everything
from gan_exp.data.base import GANDataset
from gan_exp.metrics import Evaluator
from gan_exp.models.activations import stock_activations
from gan_exp.tb import RunLogger
from gan_exp.train import compose_config as config
from gan_exp.trainer import Meter, Trainer

# (variant, model, extra overrides)
CASES = [
    ("wgan_gp", "mlp", []),
    ("wgan", "mlp", []),
    ("dragan", "mlp", []),
    ("ebgan", "ebgan", []),
    ("wgan_gp", "dcgan", []),
    ("dragan", "dcgan", []),
]


# ---------------------------------------------------------------- memory
def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    else:
        with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM, the peak resident set size


def peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return _proc_status("VmHWM")


def rss_mb() -> float:
    return _proc_status("VmRSS")


def _proc_status(key: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------- the naive reference loop
class PILImages(Dataset):
    """The dataset as PyTorch-GAN's scripts see it: one PIL image per item, transformed per
    sample."""

    def __init__(self, dataset: GANDataset) -> None:
        self.images = dataset.data[:, 0].numpy()
        self.transform = transforms.Compose(  # PyTorch-GAN's wgan_gp.py pipeline, per sample
            [
                transforms.Resize(self.images.shape[-1]),
                transforms.ToTensor(),
                transforms.Normalize([0.5], [0.5]),
            ]
        )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), 0


def naive_loop(
    cfg: DictConfig, dataset: GANDataset, device: torch.device, steps: int, workers: int = 0
) -> float:
    """Seconds for `steps` generator steps written PyTorch-GAN's way (same losses and penalty).

    `workers` is the DataLoader's num_workers. 0, the default, is the kinder reference on a
    small machine: PyTorch-GAN's 8 workers compete with the training threads for the cores. The
    peak memory reported is the training process's own, without the workers'.
    """
    seed_everything(0)
    models = build(cfg.model, data=dataset.spec)
    G, D = models.generator.to(device), stock_activations(models.critic).to(device)
    loss, penalty = build(cfg.loss), build(cfg.penalty)
    o = cfg.optimizer
    if o.name.startswith("adam"):
        opt_g = torch.optim.Adam(G.parameters(), lr=o.lr_g, betas=tuple(o.betas))
        opt_d = torch.optim.Adam(D.parameters(), lr=o.lr_d, betas=tuple(o.betas))
    else:
        opt_g = torch.optim.RMSprop(G.parameters(), lr=o.lr_g)
        opt_d = torch.optim.RMSprop(D.parameters(), lr=o.lr_d)
    bs, n_critic = cfg.train.batch_size, cfg.train.n_critic
    loader = DataLoader(
        PILImages(dataset), batch_size=bs, shuffle=True, drop_last=True, num_workers=workers
    )
    it = iter(loader)

    def real_batch():
        nonlocal it
        try:
            x, _ = next(it)
        except StopIteration:
            it = iter(loader)
            x, _ = next(it)
        return x.to(device)

    latent = models.latent_dim
    start = time.perf_counter()
    for _ in range(steps):
        for _ in range(n_critic):
            x = real_batch()
            z = torch.randn(bs, latent, device=device)
            fake = G(z).detach()
            d_loss = loss.d_loss(D(x), D(fake), x, fake)  # two forwards
            term = penalty(D, x, fake)  # a third forward for the penalty points
            if term is not None:
                d_loss = d_loss + term
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            penalty.after_d_step(D)
            d_loss.item()  # PyTorch-GAN's per-step sync (tqdm postfix / running sums)
        z = torch.randn(bs, latent, device=device)
        fake = G(z)
        g_loss = loss.g_loss(D(fake), fake)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        g_loss.item()
    sync(device)
    return time.perf_counter() - start


# ---------------------------------------------------------------- the project's loop
def make_trainer(cfg: DictConfig, dataset: GANDataset, device: torch.device, run_dir: Path):
    seed_everything(0)
    parts = build_components(cfg, device, dataset=dataset)
    seed_everything(0)
    return Trainer(cfg, run_dir, parts, device)


class NullMeter(Meter):
    """Drops the loop's scalars: the bare loop prices the step functions alone."""

    def add(self, values: dict[str, torch.Tensor]) -> None:
        pass


def bare_loop(cfg: DictConfig, dataset: GANDataset, device: torch.device, steps: int) -> float:
    """The project's step functions, nothing else: no meter, logging, previews or checkpoints."""
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(cfg, dataset, device, Path(tmp))
        trainer.meter = NullMeter()
        start = time.perf_counter()
        for _ in range(steps):
            trainer.train_step()
        sync(device)
        return time.perf_counter() - start


def project_loop(cfg: DictConfig, dataset: GANDataset, device: torch.device, steps: int) -> float:
    """trainer.run, the full loop with scalars and sample grids at the default intervals.

    Timed as the run times itself (`perf/steps_per_sec`: from the loop's start, step-0 grid
    included, to the last step's scalars). The once-per-run end (final grid and checkpoint,
    about 0.1 s) would weigh 5% on a 50-step measurement but 0.05% on a real run; the last
    table prices it separately.
    """
    cfg.train.steps = steps
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(cfg, dataset, device, Path(tmp))
        logger = RunLogger(Path(tmp))
        last = trainer.run(logger)
        logger.close()
    return steps / last["perf/steps_per_sec"]


def logging_costs(
    cfg: DictConfig, dataset: GANDataset, device: torch.device, steps: int
) -> tuple[float, float, float, float]:
    """Seconds per training step, per scalar log (meter read, host sync, event write), per
    sample grid and per checkpoint, each the best of repeated timings. Priced one by one: the
    difference of two whole runs is swamped by this machine's minute-to-minute drift."""
    chunk = max(steps // 5, 1)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(cfg, dataset, device, Path(tmp))
        logger = RunLogger(Path(tmp))
        t_step = t_scalars = t_grid = t_checkpoint = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(chunk):
                trainer.train_step()
            sync(device)
            t_step = min(t_step, (time.perf_counter() - start) / chunk)
            start = time.perf_counter()
            logger.scalars(trainer.step, trainer.meter.read())
            t_scalars = min(t_scalars, time.perf_counter() - start)
            start = time.perf_counter()
            logger.image("samples", trainer.preview(), trainer.step)
            t_grid = min(t_grid, time.perf_counter() - start)
            start = time.perf_counter()
            trainer.checkpoint()
            t_checkpoint = min(t_checkpoint, time.perf_counter() - start)
        logger.close()
    return t_step, t_scalars, t_grid, t_checkpoint


# ---------------------------------------------------------------- report
def row(cells: list[str], widths: list[int]) -> str:
    return "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)) + " |"


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = [row(header, widths), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += [row(r, widths) for r in rows]
    return "\n".join(lines)


LOOPS = {"naive": naive_loop, "bare": bare_loop, "project": project_loop}
WARMUP_STEPS = 3


class Worker:
    """A child process that builds the dataset once, then times loops on request.

    The naive loop gets a process of its own, apart from the project's loops: the project
    changes process-wide state (the allocator's settings, `train.malloc_tuning`) that must
    not leak into the reference. Requests alternate between the processes in short runs, so
    the machine's drift (this shared 2-core machine varies by 20-30% from minute to minute)
    hits every loop alike. Each loop's first request also runs a few untimed steps, so
    one-time costs (thread pools, first allocations) are not counted.
    """

    def __init__(self, overrides: list[str], naive_workers: int = 0) -> None:
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in close()
        setup = json.dumps({"overrides": overrides, "naive_workers": naive_workers})
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", setup],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )

    def measure(self, loop: str, steps: int) -> tuple[float, float]:
        """Generator steps/s and peak MB of `steps` steps of `loop`."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"loop": loop, "steps": steps}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            self.log.seek(0)
            raise RuntimeError(f"benchmark worker failed on {loop}:\n{self.log.read()[-3000:]}")
        result = json.loads(line)
        return result["steps_per_sec"], result["peak_mb"]

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait()
        self.log.close()


def serve(overrides: list[str], naive_workers: int) -> None:
    """The child side of `Worker`: one JSON request per stdin line, one JSON reply each."""
    loops = {**LOOPS, "naive": functools.partial(naive_loop, workers=naive_workers)}
    cfg = config(overrides)
    device = resolve_device(cfg.device)
    dataset = build(cfg.dataset)
    warmed: set[str] = set()
    for line in sys.stdin:
        job = json.loads(line)
        loop = loops[job["loop"]]
        if job["loop"] not in warmed:
            loop(copy.deepcopy(cfg), dataset, device, WARMUP_STEPS)
            warmed.add(job["loop"])
        reset_peak(device)
        seconds = loop(copy.deepcopy(cfg), dataset, device, job["steps"])
        reply = {"steps_per_sec": job["steps"] / seconds, "peak_mb": peak_mb(device)}
        print(json.dumps(reply), flush=True)


class Workers:
    """The processes of the comparison measured last, kept for the next one: a configuration
    measured again right after (the batch-size table's first batch size after a first table of
    the same case, as in `--quick`) reuses them instead of starting two more. Any other
    configuration closes them first, so at most one pair holds a dataset at a time."""

    def __init__(self) -> None:
        self.key: str | None = None
        self.procs: dict[str, Worker] = {}

    def pair(self, overrides: list[str], naive_workers: int, kinds: set[str]) -> dict[str, Worker]:
        """A worker of each kind ("naive", "ours") for this configuration."""
        key = OmegaConf.to_yaml(config(overrides)) + f"naive_workers: {naive_workers}\n"
        if key != self.key:
            self.close()
            self.key = key
        for kind in kinds - set(self.procs):
            self.procs[kind] = Worker(overrides, naive_workers if kind == "naive" else 0)
        return self.procs

    def close(self) -> None:
        for worker in self.procs.values():
            worker.close()
        self.procs, self.key = {}, None


WORKERS = Workers()


def compare(
    overrides: list[str],
    steps: int,
    repeats: int,
    loops: tuple[str, ...] = tuple(LOOPS),
    naive_workers: int = 0,
) -> tuple[dict[str, tuple[float, float]], dict[str, list[float]]]:
    """`repeats` interleaved runs of each loop: the best (steps/s, peak MB) per loop, and
    every run's steps/s in order (run i of each loop ran back to back, so their ratio is a
    paired measurement, which shows the spread that best-of hides)."""
    kinds = {name: "naive" if name == "naive" else "ours" for name in loops}
    workers = WORKERS.pair(overrides, naive_workers, set(kinds.values()))  # main() closes them
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in loops}
    for _ in range(repeats):
        for name in loops:
            runs[name].append(workers[kinds[name]].measure(name, steps))
    best = {name: max(measured) for name, measured in runs.items()}  # highest steps/s
    return best, {name: [sps for sps, _ in measured] for name, measured in runs.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=50, help="generator steps per measurement")
    p.add_argument("--mlp-only", action="store_true", help="skip the conv models")
    p.add_argument("--cases", default="", help="only these, e.g. wgan_gp/mlp,wgan/mlp")
    p.add_argument("--main-only", action="store_true", help="only the first table")
    p.add_argument("--batch-sizes", default="64,128,256,512,1024")
    p.add_argument("--long-steps", type=int, default=2000, help="steps for the memory check")
    p.add_argument("--repeats", type=int, default=5, help="interleaved repeats (best is kept)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs")
    p.add_argument(
        "--naive-workers",
        type=int,
        default=0,
        help="the naive loop's DataLoader num_workers (PyTorch-GAN uses 8)",
    )
    p.add_argument("--serve", help=argparse.SUPPRESS)  # the child side of Worker
    args = p.parse_args(argv)
    if args.serve:
        setup = json.loads(args.serve)
        serve(setup["overrides"], setup["naive_workers"])
        return 0
    if args.naive_workers < 0:
        p.error(f"--naive-workers={args.naive_workers} must be >= 0")
    device = resolve_device(args.device)
    steps, long_steps = args.steps, args.long_steps
    size = 60000
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    cases = [c for c in CASES if not (args.mlp_only and c[1] == "dcgan")]
    if args.cases:
        chosen = args.cases.split(",")
        cases = [c for c in cases if f"{c[0]}/{c[1]}" in chosen]
    if args.quick:
        steps, long_steps, size, batch_sizes = 3, 20, 2048, [64]
        args.repeats = 1
        cases = cases[:1]
    common = [
        f"device={device}",
        "log.progress=false",
        "metrics.enabled=false",
        f"dataset.size={size}",
    ]
    torch.set_num_threads(torch.get_num_threads())
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
    print(
        f"# gan_exp benchmark: torch {torch.__version__}, device {device} ({name}), "
        f"{os.cpu_count()} CPU cores, {torch.get_num_threads()} threads, batch 64; naive "
        f"DataLoader with {args.naive_workers} workers\n"
    )
    dataset = build(config(common).dataset)
    try:
        main_table(cases, common, steps, args.repeats, args.naive_workers, device)
        if args.main_only:
            return 0
        batch_size_table(batch_sizes, common, steps, args.naive_workers)
    finally:
        WORKERS.close()
    memory_table(common, long_steps, dataset, device)
    logging_table(common, steps, size, args.quick, dataset, device)
    return 0


def main_table(
    cases: list, common: list[str], steps: int, repeats: int, naive_workers: int,
    device: torch.device,
) -> None:
    """The first table: steps per second of every case, naive vs bare vs project loop."""
    rows = []
    for variant, model, extra in cases:
        overrides = [*common, f"loss={variant}", f"model={model}", *extra]
        cfg = config(overrides)
        # the conv models run 10-20x slower on a CPU: fewer steps, about the same seconds
        case_steps = steps if model == "mlp" or device.type == "cuda" else max(steps // 5, 3)
        got, runs = compare(overrides, case_steps, repeats, naive_workers=naive_workers)
        paired = [p / n for p, n in zip(runs["project"], runs["naive"], strict=True)]
        (naive_sps, naive_mb), (bare_sps, _), (proj_sps, proj_mb) = (
            got["naive"],
            got["bare"],
            got["project"],
        )
        n = cfg.train.batch_size * cfg.train.n_critic
        rows.append(
            [
                variant,
                model,
                str(cfg.train.n_critic),
                str(case_steps),
                f"{naive_sps:.1f}",
                f"{bare_sps:.1f}",
                f"{proj_sps:.1f}",
                f"{proj_sps * n:.0f}",
                f"{naive_mb:.0f}",
                f"{proj_mb:.0f}",
                f"{proj_sps / naive_sps:.2f}x",
                f"{min(paired):.2f}-{max(paired):.2f}x",
                f"{100 * (1 - proj_sps / bare_sps):+.1f}%",
            ]
        )
        print(f"  measured {variant}/{model}", file=sys.stderr, flush=True)
    print(
        f"## Generator steps per second, best of {repeats} interleaved runs "
        "(paired range: lowest and highest project/naive within one round of naive, bare, "
        "project)\n"
    )
    print(
        table(
            [
                "variant",
                "model",
                "n_critic",
                "steps",
                "naive",
                "bare",
                "project",
                "samples/s",
                "naive MB",
                "project MB",
                "project/naive",
                "paired range",
                "cost vs bare",
            ],
            rows,
        )
    )


def batch_size_table(batch_sizes: list[int], common: list[str], steps: int,
                     naive_workers: int) -> None:
    """WGAN-GP MLP throughput against batch size."""
    print("\n## WGAN-GP MLP throughput against batch size (project loop)\n")
    rows = []
    for bs in batch_sizes:
        overrides = [*common, "loss=wgan_gp", f"train.batch_size={bs}"]
        cfg = config(overrides)
        got, _ = compare(
            overrides, max(steps * 64 // bs, 5), 2, ("naive", "project"), naive_workers
        )
        (naive, _), (sps, mb) = got["naive"], got["project"]
        rows.append(
            [
                str(bs),
                f"{sps:.1f}",
                f"{sps * bs * cfg.train.n_critic:.0f}",
                f"{naive * bs * cfg.train.n_critic:.0f}",
                f"{mb:.0f}",
            ]
        )
    print(table(["batch", "G steps/s", "samples/s", "naive samples/s", "peak MB"], rows))


def memory_table(common: list[str], long_steps: int, dataset: GANDataset,
                 device: torch.device) -> None:
    """Memory over a long run of the full loop (scalars, grids, checkpoints), sampled between
    eight stretches of `trainer.run`, each continuing where the previous stopped."""
    print(f"\n## Memory over a long run (WGAN-GP MLP, {long_steps} steps, project loop)\n")
    cfg = config([*common, "loss=wgan_gp", f"train.steps={long_steps}"])
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(cfg, dataset, device, Path(tmp))
        logger = RunLogger(Path(tmp))
        marks = []
        every = max(long_steps // 8, 1)
        while trainer.step < long_steps:
            trainer.cfg.train.steps = min(trainer.step + every, long_steps)
            trainer.run(logger)
            alloc = (
                torch.cuda.memory_allocated(device) / 2**20 if device.type == "cuda" else rss_mb()
            )
            marks.append((trainer.step, alloc))
        logger.close()
    what = "allocated MB" if device.type == "cuda" else "RSS MB"
    print(table(["step", what], [[str(s), f"{m:.1f}"] for s, m in marks]))
    if len(marks) >= 2:
        growth = marks[-1][1] - marks[len(marks) // 2][1]
        print(f"\nsecond-half growth: {growth:+.1f} MB")


def logging_table(common: list[str], steps: int, size: int, quick: bool,
                  dataset: GANDataset, device: torch.device) -> None:
    """What logging, sample grids, checkpoints and evaluation cost at the default intervals."""
    print("\n## Cost of logging and evaluation at the default intervals (the default run)\n")
    defaults = config([])
    cfg_log = config(common)
    t_step, t_scalars, t_grid, t_checkpoint = logging_costs(cfg_log, dataset, device, steps)
    log_pct = 100 * (
        t_scalars / (defaults.log.every * t_step) + t_grid / (defaults.log.sample_every * t_step)
    )
    eval_cfg = config(
        [
            f"device={device}",
            f"dataset.size={size}",
            *(
                [
                    "metrics.n_samples=200",
                    "metrics.n_real=200",
                    "metrics.classifier.epochs=1",
                    "metrics.classifier.max_images=2000",
                ]
                if quick
                else []
            ),
        ]
    )
    evaluator = Evaluator(eval_cfg, dataset, device)  # trains or loads the cached classifier
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(eval_cfg, dataset, device, Path(tmp))
        start = time.perf_counter()
        evaluator(trainer.G, trainer.latent_dim)
        t_eval = time.perf_counter() - start
    t_end = t_grid + t_checkpoint  # what every run writes once, at its end
    steps_per_sec = 1 / t_step
    evals = max(defaults.train.steps // defaults.metrics.every, 1)
    train_time = defaults.train.steps / steps_per_sec
    print(
        table(
            ["what", "default interval", "cost"],
            [
                [
                    "scalars + sample grid",
                    f"every {defaults.log.every} / {defaults.log.sample_every} steps",
                    f"{1e3 * t_scalars:.1f} ms / {1e3 * t_grid:.1f} ms each = {log_pct:.2f}% "
                    f"of a {1e3 * t_step:.1f} ms step",
                ],
                [
                    "final sample grid + checkpoint",
                    "once per run",
                    f"{t_end:.2f} s = {100 * t_end / train_time:.2f}% of the default run",
                ],
                [
                    "one evaluation",
                    f"every {defaults.metrics.every} steps",
                    f"{t_eval:.2f} s = {100 * evals * t_eval / train_time:.1f}% of the default "
                    f"{defaults.train.steps}-step run ({evals} evaluations)",
                ],
            ],
        )
    )


if __name__ == "__main__":
    sys.exit(main())
