"""landscape hessian: top/bottom eigenvalues, trace and spectral density of checkpoints."""

from __future__ import annotations

import argparse
import sys

from landscape.cli.common import (
    add_config,
    add_data_source,
    add_device,
    add_dtype,
    add_model_source,
    add_out,
    add_seed,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    state_default,
)

HELP = "Hessian top-k/bottom-k eigenvalues (Lanczos), trace (Hutch++) and spectral density (SLQ)"
DESCRIPTION = """\
Curvature of the mean loss over a fixed, seeded subset of a data split (no augmentation),
summed exactly over batches. Only what is named is computed: --top-k K, --bottom-k K,
--trace, --density, in any combination. With none of them, the default is the largest
eigenvalue alone (--top-k 1): a few dozen products, no trace, no density.

Results go to hessian/<run>_<stem>/ of the result file (run = the checkpoint's folder, so the
final checkpoints of two runs never share a name): eigenvalues (descending) and residuals
||Hv - lambda v||, bottom_eigenvalues (ascending), eigenvectors/<parameter> (k, ...), trace
and trace_stderr (NaN when not asked for), hvp_count, density/{grid,values,nodes,weights}
(layout: docs/file-format.md). Re-running on the same checkpoint replaces its group (said on
stderr); a group holding another checkpoint's result is never replaced (NAME-2 is written
instead).

Eigenvalues stop when every eigenvalue error bound min(r, r^2/gap) <= tol * |lambda|
(Kato-Temple; gap from the neighbouring Ritz values; Lanczos, full reorthogonalisation), or,
with --stop residual or --eigenvectors, when every residual <= tol * |lambda|; residuals and
error bounds are stored either way.
The trace stops at the requested relative standard error (Hutch++, Meyer et al. 2021,
with a Lanczos deflation basis of adaptive rank).
The density is stochastic Lanczos quadrature (Ghorbani et al. 2019).
Progress on stderr names the phase (top-5 eigenvalues, trace, density), the current estimate
and its error against the target, and an ETA.

examples:
  landscape hessian CKPT                                  # lambda_1 only
  landscape hessian checkpoints/run/epoch-*.pt --top-k 5 --trace --density --samples 5000 \\
      --out analyses/hessian.h5
"""

