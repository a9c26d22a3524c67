"""landscape report: one self-contained HTML page with every figure and the headline numbers."""

from __future__ import annotations

import argparse

from landscape.cli.common import add_result_paths, positive_int

HELP = "write a self-contained HTML report of result files and training runs"
DESCRIPTION = """\
Write OUT/report.html: every figure 'landscape plot' makes from the inputs, embedded in the
page (it needs no network and no other files), and tables of the headline numbers: per
checkpoint epoch, phase, test accuracy, top eigenvalue, trace and sharpness measures; barrier
heights per interpolation; escape growth rates; per training run its final numbers.
A folder that is not a run folder stands for every run folder and result file in it (the
--out folder of 'landscape train', an experiment folder, or a folder of those).

examples:
  landscape report analyses/*.h5 checkpoints/late-sam --out report/
  landscape report experiments/late-sam-digits-mlp --out report/
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_result_paths(parser)
    parser.add_argument(
        "--out", metavar="DIR", default="report", help="folder for report.html (default: report/)"
    )
    parser.add_argument(
        "--dpi",
        type=positive_int,
        default=120,
        help="resolution of the embedded figures (default: 120)",
    )
    parser.add_argument(
        "--only",
        metavar="KIND",
        help="only these figure kinds, comma-separated (tables are always complete)",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from landscape.errors import UserError
    from landscape.plot import discover, report

    only = discover.parse_only(args.only)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder; choose another --out")
    sources, jobs = discover.plan(args.paths, only)
    print(report.write_report(sources, jobs, out, args.dpi))
    return 0
