"""Short real training runs: every variant trains and writes what a researcher reads back."""

from pathlib import Path

import pytest
import torch

from gan_exp.errors import TrainingDiverged
from gan_exp.run import train
from tests.conftest import FAST, SMALL_EBGAN, compose_cfg, read_events

COMMON_TAGS = {"loss/d", "loss/g", "loss/penalty", "loss/d_total", "critic/real", "critic/fake"}
WASSERSTEIN = {"wgan", "wgan_gp", "dragan"}


def run(tmp_path: Path, overrides: list[str], name: str = "run") -> tuple[dict, Path]:
    cfg = compose_cfg([*FAST, *overrides])
    run_dir = tmp_path / name
    return train(cfg, run_dir), run_dir


@pytest.mark.parametrize(
    "loss",
    ["gan", "wgan", "wgan_gp", "dragan", "loss_sensitive", "ebgan", "least_squares", "hinge"],
)
def test_every_variant_trains_and_logs(tmp_path, loss):
    extra = SMALL_EBGAN if loss == "ebgan" else []
    metrics, run_dir = run(tmp_path, [f"loss={loss}", *extra])
    acc = read_events(run_dir)
    tags = set(acc.Tags()["scalars"])
    assert tags >= COMMON_TAGS
    assert ("critic/wasserstein_estimate" in tags) == (loss in WASSERSTEIN)
    if loss == "ebgan":
        assert "loss/pulling_away" in tags
    steps = [e.step for e in acc.Scalars("loss/g")]
    assert steps == [2, 4, 6]
    assert all(torch.isfinite(torch.tensor(e.value)) for e in acc.Scalars("loss/d"))
    images = acc.Images("samples")
    assert [e.step for e in images] == [0, 3, 6]
    assert (run_dir / "samples.png").is_file()
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("*.pt")) == [
        "step_0000003.pt",
        "step_0000006.pt",
    ]
    assert metrics["loss/g"] == pytest.approx(acc.Scalars("loss/g")[-1].value)


def test_hparams_live_in_the_run_itself(tmp_path):
    _, run_dir = run(tmp_path, ["loss=wgan_gp"])
    event_files = [p for p in run_dir.rglob("events.out.tfevents.*")]
    assert [p.parent for p in event_files] == [run_dir]  # no stray sub-run
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

    acc = read_events(run_dir)
    content = acc.PluginTagToContent("hparams")
    # no experiment summary: TensorBoard then takes its columns from all runs under a logdir
    # (a digits sweep beside a ring sweep each keep their metric columns)
    assert set(content) == {"_hparams_/session_start_info", "_hparams_/session_end_info"}
    start = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]
    ).session_start_info
    # the groups chosen and the values that matter, not every flattened key
    assert start.hparams["loss"].string_value == "wgan_gp"
    assert start.hparams["penalty"].string_value == "gp"
    assert start.hparams["penalty.lam"].number_value == 10
    assert start.hparams["train.n_critic"].number_value == 5
    assert "checkpoint.every" not in start.hparams and len(start.hparams) < 20
    end = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_end_info"])
    assert end.session_end_info.status == api_pb2.Status.Value("STATUS_SUCCESS")


def test_toy_data_gets_a_scatter_preview(tmp_path):
    _, run_dir = run(tmp_path, ["dataset=ring", "dataset.size=512", "loss=wgan_gp"])
    image = read_events(run_dir).Images("samples")[-1]
    assert (image.width, image.height) == (256, 256)


def test_dcgan_trains_on_digits(tmp_path):
    metrics, _ = run(tmp_path, ["model=dcgan", "model.g_width=8", "model.d_width=8", "loss=hinge"])
    assert metrics["loss/d"] == metrics["loss/d"]  # finite, not NaN


def test_same_seed_same_losses_different_seed_different(tmp_path):
    a, _ = run(tmp_path, ["loss=wgan_gp", "seed=7"], "a")
    b, _ = run(tmp_path, ["loss=wgan_gp", "seed=7"], "b")
    c, _ = run(tmp_path, ["loss=wgan_gp", "seed=8"], "c")
    keys = ["loss/d", "loss/g", "loss/penalty", "critic/real"]
    assert [a[k] for k in keys] == [b[k] for k in keys]
    assert [a[k] for k in keys] != [c[k] for k in keys]


def test_weight_clipping_holds_during_training(tmp_path):
    _, run_dir = run(tmp_path, ["loss=wgan", "penalty.c=0.02"])
    state = torch.load(run_dir / "checkpoints" / "step_0000006.pt", weights_only=True)
    assert all(t.abs().max() <= 0.02 + 1e-7 for t in state["critic"].values())


def test_divergence_stops_with_the_step_and_the_loss(tmp_path):
    with pytest.raises(TrainingDiverged, match=r"non-finite .*loss/d.* at step 2"):
        run(tmp_path, ["optimizer=sgd", "optimizer.lr_d=1e30", "optimizer.lr_g=1e30"])


def weights_after_one_step(tmp_path: Path, overrides: list[str]) -> tuple[torch.Tensor, ...]:
    from gan_exp.components import build_components, resolve_device, seed_everything
    from gan_exp.trainer import Trainer

    cfg = compose_cfg([*FAST, "dataset=ring", "model.g_hidden=[16,16]",
                       "model.d_hidden=[16]", *overrides])
    cpu = resolve_device("cpu")
    seed_everything(0)
    parts = build_components(cfg, cpu)
    seed_everything(0)
    trainer = Trainer(cfg, tmp_path, parts, cpu)
    trainer.train_step()
    return tuple(torch.cat([w.detach().flatten() for w in net.parameters()])
                 for net in (trainer.G, trainer.D))


def test_simultaneous_updates_take_both_gradients_before_either_player_moves(tmp_path):
    # G's step must not see D's step (and the other way round): changing one player's
    # learning rate leaves the other's new weights exactly as they were
    def step(updates: str, lr_g: float, lr_d: float) -> tuple[torch.Tensor, ...]:
        overrides = [f"train.updates={updates}", f"optimizer.lr_g={lr_g}",
                     f"optimizer.lr_d={lr_d}"]
        return weights_after_one_step(tmp_path, overrides)

    g_slow_d, d_slow_d = step("simultaneous", 1e-3, 1e-6)
    g_fast_d, d_fast_d = step("simultaneous", 1e-3, 0.5)
    assert torch.equal(g_slow_d, g_fast_d) and not torch.equal(d_slow_d, d_fast_d)
    g_slow_g, d_slow_g = step("simultaneous", 1e-6, 1e-3)
    g_fast_g, d_fast_g = step("simultaneous", 0.5, 1e-3)
    assert torch.equal(d_slow_g, d_fast_g) and not torch.equal(g_slow_g, g_fast_g)
    # alternating: the generator's step is taken against the critic that just moved
    g_alt_slow, _ = step("alternating", 1e-3, 1e-6)
    g_alt_fast, _ = step("alternating", 1e-3, 0.5)
    assert not torch.equal(g_alt_slow, g_alt_fast)


def test_simultaneous_updates_train_and_refuse_n_critic_above_one(tmp_path):
    metrics, _ = run(tmp_path, ["loss=wgan_gp", "train.updates=simultaneous",
                                "train.n_critic=1"])
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    from gan_exp.errors import ConfigError

    with pytest.raises(ConfigError, match="train.n_critic=1"):
        run(tmp_path, ["loss=wgan_gp", "train.updates=simultaneous"], name="refused")
