"""evaluate: exact averages over examples, whatever the batch size."""

import pytest
import torch
from torch import nn

from landscape.evaluate import evaluate, evaluate_sums
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


def _targets(kind: str, n: int, gen: torch.Generator) -> torch.Tensor:
    if kind == "labels":
        return torch.randint(0, 3, (n,), generator=gen)
    if kind == "soft":
        return torch.softmax(torch.randn(n, 3, generator=gen), dim=-1)
    return torch.randint(0, 3, (n, 4), generator=gen)  # tokens: (blocks, positions)


def _loss(kind: str):
    if kind == "tokens":
        return lambda out, y: nn.functional.cross_entropy(out.flatten(0, 1), y.flatten())
    return nn.functional.cross_entropy


@pytest.mark.parametrize("kind", ["labels", "soft", "tokens"])
def test_sums_are_batch_means_times_sizes_added_in_batch_order(kind):
    gen = torch.Generator().manual_seed(1)
    model = nn.Linear(5, 3)
    shape = (23, 4, 5) if kind == "tokens" else (23, 5)
    x, y = torch.randn(shape, generator=gen), _targets(kind, 23, gen)
    loss_fn = _loss(kind)
    loss_sum = correct = 0.0
    with torch.no_grad():
        for start in range(0, 23, 7):
            out, yb = model(x[start : start + 7]), y[start : start + 7]
            loss_sum += float(loss_fn(out, yb).double()) * out.shape[0]
            labels = yb.argmax(-1) if kind == "soft" else yb
            hits = (out.argmax(-1) == labels).double()
            correct += float(hits.sum()) / (4 if kind == "tokens" else 1)
    sums = evaluate_sums(model, x, y, loss_fn, batch_size=7)
    assert sums.dtype == torch.float64 and sums.tolist() == [loss_sum, correct]


def test_sums_over_no_examples_are_zero():
    empty = evaluate_sums(
        nn.Linear(5, 3), torch.empty(0, 5), torch.empty(0, dtype=torch.int64), None
    )
    assert empty.tolist() == [0.0, 0.0]
