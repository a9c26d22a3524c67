"""Specification of landscape.data: datasets in memory, CIFAR reader, augmentation, batching."""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from landscape.data import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    augment_batch,
    batches,
    cutout,
    fixed_subset,
    load_dataset,
    random_crop,
    random_flip,
    with_label_noise,
)
from landscape.errors import UserError


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_digits_shapes_and_classes(digits):
    assert digits.name == "digits"
    assert digits.input_shape == (1, 8, 8) and digits.num_classes == 10
    assert digits.train_x.shape == (1437, 1, 8, 8) and digits.test_x.shape == (360, 1, 8, 8)
    assert digits.train_x.dtype == torch.float32 and digits.train_y.dtype == torch.int64
    assert digits.augmentation == "none"
    assert set(digits.train_y.tolist()) == set(range(10)) == set(digits.test_y.tolist())


def test_digits_split_is_normalised_with_train_statistics(digits):
    assert digits.train_x.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert digits.train_x.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)
    raw = torch.cat([digits.train_x, digits.test_x]) * digits.std[0] + digits.mean[0]
    assert raw.min().item() == pytest.approx(0.0, abs=1e-5)
    assert raw.max().item() == pytest.approx(1.0, abs=1e-5)


def test_digits_split_is_fixed_across_loads(digits):
    again = load_dataset("digits")
    assert torch.equal(again.train_x, digits.train_x) and torch.equal(again.test_y, digits.test_y)


def test_digits_train_and_test_are_disjoint_and_cover_the_dataset(digits):
    from sklearn.datasets import load_digits

    raw = torch.cat([digits.train_x, digits.test_x]) * digits.std[0] + digits.mean[0]
    pixels = torch.round(raw.flatten(1) * 16).to(torch.int64)
    train_rows = {tuple(r) for r in pixels[: len(digits.train_x)].tolist()}
    test_rows = {tuple(r) for r in pixels[len(digits.train_x) :].tolist()}
    # Distinct images only: the digits set contains no exact duplicates across the split.
    assert not (train_rows & test_rows)
    assert sorted(train_rows | test_rows) == sorted(
        {tuple(r) for r in load_digits().data.astype(np.int64).tolist()}
    )


def test_digits_split_is_stratified(digits):
    train_counts = torch.bincount(digits.train_y, minlength=10).float()
    test_counts = torch.bincount(digits.test_y, minlength=10).float()
    ratio = test_counts / (train_counts + test_counts)
    assert torch.all((ratio - 0.2).abs() < 0.02)


def test_split_accessor(digits):
    assert digits.split("train")[0] is digits.train_x
    assert digits.split("test")[1] is digits.test_y
    with pytest.raises(UserError, match="train or test"):
        digits.split("validation")


def test_unknown_dataset_lists_the_names():
    with pytest.raises(UserError, match="digits, mnist1d, cifar10, cifar100"):
        load_dataset("mnist")


# ------------------------------------------------------------------------------------- CIFAR


class Python2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 ``str`` (BINSTRING opcodes), as cPickle did when the
    official CIFAR archives were made; with numpy's Python 2 module name, this reproduces them."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_python2_string(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_python2_string
    dispatch[bytes] = save_python2_string


def python2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    Python2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")


