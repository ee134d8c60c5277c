"""Real image datasets through torchvision: mnist, fashion_mnist, cifar10, celeba, image_folder.

Every dataset goes through torchvision's own dataset class, so files in the official on-disk
formats are read by the official code. Images become uint8 tensors of the configured size
(resize, then centre crop) and channel count; the trainer maps them to [-1, 1] on the device.
A dataset that fits in `max_memory_mb` is held in memory as one tensor (batches by index);
a larger one streams through a DataLoader. Labels are kept for metrics.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision import datasets, transforms
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.transforms.v2 import functional as TF

from gan_exp.data.base import DataSpec, GANDataset, InMemoryDataset, StreamingDataset
from gan_exp.errors import AUTO_BOOL, ConfigError, DatasetError, check_choice, worker_errors
from gan_exp.sweep import current_slot
from gan_exp.validation import check_value

log = logging.getLogger(__name__)


def usable_workers(requested: int) -> int:
    """DataLoader workers, capped at the machine's cores (more only adds contention).

    Inside a joblib sweep job (hydra/launcher=parallel) DataLoader workers cannot start (the
    job already runs in one of joblib's worker processes): data is then read in the job's own
    process, with a warning saying what to use for parallel loading.
    """
    check_value("dataset.num_workers", requested)
    if requested > 0 and current_slot().launcher == "joblib":
        log.warning(
            "dataset.num_workers=%d: DataLoader workers cannot start inside a joblib sweep job "
            "(hydra/launcher=parallel); reading in the job's own process. For parallel "
            "loading use hydra/launcher=local or slurm, or set dataset.num_workers=0 to "
            "silence this.", requested,
        )
        return 0
    return min(requested, os.cpu_count() or 1)


def _check_common(name: str, image_size: int, channels: int, in_memory: Any) -> None:
    check_value("dataset.image_size", image_size)
    check_choice("dataset.channels", channels, (1, 3))
    check_choice("dataset.in_memory", in_memory, AUTO_BOOL)


def to_mode(img: Any, mode: str) -> Any:
    """`img` in 8-bit `mode` ("L" or "RGB"). PIL's own convert clips 16-bit grey values above
    255 to white; they are scaled to 8 bits instead (v / 257, rounded). 32-bit integer and
    float images have no agreed 8-bit scale and are refused (the caller names the file)."""
    from PIL import Image

    if img.mode.startswith("I;16") or img.mode == "I":
        values = np.asarray(img, dtype=np.int64)
        if img.mode == "I" and (values.min() < 0 or values.max() > 65535):
            raise ValueError("32-bit integer pixels outside 0-65535: convert it to 8 or 16 bits")
        img = Image.fromarray(np.rint(values / 257.0).astype(np.uint8), mode="L")
    elif img.mode == "F":
        raise ValueError("floating-point pixels: convert it to an 8- or 16-bit image")
    return img.convert(mode)


def pil_to_uint8(image_size: int, channels: int) -> Callable:
    """PIL image -> (C, S, S) uint8: mode, shorter side resized to S, centre crop S x S."""
    mode = "L" if channels == 1 else "RGB"
    return transforms.Compose(
        [
            transforms.Lambda(functools.partial(to_mode, mode=mode)),
            transforms.Resize(image_size, antialias=True),
            transforms.CenterCrop(image_size),
            transforms.PILToTensor(),
        ]
    )


def adapt_uint8(images: Tensor, image_size: int, channels: int, chunk: int = 4096) -> Tensor:
    """(N, C, H, W) uint8 -> (N, channels, S, S) uint8: the tensor path of `pil_to_uint8`."""
    if images.shape[1] != channels:
        if channels == 3:
            images = images.expand(-1, 3, -1, -1)
        else:  # ITU-R 601 luma, as PIL's convert("L")
            weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            images = (images.float() * weights).sum(1, keepdim=True).round().to(torch.uint8)
    if images.shape[-2:] != (image_size, image_size):
        out = []
        for part in images.split(chunk):
            part = TF.resize(part, [image_size], antialias=True)
            out.append(TF.center_crop(part, [image_size, image_size]))
        images = torch.cat(out)
    return images.contiguous()


def _materialise(source: Dataset, num_workers: int) -> tuple[Tensor, Tensor]:
    """Read a whole uint8-image dataset once into (images, labels) tensors."""
    loader = DataLoader(source, batch_size=256, num_workers=num_workers, shuffle=False)
    images, labels = [], []
    with worker_errors():
        for x, y in loader:
            images.append(x)
            labels.append(torch.as_tensor(y))
    return torch.cat(images), torch.cat(labels)


def _fits(n: int, shape: tuple[int, ...], in_memory: Any, max_memory_mb: float) -> bool:
    if in_memory != "auto":
        return bool(in_memory)
    return n * math.prod(shape) <= max_memory_mb * 2**20


def _finish(
    name: str,
    source: Dataset,
    labels: Tensor,
    shape: tuple[int, ...],
    in_memory: Any,
    max_memory_mb: float,
    num_workers: int,
    size: int | None,
    array: Callable[[], Tensor] | None = None,
) -> GANDataset:
    """In memory when it fits (from `array()` when the dataset already holds one), else stream.

    `size` keeps only the first `size` samples (quick experiments on a slice of the data).
    """
    spec = DataSpec(shape=shape, bounded=True)
    num_workers = usable_workers(num_workers)
    total = int(labels.shape[0])
    if size is not None:
        check_value("dataset.size", size)
        keep = min(size, total)
        labels = labels[:keep]
        source = Subset(source, range(keep))
        if array is not None:
            full = array
            array = lambda: full()[:keep]  # noqa: E731
    sliced = size is not None and size < total
    n = int(labels.shape[0])
    dataset: GANDataset
    if not _fits(n, shape, in_memory, max_memory_mb):
        log.info("dataset=%s: %d images streamed from disk with %d workers", name, n, num_workers)
        dataset = StreamingDataset(name, source, labels, spec, num_workers=num_workers)
    else:
        if array is not None:
            images = adapt_uint8(array(), shape[1], shape[0])
        else:
            images, labels = _materialise(source, num_workers)
        dataset = InMemoryDataset(name, images, labels.long(), spec)
    dataset.unsliced = {"size": None} if sliced else None
    return dataset


def _open(
    name: str, folder: Path, expected: str, download: bool, open_fn: Callable[[], Any]
) -> Any:
    """Call torchvision's constructor, turning its failures into messages that say what to do."""
    try:
        return open_fn()
    except DatasetError:
        raise
    except Exception as err:  # torchvision raises RuntimeError, URLError, pickle and IO errors
        text = f"{type(err).__name__}: {err}"
        if "not found" in str(err).lower() and not download:
            raise DatasetError(
                f"dataset={name}: files missing (or failing their checksum) in {folder} "
                f"(expected {expected}). Put them "
                f"there, point dataset.root (or GAN_EXP_DATA) at the folder that holds them, or "
                f"set dataset.download=true."
            ) from err
        if download and _looks_like_download_failure(err):
            raise DatasetError(
                f"dataset={name}: the files are not in {folder} and downloading them failed "
                f"({text}). Download them on a machine with internet access and put {expected} "
                f"in {folder}, or point dataset.root (or GAN_EXP_DATA) at a folder that has them."
            ) from err
        raise DatasetError(
            f"dataset={name}: could not read the files in {folder} ({text}); they may be "
            f"corrupt or truncated. Delete them and download again, or replace them "
            f"(expected {expected})."
        ) from err


def _looks_like_download_failure(err: BaseException) -> bool:
    import urllib.error

    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, (urllib.error.URLError, ConnectionError, TimeoutError)):
            return True
        if "download" in str(seen).lower() or "mirror" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _root(root: str | None, name: str) -> Path:
    if not root:
        raise ConfigError(
            f"dataset={name} needs dataset.root=PATH (or paths.data_dir / GAN_EXP_DATA)"
        )
    return Path(os.path.expanduser(str(root))).resolve()


