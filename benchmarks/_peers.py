"""The peers of ``bench_hessian.py``, each driven the way its documentation shows, with every
Hessian-vector product counted and timestamped so that each can be credited fairly.

* PyHessian (``pip install pyhessian``): power iteration with deflation, Hutchinson's trace.
* hessian-eigenthings 1.0 (``pip install hessian-eigenthings``): Lanczos with full
  reorthogonalisation for a fixed number of steps, Hutch++ for a fixed number of products.
* curvlinops (``pip install curvlinops-for-pytorch``): ``HessianLinearOperator`` handed to
  ``scipy.sparse.linalg.eigsh`` (ARPACK, implicitly restarted Lanczos, its default ``ncv``),
  ``hutchpp_trace``.

None of them is a dependency of ``landscape``; a missing one is skipped with a printed line.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

TARGET = 1e-4
MIN_SAMPLES = 10  # ours' min_samples: no trace is credited on a stderr of fewer samples
PYHESSIAN_TOL = 1e-6  # its rule for the recorded runs; looser ones are replayed from them
RULE_LADDER = (1e-3, 1e-4, 1e-5, 1e-6)
ARPACK_LADDER = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
PEERS = {
    "pyhessian": ("pyhessian", "pyhessian"),
    "eigenthings": ("hessian_eigenthings", "hessian-eigenthings"),
    "curvlinops": ("curvlinops", "curvlinops-for-pytorch"),
}


def installed_peers(log) -> list[str]:
    found = []
    for name, (module, package) in PEERS.items():
        if importlib.util.find_spec(module) is None:
            log(f"{name}: not installed, skipped (pip install {package})")
        else:
            importlib.import_module(module)  # imported once here, so no timing pays for it
            found.append(name)
    if "curvlinops" in found:  # its first eigsh pays a one-off of seconds: not charged
        tiny = torch.nn.Linear(3, 2)
        curvlinops_eigsh(tiny, [(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))], 1, 1e-2, 0)
    return found


def relative_error(value: float, reference: float) -> float:
    return abs(value - reference) / abs(reference)


@dataclass
class Credit:
    """What a peer is credited with for one job: wall-clock seconds from its set-up on,
    products, whether it reached the accuracy at all (else the figures are lower bounds)."""

    seconds: float
    products: int
    reached: bool = True
    note: str = ""
    estimated: bool = False

    def shown(self) -> str:
        parts = [f"{self.products} HVP"] + ([self.note] if self.note else [])
        if self.estimated:
            parts.append("est.")
        if not self.reached:
            parts.append("never within 1e-4")
        return f"{self.seconds:.2f} s ({', '.join(parts)})"


# ---------------------------------------------------------------------------------- PyHessian
class PyHessianRecorder:
    """Timestamps every product PyHessian makes, with the Rayleigh quotient it yields and the
    index of the eigenvalue (phase) being computed. Wraps its module-level product (one-batch
    mode), its ``dataloader_hv_product`` (dataloader mode) and ``orthnormal`` (whose argument
    lists the eigenvectors found so far)."""

    def __init__(self, h) -> None:
        self.module = sys.modules["pyhessian.hessian"]
        self.h = h
        self.events: list[tuple[float, int, float]] = []  # (end time, phase, estimate)
        self.phase = 0

    def __enter__(self):
        module, h = self.module, self.h
        self._hvp, self._orth = module.hessian_vector_product, module.orthnormal
        self._dataloader = h.dataloader_hv_product
        group_product = module.group_product
        device = h.device

        def hvp(grads, params, v):
            hv = self._hvp(grads, params, v)
            estimate = group_product(hv, v).cpu().item()  # exactly PyHessian's own estimate
            self.events.append((time.perf_counter(), self.phase, estimate))
            return hv

        def dataloader(v):
            estimate, hv = self._dataloader(v)
            if device == "cuda":
                torch.cuda.synchronize()
            self.events.append((time.perf_counter(), self.phase, float(estimate)))
            return estimate, hv

        def orth(w, v_list):
            self.phase = len(v_list)
            return self._orth(w, v_list)

        module.hessian_vector_product, module.orthnormal = hvp, orth
        h.dataloader_hv_product = dataloader
        return self

    def __exit__(self, *exc):
        self.module.hessian_vector_product, self.module.orthnormal = self._hvp, self._orth
        self.h.dataloader_hv_product = self._dataloader


def phase_events(events, phase: int) -> list[tuple[float, float]]:
    """(time, estimate) of the products PyHessian spent on eigenvalue ``phase``."""
    return [(t, value) for t, p, value in events if p == phase]


def pyhessian_make(model, batches, one_batch: bool):
    """PyHessian's object (all examples as its one batch, or ``dataloader=``); start time."""
    import pyhessian

    start = time.perf_counter()
    cuda = next(model.parameters()).is_cuda
    if one_batch:
        x = torch.cat([b[0] for b in batches])
        y = torch.cat([b[1] for b in batches])
        h = pyhessian.hessian(model, F.cross_entropy, data=(x, y), cuda=cuda)
    else:
        h = pyhessian.hessian(model, F.cross_entropy, dataloader=batches, cuda=cuda)
    return h, start