# The registry's keys (landscape.curvature.gauss_newton.CURVATURES), kept here so that --help
# does not import torch; tests/curvature checks that the two agree.
CURVATURE_CHOICES = ("hessian", "ggn", "fisher", "fisher-mc")
DEFAULT_SAMPLES = 5000
DEFAULT_BATCH_SIZE = 500
DEFAULT_OUT = "analyses/hessian.h5"
DEFAULT_TOP_K = 1  # what a bare `landscape hessian CKPT` computes: the largest eigenvalue
TRACE_DEFAULTS = {
    "trace_method": "krylov-hutch++",
    "trace_rel_stderr": 0.01,
    "trace_max_hvps": 2000,
}
DENSITY_DEFAULTS = {"density_runs": 3, "density_steps": 80, "density_sigma": None}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoints", nargs="+", metavar="CKPT", help="checkpoint files")
    group = parser.add_argument_group(
        "what to compute",
        "only what is named; with none of --top-k/--bottom-k/--trace/--density: "
        f"--top-k {DEFAULT_TOP_K}",
    )
    group.add_argument(
        "--top-k",
        type=positive_int,
        help=f"largest eigenvalues (default: {DEFAULT_TOP_K} when nothing is named, else 0)",
    )
    group.add_argument(
        "--bottom-k", type=nonnegative_int, help="smallest (most negative) eigenvalues (default: 0)"
    )
    group.add_argument(
        "--tol",
        type=positive_float,
        default=1e-4,
        help="stop when every residual ||Hv - lambda v|| <= tol |lambda| (default: 1e-4)",
    )
    group.add_argument(
        "--stop",
        choices=["residual", "gap"],
        help="eigenvalue stopping rule: the error bound min(r, r^2/gap) <= tol |lambda| "
        "(gap, the default; fewer products), or residual <= tol |lambda| (residual, the "
        "default with --eigenvectors, which it certifies too)",
    )
    group.add_argument("--max-hvps", type=positive_int, help="product budget per eigenvalue run")
    group.add_argument(
        "--eigenvectors", action="store_true", help="save the eigenvectors, per parameter"
    )
    group.add_argument(
        "--warm-start",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="start Lanczos from the previous checkpoint's top Ritz vectors when several "
        "checkpoints of one run are analysed (same parameters; default: on)",
    )
    group.add_argument(
        "--trace",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="estimate the trace (default: off)",
    )
    group.add_argument(
        "--trace-method",
        choices=["krylov-hutch++", "hutch++", "hutchinson"],
        help="trace estimator: Hutch++ deflated by an adaptive Lanczos basis "
        "(krylov-hutch++, the default), with Meyer et al.'s sketch (hutch++), "
        "or plain Hutchinson",
    )
    group.add_argument(
        "--trace-rel-stderr",
        type=positive_float,
        help="relative standard error to stop the trace at (default: 0.01)",
    )
    group.add_argument(
        "--trace-max-hvps", type=positive_int, help="product budget of the trace (default: 2000)"
    )
    group.add_argument(
        "--density", action="store_true", default=None, help="spectral density by SLQ"
    )
    group.add_argument("--density-runs", type=positive_int, help="SLQ runs (default: 3)")
    group.add_argument(
        "--density-steps", type=positive_int, help="Lanczos steps per SLQ run (default: 80)"
    )
    group.add_argument(
        "--density-sigma",
        type=positive_float,
        help="Gaussian smoothing width (default: 1%% of the spectrum's span)",
    )
    group.add_argument(
        "--blocks",
        metavar="layer|type|REGEX[,REGEX...]",
        help="also the spectra of diagonal blocks, per parameter group: each module holding "
        "parameters (layer), each kind conv/linear/norm/embedding/attention (type), or the "
        "parameters whose names match each expression; every block gets what is asked of "
        "the whole (--top-k, default 1, --bottom-k, --trace, --density)",
    )
    group = parser.add_argument_group("the operator")
    group.add_argument(
        "--curvature",
        choices=list(CURVATURE_CHOICES),
        default="hessian",
        help="the matrix analysed: the Hessian (default), the generalised Gauss-Newton "
        "J^T H_out J (ggn), the empirical Fisher mean g_i g_i^T (fisher), or the Fisher "
        "with labels sampled from the model (fisher-mc, seeded by --seed)",
    )
    group.add_argument(
        "--fisher-samples",
        type=positive_int,
        default=1,
        help="labels sampled per example for --curvature fisher-mc (default: 1)",
    )
    group.add_argument(
        "--bn-mode",
        choices=["eval", "train"],
        default="eval",
        help="BatchNorm statistics: running (eval) or per batch (train) (default: eval)",
    )
    group.add_argument(
        "--hvp",
        choices=["auto", "cached", "func"],
        default="auto",
        help="Hessian-vector products: double backward through graphs kept "
        "while memory allows, the rest rebuilt per product (cached); "
        "forward-over-reverse (func); auto (the default) = cached, or func "
        "when the model has no double backward",
    )
    group.add_argument(
        "--weight-decay-term",
        type=nonnegative_float,
        nargs="?",
        const=-1.0,
        metavar="WD",
        help="add the L2 term WD * I (without a value: the "
        "checkpoint's configured weight decay); default: not included",
    )
    group.add_argument(
        "--label-smoothing",
        type=nonnegative_float,
        default=0.0,
        help="label smoothing of the cross-entropy (default: 0)",
    )
    add_model_source(parser)
    add_data_source(parser, splits="train")
    state_default(parser, "--samples", f"{DEFAULT_SAMPLES}, or the whole split if smaller")
    state_default(parser, "--batch-size", str(DEFAULT_BATCH_SIZE))
    add_device(parser)
    add_dtype(parser)
    add_seed(parser)
    add_out(parser, f"result file (default: {DEFAULT_OUT})")
    add_config(parser)