def _from_arrays(
    name: str,
    folder: Path,
    expected: str,
    download: bool,
    open_fn: Callable[[], Any],
    array_of: Callable[[Any], Tensor],
    image_size: int,
    channels: int,
    in_memory: Any,
    max_memory_mb: float,
    num_workers: int,
    size: int | None,
) -> GANDataset:
    """A torchvision dataset that holds its images as one array (`.data`) and `.targets`."""
    ds = _open(name, folder, expected, download, open_fn)
    ds.transform = pil_to_uint8(image_size, channels)
    shape = (channels, image_size, image_size)
    return _finish(
        name,
        ds,
        torch.as_tensor(ds.targets),
        shape,
        in_memory,
        max_memory_mb,
        num_workers,
        size,
        array=lambda: array_of(ds),
    )


def _mnist_like(
    cls: type[datasets.MNIST],
    name: str,
    root: str,
    download: bool,
    image_size: int,
    channels: int,
    in_memory: Any,
    max_memory_mb: float,
    num_workers: int,
    size: int | None,
) -> GANDataset:
    _check_common(name, image_size, channels, in_memory)
    base = _root(root, name)
    folder = base / cls.__name__ / "raw"
    expected = (
        "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
        "t10k-labels-idx1-ubyte (uncompressed IDX files; their .gz archives also work with "
        "dataset.download=true)"
    )
    return _from_arrays(
        name,
        folder,
        expected,
        download,
        lambda: cls(str(base), train=True, download=download),
        lambda ds: ds.data.unsqueeze(1),
        image_size,
        channels,
        in_memory,
        max_memory_mb,
        num_workers,
        size,
    )


