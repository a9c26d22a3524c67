"""``--data hf-dataset:DIR``: a Hugging Face ``datasets`` folder (``save_to_disk``) as a Data.

A ``DatasetDict`` gives its ``train`` split (else its first) and its ``test`` (else
``validation``) split; a single ``Dataset`` serves both. The input and label columns are found
by name unless ``--columns INPUT,LABEL`` names them:

* inputs: ``image``/``img`` (decoded images, preprocessed as the model's weights were, exactly
  as ``--data imagefolder:DIR``: :mod:`landscape.loading.images`), ``pixel_values`` (arrays, used
  as they are), ``input_ids`` (token ids), ``text``/``sentence`` (tokenised with the model
  folder's tokenizer);
* labels: ``label``/``labels`` -- one class per example, or one per token (-100 ignored).

Sequences must have one length (the analyses batch them without attention masks): token ids
or texts of different lengths are an error that says so, rather than padding that the model
would read as tokens. The folder is read with ``datasets.load_from_disk``: Arrow files, no
code. Everything is held in memory, and the analysis subset is drawn by the same rule as for
every other source. The columns (and the image preprocessing) are part of the data's name,
which every result stores as its ``dataset``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from landscape.data import Data
from landscape.errors import UserError
from landscape.loading.user_data import in_memory_data

PREFIX = "hf-dataset:"
IMAGE_COLUMNS = ("image", "img")
INPUT_COLUMNS = (*IMAGE_COLUMNS, "pixel_values", "input_ids", "text", "sentence")
LABEL_COLUMNS = ("label", "labels")
TEXT_COLUMNS = ("text", "sentence")
TEST_SPLITS = ("test", "validation")
IGNORED_LABEL = -100  # Transformers' label of positions without a target


def is_hf_dataset_spec(spec: str | None) -> bool:
    return bool(spec) and spec.startswith(PREFIX)


def parse_columns(text: str | None) -> tuple[str | None, str | None]:
    """``--columns INPUT[,LABEL]``."""
    if not text:
        return None, None
    names = [n.strip() for n in text.split(",")]
    if len(names) > 2 or not all(names):
        raise UserError(f"--columns {text!r}: give INPUT or INPUT,LABEL (column names)")
    return names[0], (names[1] if len(names) == 2 else None)


def load_hf_dataset(
    spec: str,
    columns: str | None = None,
    image_preprocessing=None,
    tokenizer_folder: str | Path | None = None,
) -> Data:
    """The examples of ``hf-dataset:DIR`` (see the module docstring).

    ``image_preprocessing`` is a callable returning the
    :class:`~landscape.loading.images.Preprocessing` for an image column (called only if there
    is one); ``tokenizer_folder`` the model folder whose tokenizer reads a text column.
    """
    try:
        import datasets
    except ImportError as exc:
        raise UserError(
            "--data hf-dataset:DIR needs the datasets library; pip install datasets"
        ) from exc
    root = Path(spec[len(PREFIX) :])
    if not root.is_dir():
        raise UserError(f"--data {spec}: {root} is not a folder")
    try:
        loaded = datasets.load_from_disk(str(root))
    except Exception as exc:  # FileNotFoundError, ValueError ... by version
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"--data {spec}: not a datasets save_to_disk folder ({text})") from exc
    if isinstance(loaded, datasets.DatasetDict):
        names = list(loaded)
        train_name = "train" if "train" in loaded else names[0]
        test_name = next((n for n in TEST_SPLITS if n in loaded), train_name)
        train, test = loaded[train_name], loaded[test_name]
    else:
        train = test = loaded
    input_column, label_column = _columns(train, columns, spec)
    prep = None
    if _is_image_column(train, input_column):
        prep = image_preprocessing()
    reader = _Reader(spec, input_column, label_column, prep, tokenizer_folder)
    train_x, train_y = reader(train)
    test_x, test_y = (train_x, train_y) if test is train else reader(test)
    described = f"columns {input_column}, {label_column}"
    if prep is not None:
        described += f"; {prep.describe()}"
    return in_memory_data(
        spec,
        f"{PREFIX}{root} [{described}]",
        (train_x, train_y),
        (test_x, test_y),
        _num_classes,
        mean=prep.mean if prep else (),
        std=prep.std if prep else (),
    )


def _columns(dataset, columns: str | None, spec: str) -> tuple[str, str]:
    names = list(dataset.column_names)
    wanted_input, wanted_label = parse_columns(columns)
    for wanted in (wanted_input, wanted_label):
        if wanted is not None and wanted not in names:
            raise UserError(
                f"--columns: {spec} has no column {wanted!r}; it has {', '.join(names)}"
            )
    input_column = wanted_input or next((c for c in INPUT_COLUMNS if c in names), None)
    label_column = wanted_label or next((c for c in LABEL_COLUMNS if c in names), None)
    if input_column is None or label_column is None:
        missing = "input" if input_column is None else "label"
        raise UserError(
            f"--data {spec}: found no {missing} column among {', '.join(names)}; name them with "
            f"--columns INPUT,LABEL (inputs found by name: {', '.join(INPUT_COLUMNS)}; "
            f"labels: {', '.join(LABEL_COLUMNS)})"
        )
    return input_column, label_column


def _is_image_column(dataset, column: str) -> bool:
    import datasets

    return isinstance(dataset.features.get(column), datasets.Image)


def _num_classes(*targets: torch.Tensor) -> int:
    if any(t.is_floating_point() for t in targets):
        return int(targets[0].shape[-1]) if targets[0].ndim > 1 else 1
    labels = torch.cat([t.reshape(-1) for t in targets])
    labels = labels[labels != IGNORED_LABEL]
    return int(labels.max()) + 1 if labels.numel() else 1


class _Reader:
    """One split's columns as ``(inputs, labels)`` tensors."""

    def __init__(self, spec, input_column, label_column, prep, tokenizer_folder) -> None:
        self.spec, self.input_column, self.label_column = spec, input_column, label_column
        self.prep, self.tokenizer_folder = prep, tokenizer_folder

    def __call__(self, dataset) -> tuple[torch.Tensor, torch.Tensor]:
        if len(dataset) == 0:
            raise UserError(f"--data {self.spec}: a split has no examples")
        labels = self._rectangular(dataset[self.label_column], self.label_column)
        if self.prep is not None:
            from landscape.loading.images import preprocess_images

            column = dataset[self.input_column]
            return preprocess_images(iter(column), len(column), self.prep), labels
        values = dataset[self.input_column]
        if self.input_column in TEXT_COLUMNS:
            values = self._tokenise(values)
        inputs = self._rectangular(values, self.input_column)
        if self.input_column == "pixel_values" or inputs.is_floating_point():
            inputs = inputs.float()
        return inputs, labels

    def _rectangular(self, values: list[Any], column: str) -> torch.Tensor:
        lengths = {len(v) for v in values if isinstance(v, (list, tuple))}
        if len(lengths) > 1:
            raise UserError(
                f"--data {self.spec}: column {column!r} holds sequences of {min(lengths)} to "
                f"{max(lengths)} items; the analyses need one length (no attention masks): "
                "pad or cut them in the dataset"
            )
        try:
            array = np.asarray(values)
        except ValueError as exc:
            raise UserError(f"--data {self.spec}: column {column!r} is ragged ({exc})") from exc
        if array.dtype == object or not (
            np.issubdtype(array.dtype, np.number) or array.dtype == bool
        ):
            raise UserError(
                f"--data {self.spec}: column {column!r} holds {array.dtype} values, not numbers"
            )
        tensor = torch.from_numpy(array)
        return tensor.long() if not tensor.is_floating_point() else tensor

    def _tokenise(self, texts: list[str]) -> list[list[int]]:
        if self.tokenizer_folder is None:
            raise UserError(
                f"--data {self.spec}: column {self.input_column!r} is text; tokenising it needs "
                "a model folder with a tokenizer, or give an input_ids column"
            )
        try:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(
                str(self.tokenizer_folder), local_files_only=True
            )
        except Exception as exc:  # missing files raise OSError, ValueError ... by version
            raise UserError(
                f"--data {self.spec}: the model folder {self.tokenizer_folder} has no usable "
                f"tokenizer ({type(exc).__name__}); give an input_ids column"
            ) from exc
        return [list(ids) for ids in tokenizer(list(texts))["input_ids"]]
