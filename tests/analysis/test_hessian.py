"""landscape.analysis.hessian: the curvature of checkpoints, called as the commands call it."""

from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest

from landscape.analysis.hessian import HessianOptions, analyse_hessian, hessian_of
from landscape.parallel import Partition
from landscape.results.hessian import HessianResult
from tests.curvature.tiny_models import loss_fn, reference


def test_eigenvalues_trace_and_density_match_the_exact_float64_hessian():
    model, x, y, dense = reference("mlp")
    exact = np.linalg.eigvalsh(dense.numpy())
    options = HessianOptions(
        top_k=2, bottom_k=1, tol=1e-9, trace=True, trace_method="krylov-hutch++",
        trace_rel_stderr=0.05, trace_max_hvps=200, density=True,
        density_runs=1, density_steps=10, batch_size=30, engine="cached", dtype="float64",
    )  # fmt: skip
    result, chosen = hessian_of(model, loss_fn, x, y, options)
    np.testing.assert_allclose(result.top.values, exact[::-1][:2], rtol=1e-7)
    np.testing.assert_allclose(result.bottom.values, exact[:1], rtol=1e-6, atol=1e-9)
    assert abs(result.trace.value - exact.sum()) <= 5 * result.trace.stderr  # a Monte-Carlo sum
    assert result.density.nodes.shape == (1, 10)
    assert chosen["batch_size"] == 30 and result.hvp_count > 0


def test_the_weight_decay_shifts_every_eigenvalue():
    model, x, y, dense = reference("mlp")
    options = HessianOptions(top_k=1, tol=1e-9, batch_size=30)
    plain, _ = hessian_of(model, loss_fn, x, y, options)
    shifted, chosen = hessian_of(model, loss_fn, x, y, options, weight_decay=0.5)
    assert shifted.top.values[0] == pytest.approx(plain.top.values[0] + 0.5, rel=1e-7)
    assert chosen["weight_decay_term"] == 0.5


def _target(tmp_path: Path, model) -> SimpleNamespace:
    path = tmp_path / "run" / "epoch-001-sgd.pt"
    return SimpleNamespace(
        path=path, stem="run_epoch-001-sgd", sha256="ab" * 32, model=model, arch="mlp",
        epoch=1, phase="sgd", config={}, checkpoint=SimpleNamespace(format="landscape"),
    )  # fmt: skip


@pytest.mark.parametrize("rank, writes", [(0, True), (1, False)], ids=["writer", "not-writer"])
def test_each_result_is_saved_by_the_writer_only(tmp_path, rank, writes):
    model, x, y, _ = reference("mlp")
    out = tmp_path / "h.h5"
    options = HessianOptions(top_k=1, tol=1e-6, batch_size=30, dtype="float64")
    partition = Partition(rank=rank, world_size=2, backend="gloo")
    [(name, result)] = analyse_hessian(
        options, [_target(tmp_path, model)], "tiny", x, y, out, partition=partition
    )
    assert name == "run_epoch-001-sgd" and out.exists() == writes
    assert (result.provenance.world_size, result.provenance.backend) == (2, "gloo")
    if writes:
        with h5py.File(out) as f:
            assert HessianResult.read(f[f"hessian/{name}"]) == result


def test_the_checkpoints_weight_decay_is_used_when_none_is_given(tmp_path):
    model, x, y, _ = reference("mlp")
    target = _target(tmp_path, model)
    target.config = {"weight_decay": 0.25}
    options = HessianOptions(top_k=1, tol=1e-9, batch_size=30, weight_decay=None)
    [(_, result)] = analyse_hessian(options, [target], "tiny", x, y, tmp_path / "h.h5")
    assert result.provenance.config["weight_decay_term"] == 0.25


def test_the_fixed_batch_is_the_command_lines():
    from landscape.analysis import hessian
    from landscape.cli import common

    assert hessian.FIXED_BATCH == common.FIXED_BATCH
    model, x, y, _ = reference("mlp")
    options = HessianOptions(bn_mode="train")
    assert hessian.product_batch(model, loss_fn, x, y, options) == common.FIXED_BATCH
