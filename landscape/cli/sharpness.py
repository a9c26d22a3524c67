"""landscape sharpness: several notions of sharpness of one or more checkpoints, in one table."""

from __future__ import annotations

import argparse

from landscape.cli.common import (
    add_config,
    add_data_source,
    add_device,
    add_dtype,
    add_model_source,
    add_out,
    add_seed,
    nonnegative_float,
    positive_float,
    positive_int,
    state_default,
)

HELP = (
    "worst-case, adaptive, average-case sharpness, gradient and Fisher-Rao norms, lambda_max, trace"
)
DESCRIPTION = """\
Sharpness measures of each checkpoint on a fixed subset of examples, written to
sharpness/<run>_<stem>/<measure> of the result file, each with its parameters.

measures:
  worst-case                max_{||d||_2<=rho} L(w+d) - L(w)       (--rho, --steps, --m)
                            several radii (--rho 0.02 0.05 0.1) in one pass over the examples,
                            stored as worst_case_rho0.02, worst_case_rho0.05, ...
  adaptive-worst-case       same with ||d/|w| ||_2 <= rho          (--adaptive-rho)
  adaptive-worst-case-linf  same with ||d/|w| ||_inf <= rho        (--linf-rho)
  average-case              E L(w+d) - L(w), d ~ N(0, sigma^2 I)   (--sigma, --draws)
  adaptive-average-case     d ~ N(0, sigma^2 diag(w^2))            (--adaptive-sigma)
  gradient-norm             ||grad L(w)||_2 over the subset
  fisher-rao-norm           sqrt(mean_i <w, grad l_i>^2) (Liang et al. 2019)
  top-eigenvalue, trace     of the Hessian (landscape.curvature)
  all                       every one of the above

example:
  landscape sharpness ckpt/a.pt ckpt/b.pt --measure worst-case adaptive-worst-case-linf \\
      --rho 0.05 --m 128 --samples 1024 --out analyses/sharpness.h5
"""

DEFAULT_SAMPLES = 1024
DEFAULT_OUT = "analyses/sharpness.h5"