def resolve_plan(args: argparse.Namespace) -> None:
    """Fill in what to compute, in place: only the quantities named, else ``--top-k 1``.

    An option of the trace or the density without that quantity is an error rather than a
    silent no-op (or a silent, expensive trace).
    """
    from landscape.errors import UserError

    named = any(v for v in (args.top_k, args.bottom_k, args.trace, args.density))
    if not named and args.top_k is None and args.bottom_k is None:
        args.top_k = DEFAULT_TOP_K
    args.top_k, args.bottom_k = args.top_k or 0, args.bottom_k or 0
    args.trace, args.density = bool(args.trace), bool(args.density)
    if args.stop is None:  # eigenvectors need small residuals; eigenvalues only a small error
        args.stop = "residual" if args.eigenvectors else "gap"
    if not (args.top_k or args.bottom_k or args.trace or args.density):
        raise UserError("nothing to compute: name --top-k K, --bottom-k K, --trace or --density")
    for quantity, defaults in (("trace", TRACE_DEFAULTS), ("density", DENSITY_DEFAULTS)):
        for key, default in defaults.items():
            if getattr(args, key) is None:
                setattr(args, key, default)
            elif not getattr(args, quantity):
                flag = "--" + key.replace("_", "-")
                raise UserError(
                    f"{flag} is an option of the {quantity}, which is not computed: "
                    f"add --{quantity}"
                )


def resolve_out(out: str | None):
    """The output path, checked before any work; the default folder is created."""
    from pathlib import Path

    from landscape import store

    if out is None:
        Path(DEFAULT_OUT).parent.mkdir(parents=True, exist_ok=True)
        out = DEFAULT_OUT
    return store.check_output_path(out)


def weight_decay_of(args: argparse.Namespace, config: dict) -> float:
    if args.weight_decay_term is None:
        return 0.0
    if args.weight_decay_term >= 0:
        return float(args.weight_decay_term)
    from landscape.errors import UserError

    value = config.get("weight_decay")
    if not isinstance(value, (int, float)):
        raise UserError(
            "--weight-decay-term without a value needs a checkpoint whose config names weight_decay; "
            "give the value, e.g. --weight-decay-term 5e-4"
        )
    return float(value)


