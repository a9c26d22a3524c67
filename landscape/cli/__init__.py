"""Command-line entry point: argument parsing and dispatch only.

Each command lives in ``landscape/cli/<command>.py`` with three names:
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
Command modules import torch, h5py and matplotlib only inside ``run`` so that
``landscape --help`` and usage errors answer in well under a second.

Exit statuses (docs/reliability.md): 0 done; 1 an error the user can fix (bad input, a damaged
file, a full disk, out of memory), one line ``landscape: error: ...``; 2 a command line that
does not parse (argparse's); 3 an internal error -- a bug in landscape -- one line that says so
and how to report it; 128 + N stopped by signal N (130 Ctrl-C, 143 SIGTERM, 138 SIGUSR1) after
saving what was finished.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import logging
import os
import re
import sys

from landscape import __version__, interrupt, openmp_choice
from landscape.errors import UserError

EXIT_USER_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERNAL_ERROR = 3

COMMANDS = (
    "train",
    "hessian",
    "surface",
    "interpolate",
    "sharpness",
    "escape",
    "experiment",
    "plot",
    "report",
    "export",
    "info",
)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, like every other error (exit status 2, as argparse's), with
    the fix when we can tell it: ``--x=-1:1:51`` for a value that starts with '-', the nearest
    flag or command for a typo, and the help of the command that was meant."""

    argv: list[str] = []  # the command line being parsed, for the hints (set by main)
    subparsers: dict[str, argparse.ArgumentParser] = {}

    def error(self, message: str):  # type: ignore[override]
        prog, hint = self.prog, ""
        command = next((a for a in self.argv if a in self.subparsers), None)
        if prog == "landscape" and command is not None:
            prog = f"landscape {command}"
        if match := re.match(r"argument (--[\w-]+)(?:/[\w-]+)*: expected one argument", message):
            hint = _negative_value_hint(match.group(1), self.argv)
        elif match := re.match(r"unrecognized arguments: (.*)", message):
            options = self.subparsers[command] if command else self
            hint = _did_you_mean(match.group(1).split()[0].split("=")[0], _option_strings(options))
        elif match := re.match(r"argument COMMAND: invalid choice: '([^']*)'", message):
            hint = _did_you_mean(match.group(1), list(self.subparsers))
            message = f"unknown command '{match.group(1)}'"
        self.exit(2, f"landscape: error: {message}{hint} (see '{prog} --help')\n")


def _negative_value_hint(flag: str, argv: list[str]) -> str:
    """``--x -1:1:51``: argparse takes ``-1:1:51`` for a flag; the value must follow '='."""
    for i, arg in enumerate(argv[:-1]):
        if arg == flag and argv[i + 1].startswith("-"):
            return f"; a value starting with '-' needs '=': write {flag}={argv[i + 1]}"
    return ""


def _option_strings(parser: argparse.ArgumentParser) -> list[str]:
    return [s for action in parser._actions for s in action.option_strings if s.startswith("--")]


def _did_you_mean(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=2, cutoff=0.75)
    if len(close) > 1:  # a second guess only when it is about as close (--topk: not --stop)
        score = [difflib.SequenceMatcher(None, word, c).ratio() for c in close]
        close = [c for c, r in zip(close, score) if r >= score[0] - 0.05]
    if not close and word.startswith(
        "--"
    ):  # an abbreviation of a longer flag: --sampl -> --samples
        close = [c for c in candidates if c.startswith(word)][:3]
    return f"; did you mean {' or '.join(close)}?" if close else ""


