"""``--data path/to/file.py:factory``: a user's own data as a :class:`landscape.data.Data`.

The factory returns either a ``torch.utils.data.Dataset`` whose items are ``(input, target)``
pairs, or an ``(inputs, targets)`` pair of tensors (or arrays). A factory that takes a
``split`` argument is called once per split (``"train"``, ``"test"``); otherwise the same
examples serve both splits. Inputs are used as given (already normalised): the factory
owns its preprocessing.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from landscape.data import Data
from landscape.errors import UserError
from landscape.loading.architecture import call_factory, load_factory

MAX_DATASET_ITEMS = 1_000_000


def load_user_data(spec: str) -> Data:
    """Call the factory named by ``spec`` and hold its examples in memory."""
    factory = load_factory(spec, what="--data")
    if _takes_split(factory):
        train_x, train_y = _as_tensors(
            call_factory(factory, spec, {"split": "train"}, "--data"), spec
        )
        test_x, test_y = _as_tensors(call_factory(factory, spec, {"split": "test"}, "--data"), spec)
    else:
        train_x, train_y = _as_tensors(call_factory(factory, spec, {}, "--data"), spec)
        test_x, test_y = train_x, train_y
    return in_memory_data(spec, "custom", (train_x, train_y), (test_x, test_y), _num_classes)


def in_memory_data(
    spec: str,
    name: str,
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    count_classes: Callable[..., int],
    mean: tuple[float, ...] = (),
    std: tuple[float, ...] = (),
) -> Data:
    """The ``(inputs, targets)`` of both splits as a :class:`Data` without augmentation,
    refused when the splits' inputs differ in shape (``spec``: the ``--data`` it came from);
    ``count_classes(train_targets, test_targets)`` is asked only once the shapes agree."""
    (train_x, train_y), (test_x, test_y) = train, test
    if tuple(train_x.shape[1:]) != tuple(test_x.shape[1:]):
        raise UserError(
            f"--data {spec}: train inputs have shape {tuple(train_x.shape[1:])} "
            f"but test inputs {tuple(test_x.shape[1:])}"
        )
    return Data(
        name=name,
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        num_classes=count_classes(train_y, test_y),
        input_shape=tuple(train_x.shape[1:]),
        mean=mean,
        std=std,
        augmentation="none",
    )


def _takes_split(factory: Callable[..., Any]) -> bool:
    try:
        return "split" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False


def _as_tensors(result: Any, spec: str) -> tuple[Tensor, Tensor]:
    if isinstance(result, (tuple, list)) and len(result) == 2 and not _is_dataset(result):
        x, y = (_tensor(v, spec, what) for v, what in zip(result, ("inputs", "targets")))
    elif _is_dataset(result):
        x, y = _stack_dataset(result, spec)
    else:
        raise UserError(
            f"--data {spec}: the factory returned a {type(result).__name__}; "
            "return a torch Dataset of (input, target) pairs "
            "or an (inputs, targets) pair of tensors"
        )
    if x.ndim < 2 or x.shape[0] == 0:
        raise UserError(
            f"--data {spec}: inputs must have shape (N, ...) with N >= 1, got {tuple(x.shape)}"
        )
    if y.shape[0] != x.shape[0]:
        raise UserError(f"--data {spec}: {x.shape[0]} inputs but {y.shape[0]} targets")
    if not x.is_floating_point():
        x = x.float()
    if not y.is_floating_point():
        y = y.long()
    if not bool(torch.isfinite(x).all()):
        raise UserError(f"--data {spec}: the inputs contain NaN or Inf")
    _check_targets(y, spec)
    return x.contiguous(), y.contiguous()


def _check_targets(y: Tensor, spec: str) -> None:
    """Targets every loss uses as given. A class label of -100 is PyTorch's ``ignore_index``:
    cross-entropy would skip those examples while the result records them as measured, so
    they are refused rather than counted (the measures average over examples, and an example
    that is not in the average is a question the user did not ask); other negative labels
    are no class at all, and NaN targets would be blamed on the weights."""
    if y.is_floating_point():
        if not bool(torch.isfinite(y).all()):
            bad = int((~torch.isfinite(y)).reshape(y.shape[0], -1).any(dim=1).sum())
            raise UserError(
                f"--data {spec}: the targets of {bad} of {y.shape[0]} examples contain NaN or Inf"
            )
        return
    negative = y < 0
    if bool(negative.any()):
        ignored = int((y == -100).reshape(y.shape[0], -1).any(dim=1).sum())
        if ignored:
            raise UserError(
                f"--data {spec}: {ignored} of {y.shape[0]} examples have label -100 (PyTorch's "
                "ignore_index): the loss would skip them while the result counts them; drop "
                "them from the data or give them their classes"
            )
        raise UserError(
            f"--data {spec}: class labels must be 0 or more, found {int(y[negative][0])}"
        )


def _is_dataset(obj: Any) -> bool:
    return (
        hasattr(obj, "__getitem__")
        and hasattr(obj, "__len__")
        and not isinstance(obj, (tuple, list, Tensor, str, bytes, dict))
    )


def _tensor(value: Any, spec: str, what: str) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach().cpu()
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise UserError(
            f"--data {spec}: the {what} are a {type(value).__name__}, not a tensor"
        ) from exc


def _stack_dataset(dataset: Any, spec: str) -> tuple[Tensor, Tensor]:
    n = len(dataset)
    if n == 0:
        raise UserError(f"--data {spec}: the dataset is empty")
    if n > MAX_DATASET_ITEMS:
        raise UserError(f"--data {spec}: {n} items is more than landscape holds in memory")
    xs, ys = [], []
    for i in range(n):
        item = dataset[i]
        if not (isinstance(item, (tuple, list)) and len(item) >= 2):
            raise UserError(
                f"--data {spec}: item {i} is a {type(item).__name__}, not an (input, target) pair"
            )
        xs.append(_tensor(item[0], spec, "inputs"))
        ys.append(_tensor(item[1], spec, "targets"))
    try:
        return torch.stack(xs), torch.stack(ys)
    except RuntimeError as exc:
        raise UserError(f"--data {spec}: the items do not all have the same shape") from exc


def _num_classes(*targets: Tensor) -> int:
    first = targets[0]
    if first.is_floating_point():
        return int(first.shape[-1]) if first.ndim > 1 else 1
    return int(max(int(t.max()) for t in targets)) + 1
