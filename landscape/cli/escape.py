"""landscape escape: real SAM steps from a checkpoint, and how fast they leave it."""

from __future__ import annotations

import argparse

from landscape.cli.common import (
    add_analysis_inputs,
    add_bn,
    add_run_options,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
)

HELP = "SAM escape dynamics from a checkpoint: distance, loss, lambda_max per step, growth rate"
DESCRIPTION = """\
Runs N full-batch SAM steps (ascent to w + rho g/||g||, gradient there, descent from w)
on a fixed subset of training examples, starting from the checkpoint's weights w_0, and
records ||w_t - w_0||, train loss and accuracy at every step, the top Hessian eigenvalue
every --eig-every steps (NaN elsewhere), and the exponential growth rate of the distance
in the early phase (least-squares slope of log ||w_t - w_0||). Written to escape/<name>/.

--unnormalized uses the simplified SAM of the linear-stability analysis,
w <- w - lr grad L(w + rho grad L(w)).

example:
  landscape escape checkpoints/sgd/epoch-160-sgd.pt --rho 0.05 --lr 0.01 --steps 200 \\
      --eig-every 20 --samples 1024 --out analyses/escape.h5
"""

DEFAULT_OUT = "analyses/escape.h5"
DEFAULT_SAMPLES = 1024


def parse_window(text: str) -> tuple[int, int]:
    try:
        start, stop = (int(v) for v in text.split(":"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not START:STOP (steps, e.g. 1:30)") from exc
    if not 0 <= start < stop:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= START < STOP")
    return start, stop


def divergence_factor(text: str) -> float:
    """A factor > 1 (inf allowed): the loss multiple that counts as a divergence."""
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc
    if not value > 1:
        raise argparse.ArgumentTypeError(f"{text!r}: the divergence factor must be > 1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CKPT", help="checkpoint to start from")
    group = parser.add_argument_group("SAM")
    group.add_argument("--rho", type=nonnegative_float, required=True, help="SAM radius")
    group.add_argument("--lr", type=positive_float, required=True, help="step size")
    group.add_argument("--steps", type=positive_int, required=True, help="number of SAM steps")
    group.add_argument(
        "--eig-every",
        type=nonnegative_int,
        default=0,
        metavar="K",
        help="top Hessian eigenvalue every K steps (default: 0, never)",
    )
    group.add_argument(
        "--unnormalized",
        action="store_true",
        help="ascent rho * g instead of rho * g / ||g|| (the simplified SAM)",
    )
    group.add_argument(
        "--momentum", type=nonnegative_float, default=0.0, help="heavy-ball momentum (default: 0)"
    )
    group.add_argument(
        "--weight-decay", type=nonnegative_float, default=0.0, help="weight decay (default: 0)"
    )
    group.add_argument(
        "--fit-window",
        type=parse_window,
        metavar="START:STOP",
        help="steps of the growth-rate fit "
        "(default: 1 to where the distance reaches half its maximum)",
    )
    group.add_argument(
        "--divergence-factor",
        type=divergence_factor,
        default=100.0,
        metavar="F",
        help="stop as diverged when the loss exceeds F x max(start loss, 0.01) or is "
        "not finite; stored as diverged_at, no growth rate fitted (default: 100; "
        "inf: only non-finite)",
    )
    add_bn(group, ("eval", "train"), "eval", dest="bn_mode")
    group.add_argument("--name", help="result name under escape/ (default: the checkpoint stem)")
    add_analysis_inputs(parser, splits="train", samples=str(DEFAULT_SAMPLES))
    add_run_options(parser, f"result file (default: {DEFAULT_OUT})")


def options_from_args(args: argparse.Namespace):
    from landscape.analysis.escape import EscapeOptions

    return EscapeOptions(
        rho=args.rho,
        lr=args.lr,
        steps=args.steps,
        unnormalized=args.unnormalized,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        eig_every=args.eig_every,
        fit_window=args.fit_window,
        divergence_factor=args.divergence_factor,
        bn_mode=args.bn_mode,
        batch_size=args.batch_size,
        loss=args.loss,
        dtype=args.dtype,
        seed=args.seed,
    )


def run(args: argparse.Namespace) -> int:
    from landscape import store
    from landscape.analysis.escape import analyse_escape
    from landscape.cli.common import library_advice_as_flags, load_for_analysis
    from landscape.errors import UserError
    from landscape.progress import cli_reporter

    out = store.resolve_output(args.out, DEFAULT_OUT)
    if args.split != "train":
        raise UserError("escape runs SAM on training examples: --split must be train")
    if args.fit_window and args.fit_window[1] > args.steps:
        raise UserError(f"--fit-window ends after the last step ({args.steps})")
    context, x, y = load_for_analysis(args, [args.checkpoint], "train", DEFAULT_SAMPLES)
    (target,), partition = context.targets, context.partition
    with library_advice_as_flags():
        name, curve = analyse_escape(
            options_from_args(args),
            target,
            x,
            y,
            out,
            name=args.name,
            partition=partition,
            reporter=cli_reporter(),
        )
    if not partition.is_writer:
        return 0  # every rank took the same steps; rank 0 wrote and prints them
    print(summary(name, curve))
    print(f"wrote {out}")
    return 0


def summary(name: str, result) -> str:
    """One line: how the escape (an :class:`~landscape.results.escape.EscapeCurve`) ended."""
    loss, steps = result.train_loss, len(result.step) - 1
    if result.diverged:
        at = int(result.diverged_at)
        return (
            f"escape/{name}: DIVERGED at step {at} of {steps} "
            f"(train loss {loss[0]:.4g} -> {loss[at]:.4g}); "
            "no growth rate fitted; try a smaller --lr or --bn as in training"
        )
    return (
        f"escape/{name}: {steps} SAM steps, final distance {result.distance[-1]:.4g}, "
        f"train loss {loss[0]:.4g} -> {loss[-1]:.4g}, "
        f"growth rate {result.growth_rate:.4g} per step (x{result.growth_factor:.4g}, "
        f"steps {result.fit_start}-{result.fit_stop})"
    )
