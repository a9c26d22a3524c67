"""Losses by name."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape.errors import UserError
from landscape.losses import make_loss


@pytest.mark.parametrize("classes", [3, 10])
@pytest.mark.parametrize("integer_targets", [True, False])
def test_mse_is_torch_mse_loss_mean_over_all_elements(classes, integer_targets):
    torch.manual_seed(0)
    out = torch.randn(7, classes)
    labels = torch.randint(0, classes, (7,))
    one_hot = F.one_hot(labels, classes).float()
    y = labels if integer_targets else one_hot
    assert make_loss("mse")(out, y).item() == pytest.approx(
        nn.MSELoss()(out, one_hot).item(), rel=1e-6
    )


@pytest.mark.parametrize("classes", [3, 10])
def test_half_sse_is_half_the_squared_error_summed_over_outputs_mean_over_examples(classes):
    torch.manual_seed(1)
    out, y = torch.randn(5, classes), torch.randint(0, classes, (5,))
    expected = (
        sum(0.5 * float(((o - F.one_hot(t, classes)) ** 2).sum()) for o, t in zip(out, y)) / 5
    )
    assert make_loss("half-sse")(out, y).item() == pytest.approx(expected, rel=1e-6)
    assert make_loss("half-sse")(out, y).item() == pytest.approx(
        classes / 2 * make_loss("mse")(out, y).item(), rel=1e-6
    )


def test_label_smoothing_raises_the_loss_of_a_confident_correct_prediction():
    out, y = torch.tensor([[10.0, -10.0]]), torch.tensor([0])
    assert make_loss("cross-entropy", 0.1)(out, y) > make_loss("cross-entropy")(out, y)


def test_unknown_loss_is_a_user_error():
    with pytest.raises(UserError, match="unknown loss"):
        make_loss("hinge")
