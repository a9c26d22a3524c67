"""--data imagefolder:DIR: class subfolders as torchvision's ImageFolder, preprocessed as the
model's weights were, through the same subset rule as every other source."""

from __future__ import annotations

import logging
import textwrap

import h5py
import numpy as np
import pytest
import torch

import landscape
from landscape.cli import main
from landscape.errors import UserError
from landscape.loading.architecture import build_architecture
from landscape.loading.images import DEFAULT, model_preprocessing
from landscape.loading.loader import DataSource, load_data

torchvision = pytest.importorskip("torchvision")
Image = pytest.importorskip("PIL.Image")

CLASSES = ("cat", "dog", "eel")


def write_images(folder, per_class: int = 2, seed: int = 0, size=(37, 29)) -> None:
    """Small random RGB PNGs (non-square: the resize and the crop both matter)."""
    rng = np.random.default_rng(seed)
    for label in CLASSES:
        (folder / label).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / label / f"{i}.png")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    write_images(root / "train", per_class=2, seed=0)
    write_images(root / "test", per_class=1, seed=1)
    return root


def test_torchvision_weights_transforms_give_the_inputs_of_imagefolder_with_them(images):
    data = load_data(DataSource(data=f"imagefolder:{images}"), arch="torchvision:resnet18")
    transform = torchvision.models.ResNet18_Weights.DEFAULT.transforms()
    for split, folder in (("train", "train"), ("test", "test")):
        reference = torchvision.datasets.ImageFolder(images / folder, transform=transform)
        x, y = data.split(split)
        assert y.tolist() == [label for _, label in reference.samples]
        expected = torch.stack([reference[i][0] for i in range(len(reference))])
        torch.testing.assert_close(x, expected, atol=1e-5, rtol=0)
    assert data.num_classes == 3 and data.input_shape == (3, 224, 224)
    assert "resize 256 bilinear" in data.name and "ResNet18_Weights" in data.name


def test_timm_models_give_their_pretrained_cfg_and_the_flags_override_it(images):
    timm = pytest.importorskip("timm")
    cfg = timm.models.get_pretrained_cfg("vit_tiny_patch16_224").to_dict()
    prep = model_preprocessing("timm:vit_tiny_patch16_224", None)
    assert (prep.size, prep.mean, prep.std) == (224, tuple(cfg["mean"]), tuple(cfg["std"]))
    data = load_data(
        DataSource(data=f"imagefolder:{images}", image_size=16, mean=(0.0,) * 3, std=(1.0,) * 3),
        arch="timm:vit_tiny_patch16_224",
    )
    assert data.input_shape == (3, 16, 16)
    assert 0.0 <= float(data.train_x.min()) and float(data.train_x.max()) <= 1.0  # mean 0, std 1
    assert "16 px" in data.name and "--image-size 16" in data.name and "--mean/--std" in data.name


def test_a_model_that_says_nothing_gets_the_stated_defaults_and_the_log_says_so(caplog):
    with caplog.at_level(logging.INFO, logger="landscape.loading"):
        assert model_preprocessing("mlp", None) == DEFAULT
    assert any(
        "224 px" in r.getMessage() and "--image-size" in r.getMessage() for r in caplog.records
    )


def test_one_folder_of_classes_serves_both_splits(tmp_path):
    write_images(tmp_path / "flat")
    data = load_data(DataSource(data=f"imagefolder:{tmp_path / 'flat'}", image_size=8))
    assert data.test_x is data.train_x and data.train_y.tolist() == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda root: None, "is not a folder"),
        (lambda root: root.mkdir(), "no class subfolders"),
        (lambda root: (root / "cat").mkdir(parents=True), "no images"),
    ],
)
def test_bad_folders_are_one_line_errors(tmp_path, make, message):
    make(tmp_path / "d")
    with pytest.raises(UserError, match=message):
        load_data(DataSource(data=f"imagefolder:{tmp_path / 'd'}"))


def test_image_size_without_an_image_folder_is_an_error():
    with pytest.raises(UserError, match="--image-size applies to --data imagefolder"):
        load_data(DataSource(dataset="digits", image_size=8))


NET = textwrap.dedent(
    """
    import torch

    def net():
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Conv2d(3, 2, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
            torch.nn.Linear(2, 3),
        )
    """
)


def test_the_command_line_draws_its_subset_from_the_folder_and_records_the_preprocessing(
    images, tmp_path
):
    (tmp_path / "net.py").write_text(NET)
    arch = f"{tmp_path / 'net.py'}:net"
    ckpt = tmp_path / "w.pt"
    weights = build_architecture(arch, input_shape=(3, 12, 12), num_classes=3).state_dict()
    torch.save(weights, ckpt)
    out = tmp_path / "h.h5"
    argv = ["hessian", str(ckpt), "--arch", arch, "--data", f"imagefolder:{images}"]
    argv += ["--image-size", "12", "--samples", "4", "--top-k", "1", "--no-trace"]
    assert main([*argv, "--dtype", "float64", "--out", str(out)]) == 0
    model, data, _ = landscape.load(
        ckpt, arch=arch, data=f"imagefolder:{images}", image_size=12, dtype="float64"
    )
    from landscape.curvature import hessian_eigenvalues
    from landscape.data import fixed_subset
    from landscape.losses import make_loss

    x, y = fixed_subset(*data.split("train"), 4, 0)
    expected = hessian_eigenvalues(model, make_loss(), x.double(), y, k=1).eigenvalues
    with h5py.File(out, "r") as f:
        (group,) = f["hessian"].values()
        np.testing.assert_allclose(group["eigenvalues"][()], expected, rtol=1e-4)
        config = group.attrs["config"]
    assert "12 px (resize 14 bilinear, centre crop)" in config and "--image-size 12" in config
