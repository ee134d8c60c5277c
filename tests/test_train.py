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
