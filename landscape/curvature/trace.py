"""Trace of a symmetric operator from matrix-vector products, with an honest standard error.

* Hutchinson (1989): ``tr(H) = E[z^T H z]`` for Rademacher ``z``; the mean of ``n`` samples
  has variance ``2 (||H||_F^2 - sum_i H_ii^2) / n``.
* Hutch++ (Meyer, Musco, Musco & Woodruff, SOSA 2021): take ``Q = orth(H S)`` for a random
  sketch ``S`` with ``r`` columns; then exactly

      tr(H) = tr(Q^T H Q) + tr(P H P),   P = I - Q Q^T,

  the first term is computed exactly (``r`` more products) and only the second is estimated
  by Hutchinson with projected vectors ``P z``. Sketching removes the large outlying
  eigenvalues that dominate ``||H||_F`` for neural networks, so far fewer samples are needed.

* Krylov Hutch++ (the default): the same split, with ``Q`` the Lanczos basis of a random
  start vector instead of ``orth(H S)``. A Krylov space captures the top of the spectrum
  far better than one sketching step for the same number of products (Musco & Musco,
  NeurIPS 2015; Chen & Hallman, "Krylov-aware stochastic trace estimation", 2023), and the
  exact part is free: ``tr(Q^T H Q) = sum_j alpha_j``. The rank is chosen adaptively:
  adding ``q_j`` lowers ``||P H P||_F^2`` by exactly ``alpha_j^2 + 2 beta_j^2`` (from
  ``P_{j-1} H q_j = alpha_j q_j + beta_j q_{j+1}``), i.e. the Rademacher variance by twice
  that, which saves ``2 (alpha_j^2 + 2 beta_j^2) / (rel_stderr * tr)^2`` samples; the basis
  grows while a step saves more than one sample (``tr`` from a few plain pilot samples,
  which are then discarded so that they cannot bias the estimate).

Standard error. Given ``Q``, the samples ``(P z_i)^T H (P z_i)`` are independent and unbiased
for ``tr(P H P)``, and the low-rank term carries no randomness; so the standard error of the
estimate is the sample standard deviation of those samples over ``sqrt(n)`` -- conditional on
``Q``, hence valid for every ``Q``. (The classic fixed-budget Hutch++ error bound would be
loose; the naive spread of whole Hutch++ runs would need many runs.) Samples are drawn until
``stderr <= rel_stderr * |trace|`` with at least ``min_samples`` of them, or the product
budget is spent (``converged`` then is False).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from landscape.curvature.lanczos import LinearOperator, _device, _grown, _orthogonalise
from landscape.curvature.vectors import vector_space
from landscape.progress import ProgressFn, projected_total, report


@dataclass
class TraceResult:
    trace: float
    stderr: float
    hvp_count: int
    samples: int
    method: str
    converged: bool
    sketch_rank: int = 0
    low_rank_trace: float = 0.0

    @property
    def relative_stderr(self) -> float:
        return self.stderr / abs(self.trace) if self.trace else math.inf

    def interval(self, z: float = 1.96) -> tuple[float, float]:
        return self.trace - z * self.stderr, self.trace + z * self.stderr


def _rademacher(dim: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    signs = torch.randint(0, 2, (dim,), generator=generator, dtype=torch.int8)
    return (signs.to(torch.float64) * 2 - 1).to(device)


class _RunningMean:
    """Welford's mean and variance, in float64."""

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, x: float) -> None:
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    @property
    def stderr(self) -> float:
        return math.sqrt(self.m2 / (self.n - 1) / self.n) if self.n > 1 else math.inf


# Hutchinson samples per batched product (HessianOperator.matmat). Whether a block is cheaper
# per vector than single products depends on the model (benchmarks/bench_batched_products.py,
# idle 2-core CPU: 0.77x on the digits cnn-bn, 1.18x on ResNet-20 at 32 inputs), so the first
# pass is one product, the second one block, and the cheaper of the two per vector is kept: the
# samples, their order and the estimate are the same either way. The stop can overshoot by up to
# SAMPLE_BLOCK - 1 samples when blocks are kept.
SAMPLE_BLOCK = 4


class _BlockChoice:
    """Samples per pass: 1, then SAMPLE_BLOCK (trials, each timed once), then the cheaper per
    vector of the two; always 1 for an operator without ``matmat``.

    Under torchrun every product is a collective whose size is the block's, so all ranks must
    make the same choice: the writer's timings decide and are broadcast once (timed alone, two
    ranks can disagree, and their collectives then no longer match)."""

    def __init__(self, op: LinearOperator) -> None:
        self.op = op
        self.per_vector: dict[int, float] = {}  # block size -> seconds per vector, of the trials
        self.chosen: int | None = None if hasattr(op, "matmat") and SAMPLE_BLOCK > 1 else 1

    def next(self) -> int:
        if self.chosen is not None:
            return self.chosen
        for trial in (1, SAMPLE_BLOCK):
            if trial not in self.per_vector:
                return trial
        best = min(self.per_vector, key=self.per_vector.get)
        partition = getattr(self.op, "partition", None)
        if partition is not None and partition.is_distributed:
            best = partition.broadcast(best)
        self.chosen = best
        return best

    def timed(self, block: int, seconds: float) -> None:
        self.per_vector.setdefault(block, seconds / block)


