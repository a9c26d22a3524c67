"""landscape sharpness: several notions of sharpness of one or more checkpoints, in one table."""

from __future__ import annotations

import argparse

from landscape.cli import common
from landscape.cli.common import add_analysis_inputs, add_bn, add_curvature, add_run_options
from landscape.sharpness.options import SharpnessOptions, parameter_defaults, parameters

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
  top-eigenvalue, trace     of the Hessian (landscape.curvature), or of the GGN or a Fisher
                            (--curvature ggn|fisher|fisher-mc)
  all                       every one of the above

example:
  landscape sharpness ckpt/a.pt ckpt/b.pt --measure worst-case adaptive-worst-case-linf \\
      --rho 0.05 --m 128 --samples 1024 --out analyses/sharpness.h5
"""

DEFAULT_SAMPLES = 1024
DEFAULT_OUT = "analyses/sharpness.h5"


def measure_names() -> list[str]:
    """The registered measures (:mod:`landscape.sharpness.registry`, which imports no torch)."""
    from landscape.sharpness.registry import MEASURES

    return list(MEASURES)


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
    for name, default in parameter_defaults().items():  # one field each (sharpness/options.py)
        spelling = parameters()[name]
        shown = spelling.default_text or " ".join(f"{v:g}" for v in _as_list(default))
        group.add_argument(
            spelling.flag,
            *spelling.aliases,
            dest=spelling.dest,
            type=getattr(common, spelling.type),
            nargs=spelling.nargs,
            default=default,
            metavar=spelling.metavar,
            help=f"{spelling.help} (default: {shown})",
        )
    add_curvature(group)
    add_bn(group, ("eval", "train"), "eval", dest="bn_mode")
    add_analysis_inputs(parser, splits="train", samples=str(DEFAULT_SAMPLES))
    add_run_options(parser, f"result file (default: {DEFAULT_OUT})")


def _as_list(value) -> list:
    return list(value) if isinstance(value, list) else [value]


def selected_measures(names: list[str]) -> list[str]:
    if "all" in names:
        return measure_names()
    return list(dict.fromkeys(names))


def options_from_args(args: argparse.Namespace, dataset: str | None = None):
    """The analysis options of ``args``; ``dataset``: the loaded data's name, recorded."""
    given = {}
    for name, spelling in parameters().items():
        value = getattr(args, spelling.dest)
        given[name] = list(dict.fromkeys(value)) if spelling.nargs == "+" else value
    return SharpnessOptions(
        measures=selected_measures(args.measure),
        **given,
        bn_mode=args.bn_mode,
        batch_size=args.batch_size,
        loss=args.loss,
        split=args.split,
        dtype=args.dtype,
        seed=args.seed,
        subset_seed=args.subset_seed,
        dataset=dataset,
        curvature=args.curvature,
        fisher_samples=args.fisher_samples,
    )


def run(args: argparse.Namespace) -> int:
    from landscape import store
    from landscape.analysis.sharpness import analyse_sharpness
    from landscape.cli.common import (
        library_advice_as_flags,
        load_for_analysis,
        resolve_curvature,
    )
    from landscape.errors import UserError
    from landscape.progress import cli_reporter

    out = store.resolve_output(args.out, DEFAULT_OUT)
    resolve_curvature(args)  # like every measure parameter, unused by the measures without it
    if args.split not in ("train", "test"):
        raise UserError(f"--split must be train or test, not {args.split!r}")
    context, x, y = load_for_analysis(args, args.checkpoints, args.split, DEFAULT_SAMPLES)
    targets, data, partition = context.targets, context.data, context.partition
    with library_advice_as_flags():
        done = analyse_sharpness(
            options_from_args(args, data.name),
            targets,
            x,
            y,
            out,
            partition=partition,
            reporter=cli_reporter(),
        )
    rows = [
        (target.stem, measure, m.value, m.stderr)
        for target, (_, result) in zip(targets, done)
        for measure, m in result.measures.items()
    ]
    if not partition.is_writer:
        return 0  # every rank holds the same values; rank 0 wrote and prints them
    print(format_table(rows))
    print(f"wrote {out}")
    return 0


def format_table(rows) -> str:
    """Checkpoint, measure, value (+- standard error where there is one)."""
    import math

    width = max([len(r[0]) for r in rows] + [10])
    lines = [f"{'checkpoint':<{width}}  {'measure':<25}  value"]
    for stem, measure, value, stderr in rows:
        err = f" +- {stderr:.2g}" if math.isfinite(stderr) else ""
        lines.append(f"{stem:<{width}}  {measure:<25}  {value:.6g}{err}")
    return "\n".join(lines)
