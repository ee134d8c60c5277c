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
