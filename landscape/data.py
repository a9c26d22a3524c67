"""Datasets as in-memory tensors, whole-batch augmentation, batching and fixed analysis subsets.

Everything lives on one device as tensors: training augments whole batches there (as in
KellerJordan/cifar10-airbench) instead of per-sample PIL transforms in DataLoader workers.

Datasets
- ``digits``: scikit-learn's bundled 8x8 handwritten digits (1797 images, no download),
  a fixed stratified 80/20 train/test split (seed 0), normalised with the train split's statistics.
- ``mnist1d``: MNIST-1D (Greydanus 2020) generated here from our templates (landscape.mnist1d),
  4,000 training and 4,000 test sequences of 40 samples (shape (1, 40)), standardised with the
  train split's statistics: small models differ in test accuracy by more than the test set's
  resolution (one example = 0.025 %), which digits' 360 test images (0.28 %) cannot show.
- ``cifar10`` / ``cifar100`` (Krizhevsky 2009): the python-pickle on-disk format
  (``cifar-10-batches-py/``, ``cifar-100-python/``) under ``data_dir`` (default ``./data``),
  normalised with the usual per-channel constants; ``download=True`` fetches the archives
  through torchvision, and the files are then read here.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from landscape.errors import UserError

DATASETS = ("digits", "mnist1d", "cifar10", "cifar100")
AUGMENTATIONS = ("none", "crop-flip", "crop-flip-cutout")
DEFAULT_DATA_DIR = Path("data")

# Per-channel mean/std of the CIFAR training images in [0, 1] (the true std of all train pixels;
# the often-quoted (0.2023, 0.1994, 0.2010) is a std of per-image means and is not used here).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)

DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.2


@dataclass
class Data:
    """A dataset held in memory: normalised float32 images (N, C, H, W) and int64 labels."""

    name: str
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    num_classes: int
    input_shape: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augmentation: str = "none"

    def split(self, name: str) -> tuple[Tensor, Tensor]:
        """The (inputs, labels) of split ``"train"`` or ``"test"``."""
        if name == "train":
            return self.train_x, self.train_y
        if name == "test":
            return self.test_x, self.test_y
        raise UserError(f"unknown split {name!r}: use train or test")

    def to(self, device: torch.device | str) -> Data:
        """This dataset with every tensor moved to ``device`` (a new object; self is unchanged)."""
        move = {k: getattr(self, k).to(device) for k in ("train_x", "train_y", "test_x", "test_y")}
        return Data(**{**self.__dict__, **move})


def load_dataset(name: str, data_dir: str | Path | None = None, download: bool = False) -> Data:
    """Load ``digits``, ``cifar10`` or ``cifar100`` into memory (CPU tensors)."""
    key = name.lower().replace("-", "").replace("_", "")
    if key == "digits":
        return load_digits()
    if key == "mnist1d":
        return load_mnist1d()
    if key in ("cifar10", "cifar100"):
        return load_cifar(key, data_dir, download=download)
    raise UserError(f"unknown dataset {name!r}: use one of {', '.join(DATASETS)}")


# -------------------------------------------------------------------------------------- mnist1d

MNIST1D_TRAIN, MNIST1D_TEST = 4000, 4000
MNIST1D_SEEDS = (0, 1)  # train and test are drawn independently from the same recipe


def load_mnist1d(train: int = MNIST1D_TRAIN, test: int = MNIST1D_TEST) -> Data:
    """MNIST-1D (Greydanus 2020) from landscape.mnist1d: (N, 1, 40) float32, 10 classes."""
    from landscape.mnist1d import generate

    train_x, train_y = generate(train, MNIST1D_SEEDS[0])
    test_x, test_y = generate(test, MNIST1D_SEEDS[1])
    mean, std = float(train_x.mean()), float(train_x.std())

    def tensor(x: np.ndarray) -> Tensor:
        return torch.from_numpy(((x - mean) / std).astype(np.float32)).unsqueeze(1).contiguous()

    return Data(
        name="mnist1d",
        train_x=tensor(train_x),
        train_y=torch.from_numpy(train_y),
        test_x=tensor(test_x),
        test_y=torch.from_numpy(test_y),
        num_classes=10,
        input_shape=(1, train_x.shape[1]),
        mean=(mean,),
        std=(std,),
        augmentation="none",
    )


# --------------------------------------------------------------------------------------- digits


def load_digits() -> Data:
    """sklearn's 8x8 digits, values scaled to [0, 1], then standardised with train statistics.

    The split is stratified by class and fixed by ``DIGITS_SPLIT_SEED``, so every run and every
    analysis sees the same 1437 training and 360 test images.
    """
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    bunch = sklearn_digits()
    images = bunch.images.astype(np.float32) / 16.0  # pixel values are 0..16
    labels = bunch.target.astype(np.int64)
    index = np.arange(len(labels))
    train_idx, test_idx = train_test_split(
        index, test_size=DIGITS_TEST_FRACTION, random_state=DIGITS_SPLIT_SEED, stratify=labels
    )
    train_idx.sort()
    test_idx.sort()
    mean = float(images[train_idx].mean())
    std = float(images[train_idx].std())

    def tensors(idx: np.ndarray) -> tuple[Tensor, Tensor]:
        x = torch.from_numpy((images[idx] - mean) / std).unsqueeze(1).contiguous()
        return x, torch.from_numpy(labels[idx])

    train_x, train_y = tensors(train_idx)
    test_x, test_y = tensors(test_idx)
    return Data(
        name="digits",
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        num_classes=10,
        input_shape=(1, 8, 8),
        mean=(mean,),
        std=(std,),
        augmentation="none",
    )


# ---------------------------------------------------------------------------------------- CIFAR


@dataclass(frozen=True)
class _CifarLayout:
    folder: str  # the folder the official archive extracts to
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: str
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    torchvision_class: str


_CIFAR = {
    "cifar10": _CifarLayout(
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        "labels",
        10,
        CIFAR10_MEAN,
        CIFAR10_STD,
        "CIFAR10",
    ),
    "cifar100": _CifarLayout(
        "cifar-100-python",
        ("train",),
        ("test",),
        "fine_labels",
        100,
        CIFAR100_MEAN,
        CIFAR100_STD,
        "CIFAR100",
    ),
}


def load_cifar(name: str, data_dir: str | Path | None = None, *, download: bool = False) -> Data:
    """CIFAR-10/100 from the python-pickle files, normalised per channel; augmentation crop-flip."""
    layout = _CIFAR[name]
    root = Path(data_dir).expanduser() if data_dir is not None else DEFAULT_DATA_DIR
    folder = root if root.name == layout.folder else root / layout.folder
    expected = [folder / f for f in layout.train_files + layout.test_files]
    if download and not all(p.is_file() for p in expected):
        _download_cifar(layout.torchvision_class, folder.parent)
    if not folder.is_dir():
        raise UserError(
            f"{name} not found: no folder {folder} (looked under --data-dir {root}); "
            f"rerun with --download to fetch it, or put the extracted '{layout.folder}' "
            "folder there"
        )
    classes, mean, std = layout.num_classes, layout.mean, layout.std
    train_u8, train_y = read_cifar_batches(
        [folder / f for f in layout.train_files], layout.label_key, classes
    )
    test_u8, test_y = read_cifar_batches(
        [folder / f for f in layout.test_files], layout.label_key, classes
    )
    return Data(
        name=name,
        train_x=normalize(train_u8, mean, std),
        train_y=train_y,
        test_x=normalize(test_u8, mean, std),
        test_y=test_y,
        num_classes=classes,
        input_shape=(3, 32, 32),
        mean=mean,
        std=std,
        augmentation="crop-flip",
    )


def normalize(images_u8: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """uint8 (N, C, H, W) -> float32 ``(x / 255 - mean) / std`` per channel."""
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (images_u8.to(torch.float32).div_(255.0) - m).div_(s)


def read_cifar_batches(
    paths: list[Path], label_key: str, num_classes: int
) -> tuple[Tensor, Tensor]:
    """Read CIFAR pickle batches into uint8 images (N, 3, 32, 32) and int64 labels (N,)."""
    images, labels = [], []
    for path in paths:
        batch = _load_cifar_pickle(path)
        try:
            data = np.asarray(batch["data"])
            y = np.asarray(batch[label_key], dtype=np.int64)
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(
                f"{path} is not a CIFAR batch: expected keys 'data' and {label_key!r} ({exc}); "
                + _refetch_hint(path)
            ) from exc
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise UserError(
                f"{path} holds data of shape {data.shape} and dtype {data.dtype}, "
                "not uint8 (N, 3072); " + _refetch_hint(path)
            )
        if y.shape != (data.shape[0],) or (y.size and (y.min() < 0 or y.max() >= num_classes)):
            raise UserError(
                f"{path} has {y.size} labels for {data.shape[0]} images or labels outside "
                f"0..{num_classes - 1}; " + _refetch_hint(path)
            )
        images.append(data.reshape(-1, 3, 32, 32))  # rows are R plane, G plane, B plane, row-major
        labels.append(y)
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))


def _refetch_hint(path: Path) -> str:
    return f"delete {path.parent} and rerun with --download to fetch it again"


def _numpy_reconstruct():
    core = getattr(np, "_core", None) or np.core  # numpy 2 moved numpy.core to numpy._core
    return core.multiarray._reconstruct


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles only plain containers and numpy arrays: a CIFAR file cannot run code."""

    _allowed = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if name == "_reconstruct":
            return _numpy_reconstruct()
        if module == "_codecs":
            import codecs

            return codecs.encode
        return getattr(np, name)