def _sample_until(
    op: LinearOperator,
    probes,
    project,
    offset: float,
    rel_stderr: float,
    min_samples: int,
    budget: int,
    progress: ProgressFn | None = None,
    spent: int = 0,
) -> tuple[_RunningMean, bool]:
    """Projected Hutchinson samples until the relative stderr of ``offset + mean`` is
    ``rel_stderr``; ``progress`` sees products ``spent`` before plus those here, and the count
    at which the stderr, falling as ``1/sqrt(n)``, reaches the target."""
    space = vector_space(op)
    stats = _RunningMean()
    pending: list[float] = []
    blocks = _BlockChoice(op)
    while stats.n < budget:
        if not pending:  # the next samples, several per pass where that was measured to pay
            block = min(blocks.next(), budget - stats.n)
            started = time.perf_counter()
            Z = torch.stack([project(probes.rademacher()) for _ in range(block)])
            HZ = op.matmat(Z) if block > 1 else op.matvec(Z[0])[None]
            pending = [space.dot(z, hz.to(torch.float64)) for z, hz in zip(Z, HZ)]
            blocks.timed(block, time.perf_counter() - started)
        stats.add(pending.pop(0))
        relative = stats.stderr / abs(offset + stats.mean) if offset + stats.mean else math.inf
        if progress is not None:
            needed = projected_total(stats.n, relative, rel_stderr, 2.0, budget)
            report(
                progress,
                done=spent + stats.n,
                total=spent + max(needed, min_samples),
                limit=spent + budget,
                estimate=offset + stats.mean,
                name="trace",
                error=relative,
                error_name="rel. stderr",
                target=rel_stderr,
                note=f"{stats.n} samples",
            )
        done = stats.n >= min_samples and stats.stderr <= rel_stderr * abs(offset + stats.mean)
        if done and not pending:  # samples already paid for are used
            return stats, True
    return stats, False


def _check(rel_stderr: float, min_samples: int) -> None:
    if not rel_stderr > 0:
        raise ValueError(f"rel_stderr must be > 0, not {rel_stderr}")
    if min_samples < 2:
        raise ValueError("min_samples must be at least 2 for a standard error")


