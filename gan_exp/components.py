"""Turn a composed config into the objects the loop runs, and refuse combinations that can't work.

Every group node carries a `name` (for run names and messages) next to its `_target_`; the
rest of the node is the target's keyword arguments, so anything in a config is sweepable.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.optim import Optimizer

from gan_exp import memory
from gan_exp.augment import NoAugment
from gan_exp.data.base import DataSpec, GANDataset
from gan_exp.errors import ConfigError
from gan_exp.losses import GANLoss
from gan_exp.models.base import Critic, CriticOutput, GANModels, has_batchnorm
from gan_exp.penalties import Penalty, WeightClip
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
    augment: Callable[[torch.Tensor], torch.Tensor] = NoAugment()


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
    spectral = any(torch.nn.utils.parametrize.is_parametrized(m) for m in models.critic.modules())
    if spectral and isinstance(penalty, WeightClip):
        raise ConfigError(
            f"penalty=clip with a spectrally normalised critic (model={cfg.model.name}, "
            f"model.d_norm={cfg.model.get('d_norm')}): spectral norm already bounds the critic's "
            "Lipschitz constant, and clipping its raw weights would fight it. Use "
            "model.d_norm=none with penalty=clip, or another penalty"
        )


def model_inputs(cfg: DictConfig, loss: GANLoss, spec: DataSpec) -> dict[str, Any]:
    """What the model's builder gets besides its config: the data's spec and, for a model whose
    `critic` is `auto` (model=toy_mlp), the critic kind the loss needs (EBGAN's energy is an
    autoencoder's reconstruction error; every other loss gets the maxout critic)."""
    inputs: dict[str, Any] = {"data": spec}
    if cfg.model.get("critic") == "auto":
        inputs["critic"] = "autoencoder" if loss.requires_embedding else "maxout"
    return inputs


def build_components(
    cfg: DictConfig, device: torch.device, dataset: GANDataset | None = None
) -> Components:
    """Models on `device` with their optimisers; `dataset` may be passed in to reuse one."""
    validate(cfg)
    if dataset is None:
        dataset = build(cfg.dataset)
    loss: GANLoss = build(cfg.loss)
    model_kwargs = model_inputs(cfg, loss, dataset.spec)
    preview = int(cfg.log.get("n_samples") or dataset.preview_size)
    memory.check(cfg, lambda: build(cfg.model, **model_kwargs), tuple(dataset.spec.shape),
                 preview, device)
    models: GANModels = build(cfg.model, **model_kwargs)
    models.generator.to(device)
    models.critic.to(device)
    penalty: Penalty = build(cfg.penalty)
    # a checkpoint from before the augment group has none: it trained without
    augment = build(cfg.augment) if isinstance(cfg.get("augment"), DictConfig) else NoAugment()
    if not isinstance(augment, NoAugment) and len(dataset.spec.shape) != 3:
        raise ConfigError(
            f"augment={cfg.augment.name} transforms images; dataset={cfg.dataset.name} gives "
            f"samples of shape {tuple(dataset.spec.shape)}. Use augment=none"
        )
    check_types(cfg, dataset, models, loss, penalty)
    check_compatible(cfg, models, loss, penalty)
    check_contract(cfg, dataset, models, loss, penalty, device)
    opt_g, opt_d = build(cfg.optimizer, generator=models.generator, critic=models.critic)
    if not (isinstance(opt_g, Optimizer) and isinstance(opt_d, Optimizer)):
        raise ConfigError(
            f"optimizer={cfg.optimizer.name} ({cfg.optimizer._target_}) must return a pair "
            f"(generator optimizer, critic optimizer) of torch.optim.Optimizer; got "
            f"{type(opt_g).__name__}, {type(opt_d).__name__}"
        )
    return Components(dataset, models, loss, penalty, opt_g, opt_d, augment)


def _made(group: str, cfg: DictConfig) -> str:
    return f"{group}={cfg[group].name} ({cfg[group]._target_})"


def check_types(
    cfg: DictConfig, dataset: Any, models: Any, loss: Any, penalty: Any
) -> None:
    """What each `_target_` returned is the kind of object the loop talks to."""
    wanted = [
        ("dataset", dataset, GANDataset, "a gan_exp.data.base.GANDataset"),
        ("model", models, GANModels, "a gan_exp.models.base.GANModels"),
        ("loss", loss, GANLoss, "an instance of a gan_exp.losses.GANLoss subclass"),
        ("penalty", penalty, Penalty, "an instance of a gan_exp.penalties.Penalty subclass"),
    ]
    for group, obj, kind, text in wanted:
        if not isinstance(obj, kind):
            raise ConfigError(f"{_made(group, cfg)} returned {type(obj).__name__}; expected {text}")
    if not isinstance(models.critic, Critic):
        raise ConfigError(
            f"{_made('model', cfg)}: its critic is a {type(models.critic).__name__}; expected a "
            "gan_exp.models.base.Critic whose forward returns a CriticOutput"
        )


def check_contract(
    cfg: DictConfig,
    dataset: GANDataset,
    models: GANModels,
    loss: GANLoss,
    penalty: Penalty,
    device: torch.device,
) -> None:
    """One dry pass on 4 random samples: shapes and scalars as the loop needs them, so that a
    user's class that breaks the contract stops here, named, instead of deep in a step.

    Models run in eval mode (BatchNorm statistics untouched) and nothing is stepped.
    """
    n, shape = 4, tuple(dataset.spec.shape)
    G, D = models.generator, models.critic
    modes = G.training, D.training
    G.eval()
    D.eval()
    try:
        z = torch.randn(n, models.latent_dim, device=device)
        with torch.no_grad():
            x_fake = G(z)
        if not isinstance(x_fake, torch.Tensor) or tuple(x_fake.shape) != (n, *shape):
            got = tuple(x_fake.shape) if isinstance(x_fake, torch.Tensor) else type(x_fake)
            raise ConfigError(
                f"{_made('model', cfg)}: the generator maps noise (N, {models.latent_dim}) to "
                f"{got} for N={n}; expected (N, {', '.join(map(str, shape))}) (the data's shape)"
            )
        x_real = torch.rand(n, *shape, device=device) * 2 - 1
        outs = []
        for x in (x_real, x_fake):
            out = D(x)
            if not isinstance(out, CriticOutput) or tuple(out.score.shape) != (n,):
                got = tuple(out.score.shape) if isinstance(out, CriticOutput) else type(out)
                raise ConfigError(
                    f"{_made('model', cfg)}: the critic ({type(D).__name__}) returned {got} for "
                    f"N={n}; expected a CriticOutput whose score has shape (N,)"
                )
            outs.append(out)
        real, fake = outs
        for what, value in (
            ("d_loss", loss.d_loss(real, fake, x_real, x_fake)),
            ("g_loss", loss.g_loss(fake, x_fake)),
        ):
            if not isinstance(value, torch.Tensor) or value.dim() != 0:
                got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value)
                raise ConfigError(
                    f"{_made('loss', cfg)}: {type(loss).__name__}.{what} returned {got}; "
                    "expected a scalar tensor (shape ())"
                )
        term = penalty(D, x_real, x_fake)
        if term is not None and (not isinstance(term, torch.Tensor) or term.dim() != 0):
            got = tuple(term.shape) if isinstance(term, torch.Tensor) else type(term)
            raise ConfigError(
                f"{_made('penalty', cfg)}: {type(penalty).__name__} returned {got}; expected "
                "None or a scalar tensor (shape ())"
            )
    finally:
        G.train(modes[0])
        D.train(modes[1])
        for p in [*G.parameters(), *D.parameters()]:
            p.grad = None
