"""Tiny datasets written in the real on-disk formats torchvision reads."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def write_mnist(root: Path, n: int = 40, folder: str = "MNIST", seed: int = 0) -> Path:
    """IDX files as in the MNIST distribution: big-endian header, then raw uint8."""
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", n), ("t10k", max(n // 4, 1))):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        header = struct.pack(">IIII", 2051, count, 28, 28)
        (raw / f"{split}-images-idx3-ubyte").write_bytes(header + images.tobytes())
        (raw / f"{split}-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 2049, count) + labels.tobytes()
        )
    return raw


def write_cifar10(root: Path, per_batch: int = 8, seed: int = 0) -> Path:
    """Pickled batches: dicts with 'data' (N, 3072) uint8 rows (R, G, B planes) and 'labels'."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            "batch_label": name,
            "data": rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8),
            "labels": [int(v) for v in rng.integers(0, 10, size=per_batch)],
            "filenames": [f"{name}_{i}.png" for i in range(per_batch)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    names = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names, "num_cases_per_batch": per_batch, "num_vis": 3072}, f)
    return folder


def write_celeba(root: Path, n: int = 12, seed: int = 0) -> Path:
    """CelebA's layout: aligned JPEGs (178x218) and the space-separated annotation files."""
    rng = np.random.default_rng(seed)
    base = root / "celeba"
    images = base / "img_align_celeba"
    images.mkdir(parents=True, exist_ok=True)
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    for name in names:
        pixels = rng.integers(0, 256, size=(218, 178, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / name, quality=90)
    split = [0 if i < n - 4 else (1 if i < n - 2 else 2) for i in range(n)]
    (base / "list_eval_partition.txt").write_text(
        "".join(f"{m} {s}\n" for m, s in zip(names, split, strict=True))
    )
    (base / "identity_CelebA.txt").write_text(
        "".join(f"{m} {i % 3 + 1}\n" for i, m in enumerate(names))
    )
    attrs = ["Male", "Smiling"]
    (base / "list_attr_celeba.txt").write_text(
        f"{n}\n{' '.join(attrs)}\n" + "".join(f"{m} 1 -1\n" for m in names)
    )
    (base / "list_bbox_celeba.txt").write_text(
        f"{n}\nimage_id x_1 y_1 width height\n" + "".join(f"{m} 95 71 226 313\n" for m in names)
    )
    (base / "list_landmarks_align_celeba.txt").write_text(
        f"{n}\nlefteye_x lefteye_y righteye_x righteye_y\n"
        + "".join(f"{m} 69 109 106 113\n" for m in names)
    )
    return base


def write_image_folder(root: Path, classes: list[str] | None, n: int = 6, seed: int = 0) -> Path:
    """PNG and JPEG files of assorted sizes and modes, in class subfolders or flat."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    targets = [root / c for c in classes] if classes else [root]
    for t, folder in enumerate(targets):
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            h, w = int(rng.integers(20, 90)), int(rng.integers(20, 90))
            if i % 3 == 0:
                img = Image.fromarray(rng.integers(0, 256, size=(h, w), dtype=np.uint8))
            else:
                img = Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8))
            img.save(folder / f"img_{t}_{i}.{'png' if i % 2 else 'jpg'}")
    return root
