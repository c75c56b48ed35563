"""Images in one sub-folder per class (``root/<class>/<image>``), e.g. rock-paper-scissors.

Reading PNG/JPEG needs Pillow (imported only here). The class list is the sorted sub-folder names of the
training root; a separate ``test_path`` with the same layout may be given, otherwise ``test_fraction`` of
the images (chosen with ``split_seed``) form the test split. ``meta["files"]`` records each folder read with
one SHA-256 over its images (:func:`cadence.data.files.describe_folder`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cadence.data.files import describe_folder
from cadence.data.splits import DatasetSplits, TensorPair
from cadence.data.tabular import split_train_test
from cadence.errors import ConfigError, require

__all__ = ["IMAGE_SUFFIXES", "load_image_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def _scan(root: Path, classes: list[str] | None) -> tuple[list[tuple[Path, int]], list[str]]:
    if not root.is_dir():
        raise ConfigError(f"image-folder path {root} is not a directory")
    found = sorted(
        child.name for child in root.iterdir() if child.is_dir() and not child.name.startswith(".")
    )
    if classes is None:
        classes = found
    elif set(found) - set(classes):
        raise ConfigError(f"{root}: class folders {sorted(set(found) - set(classes))} are not in {classes}")
    if len(classes) < 2:
        raise ConfigError(f"{root}: need one sub-folder per class (at least 2), found {found}")
    items = [
        (file, label)
        for label, name in enumerate(classes)
        if (root / name).is_dir()
        for file in sorted((root / name).rglob("*"))
        if file.suffix.lower() in IMAGE_SUFFIXES and file.is_file()
    ]
    if not items:
        raise ConfigError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) in its class folders")
    return items, classes


def _read(items: list[tuple[Path, int]], size: tuple[int, int] | None, mode: str) -> TensorPair:
    image_module = require("PIL.Image", "datasets", "reading PNG/JPEG images (image-folder)")
    arrays = []
    for file, _ in items:
        try:
            with image_module.open(file) as image:
                image = image.convert(mode)
                if size is not None:
                    image = image.resize((size[1], size[0]), image_module.Resampling.BILINEAR)
                arrays.append(np.asarray(image, dtype=np.uint8))
        except (OSError, ValueError, SyntaxError) as error:  # PIL raises these for broken files
            raise ConfigError(f"{file}: cannot read image ({error})") from error
    shapes = {array.shape for array in arrays}
    if len(shapes) > 1:
        raise ConfigError(
            f"images have different sizes {sorted(shapes)[:3]}...; give the data option resize = [H, W]"
        )
    stacked = np.stack(arrays).astype(np.float32) / 255.0
    inputs = torch.from_numpy(stacked)
    inputs = inputs.unsqueeze(1) if inputs.dim() == 3 else inputs.permute(0, 3, 1, 2).contiguous()
    return TensorPair(inputs, torch.tensor([label for _, label in items], dtype=torch.int64))


def load_image_folder(
    path: str | None = None,
    test_path: str | None = None,
    resize: int | list[int] | tuple[int, int] | None = None,
    channels: int = 3,
    test_fraction: float = 0.2,
    split_seed: int = 0,
) -> DatasetSplits:
    """Load ``path/<class>/*.png|jpg`` into memory as (N, C, H, W) floats in [0, 1].

    ``resize``: one size for square images or ``[H, W]``; needed when images differ in size.
    ``channels``: 3 (RGB) or 1 (grayscale).
    """
    if path is None:
        raise ConfigError("dataset image-folder needs the option path = 'DIR' (one sub-folder per class)")
    if channels not in (1, 3):
        raise ConfigError(f"data option channels must be 1 or 3, got {channels!r}")
    size: tuple[int, int] | None
    if resize is None:
        size = None
    elif isinstance(resize, int) and not isinstance(resize, bool):
        size = (resize, resize)
    elif isinstance(resize, (list, tuple)) and len(resize) == 2 and all(isinstance(s, int) for s in resize):
        size = (int(resize[0]), int(resize[1]))
    else:
        raise ConfigError(f"data option resize must be an integer or [height, width], got {resize!r}")
    mode = "RGB" if channels == 3 else "L"
    items, classes = _scan(Path(path).expanduser(), None)
    data = _read(items, size, mode)
    if test_path is not None:
        test_items, _ = _scan(Path(test_path).expanduser(), classes)
        train, test = data, _read(test_items, size, mode)
        if test.inputs.shape[1:] != train.inputs.shape[1:]:
            raise ConfigError(
                f"test images are {tuple(test.inputs.shape[1:])} but training images "
                f"{tuple(train.inputs.shape[1:])}; give the data option resize = [H, W]"
            )
    else:
        train, test = split_train_test(data.inputs, data.targets, test_fraction, split_seed)
    files = [describe_folder("image-folder:path", Path(path).expanduser(), IMAGE_SUFFIXES)]
    if test_path is not None:
        files.append(describe_folder("image-folder:test_path", Path(test_path).expanduser(), IMAGE_SUFFIXES))
    return DatasetSplits(
        train,
        test,
        len(classes),
        tuple(train.inputs.shape[1:]),
        "image-folder",
        {"classes": classes, "source": str(path), "files": files},
    )
