"""The curvature of checkpoints: what ``landscape hessian`` computes, and how.

:func:`analyse_hessian` computes, per checkpoint, only the quantities :class:`HessianOptions`
names -- top/bottom eigenvalues (Lanczos with full reorthogonalisation; ``stop="gap"`` for the
Kato-Temple bound min(r, r^2/gap)), the trace (Hutch++, Meyer et al. 2021) and the spectral
density (stochastic Lanczos quadrature, Ghorbani et al. 2019) -- of the mean loss over the
given examples, summed exactly over batches, and saves each result as soon as it is done
(:mod:`landscape.results.hessian`), so a stopped run keeps the checkpoints finished so far.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from landscape import store
from landscape.analysis.provenance import provenance_of
from landscape.analysis.saving import save_result
from landscape.errors import UserError
from landscape.loading.context import FIXED_BATCH
from landscape.parallel import SINGLE, Partition
from landscape.progress import Reporter
from landscape.results import Provenance
from landscape.results.hessian import Density, Eigenvalues, HessianResult, Trace

log = logging.getLogger("landscape.hessian")


@dataclass
class HessianOptions:
    """What to compute and on which operator. ``weight_decay`` adds ``weight_decay * I`` (None:
    the checkpoint's configured weight decay); ``batch_size`` None: FIXED_BATCH with
    ``bn_mode="train"``, else the fastest for products, measured (:mod:`landscape.batching`)."""

    top_k: int = 1
    bottom_k: int = 0
    tol: float = 1e-4
    stop: str | None = None  # None: "gap" (error bounds) without eigenvectors, else "residual"
    max_hvps: int | None = None
    eigenvectors: bool = False
    trace: bool = False
    trace_method: str = "krylov-hutch++"
    trace_rel_stderr: float = 0.01
    trace_max_hvps: int = 2000
    density: bool = False
    density_runs: int = 3
    density_steps: int = 80
    density_sigma: float | None = None
    density_lockstep: bool = False  # SLQ runs advanced together (the same density to rounding)
    bn_mode: str = "eval"
    engine: str = "auto"
    batch_size: int | None = None
    weight_decay: float | None = 0.0
    loss: str = "cross-entropy"
    label_smoothing: float = 0.0
    split: str = "train"
    dtype: str = "float32"
    seed: int = 0  # the probes and Lanczos start vectors (never the examples)
    subset_seed: int | None = None  # the examples' seed, where they were drawn (recorded only)
    curvature: str = "hessian"  # a key of landscape.curvature.gauss_newton.CURVATURES
    fisher_samples: int = 1  # labels sampled per example for "fisher-mc"
    blocks: str | None = None  # "layer", "type" or regular expressions: per-block spectra too
    warm_start: bool = True  # Lanczos from the previous checkpoint's Ritz vectors (same run)

    def __post_init__(self) -> None:
        if self.stop is None:  # eigenvectors need small residuals; eigenvalues a small error
            self.stop = "residual" if self.eigenvectors else "gap"


class MissingWeightDecay(UserError):
    """The checkpoint's weight decay was asked for, and its config names none."""


def weight_decay_of(options: HessianOptions, config: dict) -> float:
    """The L2 term of one checkpoint: the options' value, or its config's ``weight_decay``."""
    if options.weight_decay is not None:
        return float(options.weight_decay)
    value = config.get("weight_decay")
    if not isinstance(value, (int, float)):
        raise MissingWeightDecay("the checkpoint's config names no weight_decay; give the value")
    return float(value)


def product_batch(model, loss_fn, x, y, options: HessianOptions) -> int:
    """The batch of the products (see :class:`HessianOptions`)."""
    from landscape.batching import product_batch_size

    if options.batch_size:
        return options.batch_size
    if options.bn_mode == "train":
        return FIXED_BATCH
    return product_batch_size(model, loss_fn, x, y, engine=options.engine).batch_size


def analyse_hessian(
    options: HessianOptions,
    targets: list,
    data_name: str,
    x: torch.Tensor,
    y: torch.Tensor,
    out: str | Path,
    *,
    partition: Partition = SINGLE,
    reporter: Reporter | None = None,
) -> list[tuple[str, HessianResult]]:
    """Every checkpoint of ``targets`` (:class:`landscape.loading.loader.LoadedModel`) on
    examples ``x, y`` of dataset ``data_name``; each result is written to ``hessian/<name>`` of
    ``out`` when it is done (by the writer process). Returns ``(name, result)`` per checkpoint,
    in order."""
    from landscape.losses import make_loss

    loss_fn = make_loss(options.loss, label_smoothing=options.label_smoothing)
    reporter = reporter or Reporter(enabled=False)
    done = []
    previous: tuple | None = None  # (run folder, the last checkpoint's Ritz vectors)
    for i, target in enumerate(targets):
        started = time.monotonic()
        prefix = f"[{i + 1}/{len(targets)}] {target.stem}: " if len(targets) > 1 else ""
        weight_decay = weight_decay_of(options, target.config)
        same_run = previous is not None and previous[0] == Path(target.path).parent
        warm = previous[1] if same_run and options.warm_start else None
        result, chosen = hessian_of(
            target.model, loss_fn, x, y, options, weight_decay, reporter, prefix, partition, warm
        )
        previous = (Path(target.path).parent, chosen.pop("ritz"))
        seconds = time.monotonic() - started
        config = {"dataset": data_name, **_config(options, chosen)}
        result.provenance = provenance_of(target, options, x.shape[0], seconds, config, partition)
        name = save(out, target, result) if partition.is_writer else target.stem
        done.append((name, result))
        log.info(
            "%s: %d products in %.1f s (%s)",
            target.path,
            result.hvp_count,
            seconds,
            result.cost_note,
        )
    return done


def hessian_of(
    model: torch.nn.Module,
    loss_fn,
    x: torch.Tensor,
    y: torch.Tensor,
    options: HessianOptions,
    weight_decay: float = 0.0,
    reporter: Reporter | None = None,
    prefix: str = "",
    partition: Partition = SINGLE,
    warm: dict | None = None,
) -> tuple[HessianResult, dict]:
    """Everything ``options`` asks for on one model, each quantity one phase of ``reporter``
    (``prefix`` names the checkpoint). Returns the result (empty provenance) and what the
    operator chose (engine, batch), for the provenance's config. With a ``partition`` of
    several processes each sums over its share of the examples, every one gets the same
    result, and the writer's measured batch size is everyone's. ``warm`` (the ``ritz`` entry
    of a previous call's second value) starts Lanczos from another checkpoint's Ritz vectors
    when the parameters are the same; the matrix is ``options.curvature``."""
    from landscape.curvature import TRACE_METHODS
    from landscape.curvature.density import slq_density

    reporter = reporter or Reporter(enabled=False)
    found: dict = {}
    batch = product_batch(model, loss_fn, x, y, options) if partition.is_writer else None
    batch = partition.broadcast(batch)
    with operator_of(options, model, loss_fn, x, y, weight_decay, batch, partition) as op:
        ritz = {"parameter_names": op.parameter_names}
        for which, k in (("top", options.top_k), ("bottom", options.bottom_k)):
            if k:
                old = (warm or {}).get(which)
                same = warm is not None and warm["parameter_names"] == op.parameter_names
                start = old if same and old is not None and old.shape[1] == op.dim else None
                found[which], ritz[which] = _eigenvalues(
                    op, which, k, options, reporter, prefix, start
                )
        if options.trace:
            estimator = TRACE_METHODS[options.trace_method]
            with reporter.phase(f"{prefix}trace ({options.trace_method})", unit="products") as p:
                trace = estimator(
                    op,
                    rel_stderr=options.trace_rel_stderr,
                    max_hvps=options.trace_max_hvps,
                    seed=options.seed,
                    progress=p,
                )
            if not trace.converged:
                log.warning(
                    "trace reached relative stderr %.3g, not %g, within %d products",
                    trace.relative_stderr,
                    options.trace_rel_stderr,
                    trace.hvp_count,
                )
            found["trace"] = Trace.from_estimate(trace)
        if options.density:
            with reporter.phase(f"{prefix}density", unit="products") as p:
                density = slq_density(
                    op,
                    runs=options.density_runs,
                    steps=options.density_steps,
                    sigma=options.density_sigma,
                    seed=options.seed,
                    lockstep=options.density_lockstep,
                    progress=p,
                )
            found["density"] = Density.from_slq(density)
        chosen = {
            "weight_decay_term": weight_decay,
            "batch_size": op.batch_size,
            "hvp_engine": op.engine_name,
            "ritz": ritz,
        }
        result = HessianResult(
            Provenance(checkpoint="", checkpoint_sha256=""),
            hvp_count=op.hvp_count,
            cost_note=op.cost_note(),
            curvature=op.curvature,
            **found,
        )
    if options.blocks:
        result.blocks = block_spectra(
            model, loss_fn, x, y, options, weight_decay, op.batch_size, reporter, prefix, partition
        )
    return result, chosen


def operator_of(
    options: HessianOptions,
    model,
    loss_fn,
    x,
    y,
    weight_decay: float,
    batch_size: int,
    partition: Partition = SINGLE,
    parameters=None,
):
    """The curvature operator of ``options`` (:data:`~landscape.curvature.gauss_newton.CURVATURES`)
    on ``x, y``, restricted to ``parameters`` (names; None: all)."""
    from landscape.curvature.gauss_newton import curvature_operator

    return curvature_operator(
        options.curvature,
        model,
        loss_fn,
        x,
        y,
        loss_name=options.loss,
        mc_samples=options.fisher_samples,
        mc_seed=options.seed,
        batch_size=batch_size,
        bn_mode=options.bn_mode,
        engine=options.engine,
        weight_decay=weight_decay,
        parameters=parameters,
        partition=partition,
    )


def block_spectra(
    model,
    loss_fn,
    x,
    y,
    options: HessianOptions,
    weight_decay,
    batch_size,
    reporter,
    prefix,
    partition: Partition = SINGLE,
) -> dict:
    """The spectra of the diagonal blocks of ``options.blocks``
    (:func:`landscape.curvature.blocks.parameter_blocks`): each block gets what is asked of
    the whole (top-k, default 1; bottom-k; trace; density), on the same examples and batches."""
    from landscape.curvature.blocks import block_spectrum, parameter_blocks
    from landscape.results.hessian import Block

    blocks = parameter_blocks(model, options.blocks)
    trace = density = None
    if options.trace:
        trace = {
            "method": options.trace_method,
            "rel_stderr": options.trace_rel_stderr,
            "max_hvps": options.trace_max_hvps,
        }
    if options.density:
        density = {
            "runs": options.density_runs,
            "steps": options.density_steps,
            "sigma": options.density_sigma,
            "lockstep": options.density_lockstep,
        }
    found = {}
    for i, (name, parameters) in enumerate(blocks.items()):
        phase_name = f"{prefix}block {i + 1}/{len(blocks)} {name}"
        with (
            operator_of(
                options, model, loss_fn, x, y, weight_decay, batch_size, partition, parameters
            ) as op,
            reporter.phase(phase_name, unit="products") as phase,
        ):
            spectrum = block_spectrum(
                name,
                op,
                top_k=options.top_k or 1,
                bottom_k=options.bottom_k,
                tol=options.tol,
                stop=options.stop,
                max_hvps=options.max_hvps,
                seed=options.seed,
                trace=trace,
                density=density,
                progress=phase,
            )
        found[name] = Block.from_spectrum(spectrum)
    return found


def _eigenvalues(
    op, which: str, k: int, options: HessianOptions, reporter, prefix: str, previous=None
):
    """One Lanczos run, and its Ritz vectors for the next checkpoint's warm start (None when
    warm starts are off); ``previous``: another checkpoint's Ritz vectors to start from."""
    from landscape.curvature import lanczos_eigs
    from landscape.curvature.lanczos import warm_start

    start = warm_start(previous, seed=options.seed) if previous is not None else None
    name = f"{which}-{k} eigenvalue" + ("s" if k > 1 else "")
    with reporter.phase(f"{prefix}{name}", unit="products") as phase:
        eig = lanczos_eigs(
            op,
            k,
            which=which,
            tol=options.tol,
            max_hvps=options.max_hvps,
            seed=options.seed,
            # Ritz vectors are also kept for the next checkpoint's start
            eigenvectors=options.eigenvectors or options.warm_start,
            stop=options.stop,
            start=start,
            progress=phase,
        )
    if not eig.converged:
        log.warning(
            "%s-%d eigenvalues did not reach tol %g within %d products "
            "(largest relative residual %.2g)",
            which,
            k,
            options.tol,
            eig.hvp_count,
            float(eig.relative_residuals.max()),
        )
    vectors = None
    if options.eigenvectors:
        per_vector = [op.named(v) for v in eig.eigenvectors]
        vectors = {
            n: torch.stack([d[n] for d in per_vector]).detach().cpu().numpy()
            for n in op.parameter_names
        }
    ritz = eig.eigenvectors if options.warm_start else None
    return Eigenvalues.from_lanczos(eig, vectors, "random" if start is None else "warm"), ritz


def _config(options: HessianOptions, chosen: dict) -> dict:
    """What shaped the result, for the provenance's ``config``."""
    mine = asdict(options)
    return {
        "loss": options.loss,
        "label_smoothing": options.label_smoothing,
        "subset_seed": options.subset_seed,
        **chosen,
        **{k: mine[k] for k in ("curvature", "blocks", "warm_start")},
        "fisher_samples": options.fisher_samples if options.curvature == "fisher-mc" else None,
        **{k: mine[k] for k in ("tol", "stop", "top_k", "bottom_k", "max_hvps", "trace")},
        **{k: mine[k] for k in ("trace_method", "trace_rel_stderr", "trace_max_hvps")},
        **{k: mine[k] for k in ("density", "density_runs", "density_steps", "density_sigma")},
        "density_lockstep": options.density_lockstep,
    }


def save(out: str | Path, target, result: HessianResult) -> str:
    """Store one checkpoint's result in ``hessian/<name>`` of ``out``; returns the name used
    (a group holding another checkpoint's result is never replaced: NAME-2 instead)."""

    def write(f, name: str) -> None:
        result.write(store.replace_group(f, f"hessian/{name}"))

    return save_result(out, "hessian", target.stem, [target.sha256], write)