def run(args: argparse.Namespace) -> int:
    import logging
    import time

    from landscape.cli.common import data_source_from_args, model_source_from_args
    from landscape.data import fixed_subset
    from landscape.devices import resolve_device, resolve_dtype, seed_everything
    from landscape.errors import UserError
    from landscape.losses import make_loss
    from landscape.progress import cli_reporter
    from landscape.target import load_targets

    log = logging.getLogger("landscape.hessian")
    resolve_plan(args)
    out = resolve_out(args.out)
    if args.split not in ("train", "test"):
        raise UserError(f"--split must be train or test, not {args.split!r}")
    if args.label_smoothing and args.loss != "cross-entropy":
        raise UserError("--label-smoothing applies to --loss cross-entropy only")
    if args.curvature == "fisher-mc" and args.label_smoothing:
        raise UserError(
            "--curvature fisher-mc needs the loss to be the model's negative log-likelihood: "
            "drop --label-smoothing (or use --curvature ggn, its expectation)"
        )
    if args.fisher_samples != 1 and args.curvature != "fisher-mc":
        raise UserError("--fisher-samples is an option of --curvature fisher-mc")
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    seed_everything(args.seed)
    targets, data = load_targets(
        args.checkpoints, model_source_from_args(args), data_source_from_args(args), device, dtype
    )
    for target in targets:  # all flags checked against every model before any product
        dim = sum(p.numel() for p in target.model.parameters() if p.requires_grad)
        for flag, k in (("--top-k", args.top_k), ("--bottom-k", args.bottom_k)):
            if k > dim:
                raise UserError(f"{flag} {k} is larger than the {dim} parameters of {target.path}")
        weight_decay_of(args, target.config)
    x, y = fixed_subset(*data.split(args.split), args.samples or DEFAULT_SAMPLES, args.seed)
    if x.shape[0] == 0:
        raise UserError(f"the {args.split} split of {data.name} is empty")
    x = x.to(device=device, dtype=dtype)
    y = y.to(device) if not y.is_floating_point() else y.to(device=device, dtype=dtype)
    loss_fn = make_loss(args.loss, label_smoothing=args.label_smoothing)

    reporter = cli_reporter()
    rows = []
    previous: tuple | None = None  # (run folder, the last result) for warm starts
    for i, target in enumerate(targets):
        started = time.monotonic()
        prefix = f"[{i + 1}/{len(targets)}] {target.stem}: " if len(targets) > 1 else ""
        same_run = previous is not None and previous[0] == target.path.parent
        result = analyse(
            target.model,
            loss_fn,
            x,
            y,
            args,
            weight_decay_of(args, target.config),
            log,
            reporter,
            prefix,
            warm=previous[1] if same_run and args.warm_start else None,
        )
        if previous is not None:  # only the last checkpoint's vectors are needed
            previous[1].pop("top_ritz", None), previous[1].pop("bottom_ritz", None)
        previous = (target.path.parent, result)
        seconds = time.monotonic() - started
        name = write_result(out, target, result, args, data, x.shape[0], seconds)
        rows.append((name, target, result))
        log.info(
            "%s: %d products in %.1f s (%s)",
            target.path,
            result["hvp_count"],
            seconds,
            result["cost_note"],
        )
    sys.stderr.flush()  # log lines first, then the results, each on its own lines
    print(summary_table(rows, args.top_k))
    for name, _, result in rows:
        if result.get("blocks"):
            print(f"\n{name}: blocks ({args.curvature})\n{blocks_table(result['blocks'])}")
    print(f"wrote {out}", flush=True)
    return 0


def product_batch(model, loss_fn, x, y, args: argparse.Namespace) -> int:
    """--batch-size; with --bn-mode train DEFAULT_BATCH_SIZE (the batch defines the operator);
    else the fastest for Hessian-vector products, measured and cached (:mod:`landscape.batching`)."""
    from landscape.batching import product_batch_size

    if args.batch_size:
        return args.batch_size
    if args.bn_mode == "train":
        return DEFAULT_BATCH_SIZE
    return product_batch_size(model, loss_fn, x, y, engine=args.hvp).batch_size


