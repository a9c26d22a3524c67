"""evaluate: exact averages over examples, whatever the batch size."""

import pytest
import torch
from torch import nn

from landscape.evaluate import evaluate
from landscape.losses import make_loss


@pytest.mark.parametrize("batch_size", [1, 7, 100])
def test_loss_and_accuracy_do_not_depend_on_batch_size(batch_size):
    torch.manual_seed(0)
    model = nn.Linear(5, 3).double()
    x, y = torch.randn(23, 5, dtype=torch.float64), torch.randint(0, 3, (23,))
    loss, acc = evaluate(model, x, y, make_loss("cross-entropy"), batch_size=batch_size)
    out = model(x)
    assert loss == pytest.approx(nn.functional.cross_entropy(out, y).item(), rel=1e-12)
    assert acc == pytest.approx((out.argmax(1) == y).double().mean().item())
