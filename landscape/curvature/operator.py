"""The Hessian of a model's mean loss over a fixed set of examples, as a linear operator.

For examples split into batches ``B_1 .. B_m`` of sizes ``n_1 .. n_m`` (``N = sum n_b``) and a
loss that returns the batch mean, the mean loss is ``L = sum_b (n_b / N) L_b``, so

    H v = sum_b (n_b / N) H_b v   (+ weight_decay * v when the L2 term is asked for).

The sum over batches lives in :meth:`HessianOperator.matvec` only. An uneven last batch gets
its true weight. Over several processes (a :class:`~landscape.parallel.Partition`) each one
keeps only its share of the examples (``partition.example_range(N)``, in batches), weights
them with the global ``N`` and the partial sums are all-reduced (in float64): one product is
exactly the product of one process, and every process holds the same result, so Lanczos,
Hutch++ and SLQ run unchanged on every rank and take the same decisions.
With BatchNorm in ``train`` mode the operator depends on how examples are batched (batch
statistics); the batch size is part of what defines it and is recorded.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager

import torch
from torch import nn

from landscape.curvature.hvp import (
    ENGINES,
    CachedGraphEngine,
    FuncEngine,
    NoDoubleBackward,
    default_memory_budget,
    evaluation_context,
)
from landscape.errors import UserError
from landscape.parallel import SINGLE, Partition


class NonFiniteProduct(UserError):
    """A product overflowed: the weights hold NaN/Inf, or float32 is too narrow for them."""


log = logging.getLogger(__name__)

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
DEFAULT_BATCH_SIZE = 512


def _split(inputs: torch.Tensor, targets: torch.Tensor, batch_size: int):
    n = inputs.shape[0]
    return [
        (inputs[start : start + batch_size], targets[start : start + batch_size])
        for start in range(0, n, batch_size)
    ]


def _share(batches: list, share: range) -> list:
    """The examples ``share`` of the concatenated ``batches``, cut from them in place order
    (a batch that straddles the share's edge is cut; the others are kept as they are)."""
    kept, offset = [], 0
    for x, y in batches:
        start, stop = max(share.start - offset, 0), min(share.stop - offset, x.shape[0])
        if start < stop:
            kept.append((x[start:stop], y[start:stop]))
        offset += x.shape[0]
    return kept


class HessianOperator(AbstractContextManager):
    """``v -> H v`` for the Hessian of the mean loss of ``model`` over fixed examples.

    Parameters
    ----------
    model, loss_fn:
        Any ``nn.Module`` and a loss ``(outputs, targets) -> mean over the batch``.
    inputs, targets:
        The examples (moved to the model's device). Alternatively pass ``batches=`` (any
        iterable of ``(x, y)`` pairs, e.g. a DataLoader); it is read once and kept.
    batch_size:
        Examples per forward pass (default 512); the result does not depend on it except
        with ``bn_mode="train"``.
    bn_mode:
        ``"eval"`` (running statistics, the default) or ``"train"`` (batch statistics).
    engine:
        ``"cached"``, ``"func"`` or ``"auto"`` (see :mod:`landscape.curvature.hvp`): ``auto``
        is the cached engine (graphs kept within ``memory_budget``, the rest rebuilt per
        product), falling back to ``func`` if the model has no double backward.
    weight_decay:
        Adds ``weight_decay * I``, the Hessian of ``weight_decay / 2 * ||theta||^2``.
    memory_budget:
        Bytes the cached engine may keep in graphs (default: half the free memory).
    partition:
        This process's share (:mod:`landscape.parallel`): it sums over its examples only and
        the products are all-reduced. Every process passes the same examples (or batches);
        with ``bn_mode="train"`` the batches of a share are cut from its own examples, so the
        operator depends on the number of processes as it does on the batch size.
    parameters:
        Names of the parameters the operator acts on (default: all that require gradients):
        the diagonal block ``H[B, B]`` of the full Hessian for the subset ``B``, computed by
        differentiating with respect to those parameters alone.
    """

    curvature = "hessian"  # what the operator is a product with (the registry's key)

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        inputs: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
        *,
        batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
        batch_size: int | None = None,
        bn_mode: str = "eval",
        engine: str = "auto",
        weight_decay: float = 0.0,
        memory_budget: int | None = None,
        partition: Partition = SINGLE,
        parameters: Sequence[str] | None = None,
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
        if bn_mode not in ("eval", "train"):
            raise ValueError(f"bn_mode must be 'eval' or 'train', not {bn_mode!r}")
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("the model has no parameters that require gradients")
        if parameters is not None:
            unknown = set(parameters) - {n for n, _ in named}
            if unknown:
                raise ValueError(f"no trainable parameters named {sorted(unknown)}")
            named = [(n, p) for n, p in named if n in set(parameters)]
            if not named:
                raise ValueError("the parameter subset is empty")
        self.model, self.loss_fn, self.bn_mode = model, loss_fn, bn_mode
        self.weight_decay = float(weight_decay)
        self.parameter_names = [n for n, _ in named]  # in the order of the flat vectors
        self.tensors = [p for _, p in named]
        self.shapes = [tuple(p.shape) for p in self.tensors]
        self.sizes = [p.numel() for p in self.tensors]
        self.dim = sum(self.sizes)
        self.device = self.tensors[0].device
        self.dtype = self.tensors[0].dtype

        if batches is None:
            if inputs is None or targets is None:
                raise ValueError("give inputs and targets, or batches")
            if inputs.shape[0] != targets.shape[0]:
                raise ValueError(f"{inputs.shape[0]} inputs but {targets.shape[0]} targets")
            size = batch_size or DEFAULT_BATCH_SIZE
            if size < 1:
                raise ValueError(f"batch_size must be at least 1, not {size}")
            n = inputs.shape[0]
            share = partition.example_range(n)
            batches = _split(
                inputs[share.start : share.stop], targets[share.start : share.stop], size
            )
        else:
            batches = [(x, y) for x, y in batches]  # read once (a DataLoader), then kept
            n = sum(x.shape[0] for x, _ in batches)
            batches = _share(batches, partition.example_range(n))
        self.partition = partition
        self.batches = [(x.to(self.device), y.to(self.device)) for x, y in batches]
        self.batches = [(x, y) for x, y in self.batches if x.shape[0] > 0]
        self.num_samples = n  # all processes' examples: the mean is over these
        if self.num_samples == 0:
            raise ValueError("no examples: the Hessian of an empty mean is undefined")
        self.batch_size = max((x.shape[0] for x, _ in self.batches), default=0)
        self.weights = [x.shape[0] / self.num_samples for x, _ in self.batches]
        self.collective_seconds: list[float] = []  # time in the all-reduce of each product
        self.hvp_count = 0
        self.product_seconds: list[float] = []  # wall-clock time of each matvec, in order
        self._gradient_seconds: float | None = None
        self.memory_budget = (
            default_memory_budget(self.device) if memory_budget is None else int(memory_budget)
        )
        self.engine = self._make_engine(engine)
        self._batched = True  # matmat batches products until an operation refuses

    # ----------------------------------------------------------------- engines
    def _make_engine(self, requested: str):
        self._fallback_allowed = requested == "auto"
        if requested == "func":
            return self._func_engine()
        return CachedGraphEngine(
            self.model, self.loss_fn, self.tensors, self.batches, self.memory_budget
        )

    def _func_engine(self) -> FuncEngine:
        return FuncEngine(
            self.model, self.loss_fn, self.parameter_names, self.tensors, self.batches
        )

    def _batch_product(self, index: int, parts: list[torch.Tensor]) -> list[torch.Tensor]:
        try:
            return self.engine.product(index, parts)
        except torch.OutOfMemoryError:
            raise
        except NoDoubleBackward as exc:
            # forward-over-reverse drops the same terms (measured), so there is no fallback
            raise UserError(f"{exc}; its Hessian cannot be computed exactly") from exc
        except (RuntimeError, NotImplementedError) as exc:
            # "auto" on a model without double backward (an operation whose backward has no
            # derivative formula): switch to forward-over-reverse, once, at the start.
            if not (self._fallback_allowed and self.hvp_count == 0 and index == 0):
                raise
            self._fallback_allowed = False
            log.warning("double backward unavailable (%s); using forward-over-reverse", exc)
            self.engine.release()
            self.engine = self._func_engine()
            try:
                return self.engine.product(index, parts)
            except Exception as func_exc:
                raise UserError(
                    f"no Hessian-vector product for this model: double backward failed ({exc}) "
                    f"and so did forward-over-reverse ({func_exc})"
                ) from func_exc

    @property
    def engine_name(self) -> str:
        return self.engine.name

    def gradient_seconds(self) -> float:
        """Wall-clock seconds of one gradient of the mean loss over the same examples (timed
        once, on first call): the yardstick for the price of a product."""
        if self._gradient_seconds is None:
            started = time.perf_counter()
            self.gradient()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self._gradient_seconds = time.perf_counter() - started
        return self._gradient_seconds

    def cost_note(self, measure: bool = True) -> str:
        """One line: the engine, what is kept, and the measured price of one product.

        The price is the median time of the products so far after the first (which builds
        the kept graphs), divided by one timed gradient over the same examples; with fewer
        than two products, or ``measure=False``, it is left out.
        """
        note = f"engine={self.engine.name}, {len(self.batches)} batch(es) of <= {self.batch_size}"
        if isinstance(self.engine, CachedGraphEngine):
            note += (
                f", {len(self.engine.graphs)} graph(s) kept"
                f" ({self.engine.graph_bytes / 2**20:.0f} MiB)"
            )
        if self.partition.is_distributed:
            note += f", on {self.partition.world_size} processes"
            if measure and self.collective_seconds:
                reduce_s = sorted(self.collective_seconds)[len(self.collective_seconds) // 2]
                note += (
                    f" (all-reduce of {self.collective_bytes / 2**20:.2f} MiB, {reduce_s:.3g} s)"
                )
        steady = sorted(self.product_seconds[1:])
        if measure and steady:
            product = steady[len(steady) // 2]
            gradient = self.gradient_seconds()
            note += (
                f"; one product {product:.3g} s = {product / max(gradient, 1e-12):.2f} gradients"
                f" over the same examples ({gradient:.3g} s, measured)"
            )
        return note

    # ----------------------------------------------------------------- vectors
    def split(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """A flat vector as per-parameter tensors in the model's dtype and device."""
        parts = torch.split(flat.to(device=self.device, dtype=self.dtype), self.sizes)
        return [part.view(shape) for part, shape in zip(parts, self.shapes)]

    @property
    def names(self) -> list[str]:
        """Short for :attr:`parameter_names` (the trainable parameters' names)."""
        return self.parameter_names

    def named(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """A flat vector as ``{parameter name: tensor}`` (for saving eigenvectors)."""
        return dict(zip(self.parameter_names, self.split(flat)))

    def flat_parameters(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.tensors])

    # ----------------------------------------------------------------- product
    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``H v`` for a flat vector ``v`` of length :attr:`dim`; same dtype and device as ``v``.

        Per-batch products are accumulated in float64 with weights ``n_b / N``.
        """
        if v.shape != (self.dim,):
            raise ValueError(f"expected a vector of length {self.dim}, got shape {tuple(v.shape)}")
        started = time.perf_counter()
        parts = self.split(v)
        total = torch.zeros(self.dim, dtype=torch.float64, device=self.device)
        with evaluation_context(self.model, self.bn_mode):
            for index, weight in enumerate(self.weights):
                hv = self._batch_product(index, parts)
                total += torch.cat([h.reshape(-1) for h in hv]).to(torch.float64) * weight
        self._all_reduce(total)
        if self.weight_decay:
            total += self.weight_decay * v.to(device=self.device, dtype=torch.float64)
        if not bool(torch.isfinite(total).all()):
            # Caught here, once for every algorithm, rather than as a cryptic LAPACK failure later.
            raise NonFiniteProduct(
                "a Hessian-vector product is not finite: the loss or its derivatives overflow at "
                "these weights (check the checkpoint for NaN/Inf, or compute in float64)"
            )
        self.hvp_count += 1
        result = total.to(device=v.device, dtype=v.dtype)
        if result.device.type == "cuda":
            torch.cuda.synchronize(result.device)
        self.product_seconds.append(time.perf_counter() - started)
        return result  # progress is reported by the algorithm, which knows its phase and target

    __matmul__ = matvec

    @property
    def collective_bytes(self) -> int:
        """Bytes each process contributes to the all-reduce of one product (float64)."""
        return 8 * self.dim if self.partition.is_distributed else 0

    def _all_reduce(self, total: torch.Tensor) -> None:
        """Sum the processes' partial products (every one gets the same bits back)."""
        if not self.partition.is_distributed:
            return
        started = time.perf_counter()
        self.partition.sum_(total)
        if total.device.type == "cuda":
            torch.cuda.synchronize(total.device)
        self.collective_seconds.append(time.perf_counter() - started)

    def matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        """``(H v_1, ..., H v_m)`` for the rows of ``vectors`` (``(m, dim)``), in one batched
        double backward per batch where the engine has one (:meth:`CachedGraphEngine.products`),
        else one :meth:`matvec` per row. Counts ``m`` products."""
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"expected (m, {self.dim}) vectors, got shape {tuple(vectors.shape)}")
        m = vectors.shape[0]
        if m == 1 or not self._batched or not hasattr(self.engine, "products"):
            return torch.stack([self.matvec(v) for v in vectors])
        started = time.perf_counter()
        flat = vectors.to(device=self.device, dtype=self.dtype)
        parts = [
            part.reshape(m, *shape)
            for part, shape in zip(torch.split(flat, self.sizes, dim=1), self.shapes)
        ]
        total = torch.zeros(m, self.dim, dtype=torch.float64, device=self.device)
        try:
            with evaluation_context(self.model, self.bn_mode):
                for index, weight in enumerate(self.weights):
                    hv = self.engine.products(index, parts)
                    total += torch.cat([h.reshape(m, -1) for h in hv], dim=1).double() * weight
        except torch.OutOfMemoryError:
            # m vectors at once hold m times the memory of one product: one at a time may fit
            del total
            log.info(
                "batched products of %d vectors ran out of memory on %s; one product per "
                "vector from now on",
                m,
                self.device,
            )
            self._batched = False
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            return torch.stack([self.matvec(v) for v in vectors])
        except (RuntimeError, NotImplementedError) as exc:
            if not _no_batching_rule(exc):
                raise  # a bug or a real failure: not hidden behind a slower path
            log.info("batched products unavailable (%s); one product per vector", exc)
            self._batched = False
            return torch.stack([self.matvec(v) for v in vectors])
        self._all_reduce(total)
        if self.weight_decay:
            total += self.weight_decay * vectors.to(device=self.device, dtype=torch.float64)
        if not bool(torch.isfinite(total).all()):
            raise NonFiniteProduct(
                "a Hessian-vector product is not finite: the loss or its derivatives overflow at "
                "these weights (check the checkpoint for NaN/Inf, or compute in float64)"
            )
        self.hvp_count += m
        result = total.to(device=vectors.device, dtype=vectors.dtype)
        if result.device.type == "cuda":
            torch.cuda.synchronize(result.device)
        self.product_seconds.extend([(time.perf_counter() - started) / m] * m)
        return result

    def gradient(self) -> torch.Tensor:
        """The gradient of the mean loss (one plain backward per batch), e.g. as a cost
        yardstick."""
        total = torch.zeros(self.dim, dtype=torch.float64, device=self.device)
        with evaluation_context(self.model, self.bn_mode):
            for (x, y), weight in zip(self.batches, self.weights):
                loss = self.loss_fn(self.model(x), y)
                grads = torch.autograd.grad(loss, self.tensors, allow_unused=True)
                total += (
                    torch.cat(
                        [
                            (torch.zeros_like(p) if g is None else g).reshape(-1)
                            for g, p in zip(grads, self.tensors)
                        ]
                    ).double()
                    * weight
                )
        return self.partition.sum_(total)

    def release(self) -> None:
        """Free kept graphs (the operator still works, rebuilding them on demand)."""
        self.engine.release()

    def __exit__(self, *exc) -> None:
        self.release()

    def __repr__(self) -> str:
        note = self.cost_note(measure=False)
        return f"HessianOperator(dim={self.dim}, samples={self.num_samples}, {note})"


def as_batches(
    data: torch.Tensor | Iterable, targets: torch.Tensor | None
) -> tuple[torch.Tensor | None, torch.Tensor | None, Sequence | None]:
    """``(inputs, targets)`` tensors or an iterable of batches (a DataLoader) -> operator args."""
    if isinstance(data, torch.Tensor):
        if targets is None:
            raise ValueError("targets are needed with an inputs tensor")
        return data, targets, None
    if targets is not None:
        # A DataLoader yields its own targets; silently ignoring the given ones would analyse
        # other labels than the caller meant.
        raise ValueError(
            "targets were given together with a DataLoader (or another iterable of batches), "
            "which yields its own (inputs, targets): pass either tensors inputs, targets or the "
            "loader alone"
        )
    return None, None, [(x, y) for x, y in data]


class MatrixOperator:
    """A dense symmetric matrix behind the same ``dim`` / ``matvec`` interface (small problems,
    tests, and checking the algorithms on analytic spectra)."""

    def __init__(self, matrix: torch.Tensor) -> None:
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError("expected a square matrix")
        self.matrix = matrix.to(torch.float64)
        self.dim = matrix.shape[0]
        self.device = matrix.device
        self.hvp_count = 0

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        self.hvp_count += 1
        return (self.matrix @ v.to(self.matrix)).to(v.dtype)


def _no_batching_rule(exc: BaseException) -> bool:
    """Whether ``exc`` says an operation cannot be vmapped (``is_grads_batched`` runs the
    double backward under vmap): a missing batching rule, or an operation vmap refuses."""
    return isinstance(exc, NotImplementedError) or bool(
        re.search(r"vmap|batching rule|batched", str(exc), flags=re.IGNORECASE)
    )