def measure_names() -> list[str]:
    # Kept here (not imported from landscape.sharpness) so --help does not import torch.
    return [
        "worst-case",
        "adaptive-worst-case",
        "adaptive-worst-case-linf",
        "average-case",
        "adaptive-average-case",
        "gradient-norm",
        "fisher-rao-norm",
        "top-eigenvalue",
        "trace",
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoints", nargs="+", metavar="CKPT", help="checkpoint files")
    parser.add_argument(
        "--measure",
        nargs="+",
        default=["worst-case"],
        choices=measure_names() + ["all"],
        metavar="NAME",
        help="measures to compute (default: worst-case); 'all' for every one",
    )
    group = parser.add_argument_group("measure parameters")
    group.add_argument(
        "--rho",
        type=nonnegative_float,
        nargs="+",
        default=[0.05],
        metavar="RHO",
        help="l2 radius (or radii) of worst-case (default: 0.05)",
    )
    group.add_argument(
        "--adaptive-rho",
        type=nonnegative_float,
        default=0.5,
        help="radius of adaptive-worst-case, relative to |w| (default: 0.5)",
    )
    group.add_argument(
        "--linf-rho",
        type=nonnegative_float,
        default=0.001,
        help="radius of adaptive-worst-case-linf, relative to |w| (default: 0.001)",
    )
    group.add_argument("--steps", type=positive_int, default=20, help="ascent steps (default: 20)")
    group.add_argument(
        "--m",
        "--group-size",  # the same flag under torchrun, whose own parser takes --m for its options
        dest="m",
        type=positive_int,
        help="m-sharpness: maximise per group of m examples and average (default: all at once)",
    )
    group.add_argument(
        "--sigma",
        type=nonnegative_float,
        default=0.01,
        help="noise std of average-case (default: 0.01)",
    )
    group.add_argument(
        "--adaptive-sigma",
        type=nonnegative_float,
        default=0.1,
        help="relative noise std of adaptive-average-case (default: 0.1)",
    )
    group.add_argument(
        "--draws",
        type=positive_int,
        default=100,
        help="Monte-Carlo draws of average-case (default: 100)",
    )
    group.add_argument(
        "--tol",
        type=positive_float,
        default=1e-3,
        help="relative residual of the top eigenvalue (default: 1e-3)",
    )
    group.add_argument(
        "--trace-rel-stderr",
        type=positive_float,
        default=0.05,
        help="relative standard error of the Hessian trace (default: 0.05)",
    )
    group.add_argument(
        "--bn-mode",
        choices=["eval", "train"],
        default="eval",
        help="BatchNorm statistics: running (eval) or per batch (train) (default: eval)",
    )
    add_model_source(parser)
    add_data_source(parser, splits="train")
    state_default(parser, "--samples", str(DEFAULT_SAMPLES))
    state_default(parser, "--batch-size", "512")
    add_device(parser)
    add_dtype(parser)
    add_seed(parser)
    add_out(parser, f"result file (default: {DEFAULT_OUT})")
    add_config(parser)


def selected_measures(names: list[str]) -> list[str]:
    if "all" in names:
        return measure_names()
    return list(dict.fromkeys(names))


def resolve_out(out: str | None):
    """The output path, checked before any work; the default folder is created."""
    from pathlib import Path

    from landscape import store

    if out is None:
        Path(DEFAULT_OUT).parent.mkdir(parents=True, exist_ok=True)
        out = DEFAULT_OUT
    return store.check_output_path(out)


def run(args: argparse.Namespace) -> int:
    import logging
    import time

    from landscape import store
    from landscape.cli.common import data_source_from_args, model_source_from_args
    from landscape.data import fixed_subset
    from landscape.devices import resolve_device, resolve_dtype, seed_everything
    from landscape.distributed import join
    from landscape.errors import UserError
    from landscape.losses import make_loss
    from landscape.progress import cli_reporter
    from landscape.sharpness import compute_measure
    from landscape.target import load_targets, provenance

    log = logging.getLogger("landscape.sharpness")
    out = resolve_out(args.out)
    measures = selected_measures(args.measure)
    if args.split not in ("train", "test"):
        raise UserError(f"--split must be train or test, not {args.split!r}")
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    partition, device = join(device)  # torchrun: data-parallel sums; else one process
    seed_everything(args.seed)
    targets, data = load_targets(
        args.checkpoints, model_source_from_args(args), data_source_from_args(args), device, dtype
    )
    samples = args.samples or DEFAULT_SAMPLES
    x, y = data.split(args.split)
    x, y = fixed_subset(x, y, samples, args.seed)
    x = x.to(device=device, dtype=dtype)
    y = y.to(device) if not y.is_floating_point() else y.to(device=device, dtype=dtype)
    loss_fn = make_loss(args.loss)
    radii = list(dict.fromkeys(args.rho))
    options = {
        "rho": radii[0],
        "adaptive_rho": args.adaptive_rho,
        "steps": args.steps,
        "m": args.m,
        "sigma": args.sigma,
        "adaptive_sigma": args.adaptive_sigma,
        "draws": args.draws,
        "batch_size": args.batch_size or (FIXED_BATCH if args.bn_mode == "train" else "auto"),
        "bn_mode": args.bn_mode,
        "seed": args.seed,
        "tol": args.tol,
        "rel_stderr": args.trace_rel_stderr,
    }
    reporter = cli_reporter()
    rows = []
    results = {}
    for i, target in enumerate(targets):
        started = time.monotonic()
        computed = []
        prefix = f"[{i + 1}/{len(targets)}] {target.stem}: " if len(targets) > 1 else ""
        for name in measures:
            t0 = time.monotonic()
            opts = dict(options)
            if name == "adaptive-worst-case-linf":
                opts["adaptive_rho"] = args.linf_rho
            if opts["batch_size"] == "auto":  # measured by the writer, taken by every rank
                opts["batch_size"] = partition.broadcast(
                    measured_batch(name, target.model, loss_fn, x, y)
                    if partition.is_writer
                    else None
                )
            unit = {"average-case": "draws", "adaptive-average-case": "draws"}.get(name, "steps")
            if name in ("top-eigenvalue", "trace"):
                unit = "products"
            with reporter.phase(f"{prefix}{name}", unit=unit) as phase:
                if name == "worst-case" and len(radii) > 1:
                    found = worst_case_radii(
                        target.model, loss_fn, x, y, radii, opts, phase, partition=partition
                    )
                else:
                    found = [
                        compute_measure(
                            name,
                            target.model,
                            loss_fn,
                            x,
                            y,
                            **opts,
                            progress=phase,
                            partition=partition,
                        )
                    ]
            seconds = (time.monotonic() - t0) / len(found)
            for result in found:
                log.info(
                    "%s %s = %.6g (%.1f s)", target.stem, result.measure, result.value, seconds
                )
                computed.append((result, seconds))
                rows.append((target.stem, result.measure, result.value, result.stderr))
        results[len(results)] = (target, computed, time.monotonic() - started)

    if not partition.is_writer:
        return 0  # every rank has the same values; rank 0 writes and prints them
    with store.transaction(out) as f:
        for target, computed, seconds in results.values():
            name, exists = store.claim_group_name(
                f, "sharpness", target.stem, [target.sha256], where=f" in {out}"
            )
            if exists:
                log.info(
                    "updating sharpness/%s in %s: the same checkpoint, analysed again", name, out
                )
            store.write_sharpness_group(
                f,
                name,
                computed,
                provenance(
                    target,
                    split=args.split,
                    samples=x.shape[0],
                    bn_mode=args.bn_mode,
                    dtype=args.dtype,
                    seed=args.seed,
                    seconds=seconds,
                    config={
                        **options,
                        "rho": radii if len(radii) > 1 else radii[0],
                        "linf_rho": args.linf_rho,
                        "measures": measures,
                    },
                )
                | partition.provenance(),
            )
    print(format_table(rows))
    print(f"wrote {out}")
    return 0


FIXED_BATCH = 512  # with --bn-mode train the batch defines the statistics: not tuned


def measured_batch(measure: str, model, loss_fn, x, y) -> int:
    """The fastest batch for what ``measure`` repeats, measured and cached (:mod:`landscape.batching`):
    forwards (average-case), Hessian-vector products (top eigenvalue, trace) or gradients (the rest)."""
    from landscape import batching

    if "average-case" in measure:
        return batching.forward_batch_size(model, x).batch_size
    if measure in ("top-eigenvalue", "trace"):
        return batching.product_batch_size(model, loss_fn, x, y).batch_size
    return batching.gradient_batch_size(model, loss_fn, x, y).batch_size


def worst_case_radii(
    model, loss_fn, x, y, radii: list[float], options: dict, progress=None, *, partition=None
) -> list:
    """Worst-case sharpness at every radius in one pass, named worst_case_rho<r>."""
    from landscape.sharpness import worst_case_sharpness_radii

    results = worst_case_sharpness_radii(
        model,
        loss_fn,
        x,
        y,
        radii=radii,
        steps=options["steps"],
        m=options["m"],
        batch_size=options["batch_size"],
        bn_mode=options["bn_mode"],
        seed=options["seed"],
        progress=progress,
        **({"partition": partition} if partition is not None else {}),
    )
    for result in results:
        result.measure = f"worst_case_rho{result.params['rho']:g}"
    return results


def format_table(rows) -> str:
    """Checkpoint, measure, value (+- standard error where there is one)."""
    import math

    width = max([len(r[0]) for r in rows] + [10])
    lines = [f"{'checkpoint':<{width}}  {'measure':<25}  value"]
    for stem, measure, value, stderr in rows:
        err = f" +- {stderr:.2g}" if math.isfinite(stderr) else ""
        lines.append(f"{stem:<{width}}  {measure:<25}  {value:.6g}{err}")
    return "\n".join(lines)
