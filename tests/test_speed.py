"""Speed settings change how the step runs, never what it computes."""

import copy
import platform
import resource
import tempfile
from pathlib import Path

import pytest
import torch

from gan_exp import speed
from gan_exp.components import build_components, resolve_device, seed_everything
from gan_exp.data.base import DataSpec
from gan_exp.errors import ConfigError
from gan_exp.models import dcgan, ebgan, mlp
from gan_exp.trainer import Trainer
from tests import zygote
from tests.conftest import FAST, SMALL_EBGAN, compose_cfg

CPU = resolve_device("cpu")
ROOT = Path(__file__).resolve().parents[1]
DIGITS = DataSpec((1, 28, 28), bounded=True)


def losses_after_steps(overrides: list[str], steps: int = 3) -> list[float]:
    cfg = compose_cfg([*FAST, *overrides])
    seed_everything(0)
    parts = build_components(cfg, CPU)
    seed_everything(0)
    out = []
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(cfg, Path(run_dir), parts, CPU)
        for _ in range(steps):
            trainer.critic_step()
            trainer.generator_step()
            out.append(trainer.meter.read())
    return [v for d in out for k, v in sorted(d.items())]


@pytest.mark.parametrize(
    "extra",
    [
        ["loss=wgan_gp"],
        ["loss=dragan", "model=dcgan", "model.g_width=8", "model.d_width=8"],
        ["loss=hinge", "penalty=real_grad"],
        ["loss=ebgan", "model.d_norm=layer", "model.g_width=16", "model.d_width=8"],
    ],
)
def test_one_critic_forward_for_real_and_fake_computes_the_same(extra):
    joint = losses_after_steps([*extra, "train.batch_critic=true"])
    separate = losses_after_steps([*extra, "train.batch_critic=false"])
    assert joint == pytest.approx(separate, rel=1e-4, abs=1e-5)


@pytest.mark.parametrize(
    "extra,batched",
    [
        (["loss=wgan_gp"], True),
        (["loss=wgan_gp", "model.d_norm=spectral"], False),  # power iteration per forward
        (["loss=gan", "model.d_norm=batch"], False),  # batch statistics mix real and fake
    ],
)
def test_batch_critic_auto_batches_whenever_that_is_exact(extra, batched, tmp_path):
    cfg = compose_cfg([*FAST, *extra])
    parts = build_components(cfg, CPU)
    assert Trainer(cfg, tmp_path, parts, CPU).batch_critic is batched


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc tuning is glibc's mallopt")
def test_malloc_tuning_reuses_freed_memory_instead_of_faulting_it_in():
    assert speed.tune_malloc(False) is False
    assert speed.tune_malloc(True) is True
    for _ in range(5):  # warm up: the heap grows to its working size once
        torch.empty(2**20).fill_(1.0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        torch.empty(2**20).fill_(1.0)  # 4 MB, every page written: 1,024 pages each if fresh
    # fresh pages would fault ~20,480 times; other threads of this test process (event writers
    # of earlier tests) add a few hundred faults of their own, hence the margin
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < 2000


def test_speed_switches_must_be_booleans():
    with pytest.raises(ConfigError, match=r"train.malloc_tuning='yes' must be true or false"):
        build_components(compose_cfg([*FAST, "train.malloc_tuning=yes"]), CPU)


@pytest.mark.parametrize(
    "build_g",
    [
        lambda: mlp.build(DIGITS).generator,
        lambda: dcgan.build(DIGITS, g_width=8, d_width=8).generator,
        lambda: ebgan.build(DIGITS, g_width=16, d_width=8).generator,
    ],
)
def test_one_generator_forward_for_several_batches_equals_separate_forwards(build_g):
    """What `train.batch_fakes` relies on: each batch still gets its own batch-norm statistics
    and the running statistics see the batches one after another."""
    torch.manual_seed(0)
    separate = build_g()
    joint = copy.deepcopy(separate)
    z = torch.randn(3 * 8, 100)
    with torch.no_grad():
        expected = torch.cat([separate(part) for part in z.chunk(3)])
        with speed.per_part_batchnorm(joint, 3):
            got = joint(z)
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6)
    for a, b in zip(joint.buffers(), separate.buffers(), strict=True):
        assert torch.allclose(a.float(), b.float(), rtol=1e-5, atol=1e-7)
    assert not any("forward" in vars(m) for m in joint.modules())  # the patch is gone
    with torch.no_grad():
        assert not torch.allclose(joint(z), expected, atol=1e-3)  # one batch's statistics now


