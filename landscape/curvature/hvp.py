"""Hessian-vector product engines for one batch of a fixed data set.

Two ways to compute ``H_b v`` for the Hessian ``H_b`` of one batch's mean loss:

* ``cached`` -- double backward (Pearlmutter 1994). The first-order graph of the batch
  (``g = d loss / d theta`` built with ``create_graph=True``) is kept and every product is
  one more backward pass through it, ``H v = d(g . v)/d theta`` (computed as
  ``autograd.grad(g, theta, grad_outputs=v)``, no explicit dot product). Measured on CPU,
  one product costs about 2 gradients on a conv net (ResNet-20: each convolution's double
  backward runs three convolutions) and less on MLPs. Graphs are kept while a memory
  budget allows; batches beyond it are rebuilt for each product (forward + backward +
  double backward, about 4 gradients, with one batch's graph alive at a time).
* ``func`` -- forward-over-reverse, ``jvp(grad(loss), theta, v)`` with ``torch.func``. Nothing
  is kept between products either, but it carries a tangent through the forward and the
  backward pass, and measured on CPU it is slower and heavier than rebuilding a graph:
  ResNet-20 on 128 inputs 1.85 s and 1.6 GiB against 1.20 s and 0.8 GiB; the digits CNN
  and an MLP alike. So ``auto`` uses it only for models whose double backward raises
  (an operation whose backward has no derivative formula).

Neither engine can differentiate a backward marked ``@once_differentiable``: autograd routes
its second-order terms into a detached dead end and returns zeros for them instead of raising,
and ``torch.func`` drops them as well. :func:`check_twice_differentiable` looks for that dead end
in each batch's first-order graph once, so such a model is an error, not a wrong Hessian.

Both engines see the model through :func:`evaluation_context`, which fixes what BatchNorm
does (running or batch statistics) and guarantees that running statistics are never touched.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

import torch
from torch import nn

from landscape.bn import BN_TYPES, analysis_mode
from landscape.curvature.substitutions import twice_differentiable

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Batch = tuple[torch.Tensor, torch.Tensor]

ENGINES = ("auto", "cached", "func")


class ProductEngine(Protocol):
    """What an operator needs from an engine: per-batch products through its own graphs.

    ``product(index, v_parts)`` returns ``C_b v`` for batch ``index`` of the operator's fixed
    batches, per parameter (same shapes as ``v_parts``), for the batch's mean loss; the operator
    weights and sums the batches (and would all-reduce them). ``release()`` frees whatever is
    kept between products. ``name`` is recorded. Engines may add ``products(index, v_parts)``
    with ``(m, *shape)`` parts for ``m`` vectors in one pass (used by ``matmat``).
    Implementations: :class:`CachedGraphEngine`, :class:`FuncEngine` (Hessian) and
    :class:`~landscape.curvature.gauss_newton.GaussNewtonEngine` (GGN, Fisher).
    """

    name: str

    def product(self, index: int, v_parts: Sequence[torch.Tensor]) -> list[torch.Tensor]: ...

    def release(self) -> None: ...


@contextmanager
def evaluation_context(model: nn.Module, bn_mode: str) -> Iterator[nn.Module]:
    """``landscape.bn.analysis_mode`` plus the guarantees the engines need.

    Attention and hardsigmoid run in forms that have a double backward
    (:mod:`landscape.curvature.substitutions`).

    In ``train`` mode BatchNorm normalises with batch statistics. Its running statistics
    are then not even passed to the kernel (``track_running_stats`` is switched off for the
    duration), so no graph holds a reference to a buffer that ``analysis_mode`` later
    restores in place, and ``torch.func`` never sees an in-place buffer update.
    """
    with analysis_mode(model, bn_mode):
        switched, affine = [], []
        for module in model.modules():
            if not isinstance(module, BN_TYPES):
                continue
            if bn_mode == "train" and module.track_running_stats:
                module.track_running_stats = False
                switched.append(module)
            elif (
                not module.training
                and module.running_mean is not None
                and "forward" not in vars(module)  # not patched already (nested contexts)
            ):
                # Same function, cheaper second derivatives (see _frozen_batchnorm_forward).
                module.forward = _frozen_batchnorm_forward(module)
                affine.append((module, module.forward))
        try:
            with torch.enable_grad(), twice_differentiable():
                yield model
        finally:
            for module in switched:
                module.track_running_stats = True
            for module, patched in affine:
                if vars(module).get("forward") is patched:
                    del module.forward  # back to the class's forward


def _frozen_batchnorm_forward(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """BatchNorm with running statistics as the per-channel affine map it is,
    ``y = (x - mu) * s + b`` with ``s = w / sqrt(var + eps)``.

    Centred first, as the fused kernel does: ``x * s - mu * s`` would subtract two large,
    nearly equal products wherever ``|mu|`` is large against the spread of ``x`` (trained
    networks), losing float32 digits that the Hessian then inherits.

    It is the same function of the input and of ``w, b`` (so the same gradient and Hessian),
    but autograd differentiates it as two elementwise ops. Through the fused kernel, the
    double backward of eval-mode BatchNorm runs PyTorch's generic batch-statistics formula
    (``batchnorm_double_backward``), about a third of a ResNet-20 product on CPU.
    Reads the module's attributes at call time, so ``torch.func.functional_call`` works.
    """

    def forward(x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        inv_std = torch.rsqrt(module.running_var + module.eps)
        scale = inv_std if module.weight is None else module.weight * inv_std
        y = (x - module.running_mean.view(shape)) * scale.view(shape)
        return y if module.bias is None else y + module.bias.view(shape)

    return forward


def _zeros_for_missing(parts: Sequence[torch.Tensor | None], params: Sequence[torch.Tensor]):
    return [torch.zeros_like(p) if g is None else g for g, p in zip(parts, params)]


class _SavedBytes:
    """Counts the distinct storages that autograd saves for backward (a graph's memory)."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, int], int] = {}

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        try:
            storage = tensor.untyped_storage()
            self.seen[(str(tensor.device), storage.data_ptr())] = storage.nbytes()
        except (RuntimeError, NotImplementedError):  # tensors without storage (rare subclasses)
            pass
        return tensor

    @property
    def total(self) -> int:
        return sum(self.seen.values())


def default_memory_budget(device: torch.device) -> int:
    """Bytes the cached engine may spend on kept graphs: half of what is free now."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(0.5 * free)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(0.5 * int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        return int(0.25 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30


class NoDoubleBackward(RuntimeError):
    """The first-order graph cannot be differentiated again (exactly)."""


# The node autograd puts after a backward marked @once_differentiable. Its inputs are detached
# copies, so a double backward towards the parameters never reaches it and, instead of
# raising, silently drops that function's second-order terms; hence the explicit check.
_DELAYED_ERROR = "torch::autograd::Error"


def check_twice_differentiable(grads: Sequence[torch.Tensor | None]) -> None:
    """Raise :class:`NoDoubleBackward` if the graph behind ``grads`` (built with
    ``create_graph=True``) passes through a backward that is not differentiable."""
    stack = [g.grad_fn for g in grads if g is not None and g.grad_fn is not None]
    seen: set = set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if node.name() == _DELAYED_ERROR:
            raise NoDoubleBackward(
                "the model's backward is not differentiable (it uses an autograd.Function "
                "marked @once_differentiable)"
            )
        stack.extend(child for child, _ in node.next_functions)


class CachedGraphEngine:
    """Double backward through kept first-order graphs (rebuilt per product beyond the budget)."""

    name = "cached"

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        params: Sequence[torch.Tensor],
        batches: Sequence[Batch],
        memory_budget: int,
    ) -> None:
        self.model, self.loss_fn, self.params = model, loss_fn, list(params)
        self.batches = batches
        self.memory_budget = memory_budget
        self.graphs: dict[int, list[torch.Tensor | None]] = {}
        self.graph_bytes = 0
        self.full = False  # once a graph did not fit, later batches are rebuilt per product
        self.checked: set[int] = set()  # batches whose graph passed check_twice_differentiable

    def _first_order(self, index: int, counter: _SavedBytes | None = None):
        x, y = self.batches[index]
        if counter is None:
            loss = self.loss_fn(self.model(x), y)
            grads = torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True)
        else:
            with torch.autograd.graph.saved_tensors_hooks(counter.pack, lambda t: t):
                loss = self.loss_fn(self.model(x), y)
                grads = torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True)
        if index not in self.checked:
            check_twice_differentiable(grads)
            self.checked.add(index)
        return grads

    def prepare(self, index: int) -> tuple[int, list[torch.Tensor | None]]:
        """Build batch ``index``'s graph, keep it if the budget allows; return (bytes, grads)."""
        counter = _SavedBytes()
        grads = list(self._first_order(index, counter))
        size = counter.total
        if not self.full and self.graph_bytes + size <= self.memory_budget:
            self.graphs[index] = grads
            self.graph_bytes += size
        else:
            self.full = True
        return size, grads

    def product(self, index: int, v_parts: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return self._double_backward(index, v_parts, batched=False)

    def products(self, index: int, v_parts: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Several products in one double backward: ``v_parts[i]`` is ``(m, *shape)``.

        ``is_grads_batched`` vmaps the backward over the ``m`` vectors; whether that costs less
        per vector than ``m`` backward passes depends on the model (benchmarks/
        bench_batched_products.py, idle 2-core CPU: 0.77x on the digits CNN, 1.18x on
        ResNet-20), so callers that may use either measure (landscape.curvature.trace)."""
        return self._double_backward(index, v_parts, batched=True)

    def _double_backward(
        self, index: int, v_parts: Sequence[torch.Tensor], *, batched: bool
    ) -> list[torch.Tensor]:
        """d(g . v)/dtheta through batch ``index``'s first-order graph (kept, built and kept,
        or built for this product alone); ``batched``: ``v_parts`` carry a leading axis m."""
        grads = self.graphs.get(index)
        if grads is None:
            grads = self.prepare(index)[1] if not self.full else self._first_order(index)
        kept = index in self.graphs
        live = [(g, v) for g, v in zip(grads, v_parts) if g is not None and g.requires_grad]
        lead = (v_parts[0].shape[0],) if batched else ()
        hv = (
            torch.autograd.grad(
                [g for g, _ in live],
                self.params,
                grad_outputs=[v for _, v in live],
                retain_graph=kept,
                allow_unused=True,
                is_grads_batched=batched,
            )
            if live
            else [None] * len(self.params)
        )
        return [
            torch.zeros((*lead, *p.shape), dtype=p.dtype, device=p.device) if h is None else h
            for h, p in zip(hv, self.params)
        ]

    def release(self) -> None:
        self.graphs.clear()
        self.graph_bytes = 0
        self.full = False


class FuncEngine:
    """Forward-over-reverse products with ``torch.func``: nothing kept between products."""

    name = "func"

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        names: Sequence[str],
        params: Sequence[torch.Tensor],
        batches: Sequence[Batch],
    ) -> None:
        self.model, self.loss_fn, self.batches = model, loss_fn, batches
        self.names = list(names)
        self.live = list(params)
        self.params = tuple(p.detach() for p in params)
        self.checked = False

    def _check(self, index: int) -> None:
        # Forward-over-reverse loses a once_differentiable backward's terms just as double
        # backward does, without a trace in torch.func; one first-order graph tells.
        self.checked = True
        x, y = self.batches[index]
        try:
            loss = self.loss_fn(self.model(x), y)
            grads = torch.autograd.grad(loss, self.live, create_graph=True, allow_unused=True)
        except (RuntimeError, NotImplementedError):
            return  # no first-order graph to inspect (why func was chosen); nothing to check
        check_twice_differentiable(grads)

    def product(self, index: int, v_parts: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        from torch.func import functional_call, grad, jvp

        if not self.checked:
            self._check(index)
        x, y = self.batches[index]
        names = self.names

        def loss_of(flat_params: tuple[torch.Tensor, ...]) -> torch.Tensor:
            # Parameters not listed (frozen ones) and buffers come from the module itself.
            out = functional_call(self.model, dict(zip(names, flat_params)), (x,), strict=False)
            return self.loss_fn(out, y)

        _, hv = jvp(grad(loss_of), (self.params,), (tuple(v_parts),))
        return list(hv)

    def release(self) -> None:
        pass
