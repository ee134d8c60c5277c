"""Every config option composes and instantiates; presets, specialisations and overrides do
what docs/variants.md and docs/configuration.md say."""

import json
from pathlib import Path

import pytest
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

from gan_exp.components import build, build_components, resolve_device
from gan_exp.errors import ConfigError
from tests.conftest import SMALL_EBGAN, compose_cfg, group_options
from tests.vision_files import write_celeba, write_cifar10, write_image_folder, write_mnist

ROOT = Path(__file__).resolve().parent.parent

CPU = resolve_device("cpu")
SMALL = ["dataset.size=64", "train.batch_size=16"]


def test_groups_have_the_promised_options():
    assert set(group_options("loss")) >= {
        "gan",
        "wgan",
        "wgan_gp",
        "dragan",
        "loss_sensitive",
        "ebgan",
        "least_squares",
        "hinge",
    }
    assert set(group_options("penalty")) >= {"none", "clip", "gp", "dragan", "real_grad"}
    assert set(group_options("optimizer")) >= {"adam", "rmsprop", "sgd"}
    assert set(group_options("model")) >= {"mlp", "dcgan", "ebgan"}
    assert set(group_options("dataset")) >= {
        "digits",
        "ring",
        "grid",
        "mnist",
        "fashion_mnist",
        "cifar10",
        "celeba",
        "image_folder",
    }


# Real datasets read tiny files written in their formats, never the network.
REAL_DATA = {
    "mnist": (write_mnist, ["dataset.download=false"]),
    "fashion_mnist": (lambda r: write_mnist(r, folder="FashionMNIST"), ["dataset.download=false"]),
    "cifar10": (write_cifar10, ["dataset.download=false", "dataset.verify_checksums=false"]),
    "celeba": (
        write_celeba,
        ["dataset.download=false", "dataset.verify_checksums=false", "dataset.split=all"],
    ),
    "image_folder": (lambda r: write_image_folder(r, None, n=20), ["dataset.num_workers=0"]),
}


RESNET_SIDE = {"resnet_wgan_gp": 32, "sngan_32": 32, "sngan_48": 48, "sngan_64": 64}


@pytest.mark.parametrize("group", ["loss", "penalty", "optimizer", "model", "dataset", "augment"])
def test_every_option_composes_and_instantiates(group, tmp_path):
    for option in group_options(group):
        overrides = [f"{group}={option}", *SMALL]
        if group == "dataset" and option in REAL_DATA:
            writer, extra = REAL_DATA[option]
            writer(tmp_path / option)
            overrides += [f"dataset.root={tmp_path / option}", *extra]
        cfg = compose_cfg(overrides)
        if cfg.model.name == "dcgan" and cfg.dataset.name in ("ring", "grid"):
            overrides.append("model=mlp")
        if cfg.model.name == "toy_mlp" and cfg.dataset.name not in ("ring", "grid"):
            overrides.append("dataset=ring")
        if cfg.model.name == "ebgan":
            overrides += SMALL_EBGAN
        if cfg.model.name == "ebgan" and cfg.penalty.name in ("gp", "dragan", "real_grad"):
            overrides.append("model.d_norm=layer")
        if cfg.loss.name == "ebgan" and cfg.model.name != "ebgan":
            overrides.append("model=ebgan")
        if cfg.model.name in RESNET_SIDE:  # image folders at the side each ResNet makes
            root = write_image_folder(tmp_path / "images", None, n=20)
            overrides += ["dataset=image_folder", f"dataset.root={root}",
                          f"dataset.image_size={RESNET_SIDE[cfg.model.name]}",
                          "dataset.num_workers=0", "model.g_width=16", "model.d_width=16"]
        parts = build_components(compose_cfg(overrides), CPU)
        assert parts.opt_g.param_groups[0]["lr"] > 0


