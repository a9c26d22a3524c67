"""Measures built from first derivatives: full-batch gradient norm and Fisher-Rao norm."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import functional_call, jvp

from landscape.bn import analysis_mode
from landscape.curvature.substitutions import twice_differentiable
from landscape.losses import LossFn
from landscape.parallel import SINGLE, Partition
from landscape.sharpness._batched import global_norm, loss_and_grad, trainable_parameters
from landscape.sharpness.result import SharpnessMeasurement


def gradient_norm(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    batch_size: int | None = None,
    bn_mode: str = "eval",
    partition: Partition = SINGLE,
) -> SharpnessMeasurement:
    """||grad_w L(w)||_2 of the mean loss over all the examples (the full-batch gradient)."""
    with analysis_mode(model, bn_mode):
        loss, _, grads = loss_and_grad(
            model, loss_fn, inputs, targets, trainable_parameters(model), batch_size, partition
        )
    return SharpnessMeasurement(
        measure="gradient_norm",
        value=global_norm(grads).item(),
        loss=loss,
        params={"bn_mode": bn_mode, "examples": inputs.shape[0]},
        gradient_evaluations=1.0,
    )


def fisher_rao_norm(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    batch_size: int | None = None,
    bn_mode: str = "eval",
    partition: Partition = SINGLE,
) -> SharpnessMeasurement:
    """Empirical Fisher-Rao norm ||w||_fr = sqrt( (1/n) sum_i <w, grad_w l(f_w(x_i), y_i)>^2 ).

    This is <w, I(w) w> with the empirical Fisher information I = E[grad l grad l^T] over
    the training labels (Liang, Poggio, Rakhlin & Stokes, "Fisher-Rao metric, geometry, and
    complexity of neural networks", AISTATS 2019, Def. 2.1/eq. 2.3; the form used by Jiang et
    al., "Fantastic generalization measures", ICLR 2020). For bias-free ReLU networks with
    L+1 layers, <w, grad_w l> = (L+1) <dl/df, f(x)> (Liang et al., Lemma 2.1), so the norm
    is (L+1) sqrt(E[<dl/df, f>^2]); here the directional derivative <w, grad_w l_i> is
    computed exactly for any architecture as d/dt l_i(f_{(1+t)w}(x_i)) at t=0: one
    forward-mode pass gives J_i w for every example, and <dl_i/df_i, J_i w> follows.

    ``loss_fn`` must be a mean of per-example terms (cross-entropy, mse); with BatchNorm in
    ``train`` mode the examples of a batch are coupled and the value is a batch quantity.
    """
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    weights = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    n = inputs.shape[0]
    batch_size = batch_size or n
    total = torch.zeros((), dtype=torch.float64, device=inputs.device)
    share = partition.example_range(n)  # this process's examples; the squares are summed
    with analysis_mode(model, bn_mode):
        for start in range(share.start, share.stop, batch_size):
            stop = min(start + batch_size, share.stop)
            x, y = inputs[start:stop], targets[start:stop]

            def outputs_of(params, x=x):
                return functional_call(model, params, (x,))

            with twice_differentiable():  # fused attention has no forward-mode derivative
                out, tangent = jvp(outputs_of, (weights,), ({k: weights[k] for k in names},))
            out = out.detach().requires_grad_(True)
            with torch.enable_grad():
                per_example = torch.autograd.grad(loss_fn(out, y) * x.shape[0], out)[0]
            directional = (per_example * tangent).flatten(1).sum(dim=1).double()
            total += (directional**2).sum()
    total = partition.sum_(total).item()
    return SharpnessMeasurement(
        measure="fisher_rao_norm",
        value=math.sqrt(total / n),
        params={
            "definition": "sqrt(mean_i <w, grad_w loss_i>^2), empirical Fisher (Liang et al. 2019)",
            "bn_mode": bn_mode,
            "examples": n,
        },
        gradient_evaluations=1.0,
    )
