"""``--data FILE.py:FN``: a user's examples, refused when they would change the question."""

from __future__ import annotations

import pytest
import torch

from landscape.errors import UserError
from landscape.loading.user_data import load_user_data

FACTORY = """
import torch

def data():
    torch.manual_seed(0)
    x = torch.randn(8, 4)
    y = {targets}
    return x, y
"""


def _data(tmp_path, targets: str):
    (tmp_path / "d.py").write_text(FACTORY.format(targets=targets))
    return load_user_data(f"{tmp_path / 'd.py'}:data")


@pytest.mark.parametrize(
    "targets, expect",
    [
        (
            "torch.tensor([0, 1, -100, 2, -100, 1, 0, 2])",
            r"2 of 8 examples have label -100 \(PyTorch's ignore_index\): the loss would skip",
        ),
        ("torch.tensor([0, 1, -3, 2, 0, 1, 0, 2])", r"class labels must be 0 or more, found -3"),
        (
            "torch.tensor([[0.5], [float('nan')], [1.0], [0.0], [1.0], [2.0], [1.0], [0.0]])",
            r"the targets of 1 of 8 examples contain NaN or Inf",
        ),
    ],
    ids=["ignore-index", "negative-label", "nan-target"],
)
def test_targets_that_the_loss_would_not_use_as_given_are_refused(tmp_path, targets, expect):
    with pytest.raises(UserError, match=expect):
        _data(tmp_path, targets)


def test_ordinary_labels_are_kept(tmp_path):
    data = _data(tmp_path, "torch.tensor([0, 1, 2, 2, 0, 1, 0, 2])")
    assert data.num_classes == 3 and torch.equal(
        data.train_y, torch.tensor([0, 1, 2, 2, 0, 1, 0, 2])
    )