@pytest.mark.parametrize(
    "loss,penalty,optimizer,n_critic,lr,betas",
    [
        ("gan", "none", "adam", 1, 2e-4, [0.5, 0.999]),
        ("wgan", "clip", "rmsprop", 5, 5e-5, None),
        ("wgan_gp", "gp", "adam_wgan_gp", 5, 1e-4, [0.0, 0.9]),
        ("dragan", "dragan", "adam_dragan", 1, 1e-4, [0.5, 0.9]),
        ("loss_sensitive", "real_grad", "adam_loss_sensitive", 1, 1e-4, [0.5, 0.999]),
        ("ebgan", "none", "adam", 1, 2e-4, [0.5, 0.999]),
        ("least_squares", "none", "adam", 1, 2e-4, [0.5, 0.999]),
        ("hinge", "none", "adam", 1, 2e-4, [0.5, 0.999]),
    ],
)
def test_loss_presets_carry_paper_defaults(loss, penalty, optimizer, n_critic, lr, betas):
    cfg = compose_cfg([f"loss={loss}"])
    assert cfg.loss.name == loss
    assert cfg.penalty.name == penalty
    assert cfg.optimizer.name == optimizer
    assert cfg.train.n_critic == n_critic
    assert cfg.optimizer.lr_g == cfg.optimizer.lr_d == pytest.approx(lr)
    if betas is not None:
        assert list(cfg.optimizer.betas) == betas
    if loss == "ebgan":
        assert cfg.model.name == "ebgan"
        assert cfg.loss.lam_pt == 0.1 and cfg.loss.batch_size == cfg.train.batch_size
    if loss == "wgan":
        assert cfg.penalty.c == 0.01
    if loss in ("wgan_gp", "dragan"):
        assert cfg.penalty.lam == 10 and cfg.penalty.k == 1
    if loss == "dragan":
        assert cfg.penalty.perturbation == "authors"


def test_command_line_beats_a_loss_preset():
    cfg = compose_cfg(["loss=wgan", "penalty=gp", "optimizer=adam", "train.n_critic=2"])
    assert (cfg.penalty.name, cfg.optimizer.name, cfg.train.n_critic) == ("gp", "adam", 2)
    cfg = compose_cfg(["loss=gan", "penalty=dragan", "penalty.perturbation=gaussian"])
    assert cfg.loss.name == "gan" and cfg.penalty.perturbation == "gaussian"
    cfg = compose_cfg(["loss=wgan_gp", "optimizer=rmsprop"])
    assert cfg.optimizer.name == "rmsprop" and "betas" not in cfg.optimizer
    cfg = compose_cfg(["penalty=clip", "loss=hinge"])  # order on the command line is irrelevant
    assert cfg.penalty.name == "clip"


def test_paper_dragan_experiment_is_gan_loss_with_dragan_penalty():
    cfg = compose_cfg(["experiment=dragan_paper"])
    assert (cfg.loss.name, cfg.penalty.name, cfg.optimizer.name) == ("gan", "dragan", "adam_dragan")


PAPER_PRESETS = {
    # preset: (loss, penalty, model, dataset)
    "wgan_digits": ("wgan", "clip", "mlp", "digits"),
    "wgan_gp_digits": ("wgan_gp", "gp", "mlp", "digits"),
    "dragan_digits": ("gan", "dragan", "mlp", "digits"),
    "loss_sensitive_digits": ("loss_sensitive", "real_grad", "mlp", "digits"),
    "ebgan_digits": ("ebgan", "none", "ebgan", "digits"),
    "dragan_ring": ("gan", "dragan", "toy_mlp", "ring"),
    "dragan_grid": ("gan", "dragan", "toy_mlp", "grid"),
    "pacgan_ring": ("gan", "none", "toy_mlp", "ring"),
    "pacgan_grid_long": ("gan", "none", "toy_mlp", "grid"),
}


@pytest.mark.parametrize("preset", group_options("experiment"))
def test_every_experiment_preset_composes_and_validates(preset):
    from gan_exp.validation import validate

    cfg = compose_cfg([f"experiment={preset}"])
    validate(cfg)
    if preset in PAPER_PRESETS:
        got = (cfg.loss.name, cfg.penalty.name, cfg.model.name, cfg.dataset.name)
        assert got == PAPER_PRESETS[preset]
    if preset in ("dragan_ring", "dragan_grid"):
        assert cfg.penalty.perturbation == "gaussian"  # the paper's 2-D perturbation
        assert cfg.train.steps == 15000
    if preset == "ebgan_digits":  # the paper code's full width, not the study's half
        assert (cfg.model.g_width, cfg.model.d_width) == (128, 64)