def pyhessian_top(model, batches, iters: int, seed: int, k: int = 5, one_batch: bool = True):
    """One recorded ``eigenvalues(top_n=k)`` run: (events, start incl. set-up)."""
    torch.manual_seed(seed)
    h, start = pyhessian_make(model, batches, one_batch)
    with PyHessianRecorder(h) as recorder:
        h.eigenvalues(maxIter=iters, tol=PYHESSIAN_TOL, top_n=k)
    model.zero_grad(set_to_none=True)
    return recorder.events, start


def pyhessian_oracle(events, start: float, reference: np.ndarray, k: int) -> Credit:
    """Seconds and products until each of the first ``k`` phases had come within TARGET (a
    rule of its own could not know when: a lower bound on its time)."""
    seconds, products, reached, phase_start = 0.0, 0, True, start
    for phase in range(k):
        this_phase = phase_events(events, phase)
        if not this_phase:
            return Credit(seconds, products, False, "oracle")
        hit = next(
            (
                i
                for i, (_, v) in enumerate(this_phase)
                if relative_error(v, reference[phase]) <= TARGET
            ),
            None,
        )
        if hit is None:
            reached, hit = False, len(this_phase) - 1
        seconds += this_phase[hit][0] - phase_start
        products += hit + 1
        phase_start = this_phase[-1][0]
    return Credit(seconds, products, reached, "oracle")


def pyhessian_phases(events, reference: np.ndarray, k: int) -> str:
    """Per eigenvalue: products until its estimate came within TARGET ("-" if never) and
    products spent (to its ``tol`` or the cap), for the log."""
    shown = []
    for phase in range(k):
        values = [v for _, v in phase_events(events, phase)]
        hit = next(
            (i + 1 for i, v in enumerate(values) if relative_error(v, reference[phase]) <= TARGET),
            "-",
        )
        shown.append(f"{hit}/{len(values)}")
    return " ".join(shown)


def pyhessian_own_rule(events, start: float, reference: float) -> tuple[Credit, float]:
    """PyHessian's first eigenvalue under its own stopping rule, replayed: at each tolerance of
    RULE_LADDER it stops at the first product whose estimate changed by < tol (relative) and
    returns the previous estimate (its first eigenvalue's iterates do not depend on tol). The
    loosest tolerance whose answer is within TARGET wins. Also returns its answer."""
    values = [v for _, v in phase_events(events, 0)]
    times = [t for t, _ in phase_events(events, 0)]
    for tol in RULE_LADDER:
        for i in range(1, len(values)):
            if abs(values[i - 1] - values[i]) / (abs(values[i - 1]) + 1e-6) < tol:
                if relative_error(values[i - 1], reference) <= TARGET:
                    return Credit(times[i] - start, i + 1, True, f"tol {tol:.0e}"), values[i - 1]
                break
    return Credit(times[-1] - start, len(values), False, "no tol >= 1e-6"), values[-1]


