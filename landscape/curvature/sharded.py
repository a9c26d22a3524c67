"""The Hessian of a model sharded with FSDP2, as an operator on sharded vectors.

Under ``torch.distributed.fsdp.fully_shard`` every parameter is a DTensor split by rows
(``Shard(0)``) over the ranks of a 1-D mesh; a rank holds one contiguous slice of each
flattened parameter. :class:`ShardedHessianOperator` acts on vectors laid out the same way
(:class:`~landscape.curvature.vectors.ParameterSpace`): ``matvec`` takes this rank's slice of
``v`` and returns this rank's slice of ``H v``, so Lanczos, Hutch++ and SLQ run on shards and
no rank ever holds a whole vector, a whole gradient or a whole Hessian-vector product.

Products. Exact double backward does not work through FSDP2 (measured, torch 2.14:
``torch.autograd.grad(loss, sharded_parameters, create_graph=True)`` fails with "appears to
not have been used in the graph", since the forward uses the unsharded copies that FSDP2
all-gathers outside autograd, and its gradients reach the shards through a reduce-scatter in
a hook, which has no derivative; pytorch/pytorch#172543). The workaround named there,
``set_reshard_after_backward(False)``, keeps every unsharded parameter alive until the second
backward, i.e. the whole model on every rank -- what sharding is meant to avoid. So the
products are central differences of FSDP gradients (Pearlmutter 1994 discusses both;
Granziol & Juarev 2026 used them under FSDP at scale), extrapolated::

    D(t) = (g(theta + t u) - g(theta - t u)) / (2 t),      u = v / ||v||,
    H v ~ (4 D(t/2) - D(t)) / 3 * ||v||                     (Richardson),

with ``g`` the gradient of the mean loss (each rank sums its share of the examples with the
global weights and FSDP reduce-scatters the sum: divide factor 1). A central difference has
error ``c t^2 + O(t^4)`` plus rounding ``~ u_dtype ||g|| / t``; the extrapolation removes the
``t^2`` term. The step is ``t = u_dtype^(1/3)`` (``u_dtype`` the unit roundoff of the
parameters' dtype; ``u`` is a unit vector, so ``t`` is the length of the step in parameter
space: 4.8e-6 in float64, 4.9e-3 in float32), the step that balances truncation against
rounding (Nocedal & Wright, *Numerical Optimization*, 2006, sec. 8.1).

The error of every product is estimated from the product itself, for its own direction,
as ``4/3 ||D(t) - D(t/2)||`` plus three times the rounding ``u_dtype (||g+|| + ||g-||) / t``.
Where truncation dominates, ``||D(t) - D(t/2)|| / 3`` is the ``t^2`` error of ``D(t/2)``,
which the extrapolation removes, so the estimate over-covers what is left by 4x or more; where
rounding dominates, the extrapolation amplifies the noise of ``D(t/2)`` about 2.7-fold while
``||D(t) - D(t/2)||`` is about 2.2 times it, so 4/3 of it covers the noise. That case is
real: Llama's RMSNorm computes in float32 even in a float64 model, so its products carry
float32 rounding -- measured on the tiny Llama of the tests, 1e-2 on products of norm 3. After
each product the estimate is :attr:`product_error` (per unit vector); Lanczos adds these to
its residuals and error bounds (:func:`landscape.curvature.lanczos._residuals`), so the stored
bounds are never tighter than the products allow. It is an estimate, not a proof.
A product costs four gradients; the
model is put back bit for bit after each (a copy of this rank's shards is kept, not the
difference undone). Measured on the tiny GPT-2 of the tests (float64): a plain central
difference at ``t = 2e-5`` put the top eigenvalue (70.26) 3e-3 off; the extrapolated products
put it within 1e-9 of the exact one while the estimate bounded it by 2e-4 -- honest, and
pessimistic by the ``t^2`` term the extrapolation removes. Certificates of finite-difference
products are therefore asked for at ``tol`` 1e-5 rather than 1e-8.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from torch import nn

from landscape.curvature.vectors import ParameterSpace, Slice
from landscape.parallel import SINGLE, Partition

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

PRODUCT_KIND = "finite-difference"
GRADIENTS_PER_PRODUCT = 4


def shard_slice(name: str, parameter: torch.Tensor, partition: Partition) -> Slice:
    """This rank's slice of the flattened ``parameter`` (a DTensor sharded on rows, or a
    whole tensor on one process)."""
    local = parameter.to_local() if hasattr(parameter, "to_local") else parameter
    numel, rows = parameter.numel(), (parameter.shape[0] if parameter.dim() else 1)
    if local.numel() == numel:
        return Slice(name, numel, 0, numel)
    # FSDP2 splits dim 0 as torch.chunk does: ceil(rows / world) rows per rank, the last
    # ranks getting fewer or none.
    per_rank = math.ceil(rows / partition.world_size)
    first_row = min(partition.rank * per_rank, rows)
    row_size = numel // rows
    expected = max(min(per_rank, rows - first_row), 0) * row_size
    if local.numel() != expected:
        raise ValueError(
            f"parameter {name}: this rank holds {local.numel()} elements, not the {expected} "
            "of a row-wise (Shard(0)) split; only FSDP2's default sharding is supported"
        )
    return Slice(name, numel, first_row * row_size, local.numel())


def _local(parameter: torch.Tensor) -> torch.Tensor:
    return parameter.to_local() if hasattr(parameter, "to_local") else parameter


def _unit_roundoff(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).eps / 2


class ShardedHessianOperator:
    """``v -> H v`` of the mean loss of an FSDP2-sharded ``model`` over fixed examples, on
    this rank's slices of the vectors (see the module notes).

    Every rank passes the same examples; each sums over its share
    (``partition.example_range``) in batches of ``batch_size``. All ranks run the same number
    of forward passes (FSDP2 all-gathers in each), a short share being padded with batches of
    weight zero. BatchNorm is in eval mode (running statistics). ``step`` overrides the
    finite-difference step ``t``. On one process with an unsharded model it is the same
    operator (a reference for tests).
    """

    curvature = "hessian"
    product_kind = PRODUCT_KIND

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        *,
        batch_size: int = 512,
        partition: Partition = SINGLE,
        step: float | None = None,
    ) -> None:
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("the model has no parameters that require gradients")
        if inputs.shape[0] != targets.shape[0]:
            raise ValueError(f"{inputs.shape[0]} inputs but {targets.shape[0]} targets")
        if inputs.shape[0] == 0:
            raise ValueError("no examples: the Hessian of an empty mean is undefined")
        self.model, self.loss_fn, self.partition = model, loss_fn, partition
        self.parameter_names = [n for n, _ in named]
        self.tensors = [p for _, p in named]
        self.locals = [_local(p) for p in self.tensors]
        self.local_shapes = [tuple(t.shape) for t in self.locals]
        self.dtype = self.locals[0].dtype
        self.device = self.locals[0].device
        self.space = ParameterSpace(
            [shard_slice(n, p, partition) for n, p in named], partition, self.device
        )
        self.dim = self.space.dim
        self.num_samples = n = inputs.shape[0]
        share = partition.example_range(n)
        x, y = inputs[share.start : share.stop], targets[share.start : share.stop]
        batches = [
            (x[i : i + batch_size].to(self.device), y[i : i + batch_size].to(self.device))
            for i in range(0, x.shape[0], batch_size)
        ]
        weights = [b[0].shape[0] / n for b in batches]
        # FSDP2 needs every rank in every forward: pad a short share with zero-weight batches
        most = max(partition.gather(len(batches))) if partition.is_distributed else len(batches)
        filler = (
            batches[0] if batches else (inputs[:1].to(self.device), targets[:1].to(self.device))
        )
        while len(batches) < most:
            batches.append(filler)
            weights.append(0.0)
        self.batches, self.weights = batches, weights
        for module in model.modules():  # FSDP2 sums over the ranks instead of averaging
            if hasattr(module, "set_gradient_divide_factor"):
                module.set_gradient_divide_factor(1.0)
                # a plain SUM (in float32 FSDP2 would otherwise scale inside the collective,
                # PREMUL_SUM, which Gloo does not have)
                module.set_force_sum_reduction_for_comms(True)
        self.unit_roundoff = _unit_roundoff(self.dtype)
        self.step = float(step) if step is not None else self.unit_roundoff ** (1 / 3)
        self.product_error = 0.0  # of the last product, per unit vector (module notes)
        self.max_product_error = 0.0
        self.hvp_count = 0
        self.gradient_count = 0
        self.product_seconds: list[float] = []

    # ----------------------------------------------------------------- gradients
    def gradient(self) -> torch.Tensor:
        """This rank's slice of the gradient of the mean loss over all ranks' examples."""
        for p in self.tensors:
            p.grad = None
        was_training = self.model.training
        self.model.eval()
        try:
            for (x, y), weight in zip(self.batches, self.weights):
                (self.loss_fn(self.model(x), y) * weight).backward()
        finally:
            self.model.train(was_training)
        self.gradient_count += 1
        parts = []
        for p, local in zip(self.tensors, self.locals):
            g = p.grad
            g = torch.zeros_like(local) if g is None else _local(g)
            parts.append(g.reshape(-1).to(torch.float64))
        for p in self.tensors:
            p.grad = None
        return torch.cat(parts)

    def _shifted_gradient(self, direction: list[torch.Tensor], t: float) -> torch.Tensor:
        locals_ = [_local(p) for p in self.tensors]  # views of FSDP2's sharded storage
        saved = [local.detach().clone() for local in locals_]
        try:
            with torch.no_grad():
                for local, d in zip(locals_, direction):
                    local.add_(d, alpha=t)
            return self.gradient()
        finally:
            with torch.no_grad():
                for local, s in zip(locals_, saved):
                    local.copy_(s)

    def _difference(self, direction: list[torch.Tensor], t: float):
        plus = self._shifted_gradient(direction, t)
        minus = self._shifted_gradient(direction, -t)
        return (plus - minus) / (2 * t), plus, minus

    # ----------------------------------------------------------------- product
    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """This rank's slice of ``H v`` for this rank's slice ``v`` (float64 arithmetic)."""
        if v.shape != (self.space.local_dim,):
            raise ValueError(
                f"expected this rank's slice of {self.space.local_dim} elements, "
                f"got shape {tuple(v.shape)}"
            )
        started = time.perf_counter()
        norm = self.space.norm(v)
        if norm == 0.0:
            self.hvp_count += 1
            return torch.zeros_like(v)
        unit = v.to(torch.float64) / norm
        direction = [
            part.view(shape).to(self.dtype)
            for part, shape in zip(self.space.split(unit), self.local_shapes)
        ]
        coarse, _, _ = self._difference(direction, self.step)
        fine, plus, minus = self._difference(direction, self.step / 2)
        product = (4 * fine - coarse) / 3
        rounding = self.unit_roundoff * (self.space.norm(plus) + self.space.norm(minus))
        self.product_error = 4 * self.space.norm(coarse - fine) / 3 + 3 * rounding / self.step
        self.max_product_error = max(self.max_product_error, self.product_error)
        if not bool(torch.isfinite(product).all()):
            from landscape.curvature.operator import NonFiniteProduct

            raise NonFiniteProduct(
                "a finite-difference Hessian-vector product is not finite: the loss or its "
                "gradient overflows at these weights (check the checkpoint for NaN/Inf)"
            )
        self.hvp_count += 1
        self.product_seconds.append(time.perf_counter() - started)
        return (product * norm).to(dtype=v.dtype)

    __matmul__ = matvec

    def provenance(self) -> dict:
        """What a result records of how the products were made."""
        return {
            "product": self.product_kind,
            "fd_step": self.step,
            "product_error": self.max_product_error,
            "gradients_per_product": GRADIENTS_PER_PRODUCT,
            "sharded": True,
            "world_size": self.partition.world_size,
        }
