"""Where the shipped configs live, and composing them outside the command line.

The YAML files are kept in the top-level `conf/` folder of the source tree (one folder per
config group, as in lightning-hydra-template) and ship inside the installed package as
`gan_exp.conf` (`pyproject.toml` maps the package onto that folder), so a wheel or a
non-editable install finds them from any working directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

import gan_exp.conf

CONF_DIR = Path(gan_exp.conf.__file__).resolve().parent
PRIMARY = "train"
# The 2-D toy datasets: where a preset picks another setting than on images
# (`${gan_exp_on_toys:${dataset},TOY_VALUE,IMAGE_VALUE}` in conf/loss/loss_sensitive.yaml).
TOY_DATASETS = ("ring", "grid")
# Optional groups chosen by interpolation in conf/train.yaml's defaults (Hydra's specialising
# configs): what a loss needs on one dataset.
SPECIALISING = ("loss_dataset",)


def on_toys(dataset: str, toy_value: str, image_value: str) -> str:
    """`toy_value` for a 2-D toy dataset choice, else `image_value` (a defaults-list resolver:
    Hydra's specialising configs cannot change a group choice, a loss preset's override can)."""
    return toy_value if dataset in TOY_DATASETS else image_value


OmegaConf.register_new_resolver("gan_exp_on_toys", on_toys, replace=True)


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """The `train` config composed as the command line would, without running it: for tests,
    scripts and notebooks."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=PRIMARY, overrides=list(overrides))


@cache
def primary_settings() -> DictConfig:
    """`conf/train.yaml` without its defaults list and Hydra settings: every key the primary
    config defines, used to name unknown keys."""
    raw = OmegaConf.load(CONF_DIR / f"{PRIMARY}.yaml")
    assert isinstance(raw, DictConfig)
    return OmegaConf.masked_copy(raw, [k for k in raw if k not in ("defaults", "hydra")])


def group_options_with(group: str, key: str) -> list[str]:
    """The shipped options of `group` whose YAML has `key` (for 'use one that has it' hints)."""
    found = []
    for path in sorted((CONF_DIR / group).glob("*.yaml")):
        node = OmegaConf.load(path)
        if isinstance(node, DictConfig) and key in node:
            found.append(path.stem)
    return found


def specialisation_setting(cfg: DictConfig, key: str) -> str | None:
    """`loss_dataset=NAME` when the shipped specialising config for this run's loss and dataset
    sets `key` (so an error about that key can say where it came from), else None."""
    loss, data = cfg.get("loss"), cfg.get("dataset")
    if not isinstance(loss, DictConfig) or not isinstance(data, DictConfig):
        return None
    name = f"{loss.get('name')}_{data.get('name')}"
    path = CONF_DIR / "loss_dataset" / f"{name}.yaml"
    if path.is_file() and OmegaConf.select(OmegaConf.load(path), key) is not None:
        return f"loss_dataset={name}"
    return None
