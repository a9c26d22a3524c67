"""landscape hessian: top/bottom eigenvalues, trace and spectral density of checkpoints."""

from __future__ import annotations

import argparse
import sys

from landscape.cli.common import (
    add_analysis_inputs,
    add_bn,
    add_curvature,
    add_run_options,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
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

DEFAULT_SAMPLES = 5000
DEFAULT_OUT = "analyses/hessian.h5"
DEFAULT_TOP_K = 1  # what a bare `landscape hessian CKPT` computes: the largest eigenvalue
TRACE_DEFAULTS = {
    "trace_method": "krylov-hutch++",
    "trace_rel_stderr": 0.01,
    "trace_max_hvps": 2000,
}
DENSITY_DEFAULTS = {
    "density_runs": 3,
    "density_steps": 80,
    "density_lockstep": False,
    "density_sigma": None,
}


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
        help="relative accuracy of the eigenvalues: by default (--stop gap) every eigenvalue "
        "error bound min(r, r^2/gap) <= tol |lambda|; with --stop residual or --eigenvectors "
        "every residual r = ||Hv - lambda v|| <= tol |lambda| (default: 1e-4)",
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
        "--density-lockstep",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="advance the SLQ runs together, one batched product of all the runs' vectors per "
        "Lanczos step, every run's basis held at once: the same start vectors and density up "
        "to rounding, on CPU measured no faster so far (README); recorded in the file. A "
        "rerun with the other value recomputes and replaces the group, as every rerun does "
        "(hessian results are not resumed, so the value never has to match) (default: off)",
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
    add_curvature(group)
    add_bn(group, ("eval", "train"), "eval", dest="bn_mode")
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
    add_analysis_inputs(
        parser, splits="train", samples=f"{DEFAULT_SAMPLES}, or the whole split if smaller"
    )
    add_run_options(parser, f"result file (default: {DEFAULT_OUT})")


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


def options_from_args(args: argparse.Namespace):
    """The analysis options of ``args`` (after :func:`resolve_plan`)."""
    from landscape.analysis.hessian import HessianOptions

    if args.weight_decay_term is None:
        weight_decay = 0.0
    else:  # without a value (-1): the checkpoint's configured weight decay
        weight_decay = None if args.weight_decay_term < 0 else float(args.weight_decay_term)
    return HessianOptions(
        top_k=args.top_k,
        bottom_k=args.bottom_k,
        tol=args.tol,
        stop=args.stop,
        max_hvps=args.max_hvps,
        eigenvectors=args.eigenvectors,
        trace=args.trace,
        trace_method=args.trace_method,
        trace_rel_stderr=args.trace_rel_stderr,
        trace_max_hvps=args.trace_max_hvps,
        density=args.density,
        density_runs=args.density_runs,
        density_steps=args.density_steps,
        density_sigma=args.density_sigma,
        density_lockstep=args.density_lockstep,
        bn_mode=args.bn_mode,
        engine=args.hvp,
        batch_size=args.batch_size,
        weight_decay=weight_decay,
        loss=args.loss,
        label_smoothing=args.label_smoothing,
        split=args.split,
        dtype=args.dtype,
        seed=args.seed,
        subset_seed=args.subset_seed,
        curvature=args.curvature,
        fisher_samples=args.fisher_samples,
        blocks=args.blocks,
        warm_start=args.warm_start,
    )


def run(args: argparse.Namespace) -> int:
    from landscape import store
    from landscape.analysis.hessian import MissingWeightDecay, analyse_hessian, weight_decay_of
    from landscape.cli.common import (
        library_advice_as_flags,
        load_for_analysis,
        resolve_curvature,
    )
    from landscape.errors import UserError
    from landscape.progress import cli_reporter

    resolve_plan(args)
    out = store.resolve_output(args.out, DEFAULT_OUT)
    if args.split not in ("train", "test"):
        raise UserError(f"--split must be train or test, not {args.split!r}")
    if args.label_smoothing and args.loss != "cross-entropy":
        raise UserError("--label-smoothing applies to --loss cross-entropy only")
    resolve_curvature(args)
    if args.curvature == "fisher-mc" and args.label_smoothing:
        raise UserError(
            "--curvature fisher-mc needs the loss to be the model's negative log-likelihood: "
            "drop --label-smoothing (or use --curvature ggn, its expectation)"
        )
    context, x, y = load_for_analysis(args, args.checkpoints, args.split, DEFAULT_SAMPLES)
    targets, data, partition = context.targets, context.data, context.partition
    options = options_from_args(args)
    for target in targets:  # all flags checked against every model before any product
        dim = sum(p.numel() for p in target.model.parameters() if p.requires_grad)
        for flag, k in (("--top-k", args.top_k), ("--bottom-k", args.bottom_k)):
            if k > dim:
                raise UserError(f"{flag} {k} is larger than the {dim} parameters of {target.path}")
        try:
            weight_decay_of(options, target.config)
        except MissingWeightDecay as exc:
            raise UserError(
                "--weight-decay-term without a value needs a checkpoint whose config names "
                "weight_decay; give the value, e.g. --weight-decay-term 5e-4"
            ) from exc
    with library_advice_as_flags():
        done = analyse_hessian(
            options,
            targets,
            data.name,
            x,
            y,
            out,
            partition=partition,
            reporter=cli_reporter(),
        )
    sys.stderr.flush()  # log lines first, then the results, each on its own lines
    print(summary_table(done, args.top_k))
    for name, result in done:
        if result.blocks:
            print(f"\n{name}: blocks ({args.curvature})\n{blocks_table(result.blocks)}")
    print(f"wrote {out}", flush=True)
    return 0


def blocks_table(blocks: dict) -> str:
    """block | dim | lambda1 | trace +- stderr, as aligned text (``HessianResult.blocks``)."""
    lines = [["block", "dim", "lambda1", "trace"]]
    for block in blocks.values():
        top = f"{block.top.values[0]:.5g}" if block.top is not None else ""
        trace = f"{block.trace.value:.5g} +- {block.trace.stderr:.2g}" if block.trace else ""
        lines.append([block.name, str(block.dim), top, trace])
    widths = [max(len(row[i]) for row in lines) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in lines
    )


def summary_table(rows, top_k: int) -> str:
    """checkpoint | epoch | phase | lambda_1..k | trace +- stderr, as aligned text."""
    header = ["checkpoint", "epoch", "phase"] + [f"lambda{i + 1}" for i in range(top_k)]
    header += ["trace"] if any(result.trace for _, result in rows) else []
    lines = [header]
    for name, result in rows:
        values = [f"{v:.5g}" for v in result.top.values] if result.top is not None else []
        values += [""] * (top_k - len(values))
        trace = result.trace
        trace_text = [f"{trace.value:.5g} +- {trace.stderr:.2g}"] if trace else []
        epoch = result.provenance.epoch
        epoch = "" if epoch is None else str(epoch)
        lines.append([name, epoch, result.provenance.phase or "", *values, *trace_text])
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in lines
    )
