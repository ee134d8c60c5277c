"""Fault injection for tests/test_hostile.py, loaded by subprocesses that put this folder on
PYTHONPATH. GAN_EXP_FAULT=full_disk: every checkpoint save after the first fails the way
torch.save fails on a full disk (a RuntimeError chained to ENOSPC)."""

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
