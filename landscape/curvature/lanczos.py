"""Extreme eigenvalues of a symmetric operator by Lanczos with full reorthogonalisation.

Given only products ``v -> H v``, Lanczos builds an orthonormal basis ``Q_j`` of the Krylov
space ``span{q, Hq, ..., H^{j-1} q}`` and the projected matrix ``T_j = Q_j^T H Q_j``. Its
eigenpairs ``(theta_i, s_i)`` give Ritz pairs ``(theta_i, Q_j s_i)`` whose residuals are
known without further products (Saad, *Numerical Methods for Large Eigenvalue Problems*,
2011, Prop. 6.8)::

    H Q_j = Q_j T_j + r_j e_j^T   =>   ||H y_i - theta_i y_i|| = ||r_j|| |e_j^T s_i|.

For a symmetric ``H`` every residual bounds the distance of ``theta_i`` to the spectrum,
so stopping when ``||H y - theta y|| <= tol |theta|`` certifies a relative error <= tol.

That rule is pessimistic for the eigenvalue: the error of a Ritz value is quadratic in its
residual. If ``theta`` is the Ritz value nearest an eigenvalue ``lambda`` and ``delta`` is the
gap from ``theta`` to the rest of the spectrum, then ``|lambda - theta| <= ||r||^2 / delta``
(Kato 1949, Temple 1929; Parlett, *The Symmetric Eigenvalue Problem*, 1998, Thm 11.7.1).
``stop="gap"`` uses that bound, with the gap estimated from the neighbouring Ritz values
(each moved towards ``theta`` by its own residual): rigorous as long as those neighbours
are not separated from ``theta`` by an unseen eigenvalue, which Lanczos with a random start
makes unlikely for the extreme eigenvalues. Eigenvalues then need far fewer products than
under the residual rule; eigenvectors are only as good as their (reported) residuals.
A start already close to the wanted eigenvector weakens that premise: after two products
from the top Ritz vector of a quarter of the examples (digits ``cnn-bn``, one epoch), the
second Ritz value was 0.2 where lambda_2 is 13.1, the estimated gap 2.4x the true one, and the
answer 1.2e-4 off under tol 1e-4 (``benchmarks/bench_warm_start.py`` measures such starts;
a start from the previous checkpoint, less close, stayed within tol there).

Choices here:

* Every new vector is orthogonalised against the whole basis twice (classical Gram-Schmidt
  applied twice, "twice is enough"), so no spurious copies of converged eigenvalues appear
  and the Ritz residual above stays equal to the true residual.
* Basis, coefficients and ``T`` are float64 whatever the model's dtype: the recurrence
  then loses nothing beyond the error of the products themselves.
* When the basis reaches ``basis_size`` vectors the method restarts thickly (Wu & Simon,
  SIAM J. Matrix Anal. Appl. 22, 2000; equivalent to Krylov-Schur): the best Ritz vectors
  are kept with the residual vector, so memory stays bounded and nothing converged is lost.
  ``T`` is then no longer tridiagonal, so it is kept as a small dense matrix filled from the
  Gram-Schmidt coefficients, which covers both cases with one code path.
* The products are checked for symmetry on the first steps, for free: the coupling
  ``beta_{j-1} = q_j . H q_{j-1}`` is known before ``H q_j`` is computed, and its coefficient
  on ``q_{j-1}`` is ``q_{j-1} . H q_j``. They agree to rounding for an exact symmetric product;
  a model that computes inside in a lower precision than the operator's dtype (Llama's RMSNorm
  casts to float32 even for a float64 model) makes them differ by about that precision
  (2.7e-9 of ``max |theta|`` on a tiny float64 Llama, 1e-17 on a float64 GPT-2). Beyond
  :data:`SUSPICIOUS_ASYMMETRY` for the dtype, the product error ``PRODUCT_ERROR_FACTOR`` times
  the asymmetry (the skew part is one sample of the error) is added to every error bound and
  replaces the stopping floor, and a warning says so once per process: a bound below the
  products' own precision would certify digits that the products do not have.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from landscape.curvature.vectors import VectorSpace, vector_space
from landscape.progress import ProgressFn, geometric_total, report

log = logging.getLogger("landscape.curvature")

# |q_{j-1} . H q_j - q_j . H q_{j-1}| / max|theta| above which products are taken to be computed
# in a lower precision than their dtype: far above float64 rounding (1e-17 measured) and far
# below float32's (1e-7 .. 1e-9), and likewise for float32 against float16/bfloat16.
SUSPICIOUS_ASYMMETRY = {torch.float64: 1e-11, torch.float32: 1e-5}
SYMMETRY_STEPS = 6  # products checked (the first ones, before any restart)
# The skew part is one sample of the products' error, and the model computed in the lower
# precision is itself a slightly different function: on the tiny float64 Llama the top
# eigenvalue was 2.0e-8 off the true float64 one, 7x the measured asymmetry; 100x leaves room.
PRODUCT_ERROR_FACTOR = 100.0
_warned_precision = False


def _warn_precision(asymmetry: float, dtype: torch.dtype) -> None:
    global _warned_precision
    if not _warned_precision:
        _warned_precision = True
        log.warning(
            "warning: the Hessian products are not symmetric to %s precision (w.Hv and v.Hw "
            "differ by %.1e of the largest eigenvalue): the model computes in a lower precision "
            "inside; eigenvalue error bounds are widened to %.1e of it",
            str(dtype).removeprefix("torch."),
            asymmetry,
            PRODUCT_ERROR_FACTOR * asymmetry,
        )


def reset_precision_warning() -> None:
    """Forget that the warning was given (tests that check it appears once)."""
    global _warned_precision
    _warned_precision = False


class LinearOperator(Protocol):
    dim: int

    def matvec(self, v: torch.Tensor) -> torch.Tensor: ...


@dataclass
class EigResult:
    """Ritz pairs, most extreme first (``top``: descending; ``bottom``: ascending).

    ``residuals[i]`` is ``||H y_i - lambda_i y_i||`` for the unit Ritz vector ``y_i``;
    ``eigenvectors`` (k, dim) float64 rows, only when asked for.
    """

    eigenvalues: np.ndarray
    residuals: np.ndarray
    eigenvectors: torch.Tensor | None
    hvp_count: int
    converged: bool
    which: str
    tol: float
    restarts: int = 0
    error_bounds: np.ndarray | None = None  # bound on |lambda_i - exact| (see module docstring)
    stop: str = "residual"
    # The products' measured error relative to max|theta| when they were found asymmetric
    # (added to error_bounds), else 0.
    product_error: float = 0.0

    @property
    def relative_residuals(self) -> np.ndarray:
        return self.residuals / np.maximum(np.abs(self.eigenvalues), np.finfo(float).tiny)


def _device(op: LinearOperator) -> torch.device:
    return getattr(op, "device", torch.device("cpu"))


def random_unit_vector(dim: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    v = torch.randn(dim, generator=generator, dtype=torch.float64)
    return (v / v.norm()).to(device)


def warm_start(vectors: torch.Tensor, seed: int = 0, noise: float = 0.1) -> torch.Tensor:
    """A Lanczos start vector from approximate eigenvectors ``(k, dim)`` -- the top Ritz vectors
    at the previous checkpoint of the same run, or of a subsample's curvature.

    Lanczos converges to an eigenvalue at a rate set by the start vector's angle to its
    eigenvector (Saad, "Numerical methods for large eigenvalue problems", 2011, thm. 6.4), so
    the sum of good approximations starts close to all ``k`` at once. A random component of
    relative size ``noise`` keeps every eigenvector in the start: one the old vectors miss
    entirely (a new outlier) would otherwise be found only through rounding. The certificate
    (residuals, error bounds) does not depend on the start.
    """
    unit = vectors.to(torch.float64) / vectors.norm(dim=1, keepdim=True).clamp_min(1e-300)
    start = unit.sum(0)
    start = start / start.norm().clamp_min(1e-300)
    generator = torch.Generator().manual_seed(seed)
    random = random_unit_vector(start.numel(), generator, start.device)
    start = start + noise * random
    return start / start.norm()


def _orthogonalise(
    w: torch.Tensor, basis: torch.Tensor, space: VectorSpace | None = None
) -> torch.Tensor:
    """Coefficients ``h = basis w`` and ``w <- w - basis^T h``, applied twice (CGS2); the
    coefficients are all-reduced over the ranks when the vectors are shards."""
    if space is None or not space.sharded:
        h = basis @ w
        w -= basis.T @ h
        h2 = basis @ w
        w -= basis.T @ h2
        return h + h2
    h = space.coefficients(basis, w)
    w -= basis.T @ h
    h2 = space.coefficients(basis, w)
    w -= basis.T @ h2
    return h + h2


def _grown(basis: torch.Tensor, rows: int, limit: int) -> torch.Tensor:
    """``basis`` with room for at least ``rows`` rows: capacity doubles up to ``limit``, so a
    short run never holds memory for the longest one."""
    if rows <= basis.shape[0]:
        return basis
    bigger = basis.new_zeros(min(limit, max(rows, 2 * basis.shape[0])), basis.shape[1])
    bigger[: basis.shape[0]] = basis
    return bigger


def _wanted(theta: np.ndarray, which: str) -> np.ndarray:
    """Indices of Ritz values ordered from most to least wanted."""
    order = np.argsort(theta)
    return order[::-1] if which == "top" else order


STOP_RULES = ("residual", "gap")


def _projected_total(history: list[float], tol: float, limit: int) -> int | None:
    """The product count at which the error reaches ``tol``, projected from its decay over the
    last products; None (no ETA, only the limit shown) while it is not decaying yet, since the
    limit is a budget that converging runs seldom reach."""
    recent = [e for e in history[-5:] if e > 0 and math.isfinite(e)]
    if history and history[-1] == 0.0:
        return len(history)
    if len(recent) < 2 or not recent[-1] < recent[0]:
        return None
    return geometric_total(history, tol, limit)


def _residuals(beta: float, S: np.ndarray, j: int, errors: np.ndarray | None) -> np.ndarray:
    """Residual norms of the Ritz pairs of ``T[:j+1, :j+1]`` (eigenvectors ``S``).

    With exact products, ``||H y_i - theta_i y_i|| = beta |S[j, i]|``. When the product
    behind basis vector ``q_l`` is known only to within ``errors[l]`` (finite-difference
    products, :mod:`landscape.curvature.sharded`: ``product_error`` for a computed product,
    ``sum_l |s_l| errors[l]`` for a Ritz vector kept by a restart), the Ritz vector
    ``y_i = Q s_i`` has ``H y_i = sum_l s_li (computed H q_l - e_l)``, so the true residual is
    at most the recurrence's plus ``sum_l |S[l, i]| errors[l]``: the bound used, so that no
    certificate is tighter than the products allow."""
    residuals = beta * np.abs(S[j, :])
    if errors is not None:
        residuals = residuals + _inexactness(S, errors)
    return residuals


def _inexactness(S: np.ndarray, errors: np.ndarray | None) -> np.ndarray | None:
    """``sum_l |S[l, i]| errors[l]`` per Ritz pair: how far a Ritz value of inexact products
    can be from the Rayleigh quotient of the true ``H`` (None with exact products)."""
    return None if errors is None else np.abs(S).T @ errors[: S.shape[0]]


def error_bounds(
    theta: np.ndarray,
    residuals: np.ndarray,
    wanted: np.ndarray,
    inexactness: np.ndarray | None = None,
) -> np.ndarray:
    """Eigenvalue error bounds ``min(r_i, r_i^2 / delta_i)`` for the Ritz values ``wanted``.

    ``delta_i`` is the distance from ``theta_i`` to the other Ritz values, each shrunk by its
    residual (the interval where an eigenvalue must lie); with no positive gap, ``r_i``.
    With inexact products the quadratic bound holds for the true Rayleigh quotient, which is
    within ``inexactness_i`` of ``theta_i`` (:func:`_inexactness`): ``min(r_i, r_i^2 / delta_i
    + inexactness_i)``, ``r_i`` already including it (:func:`_residuals`).
    """
    bounds = residuals[wanted].copy()
    for slot, i in enumerate(wanted):
        others = np.delete(np.arange(len(theta)), i)
        if len(others) == 0:
            continue
        gap = float(np.min(np.abs(theta[others] - theta[i]) - residuals[others]))
        if gap > 0:
            extra = 0.0 if inexactness is None else float(inexactness[i])
            bounds[slot] = min(bounds[slot], residuals[i] ** 2 / gap + extra)
    return bounds


def lanczos_eigs(
    op: LinearOperator,
    k: int = 1,
    *,
    which: str = "top",
    tol: float = 1e-4,
    max_hvps: int | None = None,
    basis_size: int | None = None,
    seed: int = 0,
    eigenvectors: bool = True,
    start: torch.Tensor | None = None,
    stop: str | None = None,
    progress: ProgressFn | None = None,
) -> EigResult:
    """The ``k`` algebraically largest (``which="top"``) or smallest (``"bottom"``) eigenpairs.

    Stops when every one of the ``k`` Ritz pairs has ``||H y - theta y|| <= tol * |theta|``
    (plus an absolute floor at the precision of the products, ``1e-10 * max|theta|`` for float64
    operators and ``1e-6 * max|theta|`` otherwise, so that eigenvalues near zero converge), or after
    ``max_hvps`` products (default ``max(500, 60 k)``) with ``converged=False``.
    The ``k`` unit Ritz vectors are returned unless ``eigenvectors=False``.
    ``progress`` gets a :class:`~landscape.progress.Status` after every product: the leading
    Ritz value, the largest relative error of the ``k`` against ``tol``, and the product count
    at which that error, decaying as it has over the last few products, reaches ``tol``.
    ``basis_size`` (default ``max(2k + 20, 50)``, at most ``dim``) bounds memory to that many
    float64 vectors of length ``dim``. The start vector is Gaussian from ``seed`` unless given.

    ``stop="gap"`` stops instead when every eigenvalue error bound ``min(r, r^2 / delta)``
    (see the module docstring) is <= ``tol * |theta|`` -- the request "eigenvalues to relative
    error tol" at a fraction of the products; ``converged`` and ``error_bounds`` then refer to
    that rule, while ``residuals`` are still the true residuals. It is the default when
    eigenvectors are not asked for (``stop=None``: ``"gap"`` without eigenvectors, else
    ``"residual"``, since a small eigenvalue error does not make a Ritz vector accurate).
    """
    if stop is None:
        stop = "residual" if eigenvectors else "gap"
    dim = int(op.dim)
    if which not in ("top", "bottom"):
        raise ValueError(f"which must be 'top' or 'bottom', not {which!r}")
    if not 1 <= k <= dim:
        raise ValueError(f"k must be between 1 and the dimension {dim}, not {k}")
    if not tol > 0:
        raise ValueError(f"tol must be > 0, not {tol}")
    if stop not in STOP_RULES:
        raise ValueError(f"stop must be one of {STOP_RULES}, not {stop!r}")
    device = _device(op)
    space = vector_space(op)
    m = min(dim, basis_size or max(2 * k + 20, 50))
    if m < min(dim, k + 2):
        raise ValueError(f"basis_size must be at least k + 2 = {k + 2}")
    max_hvps = max_hvps or max(500, 60 * k)
    probes = space.stream(seed)
    dtype = getattr(op, "dtype", torch.float64)
    precision = 1e-10 if dtype == torch.float64 else 1e-6
    suspicious = SUSPICIOUS_ASYMMETRY.get(dtype, math.inf)
    asymmetry = asymmetry_error = 0.0
    previous_beta: float | None = None  # q_j . H q_{j-1}, the coupling of the newest vector
    # inexact products (an operator with `product_error`, known after its first product):
    # the error behind each basis vector, see _residuals
    product_errors = np.zeros(m) if hasattr(op, "product_error") else None

    basis = torch.zeros(min(m, 2), space.local_dim, dtype=torch.float64, device=device)
    if start is None:
        v = probes.gaussian()
        basis[0] = (v / space.norm(v)).to(device)
    else:
        basis[0] = start.to(device=device, dtype=torch.float64) / space.norm(start)
    T = np.zeros((m, m))
    n = 1  # vectors in the basis; the last one still needs its product
    hvps = restarts = 0
    theta = S = None
    beta = 0.0
    history: list[float] = []  # the largest relative error of the wanted values, per product
    # Named for what it bounds: the largest, over the k wanted values, relative to |lambda|.
    error_name = "rel. residual" if stop == "residual" else "rel. eigenvalue error bound"
    while True:
        j = n - 1
        w = op.matvec(basis[j]).to(torch.float64)
        hvps += 1
        if product_errors is not None:
            product_errors[j] = float(op.product_error or 0.0)
        h = _orthogonalise(w, basis[:n], space).cpu().numpy()
        T[:n, j] = h
        T[j, :n] = h
        coupling_seen = h[j - 1] if j >= 1 else None
        beta = space.norm(w)
        theta, S = np.linalg.eigh(T[:n, :n])
        residuals = _residuals(beta, S, j, product_errors)
        scale = float(np.max(np.abs(theta)))
        if previous_beta is not None and restarts == 0 and j <= SYMMETRY_STEPS:
            asymmetry = max(asymmetry, abs(coupling_seen - previous_beta) / max(scale, 1e-300))
            if asymmetry > suspicious:
                asymmetry_error = PRODUCT_ERROR_FACTOR * asymmetry
                precision = max(precision, asymmetry_error)
        wanted = _wanted(theta, which)[: min(k, n)]
        floor = precision * scale
        errors = residuals if stop == "residual" else None
        if stop == "gap" and n > k:  # the k-th value needs a neighbour for its gap
            errors = np.zeros_like(residuals)
            errors[wanted] = error_bounds(theta, residuals, wanted, _inexactness(S, product_errors))
        if errors is not None and asymmetry_error:
            errors = errors + asymmetry_error * scale
        if progress is not None:
            shown = residuals if errors is None else errors
            relative = shown[wanted] / np.maximum(np.abs(theta[wanted]), 1e-300)
            # What is left to converge: the error above the floor, against tol.
            history.append(
                float(max(np.max(relative - floor / np.abs(theta[wanted]).clip(1e-300)), 0.0))
                if n >= k
                else math.inf
            )
            report(
                progress,
                done=hvps,
                total=_projected_total(history, tol, max_hvps),
                limit=max_hvps,
                estimate=float(theta[wanted[0]]),
                name="lambda1" if which == "top" else "lambda_min",
                error=float(np.max(relative)) if n >= k else math.inf,
                error_name=error_name,
                target=tol,
            )
        if (
            n >= k
            and errors is not None
            and np.all(errors[wanted] <= tol * np.abs(theta[wanted]) + floor)
        ):
            break
        if hvps >= max_hvps or n == dim:  # budget spent, or T is H itself in a rotated basis
            break
        # The next basis vector: the residual direction, or a fresh one after a breakdown
        # (an invariant subspace was found; its Ritz values are exact).
        if beta > 1e-12 * max(scale, 1e-300):
            nxt, coupling = w / beta, beta
            previous_beta = beta
        else:
            previous_beta = None  # a fresh vector: no coupling to compare
            nxt = probes.gaussian().to(device)
            _orthogonalise(nxt, basis[:n], space)
            nxt /= space.norm(nxt)
            coupling = 0.0
        if n == m:  # thick restart: keep the best Ritz vectors and the residual direction
            keep = min(m - 2, max(k + 1, m // 2))
            chosen = _wanted(theta, which)[:keep]
            ritz = torch.as_tensor(S[:, chosen].T.copy(), device=device) @ basis[:n]
            basis[:keep] = ritz
            if product_errors is not None:
                product_errors[:keep] = np.abs(S[:, chosen]).T @ product_errors[:n]
            T[:] = 0.0
            T[np.arange(keep), np.arange(keep)] = theta[chosen]
            T[keep, :keep] = T[:keep, keep] = coupling * S[j, chosen]
            n = keep
            restarts += 1
        basis = _grown(basis, n + 1, m)
        basis[n] = nxt
        n += 1

    wanted = _wanted(theta, which)[:k]
    all_residuals = _residuals(beta, S, n - 1, product_errors)
    residuals = all_residuals[wanted]
    scale = float(np.max(np.abs(theta)))
    bounds = (
        error_bounds(theta, all_residuals, wanted, _inexactness(S, product_errors))
        + asymmetry_error * scale
    )
    measure = residuals if stop == "residual" else bounds
    converged = bool(
        len(wanted) == k and np.all(measure <= tol * np.abs(theta[wanted]) + precision * scale)
    )
    if asymmetry_error:  # once the check is over: the largest asymmetry seen is the one used
        _warn_precision(asymmetry, dtype)
    vectors = None
    if eigenvectors:
        vectors = torch.as_tensor(S[:, wanted].T.copy(), device=device) @ basis[:n]
    return EigResult(
        eigenvalues=theta[wanted].copy(),
        residuals=residuals,
        eigenvectors=vectors,
        hvp_count=hvps,
        converged=converged,
        which=which,
        tol=tol,
        restarts=restarts,
        error_bounds=bounds,
        stop=stop,
        product_error=asymmetry_error,
    )


class _Tridiagonal:
    """The coefficients of ``T_m`` as a single-vector Lanczos recurrence produces them, and
    where it stops: after ``steps`` products, or when the new residual norm is negligible
    against the largest coefficient so far (an invariant subspace)."""

    def __init__(
        self, space: VectorSpace, steps: int, on_step: Callable[[int], None] | None
    ) -> None:
        self.space, self.steps, self.on_step = space, steps, on_step
        self.alphas: list[float] = []
        self.betas: list[float] = []
        self.scale = 0.0

    def step(self, j: int, alpha: float, w: torch.Tensor) -> float | None:
        """Record ``alpha_j`` and the residual ``w`` of step ``j``; return ``beta = ||w||``
        (to normalise the next basis vector), or None where the recurrence ends."""
        self.alphas.append(alpha)
        if self.on_step is not None:
            self.on_step(j + 1)
        beta = self.space.norm(w)
        self.scale = max(self.scale, abs(alpha), beta)
        if j + 1 == self.steps or beta <= 1e-12 * max(self.scale, 1e-300):
            return None
        self.betas.append(beta)
        return beta

    def coefficients(self) -> tuple[np.ndarray, np.ndarray]:
        """The diagonal ``alpha`` (m) and off-diagonal ``beta`` (m - 1) recorded."""
        return np.array(self.alphas), np.array(self.betas)


def lanczos_tridiagonal(
    op: LinearOperator,
    start: torch.Tensor,
    steps: int,
    on_step: Callable[[int], None] | None = None,
    max_basis: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``steps`` Lanczos steps from ``start`` with full reorthogonalisation (``on_step(j)``
    after the ``j``-th product).

    Returns the diagonal ``alpha`` (m) and off-diagonal ``beta`` (m - 1) of ``T_m``; ``m`` is
    smaller than ``steps`` when the Krylov space is exhausted (an invariant subspace).

    ``max_basis`` (memory-bounded mode) keeps only the last ``max_basis`` vectors and
    reorthogonalises against those alone (local reorthogonalisation, CGS2), so the basis costs
    ``8 * max_basis * local_dim`` bytes per rank instead of ``8 * steps * local_dim``. Its
    effect: once an eigenvalue converges, orthogonality to its Ritz vector is lost outside the
    window and the Gauss rule can hold "ghost" copies of it, which split that eigenvalue's
    weight between several nodes. The rule of the finite-precision recurrence is still a
    quadrature of ``v^T f(H) v`` accurate for smooth ``f`` (Greenbaum, Linear Algebra Appl.
    113, 1989; Knizhnerman 1996), so a smoothed density and its moments stay estimates of the
    same quantities, but the nodes are no longer Ritz values of an orthonormal basis: do not
    read eigenvalues or their multiplicities off them.
    """
    dim = int(op.dim)
    steps = min(steps, dim)
    device = _device(op)
    space = vector_space(op)
    if max_basis is not None:
        return _lanczos_tridiagonal_window(op, space, start, steps, max_basis, on_step)
    basis = torch.zeros(min(steps, 8), space.local_dim, dtype=torch.float64, device=device)
    basis[0] = start.to(device=device, dtype=torch.float64) / space.norm(start)
    tridiagonal = _Tridiagonal(space, steps, on_step)
    for j in range(steps):
        w = op.matvec(basis[j]).to(torch.float64)
        h = _orthogonalise(w, basis[: j + 1], space)
        beta = tridiagonal.step(j, float(h[j]), w)
        if beta is None:
            break
        basis = _grown(basis, j + 2, steps)
        basis[j + 1] = w / beta
    return tridiagonal.coefficients()


