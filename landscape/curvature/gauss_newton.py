"""Positive semi-definite curvature: generalised Gauss-Newton and Fisher, as linear operators.

All three have the form ``C = J^T M J`` for a batch, with ``J`` the Jacobian of some outputs
``o(theta)`` of the batch and ``M`` a PSD matrix on the outputs (Schraudolph 2002, "Fast
curvature matrix-vector products for second-order gradient descent"; Martens 2020, "New
insights and perspectives on the natural gradient method", sections 8-9):

* ``ggn`` -- generalised Gauss-Newton: ``o = f(x; theta)`` the model's outputs and
  ``M = d^2 L / d o^2`` the Hessian of the batch's mean loss w.r.t. the outputs (for
  cross-entropy ``(1/n) (diag(p_i) - p_i p_i^T)`` per example, for squared errors a constant).
  It is the Hessian without the term ``sum_i dL/do_i d^2 o_i / d theta^2``, so it equals the
  Hessian for a model linear in its parameters with a squared-error loss.
* ``fisher`` -- empirical Fisher ``(1/n) sum_i g_i g_i^T`` with ``g_i`` the gradient of example
  ``i``'s loss at its true label: ``o = (l_1 .. l_n)`` the per-example losses, ``M = I / n``.
* ``fisher-mc`` -- the Fisher of the model's predictive distribution estimated with labels
  sampled from it (drawn once, so the operator is one fixed matrix; by inverse CDF from noise
  seeded by ``(seed, example index)``, so it does not depend on batching or on the processes):
  ``(1/(n S)) sum_{i,s} g~_is g~_is^T`` with ``S`` samples per example. Its expectation over
  the labels is the GGN when the loss is the negative log-likelihood (cross-entropy without
  label smoothing; ``half-sse`` = Gaussian of unit variance; ``mse`` = variance ``C/2``).

A product is exact and costs two backward passes through one kept graph: ``J v`` by the
double-vjp identity ``J v = d/du <J^T u, v>`` (``J^T u`` is linear in ``u``; its graph is
built once per batch), then ``M (J v)`` on the small output space, then ``J^T (M J v)`` by a
plain vjp. Graphs are kept while the memory budget allows, as for the Hessian's cached engine,
and the operators share :class:`~landscape.curvature.operator.HessianOperator`'s batching,
exact batch weights, BatchNorm modes, parameter subsets and ``dim``/``matvec`` interface, so
Lanczos, the trace estimators and SLQ use them unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from landscape.curvature.hvp import Batch, LossFn, _SavedBytes, _zeros_for_missing
from landscape.curvature.operator import HessianOperator
from landscape.registry import CURVATURE_KINDS, resolve

# (batch index, batch outputs, batch targets) -> (outputs o to differentiate, u -> M u on o)
OutputSpace = Callable[
    [int, torch.Tensor, torch.Tensor],
    tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]],
]


def per_example_losses(loss_fn: LossFn, outputs: torch.Tensor, targets: torch.Tensor):
    """``(l_1 .. l_n)`` with ``l_i = loss_fn(outputs[i:i+1], targets[i:i+1])``: the losses whose
    mean is the batch loss (vmapped where the loss allows, else one call per example)."""

    def one(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss_fn(z.unsqueeze(0), y.unsqueeze(0))

    try:
        return torch.func.vmap(one)(outputs, targets)
    except (RuntimeError, NotImplementedError, ValueError):
        return torch.stack([one(z, y) for z, y in zip(outputs, targets)])


def ggn_output_space(loss_fn: LossFn) -> OutputSpace:
    """The model's outputs, and the Hessian of the mean loss w.r.t. them (by autograd on the
    small output space, exact for any twice differentiable loss)."""

    def space(index: int, outputs: torch.Tensor, targets: torch.Tensor):
        z = outputs.detach().requires_grad_(True)
        with torch.enable_grad():
            (dz,) = torch.autograd.grad(loss_fn(z, targets), z, create_graph=True)

        def output_hessian(u: torch.Tensor) -> torch.Tensor:
            if not dz.requires_grad:  # a loss linear in the outputs has no curvature there
                return torch.zeros_like(u)
            (hu,) = torch.autograd.grad(dz, z, grad_outputs=u, retain_graph=True)
            return hu

        return outputs, output_hessian

    return space


def fisher_output_space(loss_fn: LossFn) -> OutputSpace:
    """The per-example losses at the given targets, and ``M = I / n``."""

    def space(index: int, outputs: torch.Tensor, targets: torch.Tensor):
        losses = per_example_losses(loss_fn, outputs, targets)
        return losses, lambda u: u / losses.shape[0]

    return space


class Sampler(Protocol):
    """A predictive distribution, sampled by inverse CDF from fixed noise: ``noise`` draws the
    standard noise of one example (outputs of shape ``example_shape``) from ``generator``;
    ``labels`` turns the noise of a batch into targets distributed as the model predicts."""

    def noise(self, example_shape: torch.Size, generator: np.random.Generator) -> torch.Tensor: ...

    def labels(self, outputs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor: ...


class CategoricalSampler:
    """Class labels ``y ~ softmax(outputs)`` over the last dimension (every position of a
    sequence model's logits): one ``u ~ U[0, 1)`` per position, and the label is the number of
    cumulative probabilities ``<= u`` (inverse CDF, ``searchsorted`` on the cumulative
    softmax)."""

    def noise(self, example_shape: torch.Size, generator: np.random.Generator) -> torch.Tensor:
        return torch.from_numpy(generator.random(tuple(example_shape[:-1])))

    def labels(self, outputs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        cdf = F.softmax(outputs.detach().double(), dim=-1).cumsum(-1).contiguous()
        u = noise.to(cdf.device).unsqueeze(-1).contiguous()
        labels = torch.searchsorted(cdf, u, right=True).squeeze(-1)
        return labels.clamp_max(cdf.shape[-1] - 1)  # u above a cdf that rounds to below 1


class GaussianSampler:
    """Targets ``y = outputs + sqrt(variance) * z``, ``z ~ N(0, I)``: ``half-sse`` is the
    negative log-likelihood of variance 1, ``mse`` (the mean over ``C`` outputs) that of
    variance ``C / 2``; ``variance`` may be a function of the outputs."""

    def __init__(self, variance: float | Callable[[torch.Tensor], float]) -> None:
        self.variance = variance

    def noise(self, example_shape: torch.Size, generator: np.random.Generator) -> torch.Tensor:
        return torch.from_numpy(generator.standard_normal(tuple(example_shape)))

    def labels(self, outputs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        scale = self.variance(outputs) if callable(self.variance) else self.variance
        return outputs.detach() + (noise * scale**0.5).to(outputs)


categorical_sampler = CategoricalSampler()


def sampler_for_loss(loss_name: str) -> Sampler:
    """The predictive distribution whose negative log-likelihood is the named loss."""
    if loss_name == "cross-entropy":
        return categorical_sampler
    if loss_name == "half-sse":
        return GaussianSampler(1.0)
    if loss_name == "mse":
        return GaussianSampler(lambda outputs: outputs[0].numel() / 2)
    raise ValueError(f"no predictive distribution known for the loss {loss_name!r}")


def example_generator(seed: int, index: int) -> np.random.Generator:
    """The generator of example ``index`` (its position among all examples, over every
    process): a counter-based Philox stream keyed by ``(seed, index)`` (Salmon et al. 2011,
    "Parallel random numbers: as easy as 1, 2, 3"), so that its draws depend on nothing else.
    (torch's CPU generator keeps 32 bits of a seed: too few to key every example apart.)"""
    if index < 0:
        raise ValueError(f"example index {index} is negative")
    key = (seed % 2**64) << 64 | (index % 2**64)
    return np.random.Generator(np.random.Philox(key=key))


def sampled_labels(
    sampler: Sampler, outputs: torch.Tensor, seed: int, first: int, samples: int
) -> torch.Tensor:
    """``samples`` labels for each example of the batch ``outputs`` whose first example is
    example ``first`` of all, sample-major (``samples * n`` rows: sample 0 of every example,
    then sample 1, ...). Label ``s`` of example ``i`` is a function of ``(seed, i, s)`` and
    the model's outputs for ``i`` only: the same for every batch size and every split of the
    examples over processes."""
    shape = outputs.shape[1:]
    noise = []
    for i in range(outputs.shape[0]):
        generator = example_generator(seed, first + i)
        noise.append(torch.stack([sampler.noise(shape, generator) for _ in range(samples)]))
    noise = torch.stack(noise, dim=1)  # (samples, n, ...)
    repeated = outputs.repeat((samples,) + (1,) * (outputs.ndim - 1))
    return sampler.labels(repeated, noise.reshape(samples * outputs.shape[0], *noise.shape[2:]))


def monte_carlo_output_space(
    loss_fn: LossFn, sampler: Sampler, samples: int, seed: int, offsets: Sequence[int]
) -> OutputSpace:
    """Per-example losses at ``samples`` labels per example drawn from the model (drawn at
    the batch's first product and kept), and ``M = I / (n S)``. ``offsets[b]``: the index
    among all examples of batch ``b``'s first one (:func:`sampled_labels`)."""
    drawn: dict[int, torch.Tensor] = {}

    def space(index: int, outputs: torch.Tensor, targets: torch.Tensor):
        if index not in drawn:  # drawn once, kept: the operator is one fixed matrix
            drawn[index] = sampled_labels(sampler, outputs, seed, offsets[index], samples)
        repeated = outputs.repeat((samples,) + (1,) * (outputs.ndim - 1))
        losses = per_example_losses(loss_fn, repeated, drawn[index])
        return losses, lambda u: u / losses.shape[0]

    return space


class GaussNewtonEngine:
    """``J^T M J v`` per batch through kept graphs (rebuilt per product beyond the budget)."""

    def __init__(
        self,
        name: str,
        model: nn.Module,
        output_space: OutputSpace,
        params: Sequence[torch.Tensor],
        batches: Sequence[Batch],
        memory_budget: int,
    ) -> None:
        self.name = name
        self.model, self.output_space = model, output_space
        self.params, self.batches = list(params), batches
        self.memory_budget = memory_budget
        self.graphs: dict[int, tuple] = {}
        self.graph_bytes = 0
        self.full = False

    def _build(self, index: int, counter: _SavedBytes | None = None):
        x, y = self.batches[index]
        hooks = (
            torch.autograd.graph.saved_tensors_hooks(counter.pack, lambda t: t)
            if counter is not None
            else nullcontext()
        )
        with hooks:
            out, apply_m = self.output_space(index, self.model(x), y)
            u = torch.zeros_like(out, requires_grad=True)
            jtu = torch.autograd.grad(out, self.params, grad_outputs=u, create_graph=True)
            jtu = _zeros_for_missing(jtu, self.params)
        return out, apply_m, u, jtu

    def _graph(self, index: int):
        if index in self.graphs:
            return self.graphs[index], True
        if self.full:
            return self._build(index), False
        counter = _SavedBytes()
        graph = self._build(index, counter)
        if self.graph_bytes + counter.total <= self.memory_budget:
            self.graphs[index] = graph
            self.graph_bytes += counter.total
            return graph, True
        self.full = True
        return graph, False

    def product(self, index: int, v_parts: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        (out, apply_m, u, jtu), kept = self._graph(index)
        live = [(g, v) for g, v in zip(jtu, v_parts) if g.requires_grad]
        if not live:  # outputs independent of these parameters
            return [torch.zeros_like(p) for p in self.params]
        (jv,) = torch.autograd.grad(
            [g for g, _ in live], u, grad_outputs=[v for _, v in live], retain_graph=True
        )
        mjv = apply_m(jv)
        result = torch.autograd.grad(
            out, self.params, grad_outputs=mjv, retain_graph=kept, allow_unused=True
        )
        return _zeros_for_missing(result, self.params)

    def release(self) -> None:
        self.graphs.clear()
        self.graph_bytes = 0
        self.full = False


class _GaussNewtonOperator(HessianOperator):
    """A :class:`HessianOperator` whose per-batch product is ``J^T M J v``."""

    def _output_space(self) -> OutputSpace:
        raise NotImplementedError

    def _make_engine(self, requested: str):
        self._fallback_allowed = False  # no second engine to fall back to
        return GaussNewtonEngine(
            self.curvature,
            self.model,
            self._output_space(),
            self.tensors,
            self.batches,
            self.memory_budget,
        )


class GGNOperator(_GaussNewtonOperator):
    """``v -> G v`` for the generalised Gauss-Newton matrix of the mean loss (module docstring);
    arguments as :class:`HessianOperator` (``engine`` is ignored: one exact way)."""

    curvature = "ggn"

    def _output_space(self) -> OutputSpace:
        return ggn_output_space(self.loss_fn)


class EmpiricalFisherOperator(_GaussNewtonOperator):
    """``v -> F v`` for the empirical Fisher ``(1/N) sum_i g_i g_i^T`` over the examples."""

    curvature = "fisher"

    def _output_space(self) -> OutputSpace:
        return fisher_output_space(self.loss_fn)


class MonteCarloFisherOperator(_GaussNewtonOperator):
    """``v -> F v`` for the Monte-Carlo Fisher with ``mc_samples`` labels per example drawn
    from the model's predictive distribution by ``sampler`` (default: categorical, for
    cross-entropy; see :func:`sampler_for_loss`), seeded by ``mc_seed``."""

    curvature = "fisher-mc"

    def __init__(
        self,
        *args,
        sampler: Sampler = categorical_sampler,
        mc_samples: int = 1,
        mc_seed: int = 0,
        **kwargs,
    ) -> None:
        if mc_samples < 1:
            raise ValueError(f"mc_samples must be at least 1, not {mc_samples}")
        self.sampler, self.mc_samples, self.mc_seed = sampler, int(mc_samples), int(mc_seed)
        super().__init__(*args, **kwargs)

    def _output_space(self) -> OutputSpace:
        # Each batch's place among all examples: this process's share starts at
        # example_range(N).start and its batches follow in order (operator.py).
        offsets, start = [], self.partition.example_range(self.num_samples).start
        for x, _ in self.batches:
            offsets.append(start)
            start += x.shape[0]
        return monte_carlo_output_space(
            self.loss_fn, self.sampler, self.mc_samples, self.mc_seed, offsets
        )


class _Operators(Mapping):
    """The operator class of every registered curvature (:data:`landscape.registry.
    CURVATURE_KINDS`, the torch-free registry that ``--curvature`` lists), imported on access."""

    def __getitem__(self, name: str) -> type[HessianOperator]:
        return resolve(CURVATURE_KINDS[name].operator)

    def __iter__(self) -> Iterator[str]:
        return iter(CURVATURE_KINDS)

    def __len__(self) -> int:
        return len(CURVATURE_KINDS)


CURVATURES: Mapping[str, type[HessianOperator]] = _Operators()


def curvature_operator(
    curvature: str,
    model: nn.Module,
    loss_fn: LossFn,
    inputs: torch.Tensor | None = None,
    targets: torch.Tensor | None = None,
    *,
    loss_name: str = "cross-entropy",
    mc_samples: int = 1,
    mc_seed: int = 0,
    **options,
) -> HessianOperator:
    """The operator registered as ``curvature`` in :data:`CURVATURES`; ``loss_name`` picks the
    predictive distribution of ``fisher-mc`` (:func:`sampler_for_loss`), ``options`` go to
    :class:`HessianOperator` (``batches``, ``batch_size``, ``bn_mode``, ``parameters``, ...)."""
    if curvature not in CURVATURES:
        raise ValueError(f"curvature must be one of {', '.join(CURVATURES)}, not {curvature!r}")
    if curvature == "fisher-mc":
        return MonteCarloFisherOperator(
            model,
            loss_fn,
            inputs,
            targets,
            sampler=sampler_for_loss(loss_name),
            mc_samples=mc_samples,
            mc_seed=mc_seed,
            **options,
        )
    return CURVATURES[curvature](model, loss_fn, inputs, targets, **options)
