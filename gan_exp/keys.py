"""What identifies a run, in one place: the config groups that build its parts, the presets
applied on top of them, and the keys that only say how a run is carried out.

A resumed run keeps its parts and presets (gan_exp.checkpoint), the validator checks each
part's keys against what its `_target_` takes (gan_exp.validation), TensorBoard's HParams and
the sweep summary leave the how-keys out of a run's settings (gan_exp.tb, gan_exp.summary), and
Hydra's job folder names leave them out too (`exclude_keys` in conf/train.yaml; a test checks
that list against NOT_SETTINGS).
"""

from __future__ import annotations

# Groups whose node builds a part of the run: `name`, `_target_` and its keyword arguments.
PARTS = ("dataset", "model", "penalty", "optimizer", "loss", "augment")
# Presets: already applied to a run's stored config, so a resume may repeat them, not change them.
PRESETS = ("experiment", "debug", "study")
# Override keys (or prefixes) that never distinguish runs' results: logging, paths, the
# machine, resuming, the launcher and the sweep that started a run.
NOT_SETTINGS = ("hydra", "log.", "paths.", "checkpoint.", "device", "threads", "resume",
                "hparams_search", "study")