# What `loss=X dataset=D` alone gives on the toys and the digits (conf/loss_dataset/): the
# settings each variant's results row was trained with.
SPECIALISED = {
    ("wgan_gp", "ring"): {"penalty.lam": 0.1, "optimizer.betas": [0.5, 0.9]},
    ("wgan_gp", "grid"): {"penalty.lam": 0.1, "optimizer.betas": [0.5, 0.9]},
    ("wgan_gp", "digits"): {"penalty.lam": 10.0, "optimizer.betas": [0.0, 0.9]},
    ("dragan", "ring"): {"penalty.perturbation": "gaussian"},
    ("dragan", "digits"): {"penalty.perturbation": "authors"},
    ("loss_sensitive", "grid"): {"penalty.name": "gp", "penalty.lam": 0.1,
                                 "loss.transform": "none", "loss.real_weight": 0.0},
    ("loss_sensitive", "digits"): {"penalty.name": "real_grad", "loss.transform": "softplus"},
    ("ebgan", "ring"): {"model.name": "toy_mlp", "train.steps": 7500},
    ("ebgan", "digits"): {"model.name": "ebgan", "model.g_width": 64, "model.d_width": 32},
    ("gan", "grid"): {"model.name": "toy_mlp", "model.g_hidden": [128, 128, 128],
                      "train.batch_size": 100, "train.steps": 7500, "metrics.every": 1000},
}


@pytest.mark.parametrize(("loss", "data"), list(SPECIALISED))
def test_loss_and_dataset_alone_give_the_results_rows_settings(loss, data):
    cfg = compose_cfg([f"loss={loss}", f"dataset={data}"])
    for key, value in SPECIALISED[(loss, data)].items():
        got = OmegaConf.select(cfg, key)
        assert (OmegaConf.to_container(got) if OmegaConf.is_config(got) else got) == value, key


def test_the_command_line_wins_over_a_specialisation():
    cfg = compose_cfg(["loss=wgan_gp", "dataset=ring", "penalty.lam=5", "model=mlp"])
    assert cfg.penalty.lam == 5 and cfg.model.name == "mlp"
    assert list(cfg.optimizer.betas) == [0.5, 0.9]
    plain = compose_cfg(["loss=loss_sensitive", "dataset=ring", "penalty=real_grad",
                         "~loss_dataset"])
    assert plain.penalty.name == "real_grad" and plain.loss.transform == "softplus"


def test_a_specialisation_for_another_group_option_is_left_out(caplog):
    """`loss=loss_sensitive dataset=ring penalty=real_grad`: the toy specialisation's
    penalty.lam is for the loss's own penalty (gp), so it is left out, and said so."""
    from gan_exp.validation import validate

    cfg = compose_cfg(["loss=loss_sensitive", "dataset=ring", "penalty=real_grad"])
    with caplog.at_level("INFO", logger="gan_exp"):
        validate(cfg)
    assert "lam" not in cfg.penalty and cfg.loss.real_weight == 0
    assert "left out penalty.lam" in caplog.text
    cfg = compose_cfg(["loss=ebgan", "model=mlp", "dataset.size=256"])  # EBGAN's widths: not MLP's
    with pytest.raises(ConfigError, match="loss=ebgan needs an autoencoder critic"):
        build_components(cfg, CPU)


# keys added after the committed runs, at the defaults that train exactly as those runs did
ADDED_SINCE_THE_RUNS = {"train": {"ema": {"decay": None, "start": 0}}}


def test_every_results_row_command_gives_the_config_its_runs_were_trained_with():
    """docs/results*.json record each run's training config next to its row's command."""
    for name in ("results.json", "results_long.json"):
        records = json.loads((ROOT / "docs" / name).read_text())
        for rec in {r["command"]: r for r in records}.values():
            cfg = compose_cfg([*rec["command"].split(), f"seed={rec['seed']}"])
            for key, value in rec["config"].items():
                got = cfg[key]
                got = OmegaConf.to_container(got) if OmegaConf.is_config(got) else got
                for added, default in ADDED_SINCE_THE_RUNS.get(key, {}).items():
                    if added not in value:
                        assert got.pop(added) == default, (rec["command"], key, added)
                assert got == value, (rec["command"], key)


