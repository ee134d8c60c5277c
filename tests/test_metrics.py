"""Metric maths on known cases, the evaluation loop's outputs, and a behavioural check."""

import json
import logging
import math
import re

import pytest
import torch

from gan_exp.data.toy import grid_means, ring_means
from gan_exp.evaluate import main as evaluate_main
from gan_exp.metrics.features import Classifier
from gan_exp.metrics.image import (
    ImageEvaluator,
    SuppliedFeatures,
    class_coverage,
    density_coverage,
    precision_recall,
)
from gan_exp.metrics.toy import mode_metrics
from gan_exp.metrics.tracker import MetricsTracker
from gan_exp.run import train
from tests.conftest import FAST, compose_cfg, read_events


def test_ring_protocol_counts_modes_quality_and_kl():
    means = ring_means()
    torch.manual_seed(0)
    on_all = means.repeat(300, 1) + 0.01 * torch.randn(2400, 2)
    m = mode_metrics(on_all, means, 0.01)
    assert m["metrics/modes"] == 8 and m["metrics/high_quality_pct"] > 95
    assert m["metrics/mode_kl"] == pytest.approx(0.0, abs=1e-3)
    stuck = means[3] + 0.005 * torch.randn(2500, 2)
    s = mode_metrics(stuck, means, 0.01)
    assert s["metrics/modes"] == 1
    assert s["metrics/mode_kl"] == pytest.approx(math.log(8))
    far = torch.full((2500, 2), 10.0)
    f = mode_metrics(far, means, 0.01)
    assert f["metrics/modes"] == 0 and f["metrics/high_quality_pct"] == 0


def test_grid_high_quality_threshold_is_three_std():
    means = grid_means()
    just_in = means[:1] + torch.tensor([[0.149, 0.0]])
    just_out = means[:1] + torch.tensor([[0.151, 0.0]])
    assert mode_metrics(just_in, means, 0.05)["metrics/high_quality_pct"] == 100
    assert mode_metrics(just_out, means, 0.05)["metrics/high_quality_pct"] == 0


def test_fd_of_a_shift_is_the_squared_shift_and_zero_for_itself():
    from torchmetrics.image.fid import FrechetInceptionDistance

    torch.manual_seed(0)
    x = torch.randn(4000, 6, dtype=torch.float64) @ torch.randn(6, 6, dtype=torch.float64)
    shift = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0, 1.0], dtype=torch.float64)
    fid = FrechetInceptionDistance(feature=SuppliedFeatures(6), reset_real_features=False)
    fid.update(x, real=True)
    fid.update(x + shift, real=False)
    # same covariance, means differ by `shift`: FD = |shift|^2 exactly
    assert float(fid.compute()) == pytest.approx(float(shift.pow(2).sum()), rel=1e-6)
    fid.reset()
    fid.update(x, real=False)
    assert abs(float(fid.compute())) < 1e-6


def test_fd_of_two_gaussians_matches_the_closed_form():
    from torchmetrics.image.fid import FrechetInceptionDistance

    torch.manual_seed(1)
    n, d = 200_000, 3
    s1, s2 = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([2.0, 1.0, 1.0])
    mu = torch.tensor([0.5, 0.0, -1.0])
    a = torch.randn(n, d, dtype=torch.float64) * s1.sqrt()
    b = torch.randn(n, d, dtype=torch.float64) * s2.sqrt() + mu
    expected = float(mu.pow(2).sum() + (s1 + s2 - 2 * (s1 * s2).sqrt()).sum())
    fid = FrechetInceptionDistance(feature=SuppliedFeatures(d))
    fid.update(a, real=True)
    fid.update(b, real=False)
    assert float(fid.compute()) == pytest.approx(expected, abs=0.03)