def analyse(
    model,
    loss_fn,
    x,
    y,
    args: argparse.Namespace,
    weight_decay: float,
    log,
    reporter=None,
    prefix: str = "",
    warm: dict | None = None,
) -> dict:
    """Everything asked for on one model; plain numbers and arrays, ready to store. Each
    quantity is one phase of ``reporter`` (``prefix`` names the checkpoint). ``warm``, the
    result of the previous checkpoint of the same run, gives Lanczos its start vectors."""
    from landscape.curvature import TRACE_METHODS, lanczos_eigs
    from landscape.curvature.density import slq_density
    from landscape.curvature.gauss_newton import curvature_operator
    from landscape.curvature.lanczos import warm_start
    from landscape.progress import Reporter

    reporter = reporter or Reporter(enabled=False)
    result: dict = {}
    with curvature_operator(
        args.curvature,
        model,
        loss_fn,
        x,
        y,
        loss_name=args.loss,
        mc_samples=args.fisher_samples,
        mc_seed=args.seed,
        batch_size=product_batch(model, loss_fn, x, y, args),
        bn_mode=args.bn_mode,
        engine=args.hvp,
        weight_decay=weight_decay,
    ) as op:
        result["curvature"] = op.curvature
        result["engine"] = op.engine_name
        result["batch_size"] = op.batch_size
        result["weight_decay"] = weight_decay
        result["parameter_names"] = list(op.names)
        for which, k in (("top", args.top_k), ("bottom", args.bottom_k)):
            if k == 0:
                continue
            name = f"{which}-{k} eigenvalue" + ("s" if k > 1 else "")
            start = None
            old = (warm or {}).get(f"{which}_ritz")
            if old is not None and warm["parameter_names"] == op.names and old.shape[1] == op.dim:
                start = warm_start(old, seed=args.seed)
            with reporter.phase(f"{prefix}{name}", unit="products") as phase:
                eig = lanczos_eigs(
                    op,
                    k,
                    which=which,
                    tol=args.tol,
                    max_hvps=args.max_hvps,
                    seed=args.seed,
                    # Ritz vectors are kept for the next checkpoint's start
                    eigenvectors=args.eigenvectors or args.warm_start,
                    stop=args.stop,
                    start=start,
                    progress=phase,
                )
            result[f"{which}_start"] = "random" if start is None else "warm"
            if args.warm_start:
                result[f"{which}_ritz"] = eig.eigenvectors
            if not eig.converged:
                log.warning(
                    "%s-%d eigenvalues did not reach tol %g within %d products "
                    "(largest relative residual %.2g)",
                    which,
                    k,
                    args.tol,
                    eig.hvp_count,
                    float(eig.relative_residuals.max()),
                )
            result[which] = eig
            if args.eigenvectors:
                result[f"{which}_vectors"] = {
                    name: part.detach().cpu().numpy()
                    for name, part in _per_parameter(op, eig.eigenvectors).items()
                }
        if args.trace:
            estimator = TRACE_METHODS[args.trace_method]
            with reporter.phase(f"{prefix}trace ({args.trace_method})", unit="products") as phase:
                trace = estimator(
                    op,
                    rel_stderr=args.trace_rel_stderr,
                    max_hvps=args.trace_max_hvps,
                    seed=args.seed,
                    progress=phase,
                )
            if not trace.converged:
                log.warning(
                    "trace reached relative stderr %.3g, not %g, within %d products",
                    trace.relative_stderr,
                    args.trace_rel_stderr,
                    trace.hvp_count,
                )
            result["trace"] = trace
        if args.density:
            with reporter.phase(f"{prefix}density", unit="products") as phase:
                result["density"] = slq_density(
                    op,
                    runs=args.density_runs,
                    steps=args.density_steps,
                    sigma=args.density_sigma,
                    seed=args.seed,
                    progress=phase,
                )
        result["hvp_count"] = op.hvp_count
        result["cost_note"] = op.cost_note()
    if args.blocks:
        result["blocks"] = analyse_blocks(
            model, loss_fn, x, y, args, weight_decay, result["batch_size"], reporter, prefix
        )
    return result


def analyse_blocks(
    model, loss_fn, x, y, args, weight_decay: float, batch_size: int, reporter, prefix: str
) -> list:
    """:class:`~landscape.curvature.blocks.BlockSpectrum` of every block of ``--blocks``."""
    from landscape.curvature.blocks import block_spectrum, parameter_blocks
    from landscape.curvature.gauss_newton import curvature_operator

    blocks = parameter_blocks(model, args.blocks)
    trace = density = None
    if args.trace:
        trace = {
            "method": args.trace_method,
            "rel_stderr": args.trace_rel_stderr,
            "max_hvps": args.trace_max_hvps,
        }
    if args.density:
        density = {
            "runs": args.density_runs,
            "steps": args.density_steps,
            "sigma": args.density_sigma,
        }
    spectra = []
    for i, (name, parameters) in enumerate(blocks.items()):
        phase_name = f"{prefix}block {i + 1}/{len(blocks)} {name}"
        with (
            curvature_operator(
                args.curvature,
                model,
                loss_fn,
                x,
                y,
                loss_name=args.loss,
                mc_samples=args.fisher_samples,
                mc_seed=args.seed,
                batch_size=batch_size,
                bn_mode=args.bn_mode,
                engine=args.hvp,
                weight_decay=weight_decay,
                parameters=parameters,
            ) as op,
            reporter.phase(phase_name, unit="products") as phase,
        ):
            spectra.append(
                block_spectrum(
                    name,
                    op,
                    top_k=args.top_k or 1,
                    bottom_k=args.bottom_k,
                    tol=args.tol,
                    stop=args.stop,
                    max_hvps=args.max_hvps,
                    seed=args.seed,
                    trace=trace,
                    density=density,
                    progress=phase,
                )
            )
    return spectra


