"""Generator EMA (`train.ema`): the average's arithmetic, its tags side by side with the raw
generator's, its checkpoint, a bit-exact resume, and evaluate/sample reading it."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from gan_exp import checkpoint, load_generator
from gan_exp.ema import GeneratorEMA
from gan_exp.run import train
from tests import zygote
from tests.conftest import FAST, compose_cfg, read_events

ROOT = Path(__file__).resolve().parent.parent
EMA = [*FAST, "train.ema.decay=0.9", "train.ema.start=2", "metrics.every=3", "log.every=1",
       "checkpoint.every=3", "checkpoint.keep=10"]


def test_the_average_copies_until_start_then_lerps_and_copies_buffers():
    torch.manual_seed(0)
    g = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ema = GeneratorEMA(g, decay=0.9, start=1)
    history = []
    for step in (1, 2, 3):
        with torch.no_grad():
            for p in g.parameters():
                p.add_(torch.randn_like(p))
        g(torch.randn(8, 3))  # moves BatchNorm's running statistics
        history.append({k: v.clone() for k, v in g.state_dict().items()})
        ema.update(step)
    w1, w2, w3 = (h["0.weight"] for h in history)
    expected = 0.9 * (0.9 * w1 + 0.1 * w2) + 0.1 * w3  # step 1 copied, then two averages
    assert torch.allclose(ema.module[0].weight, expected, atol=1e-6)
    assert torch.equal(ema.module[1].running_mean, g[1].running_mean)
    assert not ema.module.training and not any(p.requires_grad for p in ema.module.parameters())


def test_ema_is_reported_beside_the_raw_generator_and_resumes_bit_exactly(tmp_path):
    train(compose_cfg([*EMA, "train.steps=6"]), tmp_path / "straight")
    train(compose_cfg([*EMA, "train.steps=3"]), tmp_path / "split")
    resume = f"resume={tmp_path / 'split'}"
    train(compose_cfg([resume]), tmp_path / "split", overrides=[resume, "train.steps=6"])
    a = torch.load(tmp_path / "straight" / "checkpoints" / "step_0000006.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "checkpoints" / "step_0000006.pt", weights_only=True)
    for key in ("generator", "generator_ema"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    assert any(not torch.equal(a["generator"][k], a["generator_ema"][k]) for k in a["generator"])
    events = read_events(tmp_path / "straight")
    assert {"samples", "samples_ema"} <= set(events.Tags()["images"])
    assert [e.step for e in events.Scalars("metrics_ema/fd_classifier")] == [3, 6]
    record = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    assert "metrics_ema/fd_classifier" in record["final"]
    assert "metrics_ema/fd_classifier" in record["best"]  # ranked like metrics/fd_classifier
    assert (tmp_path / "straight" / "samples_ema.png").is_file()
    # the averaged generator through the Python call and the sample command
    G = load_generator(tmp_path / "straight", ema=True)
    assert all(torch.equal(G.state_dict()[k], a["generator_ema"][k]) for k in a["generator_ema"])
    proc = zygote.run(["-m", "gan_exp.evaluate", tmp_path / "straight", "--n-samples", "200"],
                      cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    scores = json.loads(proc.stdout)
    assert {"metrics/fd_classifier", "metrics_ema/fd_classifier"} <= set(scores)
    assert "its average (metrics_ema/*)" in proc.stderr


def test_ema_off_leaves_the_checkpoint_as_it_was(tmp_path):
    train(compose_cfg([*FAST, "train.steps=3", "metrics.enabled=false"]), tmp_path / "run")
    state = checkpoint.load(checkpoint.latest(tmp_path / "run"))
    assert "generator_ema" not in state
    proc = zygote.run(["-m", "gan_exp.sample", tmp_path / "run", "--ema", "--out",
                       tmp_path / "x.npz"], cwd=ROOT, timeout=300)
    assert proc.returncode == 2 and "holds no averaged generator" in proc.stderr
    assert not (tmp_path / "x.npz").exists()
