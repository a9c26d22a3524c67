"""--data hf-dataset:DIR: a datasets save_to_disk folder, columns found by name or --columns,
through the same subset rule as every other source."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from landscape.cli import main
from landscape.errors import UserError
from landscape.loading.hf_dataset import load_hf_dataset
from landscape.loading.loader import DataSource, load_data
from tests.loading.tiny_hf import TINY_BERT

datasets = pytest.importorskip("datasets")
torchvision = pytest.importorskip("torchvision")
Image = pytest.importorskip("PIL.Image")


def save(folder, splits: dict, features=None):
    datasets.DatasetDict(
        {name: datasets.Dataset.from_dict(cols, features=features) for name, cols in splits.items()}
    ).save_to_disk(str(folder))
    return folder


def random_images(count: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 256, (21, 30, 3), dtype=np.uint8)) for _ in range(count)
    ]


def test_an_image_column_is_preprocessed_as_the_models_weights_were(tmp_path):
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])}
    )
    train, test = random_images(3, 0), random_images(2, 1)
    folder = save(
        tmp_path / "img",
        {"train": {"image": train, "label": [0, 1, 0]}, "test": {"image": test, "label": [1, 0]}},
        features,
    )
    data = load_data(DataSource(data=f"hf-dataset:{folder}"), arch="torchvision:resnet18")
    transform = torchvision.models.ResNet18_Weights.DEFAULT.transforms()
    # The reference reads the PNGs datasets stored, decoded by PIL, through torchvision.
    stored = datasets.load_from_disk(str(folder))
    for split in ("train", "test"):
        expected = torch.stack([transform(im) for im in stored[split]["image"]])
        x, y = data.split(split)
        torch.testing.assert_close(x, expected, atol=1e-5, rtol=0)
        assert y.tolist() == stored[split]["label"]
    assert "columns image, label" in data.name and "ResNet18_Weights" in data.name


def test_token_ids_and_labels_are_read_as_they_are_and_columns_choose_them(tmp_path):
    ids = [[1, 2, 3, 4], [5, 6, 7, 8], [9, 1, 2, 3]]
    folder = save(
        tmp_path / "ids", {"train": {"tokens": ids, "target": [2, 0, 1], "label": [0, 0, 0]}}
    )
    data = load_data(DataSource(data=f"hf-dataset:{folder}", columns="tokens,target"))
    assert data.train_x.tolist() == ids and data.train_y.tolist() == [2, 0, 1]
    assert data.test_x is data.train_x and data.num_classes == 3


def test_text_is_tokenised_with_the_model_folders_tokenizer(tmp_path):
    from tests import external_models as em

    em.save_word_tokenizer(tmp_path / "model")
    folder = save(tmp_path / "text", {"train": {"text": ["w1 w2 w3", "w4 w5 w6"], "label": [0, 1]}})
    data = load_hf_dataset(f"hf-dataset:{folder}", tokenizer_folder=tmp_path / "model")
    assert data.train_x.tolist() == [[2, 3, 4], [5, 6, 7]]  # word i has id i + 1


def test_mean_and_std_without_an_image_column_are_an_error(tmp_path):
    folder = save(tmp_path / "ids", {"train": {"input_ids": [[1, 2], [3, 4]], "label": [0, 1]}})
    with pytest.raises(UserError, match="--mean and --std apply to an image column"):
        load_data(DataSource(data=f"hf-dataset:{folder}", mean=(0.5,), std=(0.2,)))


@pytest.mark.parametrize(
    "columns, make, message",
    [
        (None, {"input_ids": [[1, 2], [3]], "label": [0, 1]}, "sequences of 1 to 2 items"),
        (
            None,
            {"features": [1.0, 2.0], "label": [0, 1]},
            "found no input column among features, label",
        ),
        ("input_ids,nope", {"input_ids": [[1], [2]], "label": [0, 1]}, "no column 'nope'"),
    ],
)
def test_bad_datasets_are_one_line_errors(tmp_path, columns, make, message):
    folder = save(tmp_path / "bad", {"train": make})
    with pytest.raises(UserError, match=message):
        load_data(DataSource(data=f"hf-dataset:{folder}", columns=columns))


@pytest.mark.slow
def test_a_sequence_classifier_folder_runs_on_a_saved_dataset_from_the_command_line(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(**TINY_BERT)
    transformers.BertForSequenceClassification(config).save_pretrained(tmp_path / "bert")
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 16, (6, 5), generator=g).tolist()
    folder = save(tmp_path / "ds", {"train": {"input_ids": ids, "label": [0, 1, 2, 0, 1, 2]}})
    out = tmp_path / "h.h5"
    argv = ["hessian", str(tmp_path / "bert"), "--data", f"hf-dataset:{folder}", "--samples", "4"]
    argv += ["--top-k", "1", "--no-trace", "--dtype", "float64", "--out", str(out)]
    assert main(argv) == 0
    with h5py.File(out, "r") as f:
        (group,) = f["hessian"].values()
        assert np.isfinite(group["eigenvalues"][()]).all()
        assert "columns input_ids, label" in group.attrs["config"]