def write_blocks(group, spectra) -> None:
    """``blocks/<block>/``: what was computed on each block, and the block's parameters."""
    import numpy as np

    from landscape import store
    from landscape.curvature.blocks import storage_name

    folder = group.create_group("blocks")
    store.set_attrs(folder, order=[storage_name(s.name) for s in spectra])
    for spectrum in spectra:
        block = folder.create_group(storage_name(spectrum.name))
        store.set_attrs(
            block, name=spectrum.name, dim=spectrum.dim, parameter_names=spectrum.parameters
        )
        store.write_dataset(block, "hvp_count", int(spectrum.hvp_count))
        for eig, prefix in ((spectrum.top, ""), (spectrum.bottom, "bottom_")):
            if eig is None:
                continue
            store.write_dataset(
                block,
                f"{prefix}eigenvalues",
                np.asarray(eig.eigenvalues, np.float64),
                converged=eig.converged,
                tol=eig.tol,
                hvp_count=eig.hvp_count,
            )
            store.write_dataset(block, f"{prefix}residuals", np.asarray(eig.residuals, np.float64))
            store.write_dataset(
                block, f"{prefix}error_bounds", np.asarray(eig.error_bounds, np.float64)
            )
        if spectrum.trace is not None:
            trace = spectrum.trace
            store.write_dataset(
                block,
                "trace",
                trace.trace,
                method=trace.method,
                converged=trace.converged,
                hvp_count=trace.hvp_count,
            )
            store.write_dataset(block, "trace_stderr", trace.stderr)
        if spectrum.density is not None:
            density = block.create_group("density")
            for key in ("grid", "values", "nodes", "weights"):
                store.write_dataset(density, key, getattr(spectrum.density, key))
            store.set_attrs(density, sigma=spectrum.density.sigma)


def _per_parameter(op, vectors) -> dict:
    """(k, P) flat eigenvectors -> {parameter name: (k, *shape)}."""
    import torch

    per_vector = [op.named(v) for v in vectors]
    return {name: torch.stack([d[name] for d in per_vector]) for name in op.names}


