"""landscape plot: figures from result files and training runs."""

from __future__ import annotations

import argparse

from landscape.cli.common import add_result_paths, positive_int
from landscape.plot import FIGURE_KINDS

HELP = "render figures from result files (.h5) and training runs (checkpoints/RUN)"
DESCRIPTION = """\
Render every result found in the given files: 1D slices, 2D contours / filled maps / 3D
surfaces (with the PCA trajectory), interpolation curves with barriers, Hessian spectra
against epoch and spectral densities, sharpness measures, escape runs, sharpness along
training (track: each measure against the step, lambda1 with 2/lr), late-SAM experiment
summaries. A run folder (checkpoints/RUN, holding metrics.jsonl) gives its training curves
(and its track.h5, from train --track).
Any other folder stands for every run folder and result file in it: the --out folder of
'landscape train', an experiment folder (result.h5 and checkpoints/), or a folder of those.
With several inputs, comparison figures put them on one axis. Prints the paths written.

examples:
  landscape plot analyses/late-sam.h5
  landscape plot analyses/sgd.h5 analyses/sam.h5 --format png,pdf --out figures/
  landscape plot checkpoints/late-sam --only training
  landscape plot checkpoints/                 # every run that 'train --out checkpoints' wrote
  landscape plot experiments/late-sam-digits-mlp   # an experiment folder
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_result_paths(parser)
    parser.add_argument(
        "--out", metavar="DIR", default="figures", help="folder for the figures (default: figures/)"
    )
    parser.add_argument(
        "--format", default="png", help="comma-separated: png, pdf, svg (default: png)"
    )
    parser.add_argument(
        "--dpi",
        type=positive_int,
        default=200,
        help="resolution of PNGs and of rasterized fills (default: 200)",
    )
    parser.add_argument(
        "--only",
        metavar="KIND",
        help=f"only these kinds, comma-separated: {', '.join(FIGURE_KINDS)}",
    )


def run(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    from landscape.errors import UserError
    from landscape.plot import discover, style

    # fontTools reports every font subset at INFO while PDFs are written: noise on our stderr.
    logging.getLogger("fontTools").setLevel(logging.WARNING)

    try:
        formats = style.parse_formats(args.format)
    except ValueError as exc:
        raise UserError(f"--format: {exc}") from exc
    only = discover.parse_only(args.only)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder; choose another --out")
    # Every input is read and checked before the first figure is written.
    _, jobs = discover.plan(args.paths, only)
    if not jobs:
        raise UserError(f"nothing to plot: no {args.only} figures in {' '.join(args.paths)}")
    out.mkdir(parents=True, exist_ok=True)
    for job in jobs:
        for path in style.save_figure(job.build(), out / job.name, formats, args.dpi):
            print(path, flush=True)
    return 0
