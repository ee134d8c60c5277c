"""torchvision datasets read from tiny files in their real formats, offline; and their errors."""

import urllib.error
import urllib.request

import pytest
import torch

from gan_exp.data import vision
from gan_exp.data.base import InMemoryDataset, StreamingDataset
from gan_exp.errors import ConfigError, DatasetError
from gan_exp.run import train
from tests.conftest import FAST, compose_cfg, read_events
from tests.vision_files import write_celeba, write_cifar10, write_image_folder, write_mnist

CPU = torch.device("cpu")


def first_batch(ds, batch_size=4):
    return ds.make_batches(batch_size, CPU).next_batch()


@pytest.mark.parametrize(
    "builder,folder", [(vision.mnist, "MNIST"), (vision.fashion_mnist, "FashionMNIST")]
)
def test_mnist_idx_files_load_in_memory_with_labels(tmp_path, builder, folder):
    raw = write_mnist(tmp_path, n=40, folder=folder)
    ds = builder(str(tmp_path), download=False)
    assert isinstance(ds, InMemoryDataset)
    assert ds.spec.shape == (1, 28, 28) and len(ds) == 40
    assert ds.labels.tolist() == [i % 10 for i in range(40)]
    stored = (raw / "train-images-idx3-ubyte").read_bytes()[16:]
    assert ds.data[0, 0].flatten().tolist() == list(stored[:784])
    batch = first_batch(ds)
    assert batch.dtype == torch.float32 and batch.min() >= -1 and batch.max() <= 1


def test_mnist_resized_and_as_rgb(tmp_path):
    write_mnist(tmp_path)
    ds = vision.mnist(str(tmp_path), download=False, image_size=32, channels=3)
    assert ds.spec.shape == (3, 32, 32)
    assert tuple(first_batch(ds).shape) == (4, 3, 32, 32)


def test_cifar10_pickles_load_as_chw(tmp_path):
    folder = write_cifar10(tmp_path, per_batch=8)
    ds = vision.cifar10(str(tmp_path), download=False, verify_checksums=False)
    assert ds.spec.shape == (3, 32, 32) and len(ds) == 40  # five training batches
    import pickle

    with open(folder / "data_batch_1", "rb") as f:
        first = pickle.load(f)
    row = torch.as_tensor(first["data"][0]).view(3, 32, 32)
    assert torch.equal(ds.data[0], row)
    assert ds.labels[:8].tolist() == first["labels"]


def test_cifar10_checksums_are_verified_by_default(tmp_path):
    write_cifar10(tmp_path)
    with pytest.raises(DatasetError, match=r"files missing \(or failing their checksum\)"):
        vision.cifar10(str(tmp_path), download=False)


def test_celeba_layout_streams_64px_centre_crops(tmp_path):
    write_celeba(tmp_path, n=12)
    ds = vision.celeba(
        str(tmp_path), download=False, verify_checksums=False, in_memory=False, num_workers=0
    )
    assert isinstance(ds, StreamingDataset)
    assert ds.spec.shape == (3, 64, 64) and len(ds) == 8  # the train split
    assert ds.labels.tolist() == [i % 3 + 1 for i in range(8)]
    batch = first_batch(ds)
    assert tuple(batch.shape) == (4, 3, 64, 64) and batch.min() >= -1 and batch.max() <= 1
    both = vision.celeba(str(tmp_path), download=False, verify_checksums=False, split="all")
    assert isinstance(both, InMemoryDataset) and len(both) == 12  # small enough for memory


@pytest.mark.parametrize("classes", [["cats", "dogs"], None])
def test_image_folder_any_size_resized_and_cropped(tmp_path, classes):
    root = write_image_folder(tmp_path / "imgs", classes, n=6)
    ds = vision.image_folder(str(root), image_size=24, num_workers=0)
    assert ds.spec.shape == (3, 24, 24)
    assert len(ds) == (12 if classes else 6)
    assert ds.labels.tolist() == ([0] * 6 + [1] * 6 if classes else [0] * 6)
    gray = vision.image_folder(str(root), image_size=16, channels=1, in_memory=False, num_workers=0)
    assert tuple(first_batch(gray).shape) == (4, 1, 16, 16)


def test_image_folder_reads_each_image_once_through_symlink_loops_and_links(tmp_path):
    root = write_image_folder(tmp_path / "imgs", ["cats", "dogs"], n=2)
    (root / "cats" / "loop").symlink_to(root / "cats")  # a folder that contains itself
    (root / "dogs" / "up").symlink_to(root)  # ... and one that leads back to the root
    (root / "dogs" / "same.png").symlink_to(next((root / "dogs").glob("*.png")))
    ds = vision.image_folder(str(root), image_size=16, num_workers=0)
    assert len(ds) == 4 and ds.labels.tolist() == [0, 0, 1, 1]
    flat = tmp_path / "flat"
    write_image_folder(flat, None, n=2)
    (flat / "again.png").symlink_to(next(flat.glob("*.png")))
    assert len(vision.image_folder(str(flat), image_size=16, num_workers=0)) == 2


