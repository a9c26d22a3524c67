"""landscape.Tracker: sharpness measured inside a user's own training loop."""

import random

import h5py
import numpy as np
import pytest
import torch
from torch import nn

import landscape
from landscape.cli import main
from landscape.data import load_dataset
from landscape.errors import UserError
from landscape.loading import checkpoint
from landscape.models import build_model
from landscape.results.track import TrackResult

pytestmark = pytest.mark.usefixtures("one_thread")

X = torch.randn(96, 10, generator=torch.Generator().manual_seed(0))
Y = torch.randint(0, 3, (96,), generator=torch.Generator().manual_seed(1))


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(10, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Dropout(0.3), nn.Linear(12, 3)
    )


def _train(steps, tracker_options=None, autocast=False, out=None):
    """SGD with momentum on random batches; a tracker when ``tracker_options`` is given."""
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    tracker = None
    if tracker_options is not None:
        tracker = landscape.Tracker(
            model, loss_fn, X, Y, optimizer=opt, out=out, name="t", **tracker_options
        )
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    for step in range(1, steps + 1):
        batch = torch.randint(0, X.shape[0], (16,))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = loss_fn(model(X[batch]), Y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if tracker is not None:
                tracker.step(step)
    return model, opt, tracker


ALL = "lambda1,top-k,trace,worst-case,gradient-norm,loss"


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16-autocast"])
def test_training_with_a_tracker_gives_bit_identical_weights(autocast):
    tracked, opt_a, _ = _train(8, {"every": 2, "measures": ALL, "k": 2}, autocast)
    plain, opt_b, _ = _train(8, None, autocast)
    for (name, a), b in zip(tracked.state_dict().items(), plain.state_dict().values()):
        assert torch.equal(a, b), name
    for a, b in zip(tracked.parameters(), plain.parameters()):
        assert torch.equal(a.grad, b.grad)
    momenta = [opt_a.state[p]["momentum_buffer"] for p in tracked.parameters()]
    assert all(
        torch.equal(m, opt_b.state[p]["momentum_buffer"])
        for m, p in zip(momenta, plain.parameters())
    )


def _noisy_loss(outputs, targets):
    """A loss that draws from every global generator, as label noise or a sampled loss does."""
    noise = torch.rand(()) * 0 + np.random.rand() * 0 + random.random() * 0
    return nn.functional.cross_entropy(outputs, targets) + noise


@pytest.mark.parametrize("bn_mode", ["eval", "train"])
def test_a_measurement_leaves_generators_buffers_grads_and_modes_as_found(bn_mode):
    model = _model()
    model.train()
    model[3].eval()  # a mixed state must come back mixed
    model(X).sum().backward()
    grads = [p.grad for p in model.parameters()]
    sums = [g.clone() for g in grads]
    buffers = [b.clone() for b in model.buffers()]
    tracker = landscape.Tracker(
        model, _noisy_loss, X, Y, every=1, measures=ALL, out=None, bn_mode=bn_mode, k=2
    )
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        tracker.step(1)
        assert torch.is_autocast_enabled("cpu") and not torch.is_grad_enabled()
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1]) and random.random() == expected[2]
    assert all(p.grad is g for p, g in zip(model.parameters(), grads))
    assert all(torch.equal(g, s) for g, s in zip(grads, sums))
    assert all(torch.equal(b, c) for b, c in zip(model.buffers(), buffers))
    assert [m.training for m in model.modules()] == [True, True, True, True, False, True]


def test_measures_at_every_step_divisible_by_every(tmp_path):
    _, _, tracker = _train(7, {"every": 3, "measures": "loss"}, out=tmp_path / "t.h5")
    np.testing.assert_array_equal(tracker.result.steps, [3, 6])
    with h5py.File(tmp_path / "t.h5") as f:
        assert list(f["track/t/steps"][()]) == [3, 6]
        assert f["track/t/lr"][()].tolist() == [0.1, 0.1]
        assert f["track/t"].attrs["every"] == 3


def test_a_restarted_training_appends_and_does_not_duplicate_steps(tmp_path):
    out = tmp_path / "t.h5"
    _, _, first = _train(6, {"every": 2, "measures": "loss"}, out=out)  # steps 2, 4, 6
    model = _model()
    again = landscape.Tracker(
        model, nn.CrossEntropyLoss(), X, Y, every=2, measures="loss", out=out, name="t"
    )
    for step in range(5, 11):  # restarted from a checkpoint at step 4
        again.step(step)
    with h5py.File(out) as f:
        result = TrackResult.read(f["track/t"])
    np.testing.assert_array_equal(result.steps, [2, 4, 6, 8, 10])
    np.testing.assert_array_equal(result.series["loss"][:2], first.result.series["loss"][:2])
    assert np.isnan(result.series["lr"][2:]).all()  # no optimizer given this time