def _lanczos_tridiagonal_window(
    op: LinearOperator,
    space: VectorSpace,
    start: torch.Tensor,
    steps: int,
    window: int,
    on_step: Callable[[int], None] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`lanczos_tridiagonal` keeping only the last ``window`` (>= 2) basis vectors and
    reorthogonalising against them alone (its ``max_basis`` mode)."""
    if window < 2:
        raise ValueError(f"max_basis must be at least 2, not {window}")
    device = _device(op)
    # A ring of `window` rows: vector j lives in row j % window (the order of the rows does
    # not matter to Gram-Schmidt), so memory is fixed from the start.
    ring = torch.zeros(min(window, steps), space.local_dim, dtype=torch.float64, device=device)
    ring[0] = start.to(device=device, dtype=torch.float64) / space.norm(start)
    tridiagonal = _Tridiagonal(space, steps, on_step)
    for j in range(steps):
        slot = j % ring.shape[0]
        w = op.matvec(ring[slot]).to(torch.float64)
        h = _orthogonalise(w, ring[: min(j + 1, ring.shape[0])], space)
        beta = tridiagonal.step(j, float(h[slot]), w)
        if beta is None:
            break
        ring[(j + 1) % ring.shape[0]] = w / beta
    return tridiagonal.coefficients()


def lanczos_tridiagonal_lockstep(
    op: LinearOperator,
    starts: torch.Tensor,
    steps: int,
    on_step: Callable[[int, int], None] | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`lanczos_tridiagonal` from each row of ``starts`` (``(R, dim)``), the ``R`` runs
    advanced together: each step is one batched product of the runs still going
    (``op.matmat`` where the operator has it, e.g. one ``is_grads_batched`` double backward
    per batch of examples, see :meth:`HessianOperator.matmat`), then every run is
    orthogonalised against its own basis exactly as alone (CGS2, float64).

    The runs stay independent: the same ``(alpha, beta)`` per run as :func:`lanczos_tridiagonal`
    up to the rounding of the batched products. A run whose Krylov space is exhausted drops
    out of later products. ``on_step(run, j)`` after run ``run``'s ``j``-th product, in run
    order within a step. Holds the ``R`` bases at once (``R * steps`` float64 vectors).
    """
    dim = int(op.dim)
    steps = min(steps, dim)
    device = _device(op)
    space = vector_space(op)
    runs = starts.shape[0]
    matmat = getattr(op, "matmat", None)
    bases = []
    for start in starts:
        basis = torch.zeros(min(steps, 8), space.local_dim, dtype=torch.float64, device=device)
        basis[0] = start.to(device=device, dtype=torch.float64) / space.norm(start)
        bases.append(basis)
    alphas: list[list[float]] = [[] for _ in range(runs)]
    betas: list[list[float]] = [[] for _ in range(runs)]
    scales = [0.0] * runs
    active = list(range(runs))
    for j in range(steps):
        block = torch.stack([bases[r][j] for r in active])
        if matmat is not None and len(active) > 1:
            products = matmat(block).to(torch.float64)
        else:
            products = torch.stack([op.matvec(v).to(torch.float64) for v in block])
        going = []
        for r, w in zip(active, products):
            h = _orthogonalise(w, bases[r][: j + 1], space)
            alphas[r].append(float(h[j]))
            if on_step is not None:
                on_step(r, j + 1)
            beta = space.norm(w)
            scales[r] = max(scales[r], abs(alphas[r][-1]), beta)
            if j + 1 == steps or beta <= 1e-12 * max(scales[r], 1e-300):
                continue
            betas[r].append(beta)
            bases[r] = _grown(bases[r], j + 2, steps)
            bases[r][j + 1] = w / beta
            going.append(r)
        active = going
        if not active:
            break
    return [(np.array(a), np.array(b)) for a, b in zip(alphas, betas)]


def gauss_quadrature(alphas: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the Gauss rule of ``T`` (Golub & Welsch 1969): the eigenvalues of
    ``T`` and the squared first components of its unit eigenvectors."""
    T = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
    nodes, vectors = np.linalg.eigh(T)
    weights = vectors[0, :] ** 2
    return nodes, weights / math.fsum(weights)
