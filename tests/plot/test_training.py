"""Training curves: loss, accuracy and learning rate against epoch, phases shaded."""

import numpy as np
import pytest

from landscape.plot import results, training


@pytest.fixture
def log(run_dir):
    return results.read_training_log(run_dir)


def test_phase_spans_cover_each_epoch_interval():
    spans = training.phase_spans(np.array([1, 2, 3, 4]), ["sgd", "sgd", "sam", "sam"])
    assert spans == [(0.0, 2.0, "sgd"), (2.0, 4.0, "sam")]


def test_panels_hold_loss_accuracy_and_lr_with_the_switch_marked(log):
    fig = training.plot_training(log)
    ax_loss, ax_acc, ax_lr = fig.axes[:3]
    test_loss = next(line for line in ax_loss.get_lines() if line.get_gid() == "test_loss")
    np.testing.assert_allclose(test_loss.get_ydata(), log.columns["test_loss"])
    test_acc = next(line for line in ax_acc.get_lines() if line.get_gid() == "test_acc")
    np.testing.assert_allclose(test_acc.get_ydata(), 100 * log.columns["test_acc"])
    lr = next(line for line in ax_lr.get_lines() if line.get_gid() == "lr")
    np.testing.assert_allclose(lr.get_ydata(), log.columns["lr"])
    assert ax_lr.get_yscale() == "log" and ax_lr.get_xlabel() == "epoch"
    for ax in (ax_loss, ax_acc, ax_lr):
        assert [line.get_xdata()[0] for line in ax.get_lines() if line.get_gid() == "switch"] == [8]


def test_both_phases_are_shaded_and_named_in_the_legend(log):
    fig = training.plot_training(log)
    shaded = {p.get_gid(): p for p in fig.axes[0].patches}
    assert {"phase-sgd", "phase-sam"} <= set(shaded)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"SGD phase", "SAM phase", "train", "test"} <= set(legend)


def test_a_full_sam_run_has_no_switch_line(build, tmp_path):
    log = results.read_training_log(build.write_run(tmp_path / "sam", epochs=4, switch=0))
    fig = training.plot_training(log)
    assert not [line for ax in fig.axes for line in ax.get_lines() if line.get_gid() == "switch"]
