"""What a run knows about the sweep it belongs to: its job number, how many jobs run beside it
on this machine, and what that means for its threads and its GPU.

Hydra's joblib launcher runs `n_jobs` jobs at once in reused worker processes; without a limit
each job's torch would use every core and the jobs would fight over them. With submitit
(`hydra/launcher=slurm` or `local`) each job has its own `cpus_per_task`; SLURM pins those
cores, the local executor does not, so the job's thread count is set from that value.
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
    cpus: int | None = None  # cores allocated to this job (submitit's cpus_per_task)


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
    if "submitit" in target.lower():
        # its own allocation: cpus_per_task cores (SLURM also pins them; the local executor
        # does not, so without this every local job would take all cores)
        cpus = int(hc.launcher.get("cpus_per_task", 0) or 0)
        return JobSlot(num, 1, "submitit", cpus or None)
    return JobSlot(num, 1, "basic")


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def torch_threads(spec: int | str, slot: JobSlot) -> int | None:
    """`threads`: auto = a submitit job's cpus_per_task, or this machine's cores shared among
    the jobs running at once (None: a lone run keeps torch's own default); an integer is used
    as given."""
    if spec == "auto":
        if slot.cpus is not None:
            return slot.cpus
        if slot.parallel <= 1:
            return None
        return max(1, available_cores() // slot.parallel)
    return int(spec)


def apply_threads(spec: int | str, slot: JobSlot) -> None:
    n = torch_threads(spec, slot)
    if n is not None and n != torch.get_num_threads():
        torch.set_num_threads(n)  # a reused joblib worker sets it again for each job
    if n is not None and spec != "auto":
        log.info("torch threads: %d (threads=%s)", n, spec)
    elif n is not None:
        why = (f"{slot.cpus} cpus_per_task" if slot.cpus is not None
               else f"{slot.parallel} jobs at once")
        log.info("torch threads: %d (threads=auto, %s)", n, why)
    else:
        log.info("torch threads: %d (threads=auto: torch's default on %d cores; with other "
                 "work on the machine, threads=1 can be faster: docs/performance.md)",
                 torch.get_num_threads(), available_cores())


def spread_device(spec: str, slot: JobSlot) -> str:
    """`device=auto` in a parallel sweep on a machine with several GPUs: job k gets GPU
    k mod count, instead of every job on GPU 0. SLURM jobs see only their own GPUs."""
    if spec != "auto" or not torch.cuda.is_available():
        return spec
    count = torch.cuda.device_count()
    if count <= 1 or slot.parallel <= 1:
        return spec
    return f"cuda:{slot.num % count}"