def mnist(
    root: str,
    download: bool = True,
    image_size: int = 28,
    channels: int = 1,
    in_memory: Any = "auto",
    max_memory_mb: float = 2048,
    num_workers: int = 2,
    size: int | None = None,
    name: str = "mnist",
) -> GANDataset:
    """MNIST training split (60,000 digits), read from `root/MNIST/raw`."""
    return _mnist_like(datasets.MNIST, **locals())


def fashion_mnist(
    root: str,
    download: bool = True,
    image_size: int = 28,
    channels: int = 1,
    in_memory: Any = "auto",
    max_memory_mb: float = 2048,
    num_workers: int = 2,
    size: int | None = None,
    name: str = "fashion_mnist",
) -> GANDataset:
    """Fashion-MNIST training split (60,000 images), read from `root/FashionMNIST/raw`."""
    return _mnist_like(datasets.FashionMNIST, **locals())


def _without_checksums(cls: type, **file_lists: Any) -> type:
    """A subclass whose file lists carry no MD5, so only the files' presence is checked.

    For files re-packed or produced elsewhere (and for tests with tiny files); the parsing is
    still torchvision's own.
    """
    return type(cls.__name__, (cls,), file_lists)


def cifar10(
    root: str,
    download: bool = True,
    verify_checksums: bool = True,
    image_size: int = 32,
    channels: int = 3,
    in_memory: Any = "auto",
    max_memory_mb: float = 2048,
    num_workers: int = 2,
    size: int | None = None,
    name: str = "cifar10",
) -> GANDataset:
    """CIFAR-10 training batches (50,000 images), read from `root/cifar-10-batches-py`."""
    _check_common(name, image_size, channels, in_memory)
    base = _root(root, name)
    cls = datasets.CIFAR10
    if not verify_checksums:
        cls = _without_checksums(
            cls,
            train_list=[[f, None] for f, _ in cls.train_list],
            test_list=[[f, None] for f, _ in cls.test_list],
            meta={**cls.meta, "md5": None},
        )
    folder = base / datasets.CIFAR10.base_folder
    expected = "data_batch_1 ... data_batch_5, test_batch and batches.meta (python pickles)"
    return _from_arrays(
        name,
        folder,
        expected,
        download,
        lambda: cls(str(base), train=True, download=download),
        lambda ds: torch.from_numpy(ds.data).permute(0, 3, 1, 2),
        image_size,
        channels,
        in_memory,
        max_memory_mb,
        num_workers,
        size,
    )


class _ImagesWithLabels(Dataset):
    """CelebA's images with an integer label (the identity), reading errors naming the file."""

    def __init__(self, ds: datasets.CelebA, labels: Tensor, transform: Callable) -> None:
        self.ds, self.labels, self.transform = ds, labels, transform
        self.folder = Path(ds.root) / ds.base_folder / "img_align_celeba"

    def __len__(self) -> int:
        return len(self.ds.filename)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        path = self.folder / self.ds.filename[index]
        return _load_image(path, self.transform), int(self.labels[index])