def write_fake_cifar(
    root: Path, name: str, per_batch: int = 6, seed: int = 0, python2: bool = True
) -> dict:
    """Write a tiny CIFAR in the real on-disk format; return the images and labels written.

    ``python2=True`` writes the files as the official archives hold them (Python 2 pickles);
    ``False`` writes protocol-2 pickles from Python 3, as a user who re-saved them would.
    """
    rng = np.random.default_rng(seed)
    if name == "cifar10":
        folder, train, test, key, classes = (
            root / "cifar-10-batches-py",
            [f"data_batch_{i}" for i in range(1, 6)],
            ["test_batch"],
            b"labels",
            10,
        )
    else:
        folder, train, test, key, classes = (
            root / "cifar-100-python",
            ["train"],
            ["test"],
            b"fine_labels",
            100,
        )
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, files in (("train", train), ("test", test)):
        xs, ys = [], []
        for fname in files:
            data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
            labels = rng.integers(0, classes, per_batch).tolist()  # a list of ints, as on disk
            batch = {
                b"batch_label": b"fake",
                key: labels,
                b"data": data,
                b"filenames": [b"x.png"] * per_batch,
            }
            if name == "cifar100":
                batch[b"coarse_labels"] = [y // 5 for y in labels]
            raw = python2_pickle(batch) if python2 else pickle.dumps(batch, protocol=2)
            (folder / fname).write_bytes(raw)
            xs.append(data)
            ys += labels
        written[split] = (np.concatenate(xs), np.array(ys))
    return written


@pytest.mark.parametrize("python2", [True, False], ids=["python2-pickles", "python3-pickles"])
@pytest.mark.parametrize("name,classes", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_reader_round_trips_fake_files(tmp_path, name, classes, python2):
    written = write_fake_cifar(tmp_path, name, python2=python2)
    data = load_dataset(name, data_dir=tmp_path)
    n_train = 30 if name == "cifar10" else 6
    assert data.train_x.shape == (n_train, 3, 32, 32) and data.test_x.shape == (6, 3, 32, 32)
    assert data.num_classes == classes and data.input_shape == (3, 32, 32)
    assert data.augmentation == "crop-flip"
    for split in ("train", "test"):
        x, y = data.split(split)
        raw_x, raw_y = written[split]
        assert torch.equal(y, torch.from_numpy(raw_y))
        mean = torch.tensor(data.mean).view(1, 3, 1, 1)
        std = torch.tensor(data.std).view(1, 3, 1, 1)
        pixels = torch.round((x * std + mean) * 255).to(torch.uint8)
        assert torch.equal(pixels, torch.from_numpy(raw_x).view(-1, 3, 32, 32))


def test_cifar_rows_are_channel_planes(tmp_path):
    """A file row is 1024 red, then 1024 green, then 1024 blue values, each plane row-major."""
    write_fake_cifar(tmp_path, "cifar10", per_batch=1)
    folder = tmp_path / "cifar-10-batches-py"
    row = np.zeros((1, 3072), dtype=np.uint8)
    row[0, 1024 + 32 * 5 + 7] = 255  # green, row 5, column 7
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": row, b"labels": [3]}, f)
    x = load_dataset("cifar10", data_dir=tmp_path).test_x[0]
    bright = (
        x * torch.tensor(CIFAR10_STD).view(3, 1, 1) + torch.tensor(CIFAR10_MEAN).view(3, 1, 1)
    ) > 0.5
    assert bright.nonzero().tolist() == [[1, 5, 7]]


def test_cifar_data_dir_may_be_the_extracted_folder_itself(tmp_path):
    write_fake_cifar(tmp_path, "cifar10")
    data = load_dataset("cifar10", data_dir=tmp_path / "cifar-10-batches-py")
    assert data.train_x.shape[0] == 30


@pytest.mark.parametrize(
    "name,folder", [("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")]
)
def test_missing_cifar_folder_says_where_and_how(tmp_path, name, folder):
    with pytest.raises(UserError) as info:
        load_dataset(name, data_dir=tmp_path)
    message = str(info.value)
    assert str(tmp_path / folder) in message and "--download" in message
    assert "\n" not in message


@pytest.fixture
def fake_torchvision(monkeypatch):
    """torchvision.datasets whose CIFAR classes 'download' by writing fake files; records calls."""
    import sys
    import types

    calls = []

    def downloader(name):
        def fetch(root, train, download):
            calls.append((name, root, download))
            if Path(root).name == "offline":
                raise OSError("network unreachable")
            write_fake_cifar(Path(root), name)

        return fetch

    datasets = types.ModuleType("torchvision.datasets")
    datasets.CIFAR10, datasets.CIFAR100 = downloader("cifar10"), downloader("cifar100")
    package = types.ModuleType("torchvision")
    package.datasets = datasets
    monkeypatch.setitem(sys.modules, "torchvision", package)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", datasets)
    return calls


def test_download_fetches_only_when_missing_then_reads_the_files(tmp_path, fake_torchvision):
    data = load_dataset("cifar100", data_dir=tmp_path / "new", download=True)
    assert fake_torchvision == [("cifar100", str(tmp_path / "new"), True)]
    assert data.train_x.shape == (6, 3, 32, 32)
    load_dataset("cifar100", data_dir=tmp_path / "new", download=True)
    assert len(fake_torchvision) == 1  # present now: no second download


def test_download_refetches_an_incomplete_folder(tmp_path, fake_torchvision):
    write_fake_cifar(tmp_path, "cifar10")
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").unlink()
    assert load_dataset("cifar10", data_dir=tmp_path, download=True).train_x.shape[0] == 30
    assert len(fake_torchvision) == 1


def test_failed_download_is_a_user_error(tmp_path, fake_torchvision):
    with pytest.raises(UserError, match="could not download CIFAR10 into .*offline.*network"):
        load_dataset("cifar10", data_dir=tmp_path / "offline", download=True)


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(p.read_bytes()[:100]),  # truncated
        lambda p: p.write_bytes(b"not a pickle at all"),
        lambda p: p.write_bytes(
            pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]})
        ),
        lambda p: p.write_bytes(
            pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]})
        ),
        lambda p: p.write_bytes(pickle.dumps({b"images": np.zeros((2, 3072), np.uint8)})),
        lambda p: p.unlink(),
    ],
    ids=["truncated", "garbage", "wrong-shape", "label-range", "wrong-keys", "missing-file"],
)
def test_corrupt_cifar_file_is_a_user_error_naming_it(tmp_path, damage):
    write_fake_cifar(tmp_path, "cifar10")
    victim = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    damage(victim)
    with pytest.raises(UserError, match="data_batch_3.*--download"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_cifar_reader_refuses_pickles_that_would_run_code(tmp_path):
    write_fake_cifar(tmp_path, "cifar10")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(UserError, match="refusing to load builtins.print"):
        load_dataset("cifar10", data_dir=tmp_path)


# ------------------------------------------------------------------------------- augmentation


@pytest.fixture
def images():
    return torch.randn(16, 3, 12, 10, generator=gen(1))


@pytest.mark.parametrize("policy", ["none", "crop-flip", "crop-flip-cutout"])
def test_augmentation_keeps_shape_and_dtype(images, policy):
    out = augment_batch(images, policy, gen())
    assert out.shape == images.shape and out.dtype == images.dtype


@pytest.mark.parametrize("policy", ["crop-flip", "crop-flip-cutout"])
def test_augmentation_is_reproducible_with_the_same_seed(images, policy):
    a = augment_batch(images, policy, gen(7))
    b = augment_batch(images, policy, gen(7))
    c = augment_batch(images, policy, gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_augmentation_does_not_modify_its_input(images):
    before = images.clone()
    augment_batch(images, "crop-flip-cutout", gen())
    assert torch.equal(images, before)


def test_no_augmentation_returns_the_input(images):
    assert augment_batch(images, "none", gen()) is images


def test_unknown_policy_is_a_user_error(images):
    with pytest.raises(UserError, match="crop-flip-cutout"):
        augment_batch(images, "mixup", gen())


def test_crop_is_the_image_shifted_with_zero_fill():
    n, pad = 64, 4
    x = torch.arange(n * 2 * 6 * 7, dtype=torch.float64).view(n, 2, 6, 7) + 1  # no zeros inside
    out = random_crop(x, pad, gen(3))
    offsets = set()
    for i in range(n):
        # Recover the shift from where the image's top-left pixel went, then check every pixel.
        dy, dx = next(
            (dy, dx)
            for dy in range(-pad, pad + 1)
            for dx in range(-pad, pad + 1)
            if torch.equal(shift(x[i], dy, dx), out[i])
        )
        offsets.add((dy, dx))
    assert len(offsets) > 20  # offsets are drawn per image, not once per batch


def shift(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """img moved down by dy and right by dx, zeros where nothing moved in."""
    out = torch.zeros_like(img)
    h, w = img.shape[-2:]
    out[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = img[
        :, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def test_crop_without_padding_is_the_identity(images):
    assert torch.equal(random_crop(images, 0, gen()), images)


def test_flip_mirrors_about_half_the_images_left_right():
    x = torch.randn(400, 3, 5, 5, generator=gen(2))
    out = random_flip(x, gen(4))
    same = [torch.equal(o, i) for o, i in zip(out, x)]
    mirrored = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x)]
    assert all(s != m for s, m in zip(same, mirrored))  # each image is one or the other
    assert 150 < sum(mirrored) < 250


def test_cutout_zeroes_one_clipped_square_per_image():
    size, h, w = 4, 9, 9
    out = cutout(torch.ones(200, 2, h, w), size, gen(5))
    for img in out:
        zero = img[0] == 0
        assert torch.equal(zero, img[1] == 0)  # the same patch in every channel
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        assert 1 <= len(rows) <= size and 1 <= len(cols) <= size
        assert zero.sum() == len(rows) * len(cols)  # a solid rectangle
        assert rows.diff().eq(1).all() and cols.diff().eq(1).all()
    full = (out[:, 0] == 0).flatten(1).sum(1) == size * size
    assert 0 < full.sum() < len(out)  # whole squares inside, clipped ones at the border


def test_cifar_cutout_default_is_a_16_pixel_square():
    out = augment_batch(torch.ones(100, 3, 32, 32), "crop-flip-cutout", gen(6), padding=0)
    zeros = (out[:, 0] == 0).flatten(1).sum(1)
    assert zeros.max() == 16 * 16 and zeros.min() > 0


# ------------------------------------------------------------------------------------ batches


def test_batches_in_order_cover_everything():
    x, y = torch.arange(10).float().view(10, 1), torch.arange(10)
    got = list(batches(x, y, 4, shuffle=False))
    assert [len(b[1]) for b in got] == [4, 4, 2]
    assert torch.equal(torch.cat([b[1] for b in got]), y)


def test_batches_drop_last():
    x, y = torch.zeros(10, 1), torch.arange(10)
    assert [len(b[1]) for b in batches(x, y, 4, shuffle=False, drop_last=True)] == [4, 4]


def test_shuffled_batches_are_a_seeded_permutation_keeping_pairs():
    x, y = torch.arange(50).float().view(50, 1), torch.arange(50)
    first = list(batches(x, y, 8, shuffle=True, generator=gen(1)))
    again = list(batches(x, y, 8, shuffle=True, generator=gen(1)))
    labels = torch.cat([b[1] for b in first])
    assert sorted(labels.tolist()) == list(range(50)) and not torch.equal(labels, y)
    assert all(torch.equal(bx.view(-1), by.float()) for bx, by in first)
    assert torch.equal(labels, torch.cat([b[1] for b in again]))


def test_batch_size_must_be_positive():
    with pytest.raises(UserError):
        next(batches(torch.zeros(3, 1), torch.zeros(3), 0, shuffle=False))


# -------------------------------------------------------------------------------- fixed subset


def test_fixed_subset_everything_in_order():
    x, y = torch.randn(20, 2), torch.arange(20)
    for samples in (None, 20, 500):
        sx, sy = fixed_subset(x, y, samples, seed=0)
        assert torch.equal(sx, x) and torch.equal(sy, y)


def test_fixed_subset_is_seeded_sorted_and_nested():
    x, y = torch.arange(100).float().view(100, 1), torch.arange(100)
    small = fixed_subset(x, y, 10, seed=3)[1]
    assert torch.equal(small, fixed_subset(x, y, 10, seed=3)[1])
    assert not torch.equal(small, fixed_subset(x, y, 10, seed=4)[1])
    assert torch.equal(small, small.sort().values) and len(set(small.tolist())) == 10
    large = fixed_subset(x, y, 40, seed=3)[1]
    assert set(small.tolist()) <= set(large.tolist())
    assert torch.equal(fixed_subset(x, y, 10, seed=3)[0].view(-1), small.float())


def test_fixed_subset_rejects_non_positive_sizes():
    with pytest.raises(UserError, match="positive"):
        fixed_subset(torch.zeros(5, 1), torch.zeros(5), 0, seed=0)


def test_data_to_device_returns_a_moved_copy(digits):
    moved = digits.to("cpu")
    assert moved is not digits and moved.input_shape == digits.input_shape
    assert torch.equal(moved.test_x, digits.test_x) and moved.augmentation == digits.augmentation


# -------------------------------------------------------------------------------- label noise


@pytest.mark.parametrize("fraction", [0.2, 0.4])
def test_label_noise_changes_exactly_that_fraction_of_training_labels_to_another_class(
    digits, fraction
):
    noisy = with_label_noise(digits, fraction, seed=3)
    changed = noisy.train_y != digits.train_y
    assert int(changed.sum()) == round(fraction * digits.train_y.numel())
    assert noisy.train_y.min() >= 0 and noisy.train_y.max() < digits.num_classes
    # the wrong classes are spread over the others, not one fixed shift
    offsets = (noisy.train_y - digits.train_y)[changed] % digits.num_classes
    assert len(set(offsets.tolist())) == digits.num_classes - 1


def test_label_noise_leaves_the_test_labels_and_the_inputs_alone(digits):
    noisy = with_label_noise(digits, 0.3, seed=0)
    assert torch.equal(noisy.test_y, digits.test_y) and torch.equal(noisy.test_x, digits.test_x)
    assert torch.equal(noisy.train_x, digits.train_x)


def test_label_noise_is_seeded(digits):
    a, b = (with_label_noise(digits, 0.2, seed=s).train_y for s in (1, 1))
    other = with_label_noise(digits, 0.2, seed=2).train_y
    assert torch.equal(a, b) and not torch.equal(a, other)


@pytest.mark.parametrize("fraction", [-0.1, 1.0])
def test_label_noise_outside_0_to_1_is_a_user_error(digits, fraction):
    with pytest.raises(UserError, match="--label-noise"):
        with_label_noise(digits, fraction, seed=0)