def test_image_folder_scales_16_bit_grey_to_8_bits_and_refuses_float_pixels(tmp_path):
    import numpy as np
    from PIL import Image

    root = tmp_path / "deep"
    root.mkdir()
    values = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    Image.fromarray(values).save(root / "grey16.png")
    assert Image.open(root / "grey16.png").mode.startswith("I")
    ds = vision.image_folder(str(root), image_size=32, channels=1, num_workers=0)
    got = ds.data[0, 0].to(torch.int64)
    want = torch.from_numpy(np.rint(values / 257.0).astype(np.int64))
    assert (got - want).abs().max() <= 1 and got.max() == 255 and got.min() == 0
    assert (got == 255).float().mean() < 0.01  # not clipped to white
    Image.fromarray(np.zeros((8, 8), dtype=np.float32)).save(tmp_path / "float.tiff")
    (root / "grey16.png").unlink()
    (tmp_path / "float.tiff").rename(root / "float.tiff")
    with pytest.raises(DatasetError, match=r"could not read image .*float.tiff.*floating-point"):
        vision.image_folder(str(root), num_workers=0)


def test_memory_decision_follows_the_budget(tmp_path):
    write_mnist(tmp_path, n=40)
    assert isinstance(vision.mnist(str(tmp_path), download=False), InMemoryDataset)
    tiny_budget = vision.mnist(str(tmp_path), download=False, max_memory_mb=0.01, num_workers=0)
    assert isinstance(tiny_budget, StreamingDataset)
    assert tuple(first_batch(tiny_budget).shape) == (4, 1, 28, 28)


def test_missing_files_with_download_disabled(tmp_path):
    with pytest.raises(
        DatasetError, match=r"dataset=mnist: files missing .*MNIST/raw.*download=true"
    ):
        vision.mnist(str(tmp_path), download=False)


def test_failed_download_says_where_to_put_the_files(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(
        DatasetError, match=r"(?s)downloading them failed.*put .*cifar-10-batches-py"
    ):
        vision.cifar10(str(tmp_path), download=True)
    with pytest.raises(DatasetError, match=r"(?s)downloading them failed.*MNIST/raw"):
        vision.mnist(str(tmp_path), download=True)


def test_corrupt_files_are_named(tmp_path):
    raw = write_mnist(tmp_path)
    (raw / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 10)
    with pytest.raises(DatasetError, match=r"could not read the files in .*MNIST/raw"):
        vision.mnist(str(tmp_path), download=False)
    folder = write_cifar10(tmp_path)
    (folder / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match=r"dataset=cifar10: could not read the files"):
        vision.cifar10(str(tmp_path), download=False, verify_checksums=False)
    root = write_image_folder(tmp_path / "imgs", None, n=3)
    (root / "broken.png").write_bytes(b"\x89PNG truncated")
    with pytest.raises(DatasetError, match=r"could not read image .*broken.png"):
        vision.image_folder(str(root), num_workers=0)


def test_empty_and_wrong_image_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no images"):
        vision.image_folder(str(tmp_path / "empty"))
    with pytest.raises(DatasetError, match="is not a folder"):
        vision.image_folder(str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="dataset=image_folder needs dataset.root=PATH"):
        vision.image_folder(None)


def test_bad_options_name_the_key(tmp_path):
    write_mnist(tmp_path)
    with pytest.raises(ConfigError, match="dataset.channels=2"):
        vision.mnist(str(tmp_path), download=False, channels=2)
    with pytest.raises(ConfigError, match="dataset.in_memory='yes'"):
        vision.mnist(str(tmp_path), download=False, in_memory="yes")
    with pytest.raises(ConfigError, match="dataset.split='val'"):
        vision.celeba(str(tmp_path), split="val")


@pytest.mark.parametrize(
    "dataset,writer,extra",
    [
        ("mnist", write_mnist, ["model=dcgan", "model.g_width=8", "model.d_width=8"]),
        ("fashion_mnist", lambda r: write_mnist(r, folder="FashionMNIST"), []),
        (
            "cifar10",
            write_cifar10,
            ["dataset.verify_checksums=false", "model=dcgan", "model.g_width=8", "model.d_width=8"],
        ),
        (
            "celeba",
            write_celeba,
            ["dataset.verify_checksums=false", "dataset.in_memory=false", "dataset.num_workers=0"],
        ),
        (
            "image_folder",
            lambda r: write_image_folder(r, ["a", "b"], n=10),
            ["dataset.image_size=32"],
        ),
    ],
)
def test_short_training_run_on_each_format(tmp_path, dataset, writer, extra):
    writer(tmp_path / "data")
    overrides = [
        *FAST,
        f"dataset={dataset}",
        f"dataset.root={tmp_path / 'data'}",
        "train.batch_size=4",
        "loss=wgan_gp",
        *extra,
    ]
    if dataset != "image_folder":
        overrides.append("dataset.download=false")
    metrics = train(compose_cfg(overrides), tmp_path / "run")
    assert metrics["loss/d"] == metrics["loss/d"]
    assert "critic/wasserstein_estimate" in read_events(tmp_path / "run").Tags()["scalars"]