def celeba(
    root: str,
    download: bool = True,
    verify_checksums: bool = True,
    split: str = "train",
    image_size: int = 64,
    channels: int = 3,
    in_memory: Any = "auto",
    max_memory_mb: float = 2048,
    num_workers: int = 4,
    size: int | None = None,
    name: str = "celeba",
) -> GANDataset:
    """CelebA aligned faces, resized so the shorter side is `image_size`, centre-cropped square.

    Labels are the identity numbers (CelebA has no classes). 64 px is the usual GAN setting.
    """
    _check_common(name, image_size, channels, in_memory)
    splits = ("train", "valid", "test", "all")
    check_choice("dataset.split", split, splits)
    base = _root(root, name)
    cls = datasets.CelebA
    if not verify_checksums:
        cls = _without_checksums(cls, file_list=[(i, None, f) for i, _, f in cls.file_list])
    folder = base / datasets.CelebA.base_folder
    expected = (
        "img_align_celeba/ (the JPEGs), list_eval_partition.txt, identity_CelebA.txt, "
        "list_attr_celeba.txt, list_bbox_celeba.txt and list_landmarks_align_celeba.txt"
    )
    ds = _open(
        name,
        folder,
        expected,
        download,
        lambda: cls(str(base), split=split, target_type="identity", download=download),
    )
    labels = ds.identity[:, 0].long()
    source = _ImagesWithLabels(ds, labels, pil_to_uint8(image_size, channels))
    shape = (channels, image_size, image_size)
    return _finish(name, source, labels, shape, in_memory, max_memory_mb, num_workers, size)


def _load_image(path: Path, transform: Callable) -> Tensor:
    """One image file through `transform`, in its own mode (torchvision's default loader
    converts to 8-bit RGB first, clipping 16-bit grey); errors name the file."""
    from PIL import Image

    try:
        with open(path, "rb") as f:
            image = Image.open(f)
            image.load()
        return transform(image)
    except Exception as err:
        raise DatasetError(f"could not read image {path}: {type(err).__name__}: {err}") from err


def image_files(folder: Path, recursive: bool = True, seen: tuple[set, set] | None = None
                ) -> list[Path]:
    """The image files under `folder`, sorted, each read once: symlinks are followed, but a
    folder is entered once (a symlink loop would repeat it until the OS gives up) and a file
    reached twice (a link to another image) is taken once. `seen` (folders, files) carries
    what earlier calls took, so that class folders do not share images either."""
    seen_dirs, seen_files = seen if seen is not None else (set(), set())
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        info = os.stat(dirpath)
        dirnames.sort()
        if (info.st_dev, info.st_ino) in seen_dirs or not recursive and dirpath != str(folder):
            dirnames[:] = []
            continue
        seen_dirs.add((info.st_dev, info.st_ino))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            real = os.path.realpath(path)
            if path.suffix.lower() in IMG_EXTENSIONS and real not in seen_files:
                seen_files.add(real)
                found.append(path)
    return found


class ImageFiles(Dataset):
    """Image files with their labels: class subfolders (ImageFolder's layout: labels in sorted
    folder order) or one flat folder (label 0). Reading errors name the file."""

    def __init__(self, root: Path, transform: Callable) -> None:
        classes = sorted(p for p in root.iterdir() if p.is_dir() and image_files(p))
        if classes:
            seen: tuple[set, set] = (set(), set())
            per_class = [image_files(folder, seen=seen) for folder in classes]
            files = [(f, label) for label, fs in enumerate(per_class) for f in fs]
        else:
            files = [(f, 0) for f in image_files(root, recursive=False)]
        self.files = [f for f, _ in files]
        self.targets = [label for _, label in files]
        self.classes = [p.name for p in classes]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return _load_image(self.files[index], self.transform), self.targets[index]


def image_folder(
    root: str | None = None,
    image_size: int = 64,
    channels: int = 3,
    in_memory: Any = "auto",
    max_memory_mb: float = 2048,
    num_workers: int = 2,
    size: int | None = None,
    name: str = "image_folder",
) -> GANDataset:
    """Any folder of images, any resolution: class subfolders become labels (ImageFolder's
    layout), or a flat folder of images gets label 0. Resized and centre-cropped to
    `image_size`."""
    _check_common(name, image_size, channels, in_memory)
    base = _root(root, name)
    if not base.is_dir():
        raise DatasetError(f"dataset.root={base} is not a folder (dataset={name})")
    try:
        source = ImageFiles(base, pil_to_uint8(image_size, channels))
    except OSError as err:
        raise DatasetError(f"dataset.root={base}: {err.strerror or err} ({err.filename})") from err
    labels = torch.as_tensor(source.targets, dtype=torch.long)
    if labels.numel() == 0:
        raise DatasetError(
            f"dataset.root={base} holds no images (looked for {', '.join(IMG_EXTENSIONS)} directly "
            f"in it or in class subfolders)"
        )
    shape = (channels, image_size, image_size)
    return _finish(name, source, labels, shape, in_memory, max_memory_mb, num_workers, size)
