"""``--data imagefolder:DIR``: a folder of images, one subfolder per class, as a Data.

The layout is torchvision's ``ImageFolder``: ``DIR/<class>/<image>``, classes numbered in the
sorted order of their folder names. A ``DIR/train`` and a ``DIR/test`` (or ``DIR/val``) holding
such class folders are the two splits; otherwise the same images serve both. Every image is
converted to RGB, its shorter side resized to ``resize`` pixels, centre-cropped to
``size x size`` and normalised per channel -- the evaluation transform of timm and torchvision
(resize to ``size / crop_pct``, centre crop). The whole folder is held in memory like every
other source, and the analysis subset is drawn from it by the same rule (``--samples``,
``--subset-seed``).

The preprocessing comes from the model, so that a pretrained model sees the inputs it was
trained on:

* ``timm:NAME`` -- timm's ``pretrained_cfg`` of the architecture (``input_size``, ``crop_pct``,
  ``interpolation``, ``mean``, ``std``), read from timm's registry: nothing is downloaded;
* ``torchvision:NAME`` -- the transforms of the architecture's default weights
  (``resize_size``, ``crop_size``, ``mean``, ``std``);
* a Hugging Face model folder -- its ``preprocessor_config.json`` (``size``, ``crop_size``,
  ``image_mean``, ``image_std``);
* otherwise :data:`DEFAULT`, ImageNet's statistics at 224 pixels, and the log says so.

``--image-size`` replaces the crop size (the resize keeps the model's ratio), ``--mean`` and
``--std`` the normalisation. :meth:`Preprocessing.describe` is what the result records: it is
part of the data's name (``imagefolder:DIR [224 px ...]``), stored as the ``dataset`` of every
result.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from landscape.data import Data
from landscape.errors import UserError

log = logging.getLogger("landscape.loading")

PREFIX = "imagefolder:"
# torchvision's ImageFolder extensions (torchvision.datasets.folder.IMG_EXTENSIONS).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
TEST_FOLDERS = ("test", "val")
MAX_BYTES = 8 << 30  # the float32 tensors of all images; beyond, subsample the folder first


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes an input: resize the shorter side, centre crop, normalise."""

    size: int
    resize: int
    interpolation: str  # "bilinear", "bicubic", "nearest"
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str  # where the values come from

    def describe(self) -> str:
        mean = ",".join(f"{m:.4g}" for m in self.mean)
        std = ",".join(f"{s:.4g}" for s in self.std)
        return (
            f"{self.size} px (resize {self.resize} {self.interpolation}, centre crop), "
            f"mean {mean}, std {std}, from {self.source}"
        )


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT = Preprocessing(224, 256, "bilinear", IMAGENET_MEAN, IMAGENET_STD, "defaults")


def is_imagefolder_spec(spec: str | None) -> bool:
    return bool(spec) and spec.startswith(PREFIX)


def model_preprocessing(arch: str | None, model_folder: str | None) -> Preprocessing:
    """The evaluation preprocessing of the model ``arch`` (or its folder), else DEFAULT."""
    found = None
    if arch and arch.startswith("timm:"):
        found = _timm(arch.split(":", 1)[1])
    elif arch and arch.startswith("torchvision:"):
        found = _torchvision(arch.split(":", 1)[1])
    if found is None and model_folder:
        found = _hf_folder(Path(model_folder))
    if found is None:
        log.info(
            "imagefolder: the model does not say how its images were preprocessed; using "
            "%s (--image-size, --mean, --std change it)",
            DEFAULT.describe(),
        )
        return DEFAULT
    return found


def _timm(name: str) -> Preprocessing | None:
    try:
        import timm
    except ImportError:
        return None
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        return None
    cfg = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    size = int(cfg.get("input_size", (3, 224, 224))[-1])
    crop_pct = float(cfg.get("crop_pct") or 0.875)
    return Preprocessing(
        size=size,
        resize=int(size / crop_pct),  # timm's rule (math.floor)
        interpolation=str(cfg.get("interpolation") or "bilinear"),
        mean=tuple(float(v) for v in cfg.get("mean", IMAGENET_MEAN)),
        std=tuple(float(v) for v in cfg.get("std", IMAGENET_STD)),
        source=f"timm pretrained_cfg of {name}",
    )


def _torchvision(name: str) -> Preprocessing | None:
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(name)
    except (ValueError, KeyError):
        return None
    default = getattr(weights, "DEFAULT", None)
    if default is None:
        return None
    transform = default.transforms()  # builds a transform object only; no download
    crop, resize = getattr(transform, "crop_size", None), getattr(transform, "resize_size", None)
    if not crop or not resize:
        return None
    return Preprocessing(
        size=int(crop[0]),
        resize=int(resize[0]),
        interpolation=str(transform.interpolation.value),
        mean=tuple(float(v) for v in transform.mean),
        std=tuple(float(v) for v in transform.std),
        source=f"torchvision {default}",
    )


