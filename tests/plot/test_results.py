"""Reading result files and training logs for plotting: the docs/file-format.md layout, odd
input refused."""

import json

import h5py
import numpy as np
import pytest

from landscape.errors import UserError
from landscape.plot import results


def test_surface_values_keep_ij_order_and_not_done_points_are_nan(loaded):
    surface = loaded["surface2d"].surfaces[0]
    assert surface.ndim == 2 and surface.metrics["train_loss"].shape == (15, 11)
    assert surface.is_partial and not surface.done[-1].any() and surface.done[0].all()
    assert np.isnan(surface.metrics["train_loss"][~surface.done]).all()
    assert np.isfinite(surface.metrics["train_loss"][surface.done]).all()


def test_pca_surface_reads_trajectory_and_explained_variance_in_the_axis_labels(loaded):
    surface = loaded["pca"].surfaces[0]
    assert surface.trajectory.phase[:2] == ["sgd", "sgd"] and surface.trajectory.phase[-1] == "sam"
    assert "72.0%" in surface.x_label and "18.0%" in surface.y_label


def test_interpolation_reads_endpoints_and_every_barrier_attr(loaded, build):
    interp = loaded["interpolation"].interpolations[0]
    assert (interp.a_name, interp.b_name) == ("epoch-080-sgd", "epoch-100-sam")
    assert interp.barriers == pytest.approx(build.BARRIERS)
    assert interp.checkpoint_names == ["epoch-080-sgd", "epoch-100-sam"]


def test_provenance_epoch_phase_and_run_come_from_the_group_attrs(loaded):
    record = loaded["hessian"].hessian[0]
    assert (record.meta.epoch, record.meta.phase, record.meta.run) == (20, "sgd", "late-sam")


def test_a_surface_stored_transposed_is_refused_with_the_expected_shape(tmp_path, build):
    path = build.write_result_file(tmp_path / "t.h5", build.write_surface_2d)
    with h5py.File(path, "r+") as f:
        data = f["surface/random_2d/train_loss"][()].T
        del f["surface/random_2d/train_loss"]
        f["surface/random_2d/train_loss"] = data
    with pytest.raises(UserError, match=r"expected \(15, 11\)"):
        results.read_result_file(path)


def test_accuracy_written_in_percent_is_read_as_a_fraction(tmp_path, build):
    path = build.write_result_file(tmp_path / "p.h5", build.write_surface_2d)
    with h5py.File(path, "r+") as f:
        f["surface/random_2d/test_acc"][...] = f["surface/random_2d/test_acc"][()] * 100
    surface = results.read_result_file(path).surfaces[0]
    assert np.nanmax(surface.metrics["test_acc"]) <= 1.0


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b"not hdf5 at all"), "not an HDF5"),
        (lambda p: h5py.File(p, "w").close(), "no landscape results"),
        (lambda p: None, "does not exist"),
    ],
    ids=["not-hdf5", "no-results", "missing"],
)
def test_files_that_are_not_result_files_are_refused(tmp_path, make, message):
    path = tmp_path / "x.h5"
    make(path)
    with pytest.raises(UserError, match=message):
        results.read_result_file(path)


@pytest.mark.parametrize(
    "epochs, phases, switch",
    [
        ([1, 2, 3, 4], ["sgd", "sgd", "sam", "sam"], 2),
        ([20, 80, 85, 100], ["sgd", "sgd", "sam", "sam"], 80),  # gaps: the last SGD checkpoint
        ([100, 20, 85], ["sam", "sgd", "sam"], 20),  # any order
        ([1, 2], ["sam", "sam"], None),  # full SAM: no switch
        ([1, 2], ["sgd", "sgd"], None),
    ],
)
def test_switch_epoch_is_the_last_sgd_epoch_before_sam(epochs, phases, switch):
    assert results.switch_epoch(epochs, phases) == switch


def test_training_log_keeps_the_last_line_per_epoch_and_skips_a_cut_off_line(tmp_path, build):
    run = build.write_run(tmp_path / "run", epochs=6, switch=4, corrupt_tail=True)
    with open(run / "metrics.jsonl", "a") as fh:  # resume rewrote epoch 2: the later line wins
        fh.write("\n" + json.dumps({"epoch": 2, "phase": "sgd", "test_acc": 0.5}) + "\n")
    log = results.read_training_log(run)
    assert log.epoch.tolist() == [1, 2, 3, 4, 5, 6]
    assert log.columns["test_acc"][1] == 0.5 and log.switch_epoch() == 4


def test_a_run_folder_without_metrics_is_refused(tmp_path):
    with pytest.raises(UserError, match="metrics.jsonl"):
        results.read_training_log(tmp_path)
