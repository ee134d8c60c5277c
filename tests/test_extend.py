"""What docs/extending.md's "Adding your own variant" says, done from a folder outside the package:
a user's loss, penalty and model in their own module, their own config folder and preset,
composed with the shipped groups, and a class that breaks the contract stopped by name."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests import zygote

USER_MODULE = '''
"""my_gan.py: a user's own variants, outside gan_exp."""
import torch
import torch.nn.functional as F
from torch import nn

from gan_exp.losses import GANLoss
from gan_exp.models.base import Critic, CriticOutput, GANModels
from gan_exp.penalties import Penalty


class SoftHinge(GANLoss):
    """A smooth hinge: softplus(1 - D(x)) + softplus(1 + D(x~)); G: -D(x~)."""

    def __init__(self, margin: float = 1.0) -> None:
        self.margin = margin

    def d_loss(self, real, fake, x_real, x_fake):
        return F.softplus(self.margin - real.score).mean() + F.softplus(
            self.margin + fake.score).mean()

    def g_loss(self, fake, x_fake):
        return -fake.score.mean()


class ScorePenalty(Penalty):
    """gamma * E[D(x)^2] on real data: keeps scores near zero."""

    def __init__(self, gamma: float = 0.1) -> None:
        self.gamma = gamma

    def __call__(self, critic, x_real, x_fake):
        return self.gamma * critic(x_real).score.pow(2).mean()


class TinyCritic(Critic):
    def __init__(self, in_dim: int, width: int, flat: bool) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_dim, width), nn.LeakyReLU(0.2),
                                 nn.Linear(width, 1))
        self.flat = flat

    def forward(self, x):
        out = self.net(x)  # (N, 1)
        return CriticOutput(score=out.reshape(-1) if self.flat else out)


def tiny(data, latent_dim: int = 16, width: int = 64, flat_scores: bool = True):
    n = 1
    for s in data.shape:
        n *= s
    generator = nn.Sequential(nn.Linear(latent_dim, width), nn.ReLU(), nn.Linear(width, n),
                              nn.Tanh(), nn.Unflatten(1, tuple(data.shape)))
    return GANModels(generator, TinyCritic(n, width, flat_scores), latent_dim)
'''

CONFIGS = {
    "loss/soft_hinge.yaml": """
        name: soft_hinge
        _target_: my_gan.SoftHinge
        margin: 1.0
    """,
    "penalty/score.yaml": """
        name: score
        _target_: my_gan.ScorePenalty
        gamma: 0.1
    """,
    "model/tiny.yaml": """
        name: tiny
        _target_: my_gan.tiny
        latent_dim: 16
        width: 64
        flat_scores: true
    """,
    "experiment/my_study.yaml": """
        # @package _global_
        defaults:
          - override /loss: soft_hinge
          - override /model: tiny
        train:
          steps: 6
          batch_size: 16
    """,
}
QUICK = ["dataset.size=64", "log.progress=false", "log.every=2", "log.sample_every=3",
         "metrics.enabled=false", "checkpoint.every=3"]


def user_folder(root: Path) -> Path:
    (root / "my_gan.py").write_text(USER_MODULE)
    for name, text in CONFIGS.items():
        path = root / "my_conf" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


def cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONPATH": str(cwd)}
    return zygote.run(["-m", "gan_exp.train", "--config-dir", "my_conf", *args], cwd=cwd,
                      env=env, timeout=300)


def test_user_variants_compose_with_the_shipped_groups(tmp_path):
    root = user_folder(tmp_path)
    for args in (
        ["experiment=my_study"],  # the user's preset: their loss and model
        ["experiment=my_study", "penalty=gp"],  # their loss with a shipped penalty
        ["model=tiny", "loss=wgan_gp", "train.steps=4"],  # their model with a shipped variant
        ["loss=soft_hinge", "penalty=score", "model=tiny", "train.steps=4"],
    ):
        proc = cli([*QUICK, *args, "hydra.run.dir=run_" + "_".join(args).replace("=", "-")], root)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "finished" in proc.stdout


def test_a_user_class_that_breaks_the_contract_is_named_before_training(tmp_path):
    root = user_folder(tmp_path)
    proc = cli([*QUICK, "experiment=my_study", "model.flat_scores=false", "hydra.run.dir=bad"],
               root)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "model=tiny (my_gan.tiny): the critic (TinyCritic) returned (4, 1)" in out
    assert "expected a CriticOutput whose score has shape (N,)" in out
    assert "Traceback" not in out and not (root / "bad").exists()
    proc = cli([*QUICK, "experiment=my_study", "+loss.margn=2", "hydra.run.dir=bad"], root)
    assert proc.returncode == 2 and "loss.margn is not an option of loss=soft_hinge" in (
        proc.stdout + proc.stderr)
    assert "did you mean margin?" in proc.stdout + proc.stderr


def test_installed_console_script_finds_its_configs_from_any_folder(tmp_path):
    script = Path(sys.executable).with_name("gan-exp-train")
    assert script.exists(), "pip install -e . installs the console script"
    proc = subprocess.run([str(script), *QUICK, "train.steps=3", "hydra.run.dir=run"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "run" / "checkpoints" / "step_0000003.pt").is_file()
