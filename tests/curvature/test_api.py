"""The notebook API: model, loss and tensors (or a DataLoader) in, results out."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from landscape.curvature import (
    hessian_eigenvalues,
    hessian_trace,
    spectral_density,
    top_eigenvalue,
)
from tests.curvature.tiny_models import loss_fn, reference


def test_hessian_eigenvalues_from_tensors_and_from_a_dataloader_agree():
    model, x, y, H = reference("residual")
    from_tensors = hessian_eigenvalues(model, loss_fn, x, y, k=2, tol=1e-9, batch_size=7)
    loader = DataLoader(TensorDataset(x, y), batch_size=11)
    from_loader = hessian_eigenvalues(model, loss_fn, loader, k=2, tol=1e-9)
    exact = torch.linalg.eigvalsh(H).flip(0)[:2].numpy()
    np.testing.assert_allclose(from_tensors.eigenvalues, exact, rtol=1e-8)
    np.testing.assert_allclose(from_loader.eigenvalues, exact, rtol=1e-8)


def test_top_eigenvalue_is_a_float():
    model, x, y, H = reference("mlp")
    value = top_eigenvalue(model, loss_fn, x, y, tol=1e-9)
    assert value == pytest.approx(torch.linalg.eigvalsh(H)[-1].item(), rel=1e-8)


def test_eigenvectors_on_request_are_unit_and_parameter_shaped():
    model, x, y, _ = reference("cnn-bn")
    result = hessian_eigenvalues(model, loss_fn, x, y, k=2, eigenvectors=True)
    dim = sum(p.numel() for p in model.parameters())
    assert result.eigenvectors.shape == (2, dim)


def test_hessian_trace_methods_and_their_validation():
    model, x, y, H = reference("mlp")
    result = hessian_trace(model, loss_fn, x, y, method="hutchinson", rel_stderr=0.2, max_hvps=500)
    assert result.method == "hutchinson" and result.hvp_count <= 500
    with pytest.raises(ValueError, match="method"):
        hessian_trace(model, loss_fn, x, y, method="exact")


def test_spectral_density_returns_grid_values_nodes_and_weights():
    model, x, y, _ = reference("mlp")
    density = spectral_density(model, loss_fn, x, y, runs=2, steps=10, grid_points=501)
    assert density.grid.shape == density.values.shape == (501,)
    assert density.nodes.shape == (2, 10)


def test_spectral_density_runs_in_lockstep_on_request_with_the_same_result(monkeypatch):
    from landscape.curvature.operator import HessianOperator

    batched = []
    matmat = HessianOperator.matmat
    monkeypatch.setattr(HessianOperator, "matmat", lambda op, v: batched.append(1) or matmat(op, v))
    model, x, y, _ = reference("mlp")
    alone = spectral_density(model, loss_fn, x, y, runs=2, steps=10)
    assert not batched
    together = spectral_density(model, loss_fn, x, y, runs=2, steps=10, lockstep=True)
    assert len(batched) == 10
    np.testing.assert_allclose(together.values, alone.values, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("function", [hessian_eigenvalues, hessian_trace, spectral_density])
def test_a_dataloader_with_targets_is_an_error_not_ignored(function):
    model, x, y, _ = reference("mlp")
    loader = DataLoader(TensorDataset(x, y), batch_size=11)
    with pytest.raises(ValueError, match="targets were given together with a DataLoader"):
        function(model, loss_fn, loader, y)
