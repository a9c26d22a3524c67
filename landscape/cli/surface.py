"""landscape surface: 1-D and 2-D loss-surface slices around a checkpoint, into HDF5.

The numbers come from :mod:`landscape.surface`; this module parses flags, loads checkpoints
and data through :func:`landscape.loading.loader.load_models`, and writes ``surface/<name>/`` of
docs/file-format.md through :func:`landscape.store.transaction` every few seconds, so that a
killed run resumes where it stopped. The helpers at the bottom are shared with ``landscape
interpolate``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from landscape.cli.common import (
    FIXED_BATCH,
    add_analysis_inputs,
    add_bn,
    add_curvature,
    add_run_options,
    nonnegative_float,
    parse_grid,
)

log = logging.getLogger("landscape.surface")

HELP = "loss-surface slices (1-D/2-D) around a checkpoint: random, PCA, Hessian or between planes"
DESCRIPTION = """\
Evaluate loss and accuracy on a grid theta0 + x*d1 (+ y*d2) around CKPT and store it in
HDF5 (surface/<name>/ with x, y as dimension scales, 'ij' order, NaN + done=false where not
computed). Only --x gives a 1-D slice; with neither --x nor --y a 2-D -1:1:51 grid is made (for pca:
51 x 51 points fitted around the trajectory; for between: x -0.5:1.5:51).

Directions (matched to parameters by name and stored in the file with their seed):
  random   Gaussian, normalised per --norm (filter: Li et al. 2018), 1-D params per --ignore
  pca      top two principal components of the --trajectory checkpoints around CKPT; the
           trajectory's coordinates and its true loss beside the surface value at its
           projections are stored (trajectory/)
  hessian  top two Hessian eigenvectors (unit length, --norm none by default), or those of
           the GGN or a Fisher with --curvature ggn|fisher|fisher-mc
  between  x = OTHER - CKPT (CKPT at (0,0), OTHER at (1,0)) plus a random direction made
           orthogonal to it and scaled to the same length