def hutchinson_trace(
    op: LinearOperator,
    *,
    rel_stderr: float = 0.01,
    min_samples: int = 10,
    max_hvps: int = 2000,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> TraceResult:
    """Plain Hutchinson with Rademacher vectors, stopped at ``rel_stderr``."""
    _check(rel_stderr, min_samples)
    probes = vector_space(op).stream(seed)
    stats, converged = _sample_until(
        op, probes, lambda z: z, 0.0, rel_stderr, min_samples, max_hvps, progress
    )
    return TraceResult(
        trace=stats.mean,
        stderr=stats.stderr,
        hvp_count=stats.n,
        samples=stats.n,
        method="hutchinson",
        converged=converged,
    )


def hutchpp_trace(
    op: LinearOperator,
    *,
    rel_stderr: float = 0.01,
    sketch_rank: int = 16,
    min_samples: int = 10,
    max_hvps: int = 2000,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> TraceResult:
    """Hutch++ with a sketch of ``sketch_rank`` columns, then projected Hutchinson samples
    until ``rel_stderr``. Costs ``2 * sketch_rank + samples`` products. When the sketch
    covers the whole space (``sketch_rank >= dim``) the trace is exact with stderr 0."""
    _check(rel_stderr, min_samples)
    dim = int(op.dim)
    space = vector_space(op)
    probes = space.stream(seed)
    rank = min(sketch_rank, dim)
    if rank == dim:  # the exact trace costs no more than the sketch would
        exact = sum(
            space.dot(e, op.matvec(e).to(torch.float64)) for e in space.coordinate_vectors()
        )
        return TraceResult(exact, 0.0, dim, 0, "hutch++", True, dim, exact)

    def sketch_step(done: int) -> None:
        report(progress, done=done, limit=max_hvps, note=f"sketch {done}/{2 * rank} products")

    sketch = torch.stack([probes.rademacher() for _ in range(rank)], dim=1)
    images = []
    for i in range(rank):
        images.append(op.matvec(sketch[:, i]).to(torch.float64))
        sketch_step(i + 1)
    Q = space.orthonormal_columns(torch.stack(images, dim=1))  # (dim, rank), orthonormal
    parts = []
    for i in range(rank):
        parts.append(space.dot(Q[:, i], op.matvec(Q[:, i]).to(torch.float64)))
        sketch_step(rank + i + 1)
    low_rank = math.fsum(parts)

    def project(z: torch.Tensor) -> torch.Tensor:
        return z - Q @ space.coefficients(Q.T, z)

    return _deflated_trace(
        op,
        probes,
        project,
        low_rank,
        "hutch++",
        rank,
        2 * rank,
        rel_stderr,
        min_samples,
        max_hvps,
        progress,
    )


def krylov_hutchpp_trace(
    op: LinearOperator,
    *,
    rel_stderr: float = 0.01,
    min_samples: int = 10,
    max_hvps: int = 2000,
    max_rank: int | None = None,
    pilot_samples: int = 8,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> TraceResult:
    """Hutch++ with a Lanczos deflation basis of adaptive rank (see the module notes).

    ``max_rank`` (default: 300, and at most 1 GiB of float64 basis vectors) bounds memory.
    Costs ``pilot_samples + rank + samples`` products; exact (stderr 0) when the basis spans
    the whole space.
    """
    _check(rel_stderr, min_samples)
    dim, device = int(op.dim), _device(op)
    space = vector_space(op)
    probes = space.stream(seed)
    if max_rank is None:
        max_rank = min(300, max(1, (1 << 30) // (8 * space.local_dim)))
    max_rank = max(1, min(max_rank, dim, max_hvps // 2))

    pilot = _RunningMean()
    for _ in range(min(pilot_samples, max_hvps // 4)):
        z = probes.rademacher()
        pilot.add(space.dot(z, op.matvec(z).to(torch.float64)))
        report(
            progress,
            done=pilot.n,
            limit=max_hvps,
            estimate=pilot.mean,
            name="trace",
            note=f"pilot {pilot.n} samples",
        )
    # Samples saved per unit of ||.||_F^2 removed; with no pilot, deflate to max_rank.
    scale = 2.0 / (rel_stderr * abs(pilot.mean)) ** 2 if pilot.n and pilot.mean else math.inf

    basis = torch.zeros(min(max_rank, 8), space.local_dim, dtype=torch.float64, device=device)
    start = probes.gaussian()
    basis[0] = (start / space.norm(start)).to(device)
    alphas: list[float] = []
    gains: list[float] = []
    exhausted = False
    rank = 0
    while rank < max_rank:
        w = op.matvec(basis[rank]).to(torch.float64)
        h = _orthogonalise(w, basis[: rank + 1], space)
        alpha, beta = float(h[rank]), space.norm(w)
        alphas.append(alpha)
        gains.append(scale * (alpha**2 + 2 * beta**2))
        rank += 1
        report(
            progress,
            done=pilot.n + rank,
            limit=max_hvps,
            estimate=math.fsum(alphas),
            name="low-rank part",
            note=f"deflation basis rank {rank}",
        )
        if rank == dim:
            exhausted = True
            break
        if beta <= 1e-12 * max(abs(a) for a in alphas):
            # An invariant subspace: the rest of the space (a repeated eigenvalue's other
            # directions, say) is left to the projected samples.
            break
        if len(gains) >= 4 and sum(gains[-4:]) / 4 < 1.0:
            break
        if rank < max_rank:
            basis = _grown(basis, rank + 1, max_rank)
            basis[rank] = w / beta
    low_rank = math.fsum(alphas)
    spent = pilot.n + rank
    if exhausted:
        return TraceResult(low_rank, 0.0, spent, 0, "krylov-hutch++", True, rank, low_rank)
    Q = basis[:rank]

    def project(z: torch.Tensor) -> torch.Tensor:
        return z - Q.T @ space.coefficients(Q, z)

    return _deflated_trace(
        op,
        probes,
        project,
        low_rank,
        "krylov-hutch++",
        rank,
        spent,
        rel_stderr,
        min_samples,
        max_hvps,
        progress,
    )


def _deflated_trace(
    op: LinearOperator,
    probes,
    project,
    low_rank: float,
    method: str,
    rank: int,
    spent: int,
    rel_stderr: float,
    min_samples: int,
    max_hvps: int,
    progress: ProgressFn | None,
) -> TraceResult:
    """``low_rank`` (the trace on a rank-``rank`` basis, ``spent`` products so far) plus
    Hutchinson samples of the ``project``-ed remainder until ``rel_stderr``, within what is
    left of ``max_hvps`` (at least ``min_samples``): the second half of Hutch++ (Meyer, Musco,
    Musco & Woodruff, SOSA 2021) and of its Krylov-deflated form."""
    stats, converged = _sample_until(
        op,
        probes,
        project,
        low_rank,
        rel_stderr,
        min_samples,
        max(max_hvps - spent, min_samples),
        progress,
        spent,
    )
    return TraceResult(
        trace=low_rank + stats.mean,
        stderr=stats.stderr,
        hvp_count=spent + stats.n,
        samples=stats.n,
        method=method,
        converged=converged,
        sketch_rank=rank,
        low_rank_trace=low_rank,
    )


TRACE_METHODS = {
    "krylov-hutch++": krylov_hutchpp_trace,
    "hutch++": hutchpp_trace,
    "hutchinson": hutchinson_trace,
}