def test_batch_fakes_with_compile_is_refused():
    with pytest.raises(ConfigError, match="train.batch_fakes=true does not combine"):
        losses_after_steps(["train.batch_fakes=true", "train.compile=true"], 1)


def test_optimizer_implementations_agree():
    fused = losses_after_steps(["loss=wgan_gp", "optimizer.impl=fused"])
    loop = losses_after_steps(["loss=wgan_gp", "optimizer.impl=for_loop"])
    assert fused == pytest.approx(loop, rel=1e-4, abs=1e-5)


def test_unsafe_speed_settings_are_refused():
    with pytest.raises(ConfigError, match="train.amp=bf16 with a gradient penalty is refused"):
        losses_after_steps(["loss=wgan_gp", "train.amp=bf16"], 1)
    with pytest.raises(ConfigError, match="train.batch_critic=true with a BatchNorm critic"):
        losses_after_steps(["loss=ebgan", "train.batch_critic=true", "model.g_width=16"], 1)
    with pytest.raises(ConfigError, match="optimizer.impl='fast'"):
        losses_after_steps(["optimizer.impl=fast"], 1)


def test_bf16_autocast_runs_without_a_penalty():
    values = losses_after_steps(["loss=hinge", "train.amp=bf16"], 2)
    assert all(v == v for v in values)  # no NaN


@pytest.mark.heavy
def test_benchmark_script_runs():
    proc = zygote.run(
        [
            ROOT / "scripts" / "benchmark.py",
            "--quick",
            "--device",
            "cpu",
            "--naive-workers",
            "1",  # PyTorch-GAN's worker-process loader path
        ],
        cwd=ROOT,
        timeout=600,  # the dataset caches are the session's (conftest's GAN_EXP_DATA)
    )
    assert proc.returncode == 0, proc.stderr
    for heading in [
        "Generator steps per second",
        "against batch size",
        "Memory over a long run",
        "Cost of logging and evaluation",
    ]:
        assert heading in proc.stdout
    assert "project/naive" in proc.stdout
    assert "naive DataLoader with 1 workers" in proc.stdout


# What a host sync goes through when our code asks for one: item(), tolist(), float(t), bool(t)
# and data-dependent shapes. On a GPU each one stalls the step until the queue drains.
HOST_SYNC_OPS = {"aten::item", "aten::is_nonzero", "aten::nonzero"}


@pytest.mark.parametrize(
    "extra",
    [
        *([f"loss={name}"] for name in ("gan", "hinge", "least_squares", "loss_sensitive")),
        ["loss=wgan"],  # weight clipping
        ["loss=wgan_gp"],
        ["loss=dragan"],
        ["loss=gan", "penalty=dragan", "penalty.perturbation=gaussian"],
        ["loss=ebgan", "model=ebgan", *SMALL_EBGAN],
        ["loss=wgan_gp", "model=dcgan", "model.g_width=8", "model.d_width=8"],
        ["loss=wgan_gp", "dataset=ring", "model.g_hidden=[32]", "model.d_hidden=[32]"],
    ],
)
def test_training_steps_make_no_host_sync(extra, monkeypatch, tmp_path):
    """Between logging intervals the loop never waits on the device (checked through the ops a
    sync goes through, which the CPU profiler records as well, and the copies to the host,
    which are no-ops on a CPU and so are caught by name)."""
    cfg = compose_cfg([*FAST, "train.n_critic=2", *extra])
    parts = build_components(cfg, CPU)
    trainer = Trainer(cfg, tmp_path, parts, CPU)
    trainer.critic_phase()  # first steps create optimiser state
    trainer.generator_step()
    copies: list[str] = []
    for name in ("cpu", "tolist", "numpy"):
        original = getattr(torch.Tensor, name)

        def recorded(self, *args, _name=name, _original=original, **kwargs):
            copies.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, recorded)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(2):
            trainer.critic_phase()
            trainer.generator_step()
    names = {event.name for event in prof.events()}
    assert "aten::mm" in names or "aten::addmm" in names or "aten::convolution" in names
    # Only calls made by our code (or an autograd formula) count, not those inside a CPU kernel
    # (fused Adam and std read a CPU scalar there; their CUDA kernels do not).
    syncs = [
        event.name
        for event in prof.events()
        if event.name in HOST_SYNC_OPS
        and not (event.cpu_parent is not None and event.cpu_parent.name.startswith("aten::"))
    ]
    assert not syncs, syncs
    monkeypatch.undo()
    assert not copies, copies