def write_result(out, target, result: dict, args, data, samples: int, seconds: float) -> str:
    """Store one checkpoint's result in ``hessian/<name>``; returns the name used."""
    import logging
    import math

    import numpy as np

    from landscape import store
    from landscape.target import provenance

    config = {
        "curvature": result["curvature"],
        "blocks": args.blocks,
        "fisher_samples": args.fisher_samples if result["curvature"] == "fisher-mc" else None,
        "dataset": data.name,
        "loss": args.loss,
        "label_smoothing": args.label_smoothing,
        "weight_decay_term": result["weight_decay"],
        "batch_size": result["batch_size"],
        "hvp_engine": result["engine"],
        "tol": args.tol,
        "stop": args.stop,
        "warm_start": args.warm_start,
        "top_k": args.top_k,
        "bottom_k": args.bottom_k,
        "max_hvps": args.max_hvps,
        "trace": args.trace,
        "trace_method": args.trace_method,
        "trace_rel_stderr": args.trace_rel_stderr,
        "trace_max_hvps": args.trace_max_hvps,
        "density": args.density,
        "density_runs": args.density_runs,
        "density_steps": args.density_steps,
        "density_sigma": args.density_sigma,
    }
    with store.transaction(out) as f:
        name, exists = store.claim_group_name(
            f, "hessian", target.stem, [target.sha256], where=f" in {out}"
        )
        if exists:
            logging.getLogger("landscape.hessian").warning(
                "replacing hessian/%s in %s: the same checkpoint, analysed again", name, out
            )
        group = store.replace_group(f, f"hessian/{name}")
        store.set_provenance(
            group,
            provenance(
                target,
                split=args.split,
                samples=samples,
                bn_mode=args.bn_mode,
                dtype=args.dtype,
                seed=args.seed,
                seconds=seconds,
                config=config,
            ),
        )
        store.set_attrs(group, cost_note=result["cost_note"], curvature=result["curvature"])
        for which, prefix in (("top", ""), ("bottom", "bottom_")):
            eig = result.get(which)
            if eig is None:
                continue
            store.write_dataset(
                group,
                f"{prefix}eigenvalues",
                np.asarray(eig.eigenvalues, np.float64),
                converged=eig.converged,
                tol=eig.tol,
                hvp_count=eig.hvp_count,
                stop=eig.stop,
                start=result[f"{which}_start"],
            )
            store.write_dataset(group, f"{prefix}residuals", np.asarray(eig.residuals, np.float64))
            store.write_dataset(
                group, f"{prefix}error_bounds", np.asarray(eig.error_bounds, np.float64)
            )
            vectors = result.get(f"{which}_vectors")
            if vectors:
                folder = group.create_group(f"{prefix}eigenvectors")
                for name, array in vectors.items():
                    store.write_dataset(folder, name, array)
                store.set_attrs(folder, parameter_names=result["parameter_names"])
        trace = result.get("trace")
        store.write_dataset(
            group,
            "trace",
            trace.trace if trace else math.nan,
            **(
                {
                    "method": trace.method,
                    "converged": trace.converged,
                    "samples": trace.samples,
                    "sketch_rank": trace.sketch_rank,
                    "hvp_count": trace.hvp_count,
                }
                if trace
                else {}
            ),
        )
        store.write_dataset(group, "trace_stderr", trace.stderr if trace else math.nan)
        store.write_dataset(group, "hvp_count", int(result["hvp_count"]))
        if result.get("blocks"):
            write_blocks(group, result["blocks"])
        density = result.get("density")
        if density is not None:
            folder = group.create_group("density")
            store.write_dataset(folder, "grid", density.grid)
            store.write_dataset(folder, "values", density.values)
            store.write_dataset(folder, "nodes", density.nodes)
            store.write_dataset(folder, "weights", density.weights)
            store.set_attrs(
                folder,
                sigma=density.sigma,
                runs=density.nodes.shape[0],
                steps=density.nodes.shape[1],
                hvp_count=density.hvp_count,
            )
    return name


def blocks_table(spectra) -> str:
    """block | parameters | lambda1 | trace +- stderr, as aligned text."""
    lines = [["block", "dim", "lambda1", "trace"]]
    for s in spectra:
        top = f"{s.top.eigenvalues[0]:.5g}" if s.top is not None else ""
        trace = f"{s.trace.trace:.5g} +- {s.trace.stderr:.2g}" if s.trace is not None else ""
        lines.append([s.name, str(s.dim), top, trace])
    widths = [max(len(row[i]) for row in lines) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in lines
    )


def summary_table(rows, top_k: int) -> str:
    """checkpoint | epoch | phase | lambda_1..k | trace +- stderr, as aligned text."""
    header = ["checkpoint", "epoch", "phase"] + [f"lambda{i + 1}" for i in range(top_k)]
    header += ["trace"] if any("trace" in result for _, _, result in rows) else []
    lines = [header]
    for name, target, result in rows:
        eig = result.get("top")
        values = [f"{v:.5g}" for v in eig.eigenvalues] if eig is not None else []
        values += [""] * (top_k - len(values))
        trace = result.get("trace")
        trace_text = [f"{trace.trace:.5g} +- {trace.stderr:.2g}"] if trace else []
        epoch = "" if target.epoch is None else str(target.epoch)
        lines.append([name, epoch, target.phase or "", *values, *trace_text])
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in lines
    )