def _load_cifar_pickle(path: Path) -> dict[str, object]:
    """One CIFAR batch file as a dict with str keys (the files use Python 2 byte-string keys)."""
    if not path.is_file():
        raise UserError(
            f"{path} is missing: the CIFAR folder is incomplete; rerun with --download to fetch it"
        )
    try:
        with open(path, "rb") as f:
            obj = _CifarUnpickler(f, encoding="bytes").load()
    except Exception as exc:  # any failure to parse means the file is damaged or not CIFAR
        raise UserError(
            f"{path} is not a readable CIFAR file ({type(exc).__name__}: {exc}); "
            + _refetch_hint(path)
        ) from exc
    if not isinstance(obj, dict):
        raise UserError(f"{path} is not a CIFAR batch (no dict inside); " + _refetch_hint(path))
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _download_cifar(tv_class: str, root: Path) -> None:
    """Fetch and extract the official archive into ``root`` (torchvision checks its MD5)."""
    try:
        import torchvision.datasets as tvd
    except ImportError as exc:
        raise UserError("--download needs torchvision: pip install torchvision") from exc
    root.mkdir(parents=True, exist_ok=True)
    try:
        getattr(tvd, tv_class)(root=str(root), train=True, download=True)
    except Exception as exc:  # network errors come in many types
        raise UserError(
            f"could not download {tv_class} into {root} ({type(exc).__name__}: {exc}); "
            "check the network or put the extracted files there yourself"
        ) from exc


