"""Every numeric config value checked before training, with the key, the value and the rule.

One table for all groups: a rule applies wherever its key exists in the composed config (e.g.
`penalty.lam` only when the penalty has one). Choices among names (`model.d_norm`,
`penalty.perturbation`, ...) are checked by the builders that know them, and unknown group
options by Hydra, which lists the available ones.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import math
from collections.abc import Callable, Iterable
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from gan_exp.errors import AUTO_BOOL, ConfigError, check_choice
from gan_exp.keys import PARTS

log = logging.getLogger("gan_exp")

_MISSING = object()


def _int(low: int) -> tuple[Callable[[Any], bool], str]:
    return (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low,
        f"an integer >= {low}",
    )


def _num(low: float, strict: bool) -> tuple[Callable[[Any], bool], str]:
    def ok(v: Any) -> bool:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return False
        return v > low if strict else v >= low

    return ok, f"a number {'>' if strict else '>='} {low:g}"


def _optional(rule: tuple[Callable[[Any], bool], str]) -> tuple[Callable[[Any], bool], str]:
    check, text = rule
    return (lambda v: v is None or check(v)), f"null or {text}"


_BOOL = (lambda v: isinstance(v, bool), "true or false")
_OPEN_UNIT = (lambda v: _num(0, True)[0](v) and v < 1, "a number in (0, 1)")


def _betas(v: Any) -> bool:
    return (
        isinstance(v, (list, tuple, ListConfig))
        and len(v) == 2
        and all(_num(0, False)[0](b) and b < 1 for b in v)
    )


def _widths(v: Any) -> bool:
    items = v if isinstance(v, (list, tuple, ListConfig)) else [v]
    return len(items) > 0 and all(_int(1)[0](w) for w in items)


# torch seeds are 64-bit; the loop also uses seed + 1
MAX_SEED = 2**63 - 2
_SEED = (
    lambda v: _int(0)[0](v) and v <= MAX_SEED,
    f"an integer in [0, {MAX_SEED}] (2^63 - 2)",
)

RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": _SEED,
    "dataset.seed": _SEED,
    "metrics.seed": _SEED,
    "metrics.classifier.seed": _SEED,
    "threads": (lambda v: v == "auto" or _int(1)[0](v), "auto or an integer >= 1"),
    "train.steps": _int(1),
    "train.n_critic": _int(1),
    # BatchNorm generators, the pulling-away term and per-batch statistics need pairs
    "train.batch_size": _int(2),
    "train.compile": _BOOL,
    "train.malloc_tuning": _BOOL,
    "train.ema.decay": _optional((lambda v: _num(0, False)[0](v) and v < 1,
                                  "a number in [0, 1), e.g. 0.999")),
    "train.ema.start": _int(0),
    "log.every": _int(1),
    "log.sample_every": _int(1),
    "log.n_samples": _optional(_int(1)),
    "checkpoint.every": _int(1),
    "checkpoint.keep": _int(1),
    "checkpoint.keep_best": _BOOL,
    "checkpoint.discard_newer": _BOOL,
    "divergence.max_critic": _optional(_num(0, True)),
    "optimizer.lr_g": _num(0, True),
    "optimizer.lr_d": _num(0, True),
    "optimizer.betas": (_betas, "two numbers in [0, 1), e.g. [0.5, 0.999]"),
    "optimizer.weight_decay": _num(0, False),
    "optimizer.momentum": _num(0, False),
    "optimizer.alpha": _OPEN_UNIT,
    "penalty.lam": _num(0, False),
    "penalty.k": _num(0, False),
    "penalty.c": _num(0, True),
    "penalty.gamma": _num(0, False),
    "loss.lam": _num(0, False),
    "loss.scale": _num(0, False),
    "loss.margin": _optional(_num(0, True)),
    "loss.lam_pt": _num(0, False),
    "loss.real_weight": _num(0, False),
    "model.latent_dim": _int(1),
    "model.g_hidden": (_widths, "a list of integers >= 1"),
    "model.d_hidden": (_widths, "an integer >= 1 or a list of them"),
    "model.g_width": _int(1),
    "model.d_width": _int(1),
    "model.embed_dim": _int(1),
    "model.g_bn_eps": _num(0, True),
    "model.g_bn_momentum": (lambda v: _num(0, False)[0](v) and v <= 1, "a number in [0, 1]"),
    "metrics.every": _int(1),
    "metrics.n_samples": _int(2),
    "metrics.n_real": _int(2),
    "metrics.toy_samples": _int(1),
    "metrics.kid_subsets": _int(1),
    "metrics.kid_subset_size": _int(2),
    "metrics.pr_k": _int(1),
    "metrics.dc_k": _int(1),
    "metrics.classifier.epochs": _int(1),
    "metrics.classifier.batch_size": _int(1),
    "metrics.classifier.lr": _num(0, True),
    "metrics.classifier.holdout": _OPEN_UNIT,
    "metrics.classifier.threads": _int(1),
    "dataset.size": _optional(_int(1)),
    "dataset.image_size": _int(4),
    "dataset.num_workers": _int(0),
    "dataset.max_memory_mb": _num(0, False),
    "dataset.std": _num(0, True),
    "dataset.n_modes": _int(1),
}


def check_value(key: str, value: Any) -> None:
    """One rule of `RULES` applied to one value: what the builders call when used without a
    composed config (scripts, notebooks), so a rule and its message live only here."""
    check, text = RULES[key]
    if not check(value):
        shown = OmegaConf.to_container(value) if isinstance(value, ListConfig) else value
        raise ConfigError(f"{key}={shown!r} must be {text}")


AMP = ("none", "bf16")
IMPLS = ("auto", "fused", "foreach", "for_loop")
UPDATES = ("alternating", "simultaneous")
# Settings with a fixed set of values, named here, before the data, the models or the metrics'
# classifier are built (a minute on a fresh machine); the code acting on each checks it again.
CHOICES: dict[str, tuple[Any, ...]] = {
    "train.updates": UPDATES,
    "train.batch_critic": AUTO_BOOL,
    "train.batch_fakes": AUTO_BOOL,
    "train.amp": AMP,
    "train.channels_last": AUTO_BOOL,
    "optimizer.impl": IMPLS,
    "dataset.in_memory": AUTO_BOOL,
}


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError for a key nothing uses, or the first value that breaks its rule
    (after leaving out a specialisation's settings for a group option it was not written for)."""
    drop_unfit_specialisation(cfg)
    check_known_keys(cfg)
    for key, (check, text) in RULES.items():
        value = OmegaConf.select(cfg, key, default=_MISSING)
        if value is _MISSING:
            continue
        shown = OmegaConf.to_container(value) if isinstance(value, ListConfig) else value
        if not check(value):
            raise ConfigError(f"{key}={shown!r} must be {text}")
    for key, allowed in CHOICES.items():
        value = OmegaConf.select(cfg, key, default=_MISSING)
        if value is not _MISSING:
            check_choice(key, value, allowed)