def test_a_restart_with_other_measures_is_refused(tmp_path):
    out = tmp_path / "t.h5"
    _train(2, {"every": 2, "measures": "loss"}, out=out)
    with pytest.raises(UserError, match="holds measures 'loss'"):
        landscape.Tracker(
            _model(), nn.CrossEntropyLoss(), X, Y, measures="trace", out=out, name="t"
        )


def test_a_data_loader_is_read_once_without_touching_the_generators():
    data = torch.utils.data.TensorDataset(X, Y)
    loader = torch.utils.data.DataLoader(data, batch_size=10, shuffle=True)
    model = _model()
    torch.manual_seed(3)
    tracker = landscape.Tracker(model, nn.CrossEntropyLoss(), loader, every=1, out=None)
    drawn = torch.rand(2)
    torch.manual_seed(3)
    assert torch.equal(drawn, torch.rand(2))
    assert tracker.x.shape == (96, 10) and sorted(tracker.y.tolist()) == sorted(Y.tolist())


def test_samples_draws_the_subset_of_the_commands_subset_rule():
    from landscape.data import fixed_subset

    tracker = landscape.Tracker(
        _model(), nn.CrossEntropyLoss(), X, Y, samples=20, subset_seed=4, out=None
    )
    x, _ = fixed_subset(X, Y, 20, 4)
    assert torch.equal(tracker.x, x)


def test_a_budget_stretches_the_interval_when_measurements_cost_more():
    tracker = landscape.Tracker(
        _model(), nn.CrossEntropyLoss(), X, Y, every=2, measures="lambda1", out=None, budget=1e-3
    )
    for step in range(1, 41):
        tracker.step(step)
    steps = tracker.result.steps
    assert steps[0] == 2 and len(steps) < 20 and all(s % 2 == 0 for s in steps)


def test_without_a_budget_the_schedule_is_exact():
    tracker = landscape.Tracker(
        _model(), nn.CrossEntropyLoss(), X, Y, every=2, measures="lambda1", out=None
    )
    for step in range(1, 11):
        tracker.step(step)
    np.testing.assert_array_equal(tracker.result.steps, [2, 4, 6, 8, 10])


def test_lambda1_is_warm_started_from_the_previous_measurement():
    tracker = landscape.Tracker(
        _model(), nn.CrossEntropyLoss(), X, Y, every=1, measures="lambda1", out=None
    )
    cold = tracker.step(1)["hvp_count"]
    warm = tracker.step(2)["hvp_count"]  # same weights: the Ritz vector is nearly exact
    assert warm < cold


def test_an_unknown_measure_is_refused():
    with pytest.raises(ValueError, match="unknown measure"):
        landscape.Tracker(_model(), nn.CrossEntropyLoss(), X, Y, measures="sharpness", out=None)


def test_tracked_lambda1_equals_landscape_hessian_of_the_state_saved_at_that_step(tmp_path):
    x, y = load_dataset("digits").split("train")
    torch.manual_seed(0)
    model = build_model("cnn-bn", (1, 8, 8), 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    loss_fn = nn.CrossEntropyLoss()
    tracker = landscape.Tracker(
        model, loss_fn, x, y, every=3, samples=64, out=tmp_path / "t.h5", name="run"
    )
    for step in range(1, 7):
        batch = torch.randint(0, x.shape[0], (32,))
        loss = loss_fn(model(x[batch]), y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
        tracker.step(step)
    run = tmp_path / "run"
    run.mkdir()
    checkpoint.save_checkpoint(
        run / "step-6.pt",
        {
            "format": checkpoint.FORMAT,
            "version": checkpoint.VERSION,
            "arch": "cnn-bn",
            "model": model.state_dict(),
            "epoch": 0,
            "phase": "sgd",
            "config": {"dataset": "digits"},
            "history": [],
        },
    )
    out = tmp_path / "h.h5"
    args = ["hessian", str(run / "step-6.pt"), "--samples", "64", "--device", "cpu"]
    assert main([*args, "--out", str(out)]) == 0
    with h5py.File(out) as f:
        expected = f["hessian/run_step-6/eigenvalues"][0]
    tracked = tracker.result.series["lambda1"][-1]
    assert tracker.result.steps[-1] == 6
    assert abs(tracked - expected) <= 2e-4 * abs(expected)  # both within 1e-4 of the truth


def test_values_are_mirrored_to_tensorboard_when_asked(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with landscape.Tracker(
        _model(),
        nn.CrossEntropyLoss(),
        X,
        Y,
        every=1,
        measures="loss",
        out=None,
        tensorboard=tmp_path / "tb",
    ) as tracker:
        tracker.step(1)
        tracker.step(2)
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    loss = events.Scalars("landscape/loss")
    assert [e.step for e in loss] == [1, 2]
    assert loss[-1].value == pytest.approx(tracker.result.series["loss"][-1], rel=1e-6)
