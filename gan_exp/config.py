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


# Groups of plain settings, split out of conf/train.yaml by topic (one `default` option each, as
# lightning-hydra-template's paths/): their keys are settings like train.yaml's own.
SETTING_GROUPS = ("paths", "metrics")


@cache
def primary_settings() -> DictConfig:
    """`conf/train.yaml` without its defaults list and Hydra settings, with the setting groups'
    defaults under their names: every key the primary config defines, to name unknown keys."""
    raw = OmegaConf.load(CONF_DIR / f"{PRIMARY}.yaml")
    assert isinstance(raw, DictConfig)
    settings = OmegaConf.masked_copy(raw, [k for k in raw if k not in ("defaults", "hydra")])
    for group in SETTING_GROUPS:
        settings[group] = OmegaConf.load(CONF_DIR / group / "default.yaml")
    return settings


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
    path = option_file("loss_dataset", name)
    if path is not None and OmegaConf.select(OmegaConf.load(path), key) is not None:
        return f"loss_dataset={name}"
    return None


def option_file(group: str, name: str, folders: Sequence[Path] = (CONF_DIR,)) -> Path | None:
    """The YAML file of option `name` of `group` in the first of `folders` that has it."""
    return next((f / group / f"{name}.yaml" for f in folders
                 if (f / group / f"{name}.yaml").is_file()), None)


def _close(word: str, candidates: Sequence[str], n: int = 2) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(candidates), n=n, cutoff=0.6)
    return f"; did you mean {' or '.join(close)}?" if close else ""


def group_keys(group: str) -> set[str]:
    """Every key any shipped option of `group` sets (dotted below the group)."""
    keys: set[str] = set()
    for path in (CONF_DIR / group).glob("*.yaml"):
        node = OmegaConf.load(path)
        if isinstance(node, DictConfig):
            flat = OmegaConf.to_container(node, resolve=False)
            stack = [("", flat)]
            while stack:
                prefix, d = stack.pop()
                for k, v in d.items() if isinstance(d, dict) else ():
                    if k == "defaults":
                        continue
                    keys.add(f"{prefix}{k}")
                    if isinstance(v, dict):
                        stack.append((f"{prefix}{k}.", v))
    return keys


def command_line_typo(argv: Sequence[str]) -> str | None:
    """The first misspelt key or group option of a command line, with the nearest real one:
    checked before Hydra, whose advice for `train.step=10` (append it with `+`) is wrong for
    a typo. Only the shipped configs are known, so a command that adds a config search path
    is left to Hydra."""
    if any(a.startswith(("hydra.searchpath", "--config-dir", "-cd", "--config-path", "-cp"))
           for a in argv):
        return None
    groups = sorted(p.name for p in CONF_DIR.iterdir()
                    if p.is_dir() and not p.name.startswith(("_", ".")) and p.name != "base")
    settings = primary_settings()
    for arg in argv:
        if arg.startswith(("-", "+", "~")) or "=" not in arg:
            continue
        key, value = arg.split("=", 1)
        if key.startswith("hydra.") or key == "hydra" or "/" in key or any(
                part.isdigit() for part in key.split(".")):
            continue
        if key in groups:
            if "(" in value or value in ("null", ""):
                continue
            options = sorted(p.stem for p in (CONF_DIR / key).glob("*.yaml"))
            for choice in value.split(","):
                if choice not in options:
                    return (f"{key}={choice}: no such {key} option{_close(choice, options, 1)}"
                            f" (options: {', '.join(options)})")
            continue
        head, _, rest = key.partition(".")
        if head in groups:
            known = group_keys(head)
            if rest and rest not in known:
                return (f"{key} is not a key of any {head} option"
                        f"{_close(rest, sorted(known)).replace('mean ', f'mean {head}.')}"
                        .replace(" or ", f" or {head}."))
            continue
        if OmegaConf.select(settings, key, default="__missing__") == "__missing__":
            leaves = _leaf_keys(settings)
            return f"{key} is not a gan_exp setting{_close(key, leaves)}"
    return None


def _leaf_keys(node: DictConfig, prefix: str = "") -> list[str]:
    out = []
    for k in node:
        child = node._get_node(k)
        if isinstance(child, DictConfig):
            out += _leaf_keys(child, f"{prefix}{k}.")
        else:
            out.append(f"{prefix}{k}")
    return out


HELP_GROUPS = ("loss", "penalty", "model", "optimizer", "dataset", "experiment", "debug",
               "hparams_search", "study")


def _description(path: Path, width: int = 76) -> str:
    """The first comment line of an option's YAML, cut at a word to fit one terminal line."""
    for line in path.read_text().splitlines():
        text = line.lstrip("# ").strip() if line.startswith("#") else ""
        if text and not text.startswith("@package"):
            return text if len(text) <= width else text[: width - 3].rsplit(" ", 1)[0] + " ..."
    return ""


def groups_help() -> str:
    """Every group's options with one line each, for the --help text (conf/hydra/help)."""
    raw = OmegaConf.to_container(OmegaConf.load(CONF_DIR / f"{PRIMARY}.yaml"), resolve=False)
    defaults = {}
    for entry in raw.get("defaults", []):  # type: ignore[union-attr]
        if isinstance(entry, dict):
            defaults.update({str(k): str(v) for k, v in entry.items()})
    lines = []
    for group in HELP_GROUPS:
        lines.append(f"  {group}:")
        for path in sorted((CONF_DIR / group).glob("*.yaml")):
            mark = "*" if defaults.get(group) == path.stem else " "
            lines.append(f"   {mark}{path.stem:<22} {_description(path, 100 - 27)}")
    return "\n".join(lines)


OmegaConf.register_new_resolver("gan_exp_groups_help", groups_help, replace=True)