def test_precision_recall_density_coverage_known_cases():
    torch.manual_seed(0)
    real = torch.randn(500, 8)
    assert precision_recall(real, real, k=3) == (1.0, 1.0)
    density, coverage = density_coverage(real, real, k=5)
    assert coverage == 1.0 and density == pytest.approx(1.0, abs=0.3)
    disjoint = real + 100.0
    assert precision_recall(real, disjoint, k=3) == (0.0, 0.0)
    assert density_coverage(real, disjoint, k=5) == (0.0, 0.0)
    # a fake set covering half of the real points: recall about half, precision full
    half = real[real[:, 0] > 0]
    p, r = precision_recall(real, half, k=3)
    assert p == 1.0 and 0.3 < r < 0.8


def test_class_coverage():
    assert class_coverage(torch.zeros(100, dtype=torch.long), 10) == (
        1.0,
        pytest.approx(math.log(10)),
    )
    hit, kl = class_coverage(torch.arange(100) % 10, 10)
    assert hit == 10 and kl == pytest.approx(0.0, abs=1e-12)


def test_image_evaluator_of_the_real_data_itself():
    torch.manual_seed(0)
    classifier = Classifier(1, 10, width=8, feature_dim=16).eval()
    real = torch.rand(600, 1, 28, 28) * 2 - 1
    ev = ImageEvaluator(classifier, real, 10, 0.9, kid_subsets=5, kid_subset_size=200)
    scores = ev.evaluate(lambda n: real[:n], 600)
    assert abs(scores["metrics/fd_classifier"]) < 1e-3
    assert abs(scores["metrics/kid_classifier"]) < 1e-3
    assert scores["metrics/coverage"] == 1.0 and scores["metrics/precision"] == 1.0
    assert scores["metrics/classifier_test_accuracy"] == 0.9


def test_tracker_keeps_final_and_best_with_steps(tmp_path):
    t = MetricsTracker(tmp_path / "metrics.json")
    t.update(100, {"metrics/fd_classifier": 5.0, "metrics/modes": 3.0})
    t.update(200, {"metrics/fd_classifier": 7.0, "metrics/modes": 6.0})
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert data["final"] == {"metrics/fd_classifier": 7.0, "metrics/modes": 6.0}
    assert data["final_step"] == 200
    assert data["best"]["metrics/fd_classifier"] == {"value": 5.0, "step": 100}
    assert data["best"]["metrics/modes"] == {"value": 6.0, "step": 200}
    again = MetricsTracker(tmp_path / "metrics.json")  # a resumed run keeps the record
    assert again.data["best"]["metrics/fd_classifier"]["step"] == 100


def test_a_run_logs_metrics_everywhere(tmp_path):
    cfg = compose_cfg([*FAST, "metrics.every=3", "optimized_metric=metrics/fd_classifier"])
    returned = train(cfg, tmp_path / "run")
    tags = read_events(tmp_path / "run").Tags()["scalars"]
    for tag in [
        "metrics/fd_classifier",
        "metrics/kid_classifier",
        "metrics/precision",
        "metrics/recall",
        "metrics/density",
        "metrics/coverage",
        "metrics/classes_hit",
        "metrics/class_kl",
        "metrics/classifier_test_accuracy",
    ]:
        assert tag in tags
    assert [e.step for e in read_events(tmp_path / "run").Scalars("metrics/fd_classifier")] == [
        3,
        6,
    ]
    data = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert data["final_step"] == 6
    assert returned["metrics/fd_classifier"] == data["final"]["metrics/fd_classifier"]
    assert "metrics/fd_classifier" in data["best"]


def test_unknown_optimized_metric_is_refused(tmp_path):
    from gan_exp.errors import ConfigError

    cfg = compose_cfg([*FAST, "dataset=ring", "optimized_metric=metrics/fid"])
    with pytest.raises(
        ConfigError, match="optimized_metric=metrics/fid is not computed.*metrics/modes"
    ):
        train(cfg, tmp_path / "run")


