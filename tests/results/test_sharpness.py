"""sharpness/<name>/<measure>: read back as written, accumulated per checkpoint, documented."""

import h5py
import numpy as np
import pytest

from landscape.results import Provenance
from landscape.results.sharpness import MeasureValue, SharpnessResult, write_merged
from landscape.sharpness import SharpnessMeasurement as Measured

PROVENANCE = Provenance(
    checkpoint="a.pt", checkpoint_sha256="ab" * 32, split="train", samples=64, seed=0
)
WORST = MeasureValue(0.25, loss=0.1, seconds=2.0, gradient_evaluations=21, parameters={"rho": 0.05})
NORM = MeasureValue(1.5, loss=0.1, seconds=0.1, gradient_evaluations=1.0)


@pytest.mark.parametrize(
    "written",
    [
        SharpnessResult(PROVENANCE, {"worst_case": WORST, "gradient_norm": NORM}),
        SharpnessResult(PROVENANCE, {"average": MeasureValue(np.array([0.1, 0.2]), 0.01)}),
        SharpnessResult(PROVENANCE),
    ],
    ids=["scalars", "an-array-measure", "no-measure"],
)
def test_a_result_reads_back_as_written(tmp_path, written):
    with h5py.File(tmp_path / "r.h5", "w") as f:
        written.write(f.create_group("sharpness/x"))
        assert SharpnessResult.read(f["sharpness/x"]) == written


def test_a_measure_keeps_its_parameters_and_scalar_extras_but_not_the_group_options():
    measured = Measured(
        "worst_case",
        0.3,
        loss=0.1,
        params={"rho": 0.05, "steps": 20, "bn_mode": "eval", "seed": 0, "examples": 64},
        extra={"perturbed_loss": 0.4, "per_group": [0.2, 0.4]},
        gradient_evaluations=21.0,
    )
    value = MeasureValue.from_measure(measured, seconds=1.5)
    assert value.parameters == {"rho": 0.05, "steps": 20, "perturbed_loss": 0.4}


@pytest.mark.parametrize(
    "change, kept",
    [({}, True), ({"samples": 128}, False), ({"checkpoint_sha256": "cd" * 32}, False)],
    ids=["same-examples", "other-examples", "other-checkpoint"],
)
def test_a_later_run_keeps_earlier_measures_only_when_measured_alike(tmp_path, change, kept):
    later = Provenance(**{**vars(PROVENANCE), **change})
    with h5py.File(tmp_path / "r.h5", "w") as f:
        write_merged(f, "x", SharpnessResult(PROVENANCE, {"worst_case": WORST}))
        write_merged(f, "x", SharpnessResult(later, {"gradient_norm": NORM}))
        names = set(SharpnessResult.read(f["sharpness/x"]).measures)
    assert names == ({"worst_case", "gradient_norm"} if kept else {"gradient_norm"})


RECORDED = {"loss": "cross-entropy", "subset_seed": 0}


@pytest.mark.parametrize(
    "earlier, later, kept",
    [
        (RECORDED, RECORDED, True),
        (RECORDED, {**RECORDED, "subset_seed": 1}, False),
        (RECORDED, {**RECORDED, "loss": "mse"}, False),
        ({}, {**RECORDED, "subset_seed": 1}, True),
    ],
    ids=["same-config", "other-subset-seed", "other-loss", "older-file-without-them"],
)
def test_earlier_measures_are_kept_only_for_the_same_loss_and_subset_seed(
    tmp_path, earlier, later, kept
):
    with h5py.File(tmp_path / "r.h5", "w") as f:
        first = Provenance(**{**vars(PROVENANCE), "config": earlier})
        write_merged(f, "x", SharpnessResult(first, {"worst_case": WORST}))
        second = Provenance(**{**vars(PROVENANCE), "config": later})
        write_merged(f, "x", SharpnessResult(second, {"gradient_norm": NORM}))
        names = set(SharpnessResult.read(f["sharpness/x"]).measures)
    assert names == ({"worst_case", "gradient_norm"} if kept else {"gradient_norm"})


@pytest.mark.parametrize(
    "parameters, flags",
    [
        ({"rho": 0.05, "steps": 20, "m": 64, "norm": "l2"}, {"rho": 0.05, "steps": 20, "m": 64}),
        ({"rho": 0.5, "adaptive": True, "norm": "l2"}, {"adaptive-rho": 0.5}),
        ({"rho": 0.001, "adaptive": True, "norm": "linf"}, {"linf-rho": 0.001}),
        ({"sigma": 0.1, "draws": 8, "adaptive": True}, {"adaptive-sigma": 0.1, "draws": 8}),
        ({"rel_stderr": 0.05, "curvature": "ggn", "max_hvps": 2000},
         {"curvature": "ggn", "trace-rel-stderr": 0.05}),
    ],
    ids=["worst-case", "adaptive-l2", "adaptive-linf", "adaptive-average", "trace"],
)  # fmt: skip
def test_a_measure_names_its_parameters_by_their_flags(parameters, flags):
    assert MeasureValue(0.1, parameters=parameters).options() == flags


def test_every_name_the_writer_produces_is_documented(tmp_path, format_doc):
    written = SharpnessResult(PROVENANCE, {"worst_case": WORST, "gradient_norm": NORM})
    with h5py.File(tmp_path / "r.h5", "w") as f:
        written.write(f.create_group("sharpness/x"))
        names = format_doc.written_names(f["sharpness/x"]) - set(vars(PROVENANCE))
    assert sorted(names - format_doc.names("sharpness")) == []