# --------------------------------------------------------------------------------- augmentation


def augment_batch(
    x: Tensor,
    policy: str,
    generator: torch.Generator,
    *,
    padding: int = 4,
    cutout_size: int | None = None,
) -> Tensor:
    """Augment a whole batch (N, C, H, W) on its device; reproducible given ``generator``.

    Policies:
    - ``none``: ``x`` unchanged.
    - ``crop-flip``: zero-pad by ``padding`` pixels and crop back to H x W at a random offset per
      image, then flip horizontally with probability 1/2 (He et al. 2016, CIFAR).
    - ``crop-flip-cutout``: as above, then Cutout (DeVries & Taylor 2017): a square of side
      ``cutout_size`` (default H // 2, i.e. 16 on CIFAR) centred at a uniform random pixel,
      clipped at the border, is set to zero.

    The padding and the Cutout patch are zeros of the *normalised* input, i.e. the dataset mean
    colour (DeVries & Taylor cut out after normalising; torchvision pads black before normalising).
    Random numbers are drawn on the generator's device and moved to ``x``'s device, so a CPU
    generator gives the same augmentation on every device.
    """
    if policy == "none":
        return x
    if policy not in AUGMENTATIONS:
        raise UserError(f"unknown augmentation {policy!r}: use one of {', '.join(AUGMENTATIONS)}")
    x = random_crop(x, padding, generator)
    x = random_flip(x, generator)
    if policy == "crop-flip-cutout":
        x = cutout(x, cutout_size if cutout_size is not None else x.shape[-2] // 2, generator)
    return x


def _draw_int(high: int, n: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """n integers uniform in [0, high), drawn on the generator's device, returned on ``device``."""
    return torch.randint(0, high, (n,), generator=generator, device=generator.device).to(device)


def random_crop(x: Tensor, padding: int, generator: torch.Generator) -> Tensor:
    """Zero-pad by ``padding`` and take an H x W crop at an independent offset for each image.

    Vectorised with two ``gather`` calls (rows, then columns) instead of a loop over images.
    """
    n, c, h, w = x.shape
    if padding == 0:
        return x
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    dy = _draw_int(2 * padding + 1, n, generator, x.device)
    dx = _draw_int(2 * padding + 1, n, generator, x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device)).view(n, 1, h, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device)).view(n, 1, 1, w)
    out = padded.gather(2, rows.expand(n, c, h, padded.shape[3]))
    return out.gather(3, cols.expand(n, c, h, w))