def _global_flags(default=0) -> argparse.ArgumentParser:
    """``-v/-q/--debug``, accepted before and after the command; a command's parser gets
    ``default=argparse.SUPPRESS`` so that it does not reset what was given before it."""
    flags = argparse.ArgumentParser(add_help=False)
    group = flags.add_argument_group("output control")
    group.add_argument(
        "-v", "--verbose", action="count", default=default, help="more log output on stderr"
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=default,
        help="less log output on stderr (-q: no progress)",
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=False if default == 0 else default,
        help="show tracebacks for errors",
    )
    return flags


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = _Parser(
        prog="landscape",
        description="Sharpness and loss-landscape analysis of PyTorch models.",
        parents=[_global_flags()],
    )
    parser.add_argument("--version", action="version", version=f"landscape {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    subparsers = {}
    for name in COMMANDS:
        module = importlib.import_module(f"landscape.cli.{name}")
        command = sub.add_parser(
            name,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            parents=[_global_flags(argparse.SUPPRESS)],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
        subparsers[name] = command
    return parser, subparsers


def _configure_logging(args: argparse.Namespace) -> None:
    level = logging.INFO - 10 * (args.verbose or 0) + 10 * (args.quiet or 0)
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(message)s", stream=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    # The OpenMP wait policy was chosen by ``import landscape`` (above, before torch loads):
    # the load and the thread count decide it (docs/performance.md); -v says which.
    argv = list(sys.argv[1:] if argv is None else argv)
    if _rank_note() and os.environ["RANK"] != "0":
        # under torchrun rank 0 alone prints help and results; every rank prints its errors
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 -- for the rest of this process
    parser, subparsers = build_parser()
    if not argv:  # bare `landscape`: what it can do, rather than "COMMAND is required"
        parser.print_help()
        return 0
    _Parser.argv, _Parser.subparsers = argv, subparsers
    args = parser.parse_args(argv)
    debug = args.debug
    with interrupt.handling():
        try:
            return _run(args, argv, parser, subparsers, debug)
        finally:
            if "landscape.distributed" in sys.modules:  # a command joined torchrun's group
                sys.modules["landscape.distributed"].shutdown()


def _run(args, argv, parser, subparsers, debug: bool) -> int:
    import time

    from landscape.atomic import WriteError

    started = time.monotonic()
    try:
        if getattr(args, "config", None):
            from landscape.config_file import read_config_file

            subparsers[args.command].set_defaults(
                **read_config_file(args.config, subparsers[args.command])
            )
            args = parser.parse_args(argv)
        _configure_logging(args)
        logging.getLogger("landscape").debug(openmp_choice().describe())
        return int(args._run(args) or 0)
    except UserError as exc:
        if debug:
            raise
        if isinstance(exc, WriteError) and exc.lost is None:  # commands that write once, at the end
            exc.lost = (
                f"what this run computed ({time.monotonic() - started:.0f} s) could not be saved"
            )
        _say(f"landscape: error: {exc}{_rank_note()}")
        return 1
    except OSError as exc:  # the system refused (permissions, a device error): not a bug
        if debug:
            raise
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if exc.strerror and exc.filename:
            detail = f"{exc.strerror}: {exc.filename}"
        _say(f"landscape: error: {detail}{_rank_note()}")
        return EXIT_USER_ERROR
    except KeyboardInterrupt as exc:  # interrupt.Interrupted, or a Ctrl-C before the handlers
        name = exc.name if isinstance(exc, interrupt.Interrupted) else "SIGINT"
        on_disk = interrupt.saved()
        saved = (
            f"saved {on_disk}; rerun the same command to resume"
            if on_disk
            else ("nothing had been saved yet; rerun the same command to start again")
        )
        _say(f"landscape: stopped by {name}; {saved}")
        return exc.exit_status if isinstance(exc, interrupt.Interrupted) else 130
    except Exception as exc:  # one line for the unexpected too; --debug shows where
        if debug:
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if _is_out_of_memory(exc):
            _say(f"landscape: error: {_out_of_memory_message(exc, message)}{_rank_note()}")
            return EXIT_USER_ERROR
        _say(
            f"landscape: error: internal error (a bug in landscape): {type(exc).__name__}: "
            f"{message}; rerun the same command with --debug and report the traceback"
            f"{_rank_note()}"
        )
        return EXIT_INTERNAL_ERROR


def _is_out_of_memory(exc: BaseException) -> bool:
    """torch's OutOfMemoryError (CUDA, and a RuntimeError before torch 2.1 names it), or
    Python's MemoryError (a CPU allocation that failed)."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _out_of_memory_message(exc: BaseException, message: str) -> str:
    where = "the CPU" if isinstance(exc, MemoryError) else "the GPU"
    detail = f" ({message})" if message else ""
    return (
        f"out of memory on {where}{detail}; lower --batch-size, --samples, the grid (--x/--y), "
        "--top-k or --density-runs, or use a larger device"
    )


def _say(line: str) -> None:
    """One line on stderr in one write: the ranks of a torchrun job share the terminal."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _rank_note() -> str:
    """`` [rank 1 of 2]`` under torchrun (every rank prints its own error), else nothing."""
    world = os.environ.get("WORLD_SIZE", "1")
    if world.isdigit() and int(world) > 1 and "RANK" in os.environ:
        return f" [rank {os.environ['RANK']} of {world}]"
    return ""
