"""Losses by name."""

import pytest
import torch

from landscape.errors import UserError
from landscape.losses import make_loss


def test_mse_is_half_squared_error_against_one_hot():
    out = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    y = torch.tensor([0, 1])
    assert make_loss("mse")(out, y).item() == pytest.approx(0.5 * (0 + 1) / 2)


def test_label_smoothing_raises_the_loss_of_a_confident_correct_prediction():
    out, y = torch.tensor([[10.0, -10.0]]), torch.tensor([0])
    assert make_loss("cross-entropy", 0.1)(out, y) > make_loss("cross-entropy")(out, y)


def test_unknown_loss_is_a_user_error():
    with pytest.raises(UserError, match="unknown loss"):
        make_loss("hinge")