def random_flip(x: Tensor, generator: torch.Generator) -> Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = _draw_int(2, x.shape[0], generator, x.device).bool().view(-1, 1, 1, 1)
    return torch.where(flip, x.flip(3), x)


def cutout(x: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """Zero a ``size`` x ``size`` square centred at a uniform random pixel of each image."""
    n, _, h, w = x.shape
    cy = _draw_int(h, n, generator, x.device).view(n, 1, 1)
    cx = _draw_int(w, n, generator, x.device).view(n, 1, 1)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    # Centre-aligned like the paper's code: rows cy - size//2 .. cy - size//2 + size - 1.
    top, left = cy - size // 2, cx - size // 2
    inside = (ys >= top) & (ys < top + size) & (xs >= left) & (xs < left + size)
    return x.masked_fill(inside.unsqueeze(1), 0.0)


# ------------------------------------------------------------------------------ batches, subsets


def batches(
    x: Tensor,
    y: Tensor,
    batch_size: int,
    *,
    shuffle: bool,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield (inputs, labels) mini-batches; a seeded permutation per call when ``shuffle``.

    The permutation is drawn on the generator's device (CPU by default) so that a seed gives the
    same order on every device.
    """
    if batch_size < 1:
        raise UserError(f"batch size must be positive, got {batch_size}")
    n = x.shape[0]
    if shuffle:
        gen_device = generator.device if generator is not None else torch.device("cpu")
        order = torch.randperm(n, generator=generator, device=gen_device).to(x.device)
    else:
        order = None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        if order is None:
            yield x[start : start + batch_size], y[start : start + batch_size]
        else:
            idx = order[start : start + batch_size]
            yield x[idx], y[idx]


def with_label_noise(data: Data, fraction: float, seed: int) -> Data:
    """``data`` with a seeded ``fraction`` of its *training* labels replaced by a different
    class, drawn uniformly from the other ``num_classes - 1``; test labels stay clean.

    Random-label noise as in Zhang et al. (ICLR 2017, "Understanding deep learning requires
    rethinking generalization") and the noisy-label benchmark of Foret et al. (ICLR 2021,
    "Sharpness-Aware Minimization", sec. 4), where SAM's accuracy gain over SGD is large.
    Exactly ``round(fraction * N)`` labels change; the same ``seed`` picks the same examples
    and classes (a generator of its own, so training's random streams are untouched).
    """
    if not 0 <= fraction < 1:
        raise UserError(f"--label-noise must be in [0, 1), got {fraction}")
    if fraction == 0:
        return data
    if data.num_classes < 2:
        raise UserError("--label-noise needs at least 2 classes")
    labels = data.train_y
    n = labels.shape[0]
    changed = round(fraction * n)
    generator = torch.Generator().manual_seed(seed)
    idx = torch.randperm(n, generator=generator)[:changed]
    # an offset in 1..C-1 modulo C: a uniformly drawn class other than the true one
    offset = torch.randint(1, data.num_classes, (changed,), generator=generator)
    noisy = labels.cpu().clone()
    noisy[idx] = (noisy[idx] + offset) % data.num_classes
    return Data(**{**data.__dict__, "train_y": noisy.to(labels.device)})


def fixed_subset(x: Tensor, y: Tensor, samples: int | None, seed: int) -> tuple[Tensor, Tensor]:
    """A fixed, seeded subset of ``samples`` examples kept in dataset order (no augmentation).

    ``samples=None`` or ``samples >= N`` gives everything, in order. Subsets with the same seed are
    nested: the first k of one seeded permutation, so a larger subset contains a smaller one.
    """
    n = x.shape[0]
    if samples is None or samples >= n:
        return x, y
    if samples < 1:
        raise UserError(f"--samples must be positive, got {samples}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    idx = perm[:samples].sort().values.to(x.device)
    return x[idx], y[idx]