def _hf_folder(folder: Path) -> Preprocessing | None:
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return None
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not readable JSON: {exc}") from exc

    def pixels(value: Any) -> int | None:
        if isinstance(value, int):
            return value
        if isinstance(value, dict):
            for key in ("shortest_edge", "height"):
                if isinstance(value.get(key), int):
                    return value[key]
        return None

    resize = pixels(cfg.get("size"))
    size = pixels(cfg.get("crop_size")) if cfg.get("do_center_crop") else None
    size = size or resize
    if size is None:
        return None
    return Preprocessing(
        size=size,
        resize=resize or size,
        interpolation={0: "nearest", 2: "bilinear", 3: "bicubic"}.get(
            cfg.get("resample"), "bilinear"
        ),
        mean=tuple(float(v) for v in cfg.get("image_mean", IMAGENET_MEAN)),
        std=tuple(float(v) for v in cfg.get("image_std", IMAGENET_STD)),
        source=f"{path.name} of {folder}",
    )


def with_image_size(prep: Preprocessing, size: int | None) -> Preprocessing:
    """``prep`` cropping to ``size`` (``--image-size``), resizing in the model's ratio."""
    if size is None:
        return prep
    return replace(
        prep,
        size=size,
        resize=max(size, round(size * prep.resize / prep.size)),
        source=f"{prep.source}, --image-size {size}",
    )


def load_image_folder(spec: str, prep: Preprocessing) -> Data:
    """The images under ``imagefolder:DIR`` (see the module docstring), preprocessed by ``prep``."""
    root = Path(spec[len(PREFIX) :])
    if not root.is_dir():
        raise UserError(f"--data {spec}: {root} is not a folder")
    test_root = next((root / n for n in TEST_FOLDERS if (root / n).is_dir()), None)
    if (root / "train").is_dir() and test_root is not None:
        train_files, classes = _listing(root / "train", spec)
        test_files, test_classes = _listing(test_root, spec)
        unknown = sorted(set(test_classes) - set(classes))
        if unknown:
            raise UserError(
                f"--data {spec}: {test_root.name}/ has classes that train/ lacks: "
                f"{', '.join(unknown[:5])}"
            )
        test_files = [(path, classes.index(test_classes[label])) for path, label in test_files]
    else:
        train_files, classes = _listing(root, spec)
        test_files = None
    count = len(train_files) + len(test_files or [])
    needed = count * len(prep.mean) * prep.size * prep.size * 4
    if needed > MAX_BYTES:
        raise UserError(
            f"--data {spec}: {count} images at {prep.size} px need {needed / 2**30:.1f} GiB in "
            f"memory (at most {MAX_BYTES / 2**30:.0f}); copy a subset of the folder"
        )
    train_x, train_y = _read(train_files, prep, spec)
    test_x, test_y = (train_x, train_y) if test_files is None else _read(test_files, prep, spec)
    return Data(
        name=f"{PREFIX}{root} [{prep.describe()}]",
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        num_classes=len(classes),
        input_shape=tuple(train_x.shape[1:]),
        mean=prep.mean,
        std=prep.std,
        augmentation="none",
    )


def _listing(folder: Path, spec: str) -> tuple[list[tuple[Path, int]], list[str]]:
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise UserError(
            f"--data {spec}: {folder} has no class subfolders (DIR/<class>/<image>, as "
            "torchvision's ImageFolder)"
        )
    files = [
        (path, label)
        for label, name in enumerate(classes)
        for path in sorted((folder / name).rglob("*"))
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS
    ]
    if not files:
        raise UserError(
            f"--data {spec}: no images ({', '.join(IMAGE_EXTENSIONS)}) in the class folders "
            f"of {folder}"
        )
    return files, classes


def _read(files: list[tuple[Path, int]], prep: Preprocessing, spec: str):
    from PIL import Image, UnidentifiedImageError

    def images():
        for path, _ in files:
            try:
                with Image.open(path) as image:
                    image.load()
                    yield image
            except (OSError, UnidentifiedImageError) as exc:
                raise UserError(f"--data {spec}: cannot read image {path}: {exc}") from exc

    inputs = preprocess_images(images(), len(files), prep)
    return inputs, torch.tensor([label for _, label in files], dtype=torch.int64)


def preprocess_images(images, count: int, prep: Preprocessing) -> torch.Tensor:
    """``count`` PIL images as one normalised ``(count, 3, size, size)`` float32 tensor."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    if len(prep.mean) != 3 or len(prep.std) != 3:
        raise UserError("images are read as RGB: --mean and --std need 3 values")
    mode = InterpolationMode(prep.interpolation)
    mean = torch.tensor(prep.mean).view(-1, 1, 1)
    std = torch.tensor(prep.std).view(-1, 1, 1)
    inputs = torch.empty(count, 3, prep.size, prep.size)
    for i, image in enumerate(images):
        # Resized as a PIL image, as torchvision's and timm's evaluation transforms do (the
        # same 8-bit rounding, so the same inputs).
        image = TF.resize(image.convert("RGB"), [prep.resize], interpolation=mode)
        pixels = TF.pil_to_tensor(TF.center_crop(image, [prep.size, prep.size]))
        inputs[i] = (pixels.float() / 255.0 - mean) / std
    return inputs
