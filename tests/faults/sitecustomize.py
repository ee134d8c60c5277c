"""Fault injection for tests/test_hostile.py, loaded by subprocesses that put this folder on
PYTHONPATH. GAN_EXP_FAULT=full_disk: every checkpoint save after the first fails the way
torch.save fails on a full disk (a RuntimeError chained to ENOSPC). GAN_EXP_FAULT=oom_at_step_5:
the CPU allocator runs out of memory in the 5th step."""

import os

if os.environ.get("GAN_EXP_FAULT") == "full_disk":
    import errno

    import torch

    _real_save = torch.save
    _saved = {"checkpoints": 0}

    def _save(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and "generator" in obj:
            _saved["checkpoints"] += 1
            if _saved["checkpoints"] > 1:
                try:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                except OSError as err:
                    raise RuntimeError(
                        "[enforce fail at inline_container.cc:671] . unexpected pos 4416 vs 4310"
                    ) from err
        return _real_save(obj, f, *args, **kwargs)

    torch.save = _save

if os.environ.get("GAN_EXP_FAULT") == "oom_at_step_5":
    # the CPU allocator's failure, raised by the 5th generator step's forward
    import gan_exp.trainer

    _real_step = gan_exp.trainer.Trainer.train_step

    def _step(self):
        if self.step == 4:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: "
                               "can't allocate memory: you tried to allocate 8589934592 bytes.")
        return _real_step(self)

    gan_exp.trainer.Trainer.train_step = _step