def pyhessian_trace_samples(model, batches, samples: int, seed: int):
    """Hutchinson samples ``v^T H v`` of PyHessian's ``trace``; their end times; start time."""
    torch.manual_seed(seed)
    h, start = pyhessian_make(model, batches, one_batch=True)
    with PyHessianRecorder(h) as recorder:
        values = np.array(h.trace(maxIter=samples, tol=-math.inf))
    model.zero_grad(set_to_none=True)
    return values, [t for t, _, _ in recorder.events], start


def sampled_credit(values, offset: float, ends, sampling_from: float, start: float, rel):
    """(samples, seconds, extrapolated?) a sampling estimator ``offset + mean(values)`` needs
    for relative standard error ``rel``, by the rule ours stops by: the first
    ``n >= MIN_SAMPLES`` samples whose standard error ``std / sqrt(n)`` is within ``rel``
    (read off, at the end time of sample n); else extrapolated ("est.") from all samples'
    variance (Hutchinson's 1/n), at the run's seconds per sample (from ``sampling_from``, the
    end of its set-up or sketch, to its last sample) -- as ``bench_hessian.extrapolated``
    does for ours."""
    values = np.asarray(values, dtype=float)
    for n in range(MIN_SAMPLES, len(values) + 1):
        if values[:n].std(ddof=1) / math.sqrt(n) <= rel * abs(offset + values[:n].mean()):
            return n, ends[n - 1] - start, False
    per_sample = (ends[-1] - sampling_from) / len(values)
    needed = max(MIN_SAMPLES, math.ceil(values.var(ddof=1) / (rel * (offset + values.mean())) ** 2))
    return needed, ends[-1] - start + (needed - len(values)) * per_sample, True


def hutchinson_credit(values, times, start: float, rel: float) -> Credit:
    """PyHessian's Hutchinson for relative stderr ``rel`` (:func:`sampled_credit`; its first
    sample's product also pays for the set-up, so seconds per sample are taken from the
    first sample's end on)."""
    per_sample = (times[-1] - times[0]) / max(len(values) - 1, 1)
    needed, seconds, estimated = sampled_credit(
        values, 0.0, times, times[0] - per_sample, start, rel
    )
    return Credit(seconds, needed, True, "Hutchinson", estimated)


# ------------------------------------------------------------------------ hessian-eigenthings
class StampedOperator:
    """Wraps an operator's ``matvec`` and records the time at which each product started."""

    def __init__(self, operator) -> None:
        self.operator = operator
        self.starts: list[float] = []

    def __getattr__(self, name):
        return getattr(self.operator, name)

    def matvec(self, v):
        self.starts.append(time.perf_counter())
        return self.operator.matvec(v)


def eigenthings_operator(model, batches):
    import hessian_eigenthings as he

    return he.HessianOperator(model, batches, he.supervised_loss(F.cross_entropy))


def eigenthings_lanczos(model, batches, steps: int, seed: int):
    """One run of its Lanczos kernel (full reorthogonalisation, as its ``lanczos`` does up to
    50 steps) for ``steps`` steps: (start, end time of each step, alphas, betas). Lanczos
    step j does not depend on the number of steps asked for, so ``lanczos(k, max_iter=m)``
    is replayed exactly for every m <= steps from this one run."""
    from hessian_eigenthings.algorithms.lanczos import lanczos_tridiagonal

    start = time.perf_counter()
    op = StampedOperator(eigenthings_operator(model, batches))
    generator = torch.Generator().manual_seed(seed)
    v0 = torch.randn(op.size, dtype=op.dtype, generator=generator).to(op.device)
    td = lanczos_tridiagonal(op, v0, steps, reorthogonalize=True)
    ends = op.starts[1:] + [time.perf_counter()]  # step j ends when product j+1 starts
    model.zero_grad(set_to_none=True)
    return start, ends, td.alphas.double().cpu().numpy(), td.betas.double().cpu().numpy()