def test_inception_unavailable_offline_keeps_offline_metrics(tmp_path, caplog):
    cfg = compose_cfg(
        [*FAST, "metrics.inception=true", "metrics.inception_weights=/nonexistent.pth"]
    )
    with caplog.at_level(logging.WARNING):
        metrics = train(cfg, tmp_path / "run")
    assert "Inception weights unavailable" in caplog.text
    assert "metrics/fd_classifier" in metrics and "metrics/fid_inception" not in metrics


@pytest.mark.heavy
def test_gradient_penalty_run_on_the_ring_captures_more_modes(tmp_path):
    # zero-centred gradient penalty on interpolates; the mode count is noisy from one
    # evaluation to the next (std 0.01 modes are tight), so compare the best of the second
    # half with the first evaluation. Seeds 0-2 give first 3-5, best late 7-8.
    overrides = [
        *FAST,
        "dataset=ring",
        "dataset.size=20000",
        "loss=gan",
        "penalty=gp",
        "penalty.k=0",
        "train.batch_size=256",
        "train.steps=600",
        "metrics.every=50",
        "metrics.toy_samples=2500",
        "model.latent_dim=2",
        "model.g_hidden=[128,128]",
        "model.d_hidden=[128,128]",
        "optimizer.lr_g=5e-4",
        "optimizer.lr_d=5e-4",
        "seed=0",
    ]
    train(compose_cfg(overrides), tmp_path / "run")
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())["history"]
    modes = [h["metrics/modes"] for h in history]
    best_late = max(modes[len(modes) // 2 :])
    assert best_late > modes[0] and best_late >= 6, modes


def test_evaluate_script_scores_a_checkpoint(tmp_path, capsys):
    train(compose_cfg([*FAST, "dataset=ring", "loss=wgan_gp"]), tmp_path / "run")
    out = tmp_path / "grid.png"
    assert (
        evaluate_main(
            [
                str(tmp_path / "run"),
                "--n-samples",
                "300",
                "--out",
                str(out),
                "--device",
                "cpu",
                "--json",
                str(tmp_path / "s.json"),
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    scores = json.loads(captured.out)
    assert scores["step"] == 6 and "metrics/modes" in scores
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "s.json").read_text()) == scores
    # what was scored and where the files went, on stderr (stdout stays JSON)
    assert "step_0000006.pt (step 6), 300 generated samples" in captured.err
    assert f"sample grid written to {out}" in captured.err
    assert evaluate_main([str(tmp_path / "missing")]) == 2
    assert "missing: no such run folder or checkpoint file" in capsys.readouterr().err
    # output paths are refused before any scoring, naming the flag; nothing is written
    afile = tmp_path / "a_file"
    afile.write_text("x")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for args, message in [(["--out", str(tmp_path / "nowhere" / "g.png")], "--out .*nowhere"),
                          (["--json", str(afile / "s.json")], "--json .*a_file is a file")]:
        assert evaluate_main([str(tmp_path / "run"), "--device", "cpu", *args]) == 3
        err = capsys.readouterr().err
        assert re.search(message, err) and "checkpoint" not in err, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_unlabelled_folder_gets_rotation_features_that_separate_real_from_noise(tmp_path, caplog):
    """A flat image folder has no labels: the feature network learns to predict rotations
    (self-supervised), and its features tell held-out real images from noise."""
    import logging

    from PIL import Image

    from gan_exp.components import build
    from gan_exp.data import digits
    from gan_exp.metrics import Evaluator

    images, _ = digits.generate(600, seed=3)
    flat = tmp_path / "flat"
    flat.mkdir()
    for i, img in enumerate(images[:500]):
        Image.fromarray(img[0].numpy()).save(flat / f"{i:04d}.png")
    cfg = compose_cfg(["dataset=image_folder", f"dataset.root={flat}", "dataset.image_size=28",
                       "dataset.channels=1", "dataset.num_workers=0", "metrics.cache_dir=null",
                       "metrics.classifier.epochs=30", "metrics.classifier.batch_size=64",
                       "metrics.n_samples=100",
                       "metrics.n_real=200", "metrics.kid_subset_size=50"])
    dataset = build(cfg.dataset)
    assert int(dataset.labels.max()) == 0  # unlabelled
    with caplog.at_level(logging.INFO):
        evaluator = Evaluator(cfg, dataset, torch.device("cpu"))
    assert "rotation-prediction network (self-supervised" in caplog.text
    assert evaluator.image.test_accuracy > 0.45  # chance is 0.25 (50 held-out images)
    assert "metrics/classes_hit" not in evaluator.names

    class Fixed(torch.nn.Module):  # a "generator" that returns given images
        def __init__(self, x):
            super().__init__()
            self.x = x

        def forward(self, z):
            return self.x[: len(z)]

    held_out = images[500:].float().div(127.5).sub(1)  # never seen by the feature network
    noise = torch.rand_like(held_out) * 2 - 1
    real_fd = evaluator(Fixed(held_out), 8)["metrics/fd_classifier"]
    noise_fd = evaluator(Fixed(noise), 8)["metrics/fd_classifier"]
    assert noise_fd > 5 * real_fd, (real_fd, noise_fd)


def test_a_slice_of_the_data_is_measured_against_the_whole(tmp_path, caplog):
    """dataset.size trains on a slice; the metrics' classifier and real statistics come from
    the whole dataset (FID against the full training set, as the limited-data papers measure),
    and a run on the whole reuses that same cached classifier."""
    from gan_exp.components import build
    from gan_exp.metrics import Evaluator

    cpu = torch.device("cpu")
    cfg = compose_cfg([*FAST, f"metrics.cache_dir={tmp_path}", "metrics.n_real=1000"])
    dataset = build(cfg.dataset)
    assert len(dataset) == 256 and dataset.unsliced == {"size": 60000}
    with caplog.at_level(logging.INFO):
        evaluator = Evaluator(cfg, dataset, cpu)
    assert "training sees 256 of dataset=digits's 60000 images" in caplog.text
    assert len(evaluator.image.real_features) == 1000  # more than the slice holds
    cached = sorted(tmp_path.glob("*.pt"))
    assert len(cached) == 1
    whole = compose_cfg([*FAST, "dataset.size=60000", f"metrics.cache_dir={tmp_path}"])
    full = build(whole.dataset)
    assert full.unsliced is None
    caplog.clear()
    with caplog.at_level(logging.INFO):
        Evaluator(whole, full, cpu)
    assert "classifier epoch" not in caplog.text  # loaded, not trained again
    assert sorted(tmp_path.glob("*.pt")) == cached


def test_the_metrics_classifier_is_trained_once_and_alike_whatever_the_thread_count(
    tmp_path, monkeypatch
):
    """Jobs of a parallel sweep that find no cached classifier start together: one trains it
    while the others wait for it, and it comes out bit for bit the same whatever number of
    threads the job was given, so every run is scored in one feature space."""
    import threading

    from gan_exp.data import digits
    from gan_exp.metrics import features

    dataset = digits.build(size=400, cache_dir=None)
    cls = {"epochs": 1, "batch_size": 64, "lr": 1e-3, "width": 8, "feature_dim": 16,
           "holdout": 0.1, "max_images": 400, "seed": 0, "threads": 2}
    state = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        try:
            model, _ = features.load_or_train(dataset, {}, cls, None, torch.device("cpu"))
        finally:
            torch.set_num_threads(2)
        state[threads] = model.state_dict()
    assert all(torch.equal(state[1][k], state[2][k]) for k in state[1])

    trained, real_train = [], features._train

    def slow_train(*args):
        trained.append(1)
        return real_train(*args)

    monkeypatch.setattr(features, "_train", slow_train)
    results = []
    jobs = [threading.Thread(target=lambda: results.append(features.load_or_train(
        dataset, {}, cls, tmp_path, torch.device("cpu"))[1])) for _ in range(2)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join()
    assert len(trained) == 1 and len(results) == 2 and results[0] == results[1]