BatchNorm: directions move parameters only. With --bn eval every point uses CKPT's running
statistics, which no longer fit weights far from CKPT (nor another checkpoint's weights):
prefer --bn recalibrate for BatchNorm networks, and for comparing a PCA plane with the
true loss at its trajectory checkpoints.

Resume: rerunning the same command into the same file computes only the missing points.
A rerun on the same checkpoint with different options replaces its group (said on stderr);
a group holding another checkpoint's result is never replaced (NAME-2 is written instead).
SIGTERM/SIGINT/SIGUSR1 save the finished points and exit 143/130/138. Commands writing one
--out file at once take turns (nothing is lost); two writing the same --name: the one whose
group was taken over stops with an error and the other finishes it.
The data subsets are drawn by --subset-seed (default 0, no augmentation); --seed seeds only the
directions, so changing it never changes the examples.
--samples defaults to 2000 examples per split (all of them if the split is smaller).

examples:
  landscape surface checkpoints/run/epoch-160-sam.pt --x=-1:1:51 --y=-1:1:51
  landscape surface final.pt --directions pca --trajectory checkpoints/run/*.pt --bn recalibrate
  landscape surface sgd.pt --directions between --other sam.pt --x=-0.5:1.5:41 --y=-1:1:41
"""

DEFAULT_GRID = "-1:1:51"
DEFAULT_SAMPLES = 2000


class _DirectionKinds:
    """The choices of --directions: the registered direction kinds
    (:data:`landscape.surface.directions.DIRECTION_KINDS`), read only when the flag is parsed
    or the help is shown, so that building the parser does not import torch."""

    @staticmethod
    def _kinds() -> dict:
        from landscape.surface.directions import DIRECTION_KINDS

        return DIRECTION_KINDS

    def __contains__(self, name: object) -> bool:
        return name in self._kinds()

    def __iter__(self):
        return iter(self._kinds())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint", metavar="CKPT", help="the centre checkpoint (A for --directions between)"
    )
    parser.add_argument(
        "--x", type=parse_grid, metavar="MIN:MAX:NUM", help=f"x grid (default {DEFAULT_GRID})"
    )
    parser.add_argument(
        "--y",
        type=parse_grid,
        metavar="MIN:MAX:NUM",
        help=f"y grid; omitted with --x: a 1-D slice (default {DEFAULT_GRID})",
    )
    parser.add_argument(
        "--directions",
        choices=_DirectionKinds(),
        default="random",
        metavar="KIND",
        help="how the plane is spanned, one of %(choices)s (default: random)",
    )
    parser.add_argument(
        "--norm",
        choices=["filter", "layer", "none"],
        help="normalisation of random/Hessian directions (default: filter for random "
        "and between, none for hessian; pca is always none)",
    )
    parser.add_argument(
        "--ignore",
        choices=["biasbn", "none"],
        default="biasbn",
        help="biasbn: 1-D parameters (biases, BatchNorm) do not move (default)",
    )
    add_bn(parser, ("eval", "train", "recalibrate"), "eval")
    parser.add_argument(
        "--trajectory", nargs="+", metavar="CKPT", help="checkpoints for --directions pca"
    )
    parser.add_argument("--other", metavar="CKPT", help="checkpoint B for --directions between")
    group = parser.add_argument_group("the matrix of --directions hessian")
    add_curvature(group)
    parser.add_argument(
        "--name",
        help="result group name (default: <run>_<stem>-<directions>-<1d|2d>; a --curvature "
        "other than hessian in place of <directions>)",
    )
    parser.add_argument(
        "--save-every",
        type=nonnegative_float,
        default=5.0,
        metavar="SECONDS",
        help="write finished points to the file this often (default: 5)",
    )
    add_run_options(
        parser,
        "result file (default: analyses/<run>_<stem>.h5, run = the checkpoint's folder)",
        fast=True,
    )
    add_analysis_inputs(
        parser,
        splits="train",
        samples=f"{DEFAULT_SAMPLES} per split",
        batch=f"measured; {FIXED_BATCH} (or the subset size if smaller) where batches define "
        "BatchNorm statistics",
    )
    parser.set_defaults(samples=DEFAULT_SAMPLES)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from landscape import store
    from landscape.analysis.setup import batch_config, check_same_parameters, load_setup
    from landscape.analysis.surface import (
        AUTO_POINTS,
        PlaneError,
        SurfaceOptions,
        compute_surface,
    )
    from landscape.cli.common import resolve_curvature
    from landscape.errors import UserError

    x_spec, y_spec = _grid_specs(args)
    splits = parse_splits(args.split)
    _check_grid_fits(x_spec, y_spec, splits)
    norm = _resolve_norm(args)
    _check_direction_flags(args)
    resolve_curvature(
        args, applies=None if args.directions == "hessian" else "--directions hessian"
    )
    out = output_path(args.out, store.checkpoint_label(args.checkpoint))
    base_name = args.name or _default_name(args, x_spec is not None and y_spec is None)

    setup = load_setup(
        args,
        [args.checkpoint, *(args.trajectory or []), *([args.other] if args.other else [])],
        splits,
        recalibrate=args.bn == "recalibrate",
        bn_train=args.bn == "train",
        stack=args.bn == "eval",
    )
    centre = setup.targets[0]
    partition = setup.partition  # torchrun: grid points dealt to ranks, rank 0 writes
    name = partition.broadcast(
        store.claim_group_name_in(out, "surface", base_name, [centre.sha256])[0]
        if partition.is_writer
        else None
    )
    others = setup.targets[1:]
    for target in others:
        check_same_parameters(centre, target)
    auto = x_spec is None  # PCA without --x/--y: the grid is fitted around the trajectory
    config = {
        "directions": args.directions,
        "norm": norm,
        "ignore": args.ignore,
        "bn": args.bn,
        "x": f"auto:{AUTO_POINTS}" if auto else str(x_spec),
        "y": f"auto:{AUTO_POINTS}" if auto else (None if y_spec is None else str(y_spec)),
        "splits": splits,
        "samples": setup.samples,
        "subset_seed": args.subset_seed,
        **batch_config(args, setup),
        "loss": args.loss,
        "dataset": setup.data.name,
        "dtype": args.dtype,
        "seed": args.seed,
        **_curvature_config(args),
        "trajectory": [{"path": str(t.path), "sha256": t.sha256} for t in others]
        if args.trajectory
        else None,
        "other": {"path": str(others[-1].path), "sha256": others[-1].sha256}
        if args.other
        else None,
    }
    options = SurfaceOptions(
        directions=args.directions,
        norm=norm,
        ignore=args.ignore,
        bn=args.bn,
        x=None if auto else grid_values(x_spec),
        y=None if y_spec is None else grid_values(y_spec),
        seed=args.seed,
        dtype=args.dtype,
        save_every=args.save_every,
        config=config,
        curvature=args.curvature,
        fisher_samples=args.fisher_samples,
        loss=args.loss,
    )
    group_path = f"surface/{name}"
    try:
        surface = compute_surface(options, setup, out, group_path, partition=setup.partition)
    except PlaneError as exc:
        raise UserError(f"--directions {args.directions}: {exc}") from exc

    first = f"{splits[0]}_loss"
    values = surface.metrics[first]
    centre_idx = _centre_index(surface.x, surface.y)
    seconds = surface.provenance.seconds or 0.0
    print(f"{out}:{group_path}  {surface.done.sum()}/{surface.done.size} points, {seconds:.1f} s")
    if centre_idx is not None and np.isfinite(values[centre_idx]):
        print(
            f"  {first} at the centre {values[centre_idx]:.6g}, min {np.nanmin(values):.6g}, "
            f"max {np.nanmax(values):.6g}"
        )
    if not surface.done.all():
        raise UserError(
            f"{int((~surface.done).sum())} points were not computed; rerun the command to resume"
        )
    return 0


# ---------------------------------------------------------------------------- surface pieces


def _grid_specs(args):
    if args.x is None and args.y is None and args.directions == "pca":
        return None, None
    if args.x is None and args.y is None:
        default = "-0.5:1.5:51" if args.directions == "between" else DEFAULT_GRID
        return parse_grid(default), parse_grid(DEFAULT_GRID)
    x = args.x or parse_grid("-0.5:1.5:51" if args.directions == "between" else DEFAULT_GRID)
    return x, args.y


def _check_grid_fits(x_spec, y_spec, splits) -> None:
    """Refuse, before any work, a grid whose result arrays the memory cannot hold."""
    from landscape.memory import check_fits
    from landscape.surface.grid import grid_bytes, metric_names

    if x_spec is None:  # fitted around a trajectory: a fixed, small grid
        return
    shape = [x_spec.num] if y_spec is None else [x_spec.num, y_spec.num]
    check_fits(
        grid_bytes(shape, len(metric_names(splits))),
        f"a grid of {' x '.join(f'{n:,}' for n in shape)} points",
        hint="give fewer points in --x/--y",
    )


# The flag that names a direction kind's other checkpoints, and what it takes.
OTHERS_FLAGS = {
    "trajectory": ("--trajectory", "--trajectory CKPT... (at least two checkpoints)"),
    "other": ("--other", "--other CKPT (the second end point)"),
}


def _resolve_norm(args) -> str:
    from landscape.errors import UserError
    from landscape.surface.directions import DIRECTION_KINDS

    kind = DIRECTION_KINDS[args.directions]
    if args.norm is not None and args.norm not in kind.norms:
        raise UserError(
            f"--norm {args.norm} does not apply to --directions {kind.name} "
            f"(it takes --norm {' or '.join(kind.norms)})"
        )
    return args.norm or kind.default_norm


def _check_direction_flags(args) -> None:
    from landscape.errors import UserError
    from landscape.surface.directions import DIRECTION_KINDS

    needs = DIRECTION_KINDS[args.directions].others
    for others, (flag, takes) in OTHERS_FLAGS.items():
        given = getattr(args, flag.lstrip("-"))
        if needs == others and not given:
            raise UserError(f"--directions {args.directions} needs {takes}")
        if given and needs != others:
            users = [k for k, v in DIRECTION_KINDS.items() if v.others == others]
            raise UserError(f"{flag} is only used with --directions {' or '.join(users)}")


def _curvature_config(args) -> dict:
    """The curvature of a hessian plane, for the recorded config (left out where it is the
    Hessian, so that the configs of earlier Hessian planes still match and they resume)."""
    if args.curvature == "hessian":
        return {}
    config = {"curvature": args.curvature}
    if args.curvature == "fisher-mc":
        config["fisher_samples"] = args.fisher_samples
    return config


def _default_name(args, one_d: bool) -> str:
    kind = args.directions
    if kind == "between":
        kind = f"between-{short_label(args.other, args.checkpoint)}"
    elif kind == "hessian" and args.curvature not in (None, "hessian"):
        kind = args.curvature  # run_final-ggn-2d beside run_final-hessian-2d, not replacing it
    return f"{_label(args.checkpoint)}-{kind}-{'1d' if one_d else '2d'}"


def _label(path) -> str:
    from landscape.store import checkpoint_label

    return checkpoint_label(path)


def short_label(path, first) -> str:
    """A second checkpoint's part of a name: its stem when it lies in the first one's run folder
    (``run_epoch-045-sgd-to-epoch-060-sam``), else its full ``<run>_<stem>`` label."""
    import os

    same_run = os.path.dirname(os.path.abspath(path)) == os.path.dirname(os.path.abspath(first))
    return Path(path).stem if same_run else _label(path)


def _centre_index(xs, ys):
    import numpy as np

    ix = np.flatnonzero(xs == 0)
    if ix.size == 0:
        return None
    if ys is None:
        return (int(ix[0]),)
    iy = np.flatnonzero(ys == 0)
    return (int(ix[0]), int(iy[0])) if iy.size else None


# ------------------------------------------------------------- shared with `landscape interpolate`


def parse_splits(text: str) -> list[str]:
    from landscape.errors import UserError

    splits = [s.strip() for s in str(text).split(",") if s.strip()]
    bad = [s for s in splits if s not in ("train", "test")]
    if not splits or bad or len(set(splits)) != len(splits):
        raise UserError(f"--split {text!r}: give train, test or train,test")
    return splits


def output_path(out: str | None, stem: str) -> Path:
    """``--out`` checked before any work; default analyses/<label>.h5 (the folder is created)."""
    from landscape import store

    return store.resolve_output(out, Path("analyses") / f"{stem}.h5")


def grid_values(spec):
    """The grid of a spec, with values within rounding of 0 and 1 snapped to exactly 0 and 1
    (the checkpoint itself, and B in a between plane, are then evaluated exactly)."""
    from landscape.analysis.surface import snap_grid

    return snap_grid(spec.values())


def fit_grid(coordinates, points: int | None = None):
    """:func:`landscape.analysis.surface.fit_grid` (kept here for existing imports)."""
    from landscape.analysis.surface import AUTO_POINTS, fit_grid

    return fit_grid(coordinates, points or AUTO_POINTS)
