"""Turn a composed config into the objects the loop runs, and refuse combinations that can't work.

Every group node carries a `name` (for run names and messages) next to its `_target_`; the
rest of the node is the target's keyword arguments, so anything in a config is sweepable.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.optim import Optimizer

from gan_exp.data.base import GANDataset
from gan_exp.errors import ConfigError
from gan_exp.losses import GANLoss
from gan_exp.models.base import GANModels, has_batchnorm
from gan_exp.penalties import Penalty
from gan_exp.validation import validate


def build(node: DictConfig, **kwargs: Any) -> Any:
    """Instantiate a group node, dropping its `name` label; `kwargs` are runtime objects."""
    params = OmegaConf.to_container(node, resolve=True)
    assert isinstance(params, dict)
    params.pop("name", None)
    return instantiate(params, _partial_=True)(**kwargs)


def resolve_device(spec: str) -> torch.device:
    """`auto` picks CUDA when present, else CPU; anything else must be a usable torch device."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as err:
        raise ConfigError(
            f"device={spec!r} is not a device; allowed: auto, cpu, cuda, cuda:N"
        ) from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={spec!r} but CUDA is not available here; use device=cpu or auto")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


@dataclass
class Components:
    dataset: GANDataset
    models: GANModels
    loss: GANLoss
    penalty: Penalty
    opt_g: Optimizer
    opt_d: Optimizer


def check_compatible(cfg: DictConfig, models: GANModels, loss: GANLoss, penalty: Penalty) -> None:
    """Stop combinations that would train but mean nothing, before the first step."""
    if loss.requires_embedding and not models.critic.produces_embedding:
        raise ConfigError(
            f"loss={cfg.loss.name} needs an autoencoder critic that returns an embedding "
            f"(model=ebgan); model={cfg.model.name} has a plain score critic."
        )
    if penalty.per_sample_gradients and has_batchnorm(models.critic):
        raise ConfigError(
            f"penalty={cfg.penalty.name} uses per-sample input gradients, which a BatchNorm "
            f"critic couples across the batch (model={cfg.model.name}, "
            f"model.d_norm={cfg.model.get('d_norm', 'batch')}). Use model.d_norm=none, layer or "
            "spectral, or penalty=none or clip."
        )


def build_components(
    cfg: DictConfig, device: torch.device, dataset: GANDataset | None = None
) -> Components:
    """Models on `device` with their optimisers; `dataset` may be passed in to reuse one."""
    validate(cfg)
    if dataset is None:
        dataset = build(cfg.dataset)
    loss: GANLoss = build(cfg.loss)
    model_kwargs: dict[str, Any] = {"data": dataset.spec}
    if cfg.model.get("critic") == "auto":  # model=toy_mlp: the critic kind the loss needs
        model_kwargs["critic"] = "autoencoder" if loss.requires_embedding else "maxout"
    models: GANModels = build(cfg.model, **model_kwargs)
    models.generator.to(device)
    models.critic.to(device)
    penalty: Penalty = build(cfg.penalty)
    check_compatible(cfg, models, loss, penalty)
    opt_g, opt_d = build(cfg.optimizer, generator=models.generator, critic=models.critic)
    return Components(dataset, models, loss, penalty, opt_g, opt_d)