def test_sweepable_values_are_config_values():
    cfg = compose_cfg(["loss=ebgan"])
    for key in [
        "optimizer.lr_g",
        "optimizer.lr_d",
        "optimizer.betas",
        "train.n_critic",
        "train.batch_size",
        "train.steps",
        "seed",
        "model.latent_dim",
        "loss.margin",
        "loss.lam_pt",
    ]:
        OmegaConf.select(cfg, key, throw_on_missing=True)
    assert OmegaConf.select(compose_cfg(["loss=wgan"]), "penalty.c") == 0.01
    assert OmegaConf.select(compose_cfg(["loss=wgan_gp"]), "penalty.lam") == 10


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["loss=ebgan", "model=mlp"], "loss=ebgan needs an autoencoder critic.*model=mlp"),
        (["loss=ebgan", "penalty=gp"], "penalty=gp uses per-sample input gradients.*BatchNorm"),
        (
            ["loss=wgan_gp", "model.d_norm=batch"],
            "penalty=gp .*model.d_norm=none, layer or spectral",
        ),
        (["loss=dragan", "model=dcgan", "model.d_norm=batch"], "penalty=dragan"),
        (["model=dcgan", "dataset=ring"], r"model=dcgan needs square images"),
        (["train.n_critic=0"], r"train.n_critic=0 must be an integer >= 1"),
        (["train.batch_size=1"], r"train.batch_size=1 must be an integer >= 2"),
        (["optimizer.lr_d=-1"], r"optimizer.lr_d=-1 must be a number > 0"),
        (
            ["optimizer.betas=[0.5,1.0]"],
            r"optimizer.betas=\[0.5, 1.0\] must be two numbers in \[0, 1\)",
        ),
        (["model.d_norm=group"], r"model.d_norm='group' is not supported; allowed"),
        (["penalty=dragan", "penalty.perturbation=x"], r"penalty.perturbation='x'.*authors"),
    ],
)
def test_combinations_that_cannot_work_stop_before_training(overrides, message):
    cfg = compose_cfg([*SMALL, *overrides])
    if cfg.model.name == "ebgan":
        cfg = compose_cfg([*SMALL, *overrides, *SMALL_EBGAN])
    with pytest.raises(ConfigError, match=message):
        build_components(cfg, CPU)


def test_ebgan_critic_without_batchnorm_accepts_gradient_penalties():
    cfg = compose_cfg(["loss=ebgan", "penalty=gp", "model.d_norm=layer", *SMALL, *SMALL_EBGAN])
    build_components(cfg, CPU)


def test_unknown_option_lists_the_available_ones():
    with pytest.raises(MissingConfigException) as err:
        compose_cfg(["loss=wgan-gp"])
    assert "wgan_gp" in str(err.value) and "dragan" in str(err.value)


def test_device_choice():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ConfigError, match="device='tpu"):
        resolve_device("tpu")


def test_build_drops_the_name_label():
    loss = build(compose_cfg(["loss=least_squares", "loss.b=0.5"]).loss)
    assert loss.b == 0.5


@pytest.mark.parametrize(("data", "preset"), [("ring", None), ("grid", None),
                                             ("ring", "pacgan_ring"), ("grid", "pacgan_grid")])
def test_toy_datasets_build_for_every_loss(data, preset):
    """`loss=X dataset=ring` keeps X's own settings on PacGAN's toy setup, narrowed;
    `experiment=pacgan_ring` is the GAN protocol, and a `loss=` beside it swaps only the loss."""
    for loss in group_options("loss"):
        cfg = compose_cfg([f"loss={loss}", f"dataset={data}",
                           *([f"experiment={preset}"] if preset else [])])
        assert cfg.model.name == "toy_mlp" and cfg.train.batch_size == 100
        parts = build_components(cfg, CPU)
        assert parts.models.critic.produces_embedding == (loss == "ebgan")
        assert cfg.loss.name == loss
        if preset:
            assert cfg.optimizer.name == "adam_pacgan"
        else:
            assert list(cfg.model.g_hidden) == [128, 128, 128]
    pacgan = compose_cfg(["experiment=pacgan_ring"])
    assert pacgan.loss.name == "gan"
    assert pacgan.optimizer.lr_g == pacgan.optimizer.lr_d == 1e-4
    assert list(pacgan.optimizer.betas) == [0.8, 0.999] and pacgan.model.latent_dim == 2
    assert list(pacgan.model.g_hidden) == [400] * 4 and list(pacgan.model.d_hidden) == [200] * 3


def test_job_folder_names_leave_out_exactly_the_keys_that_do_not_identify_a_run():
    """`exclude_keys` in conf/train.yaml is the YAML copy of gan_exp.keys.NOT_SETTINGS (plus
    dataset.root, where the same data is read from)."""
    from gan_exp.keys import NOT_SETTINGS

    train = OmegaConf.load(ROOT / "conf" / "train.yaml")
    excluded = list(train.hydra.job.config.override_dirname.exclude_keys)
    for key in excluded:
        assert key == "dataset.root" or key.startswith(NOT_SETTINGS), key
    for key in ("device", "threads", "resume", "study"):
        assert key in excluded