# Group nodes: `name`, `_target_` and the target's keyword arguments.
GROUP_NODES = PARTS
_NODE_KEYS = ("name", "_target_")


def _nearest(key: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def target_parameters(group: str, target: str) -> tuple[set[str], bool]:
    """The keyword arguments `target` accepts, and whether it takes **kwargs."""
    from hydra.utils import get_object

    try:
        fn = get_object(target)
    except Exception as err:
        raise ConfigError(
            f"{group}._target_={target} cannot be imported ({type(err).__name__}: {err}); is "
            "its module on the Python path?"
        ) from None
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return set(), True
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names - {"self"}, any(p.kind == p.VAR_KEYWORD for p in params)


def drop_unfit_specialisation(cfg: DictConfig) -> list[str]:
    """Leave out what the loss's specialising config (conf/loss_dataset/) sets for a group
    whose option the command line changed and which does not take it, e.g. EBGAN's widths on
    the digits with `loss=ebgan model=mlp`: the command line wins over the specialisation."""
    from gan_exp.config import specialisation_setting

    dropped = []
    for group in GROUP_NODES:
        node = cfg.get(group)
        if not isinstance(node, DictConfig) or "_target_" not in node:
            continue
        accepted, any_kwargs = target_parameters(group, str(node._target_))
        unfit = [k for k in node if not any_kwargs and k not in _NODE_KEYS and k not in accepted
                 and specialisation_setting(cfg, f"{group}.{k}")]
        with open_dict(node):
            for key in unfit:
                del node[key]
        dropped += [f"{group}.{k}" for k in unfit]
    if dropped:
        log.info("left out %s: set by the specialisation for another %s option",
                 ", ".join(dropped), "/".join(sorted({d.split(".")[0] for d in dropped})))
    return dropped


def check_known_keys(cfg: DictConfig) -> None:
    """Refuse keys that no part of the run reads (a `+train.step=10` typo would otherwise train
    silently with the default), naming the nearest real key."""
    from gan_exp.config import group_options_with, primary_settings

    for group in GROUP_NODES:
        node = cfg.get(group)
        if not isinstance(node, DictConfig) or "_target_" not in node:
            continue
        accepted, any_kwargs = target_parameters(group, str(node._target_))
        if any_kwargs:
            continue
        for key in node:
            if key in _NODE_KEYS or key in accepted:
                continue
            takes = ", ".join(sorted(accepted)) or "nothing"
            others = [o for o in group_options_with(group, str(key)) if o != node.get("name")]
            hint = f"; {group}={'|'.join(others)} has it" if others else _nearest(key, accepted)
            raise ConfigError(
                f"{group}.{key} is not an option of {group}={node.get('name')} "
                f"({node._target_} takes: {takes}){hint}"
            )
    _check_section(cfg, primary_settings(), "")


def _check_section(node: DictConfig, known: DictConfig, prefix: str) -> None:
    for key in node:
        if prefix == "" and key in GROUP_NODES:
            continue
        path = f"{prefix}{key}"
        if key not in known:
            known_paths = [f"{prefix}{k}" for k in known]
            hint = _nearest(path, known_paths)
            raise ConfigError(f"{path} is not a gan_exp setting; nothing would read it{hint}")
        child, ref = node._get_node(key), known._get_node(key)
        if isinstance(child, DictConfig) and isinstance(ref, DictConfig):
            _check_section(child, ref, f"{path}.")
