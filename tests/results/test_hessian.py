"""hessian/<name>/: written and read back unchanged, and exactly as docs/file-format.md says."""

import math

import h5py
import numpy as np
import pytest

from landscape.results import Provenance
from landscape.results.hessian import Block, Density, Eigenvalues, HessianResult, Trace

PROVENANCE = Provenance(checkpoint="runs/a/epoch-003-sgd.pt", checkpoint_sha256="ab" * 32)


def eigenvalues(k: int, vectors: bool = False) -> Eigenvalues:
    return Eigenvalues(
        values=np.linspace(5.0, 1.0, k),
        residuals=np.full(k, 1e-5),
        error_bounds=np.array([1e-9] * (k - 1) + [np.nan]),
        converged=True,
        tol=1e-4,
        hvp_count=40,
        eigenvectors={"fc.weight": np.ones((k, 3, 2)), "fc.bias": np.zeros((k, 3))}
        if vectors
        else None,
    )


def density() -> Density:
    return Density(
        grid=np.linspace(-1, 6, 50),
        values=np.full(50, 1 / 7),
        nodes=np.array([[0.1, 4.9, np.nan]]),
        weights=np.array([[0.5, 0.5, 0.0]]),
        sigma=0.07,
        hvp_count=3,
        lockstep=True,
    )


TRACE = Trace(
    value=12.5,
    stderr=0.1,
    method="krylov-hutch++",
    converged=True,
    samples=30,
    sketch_rank=4,
    hvp_count=90,
)

EVERYTHING = HessianResult(
    provenance=PROVENANCE,
    hvp_count=170,
    top=eigenvalues(3, vectors=True),
    bottom=eigenvalues(2, vectors=True),
    trace=TRACE,
    density=density(),
    cost_note="cached engine, 2 graphs kept",
    curvature="hessian",
    blocks={
        "fc": Block(
            "fc",
            ["fc.weight", "fc.bias"],
            dim=12,
            hvp_count=7,
            top=eigenvalues(1),
            trace=TRACE,
            density=density(),
        ),
    },
)


@pytest.mark.parametrize(
    "written",
    [
        EVERYTHING,
        HessianResult(PROVENANCE, hvp_count=20, top=eigenvalues(1)),
        HessianResult(PROVENANCE, hvp_count=90, trace=TRACE),
        HessianResult(PROVENANCE, hvp_count=3, density=density(), curvature="gauss-newton"),
    ],
    ids=["everything", "top-1", "trace-only", "density-only"],
)
def test_a_result_reads_back_as_written(tmp_path, written):
    with h5py.File(tmp_path / "r.h5", "w") as f:
        written.write(f.create_group("hessian/x"))
        assert HessianResult.read(f["hessian/x"]) == written


def test_a_result_that_differs_in_one_eigenvalue_is_not_equal():
    other = HessianResult(PROVENANCE, hvp_count=20, top=eigenvalues(2))
    other.top.values = other.top.values + np.array([0.0, 1e-12])
    assert other != HessianResult(PROVENANCE, hvp_count=20, top=eigenvalues(2))


def test_without_a_trace_the_trace_datasets_are_nan(tmp_path):
    with h5py.File(tmp_path / "r.h5", "w") as f:
        HessianResult(PROVENANCE, hvp_count=20, top=eigenvalues(1)).write(f.create_group("g"))
        assert math.isnan(f["g/trace"][()]) and math.isnan(f["g/trace_stderr"][()])


def test_a_group_without_error_bounds_reads_them_as_nan(tmp_path):
    """Files of older versions (and of the experiment before #13) hold no error bounds."""
    with h5py.File(tmp_path / "r.h5", "w") as f:
        PROVENANCE.write(g := f.create_group("g"))
        g["eigenvalues"], g["residuals"], g["hvp_count"] = [3.0, 2.0], [1e-5, 1e-5], 7
        result = HessianResult.read(g)
    assert result.top.values.tolist() == [3.0, 2.0]
    assert np.isnan(result.top.error_bounds).all() and result.top.error_bounds.shape == (2,)


def test_every_name_the_writer_produces_is_documented(tmp_path, format_doc):
    with h5py.File(tmp_path / "r.h5", "w") as f:
        EVERYTHING.write(f.create_group("hessian/x"))
        written = format_doc.written_names(f["hessian/x"], skip_below=("eigenvectors", "blocks"))
    written -= set(vars(PROVENANCE))  # the provenance section documents those
    assert sorted(written - format_doc.names("hessian")) == []


def test_the_document_names_nothing_the_writer_does_not_produce(tmp_path, format_doc):
    with h5py.File(tmp_path / "r.h5", "w") as f:
        EVERYTHING.write(f.create_group("hessian/x"))
        written = format_doc.written_names(f["hessian/x"], skip_below=("eigenvectors",))
    not_names = {"<checkpoint-stem>", "<parameter>", "<block>", "<run-label>", "hessian", "k", "="}
    not_names |= {"landscape", "CKPT", "1", "--bottom-k", "--eigenvectors", "experiment_key"}
    not_names |= {"experiment", "...", "<root>", "bottom_", "--blocks", "--warm-start"}
    not_names |= {"--density-lockstep"}
    # values of attributes, not names: stop rules, starts, curvatures, block kinds and examples
    not_names |= {"gap", "residual", "random", "warm", "ggn", "fisher", "fisher-mc", "other"}
    not_names |= {"layer", "type", "conv", "linear", "norm", "embedding", "attention"}
    not_names |= {"layer1.0.conv1", "gauss_newton.py"}
    documented = format_doc.names("hessian") - not_names
    assert sorted(documented - written) == []