def ritz_values(alphas: np.ndarray, betas: np.ndarray, m: int) -> np.ndarray:
    """Eigenvalues (descending) of the leading m x m Lanczos tridiagonal."""
    t = np.diag(alphas[:m]) + np.diag(betas[: m - 1], 1) + np.diag(betas[: m - 1], -1)
    return np.sort(np.linalg.eigvalsh(t))[::-1]


def fixed_steps_credit(start, ends, alphas, betas, reference: np.ndarray, k: int):
    """The smallest step count whose top-k Ritz values are all within TARGET (an oracle: the
    user must guess it beforehand); with the top-k values at that count."""
    for m in range(k, len(alphas) + 1):
        theta = ritz_values(alphas, betas, m)[:k]
        if np.all(np.abs(theta - reference[:k]) <= TARGET * np.abs(reference[:k])):
            return Credit(ends[m - 1] - start, m, True, f"oracle {m} steps"), theta
    m = len(alphas)
    theta = ritz_values(alphas, betas, m)[:k]
    return Credit(ends[-1] - start, m, False, f"{m} steps"), theta


def eigenthings_trace(model, batches, budget: int, seed: int):
    """Its Hutch++ with ``budget`` products, every product timestamped: (start, end time of
    each product, estimate, residual samples)."""
    import hessian_eigenthings as he

    start = time.perf_counter()
    op = StampedOperator(eigenthings_operator(model, batches))
    result = he.trace(op, num_matvecs=budget, method="hutch++", seed=seed)
    ends = op.starts[1:] + [time.perf_counter()]  # product j ends when product j+1 starts
    model.zero_grad(set_to_none=True)
    return start, ends, result.estimate, result.samples.double().cpu().numpy()


def hutchpp_credit(start: float, ends, estimate: float, samples, rel: float) -> Credit:
    """Products Hutch++ (Meyer et al. 2021) needs for relative stderr ``rel``: its sketch (the
    first 2/3 of the run's products, kept) plus the residual samples :func:`sampled_credit`
    reads off or extrapolates. Not a bound either way: a user must pass ``num_matvecs`` of
    three times the samples (its split is fixed at thirds), and that bigger sketch would in
    turn lower the residual variance."""
    sketch = len(ends) - len(samples)
    offset = estimate - float(np.mean(samples))  # its exact low-rank part, tr(Q^T H Q)
    needed, seconds, estimated = sampled_credit(
        samples, offset, ends[sketch:], ends[sketch - 1], start, rel
    )
    return Credit(seconds, sketch + needed, True, "Hutch++", estimated)


# --------------------------------------------------------------------------------- curvlinops
def curvlinops_operator(model, batches):
    from curvlinops import HessianLinearOperator

    params = [p for p in model.parameters() if p.requires_grad]
    # check_deterministic=False: its default spends extra products checking the data
    return HessianLinearOperator(
        model, torch.nn.CrossEntropyLoss(), params, batches, check_deterministic=False
    )


def curvlinops_eigsh(model, batches, k: int, tol: float, seed: int):
    """``eigsh(k, which="LA", tol)`` on its operator: (seconds incl. set-up, products, top-k)."""
    import scipy.sparse.linalg as sla

    start = time.perf_counter()
    scipy_op = curvlinops_operator(model, batches).to_scipy()
    count = [0]

    def matvec(v):
        count[0] += 1
        return scipy_op @ v

    counted = sla.LinearOperator(scipy_op.shape, matvec=matvec, dtype=scipy_op.dtype)
    v0 = np.random.default_rng(seed).standard_normal(scipy_op.shape[0])
    values = sla.eigsh(counted, k=k, which="LA", tol=tol, v0=v0, return_eigenvectors=False)
    seconds = time.perf_counter() - start
    model.zero_grad(set_to_none=True)
    return seconds, count[0], np.sort(values)[::-1]


