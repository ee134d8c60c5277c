"""What a run knows about the sweep it belongs to: its job number, how many jobs run beside it
on this machine, and what that means for its threads and its GPU.

Hydra's joblib launcher runs `n_jobs` jobs at once in reused worker processes; without a limit
each job's torch would use every core and the jobs would fight over them. With submitit
(`hydra/launcher=slurm` or `local`) each job has its own allocation, which
`os.sched_getaffinity` already reflects.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobSlot:
    """This process's place in a sweep; a single run is job 0 of 1."""

    num: int = 0
    parallel: int = 1  # jobs running at the same time on this machine
    launcher: str = "basic"


def current_slot() -> JobSlot:
    """From Hydra's config when running under Hydra, else a single run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return JobSlot()
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return JobSlot()
    target = str(hc.launcher.get("_target_", ""))
    num = int(hc.job.get("num", 0) or 0)
    if "joblib" in target.lower():
        n_jobs = int(hc.launcher.get("n_jobs", -1) or -1)
        cores = available_cores()
        parallel = cores if n_jobs < 0 else n_jobs  # joblib: -1 = all cores
        return JobSlot(num, max(1, parallel), "joblib")
    kind = "submitit" if "submitit" in target.lower() else "basic"
    return JobSlot(num, 1, kind)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def torch_threads(spec: int | str, slot: JobSlot) -> int | None:
    """`threads`: auto = this machine's cores shared among the jobs running at once (None: a
    lone run keeps torch's own default); an integer is used as given."""
    if spec == "auto":
        if slot.parallel <= 1:
            return None
        return max(1, available_cores() // slot.parallel)
    return int(spec)


def apply_threads(spec: int | str, slot: JobSlot) -> None:
    n = torch_threads(spec, slot)
    if n is not None and n != torch.get_num_threads():
        torch.set_num_threads(n)  # a reused joblib worker sets it again for each job
    if n is not None:
        log.info("torch threads: %d (threads=%s, %d jobs at once)", n, spec, slot.parallel)


def spread_device(spec: str, slot: JobSlot) -> str:
    """`device=auto` in a parallel sweep on a machine with several GPUs: job k gets GPU
    k mod count, instead of every job on GPU 0. SLURM jobs see only their own GPUs."""
    if spec != "auto" or not torch.cuda.is_available():
        return spec
    count = torch.cuda.device_count()
    if count <= 1 or slot.parallel <= 1:
        return spec
    return f"cuda:{slot.num % count}"
