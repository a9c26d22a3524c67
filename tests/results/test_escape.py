"""escape/<name>/: read back as written and exactly as docs/file-format.md says."""

import math

import h5py
import numpy as np
import pytest
import torch

from landscape.escape import sam_escape
from landscape.results import Provenance
from landscape.results.escape import EscapeCurve

PROVENANCE = Provenance(checkpoint="a.pt", checkpoint_sha256="ab" * 32, bn_mode="eval")


@pytest.fixture(scope="module")
def curve() -> EscapeCurve:
    """A real escape: 6 SAM steps of a tiny regression model."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    result = sam_escape(
        model, torch.nn.functional.cross_entropy, x, y, rho=0.05, lr=0.1, steps=6, eig_every=3
    )
    return EscapeCurve.from_escape(result, PROVENANCE)


def test_a_curve_reads_back_as_written(tmp_path, curve):
    with h5py.File(tmp_path / "r.h5", "w") as f:
        curve.write(f.create_group("escape/x"))
        assert EscapeCurve.read(f["escape/x"]) == curve


def test_a_diverged_curve_keeps_its_step_and_no_fit(tmp_path, curve):
    diverged = EscapeCurve(
        PROVENANCE, *(np.arange(4.0) for _ in range(5)), diverged_at=3.0, parameters={"lr": 9.0}
    )
    with h5py.File(tmp_path / "r.h5", "w") as f:
        diverged.write(f.create_group("escape/x"))
        back = EscapeCurve.read(f["escape/x"])
    assert back == diverged and back.diverged and math.isnan(back.growth_rate)


def test_the_settings_are_the_escapes_parameters_not_the_group_options(curve):
    assert "bn_mode" not in curve.parameters and "examples" not in curve.parameters
    assert curve.parameters["rho"] == 0.05 and curve.parameters["steps"] == 6


def test_every_name_the_writer_produces_is_documented(tmp_path, curve, format_doc):
    with h5py.File(tmp_path / "r.h5", "w") as f:
        curve.write(f.create_group("escape/x"))
        names = format_doc.written_names(f["escape/x"]) - set(vars(PROVENANCE))
    assert sorted(names - format_doc.names("escape")) == []


def test_the_document_names_nothing_the_writer_does_not_produce(tmp_path, curve, format_doc):
    with h5py.File(tmp_path / "r.h5", "w") as f:
        curve.write(f.create_group("escape/x"))
        names = format_doc.written_names(f["escape/x"])
    assert sorted(format_doc.names("escape") - names - {"<name>", "escape"}) == []