def curvlinops_top(model, batches, k: int, reference: np.ndarray, seed: int):
    """Credited at the loosest ARPACK ``tol`` of ARPACK_LADDER whose top-k are within TARGET
    (tried loosest first; the runs that fell short are not charged); with its answer."""
    for tol in ARPACK_LADDER:
        seconds, products, values = curvlinops_eigsh(model, batches, k, tol, seed)
        if np.all(np.abs(values - reference[:k]) <= TARGET * np.abs(reference[:k])):
            return Credit(seconds, products, True, f"tol {tol:.0e}"), values
    return Credit(seconds, products, False, f"tol {tol:.0e}"), values


def curvlinops_trace(model, batches, budget: int):
    """Its ``hutchpp_trace`` with ``budget`` products, credited by its own samples: (start,
    end time of each product, estimate, residual samples), as :func:`eigenthings_trace`.

    ``hutchpp_trace`` makes three block products ``A @ X`` of ``budget / 3`` columns (sketch,
    ``A Q``, the projected residual vectors ``X = (I - QQ^T) G``) and returns only the
    estimate; the residual samples ``g_i^T (I - QQ^T) A (I - QQ^T) g_i = x_i^T (A x_i)`` are
    read off the last block, and each column's end time is spread evenly over its block."""
    from curvlinops import hutchpp_trace

    start = time.perf_counter()
    op = curvlinops_operator(model, batches)
    blocks = record_matmuls(op)
    estimate = float(hutchpp_trace(op, budget))
    model.zero_grad(set_to_none=True)
    ends = [
        t0 + (j + 1) * (t1 - t0) / x.shape[1] for x, _, t0, t1 in blocks for j in range(x.shape[1])
    ]
    x, ax, _, _ = blocks[-1]
    samples = (x.double() * ax.double()).sum(0).cpu().numpy()
    return start, ends, estimate, samples


def record_matmuls(op) -> list:
    """Record ``(X, A @ X, start, end)`` of every block product ``op @ X`` (a list, filled as
    it runs): the operator's class is swapped for a subclass that records."""
    blocks: list = []
    base = type(op)

    class Recorded(base):
        def __matmul__(self, X):
            t0 = time.perf_counter()
            out = base.__matmul__(self, X)
            if isinstance(X, torch.Tensor) and X.ndim == 2:
                blocks.append((X.detach(), out.detach(), t0, time.perf_counter()))
            return out

    op.__class__ = Recorded
    return blocks


# ---------------------------------------------------------------------------- one product
def product_jobs(model, x, y, peers: list[str]) -> dict:
    """One product through each peer's operator on the batch (x, y), each built once."""
    jobs = {}
    dim = sum(p.numel() for p in model.parameters())
    v = torch.randn(dim, device=x.device)
    if "pyhessian" in peers:
        from pyhessian.utils import hessian_vector_product

        h, _ = pyhessian_make(model, [(x, y)], one_batch=True)
        v_list = [torch.randn_like(p) for p in h.params]
        jobs["pyhessian"] = lambda: hessian_vector_product(h.gradsH, h.params, v_list)
    if "eigenthings" in peers:
        op = eigenthings_operator(model, [(x, y)])
        jobs["eigenthings"] = lambda: op.matvec(v)
    if "curvlinops" in peers:
        linop = curvlinops_operator(model, [(x, y)])
        jobs["curvlinops"] = lambda: linop @ v
    return jobs


def lean_products(name: str, model, batches, products: int) -> None:
    """``products`` products in the peer's leanest mode over ``batches`` (for the memory
    probe): PyHessian's ``dataloader=``; the others always rebuild each batch's graph."""
    dim = sum(p.numel() for p in model.parameters())
    v = torch.randn(dim, device=batches[0][0].device)
    if name == "pyhessian":
        h, _ = pyhessian_make(model, batches, one_batch=False)
        v_list = [torch.randn_like(p) for p in h.params]
        for _ in range(products):
            h.dataloader_hv_product(v_list)
    elif name == "eigenthings":
        op = eigenthings_operator(model, batches)
        for _ in range(products):
            op.matvec(v)
    elif name == "curvlinops":
        linop = curvlinops_operator(model, batches)
        for _ in range(products):
            linop @ v
    else:
        raise ValueError(name)
