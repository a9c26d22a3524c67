"""landscape surface: 1-D and 2-D loss-surface slices around a checkpoint, into HDF5.

The numbers come from :mod:`landscape.surface`; this module parses flags, loads checkpoints
and data through :func:`landscape.target.load_targets`, and writes ``surface/<name>/`` of
docs/file-format.md through :func:`landscape.store.transaction` every few seconds, so that a killed run
resumes where it stopped. The helpers at the bottom are shared with ``landscape interpolate``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from landscape.cli.common import (
    add_config,
    add_data_source,
    add_device,
    add_dtype,
    add_fast_evaluation,
    add_model_source,
    add_out,
    add_seed,
    nonnegative_float,
    parse_grid,
    state_default,
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
  hessian  top two Hessian eigenvectors (unit length, --norm none by default)
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
The data subsets are fixed (seed 0, no augmentation) whatever --seed, which seeds directions.
--samples defaults to 2000 examples per split (all of them if the split is smaller).

examples:
  landscape surface checkpoints/run/epoch-160-sam.pt --x=-1:1:51 --y=-1:1:51
  landscape surface final.pt --directions pca --trajectory checkpoints/run/*.pt --bn recalibrate
  landscape surface sgd.pt --directions between --other sam.pt --x=-0.5:1.5:41 --y=-1:1:41
"""

DEFAULT_GRID = "-1:1:51"
DEFAULT_SAMPLES = 2000
SUBSET_SEED = 0  # analysis subsets are the same for every --seed
AUTO_POINTS = 51  # grid points per axis of a PCA plane fitted around its trajectory


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
        choices=["random", "pca", "hessian", "between"],
        default="random",
        help="how the plane is spanned (default: random)",
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
    parser.add_argument(
        "--bn",
        choices=["eval", "train", "recalibrate"],
        default="eval",
        help="BatchNorm at each point: stored running statistics (eval, default), batch "
        "statistics (train) or statistics recomputed from training examples (recalibrate)",
    )
    parser.add_argument(
        "--trajectory", nargs="+", metavar="CKPT", help="checkpoints for --directions pca"
    )
    parser.add_argument("--other", metavar="CKPT", help="checkpoint B for --directions between")
    parser.add_argument(
        "--name", help="result group name (default: <run>_<stem>-<directions>-<1d|2d>)"
    )
    parser.add_argument(
        "--save-every",
        type=nonnegative_float,
        default=5.0,
        metavar="SECONDS",
        help="write finished points to the file this often (default: 5)",
    )
    add_out(
        parser, "result file (default: analyses/<run>_<stem>.h5, run = the checkpoint's folder)"
    )
    add_seed(parser)
    add_device(parser)
    add_dtype(parser)
    add_fast_evaluation(parser)
    add_config(parser)
    add_model_source(parser)
    add_data_source(parser, splits="train")
    state_default(parser, "--samples", f"{DEFAULT_SAMPLES} per split")
    state_default(parser, "--batch-size", "500, or the subset size if smaller")
    parser.set_defaults(samples=DEFAULT_SAMPLES)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from landscape import store
    from landscape.errors import UserError
    from landscape.progress import cli_reporter
    from landscape.surface import SurfaceResult, evaluate_surface

    x_spec, y_spec = _grid_specs(args)
    splits = parse_splits(args.split)
    norm = _resolve_norm(args)
    _check_direction_flags(args)
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
    model = centre.model
    auto = x_spec is None  # PCA without --x/--y: the grid is fitted around the trajectory
    xs = None if auto else grid_values(x_spec)
    ys = None if y_spec is None else grid_values(y_spec)
    config = {
        "directions": args.directions,
        "norm": norm,
        "ignore": args.ignore,
        "bn": args.bn,
        "x": f"auto:{AUTO_POINTS}" if auto else str(x_spec),
        "y": f"auto:{AUTO_POINTS}" if auto else (None if y_spec is None else str(y_spec)),
        "splits": splits,
        "samples": setup.samples,
        "subset_seed": SUBSET_SEED,
        **batch_config(args, setup),
        "loss": args.loss,
        "dataset": setup.data.name,
        "dtype": args.dtype,
        "seed": args.seed,
        "trajectory": [{"path": str(t.path), "sha256": t.sha256} for t in others]
        if args.trajectory
        else None,
        "other": {"path": str(others[-1].path), "sha256": others[-1].sha256}
        if args.other
        else None,
    }
    measure = setup.measure(args.bn)
    group_path = f"surface/{name}"
    previous = partition.broadcast(
        read_previous(out, group_path, centre.sha256, config) if partition.is_writer else None
    )

    pca_info = None
    if previous is not None:
        directions = previous["directions"]
        xs, ys = previous["x"], previous["y"]
        result = SurfaceResult(xs, ys, previous["metrics"], previous["done"], previous["seconds"])
        pca_info = previous.get("trajectory")
        log.info(
            "resuming %s:%s: %d of %d points done",
            out,
            group_path,
            int(result.done.sum()),
            result.done.size,
        )
    else:
        started = time.monotonic()
        directions, extras = make_directions(
            args, model, centre, others, setup, norm, two_d=auto or ys is not None
        )
        if auto:
            xs, ys = (fit_grid(extras["trajectory"][k]) for k in ("x", "y"))
        result = SurfaceResult.empty(xs, ys, measure.names)
        result.seconds = time.monotonic() - started
        pca_info = extras.get("trajectory")
        if pca_info is not None and not auto:
            warn_trajectory_outside(pca_info, xs, ys)
        check_same_on_every_rank(partition, directions)
        if partition.is_writer:
            with store.transaction(out) as f:
                write_surface_group(
                    f, group_path, result, directions, extras, args, centre, config, setup
                )
                store.claim_group(f, group_path)

    reporter = cli_reporter()

    def finished() -> int:
        done = int(result.done.sum())
        if pca_info is not None:
            done += int(pca_info["done"].sum() + pca_info["projected_done"].sum())
        return done

    total = result.done.size + (
        0 if pca_info is None else pca_info["done"].size + pca_info["projected_done"].size
    )
    saver = PeriodicSaver(
        out, args.save_every, group_path, finished, total, writer=partition.is_writer
    )
    if previous is not None:
        saver.claim()
    else:
        saver._note_saved()
    if pca_info is not None and not (pca_info["done"].all() and pca_info["projected_done"].all()):
        started = time.monotonic()

        def update_trajectory(f) -> None:
            _update_trajectory(f, group_path, pca_info)
            f[group_path].attrs["seconds"] = result.seconds + time.monotonic() - started

        try:
            evaluate_trajectory(
                model,
                directions,
                measure,
                pca_info,
                others,
                save=lambda: saver.save(update_trajectory),
                reporter=reporter,
                partition=partition,
            )
        finally:
            if saver.pending:  # also after Ctrl-C: keep what is done
                saver.flush(update_trajectory)
        result.seconds += time.monotonic() - started

    def update(f) -> None:
        update_metrics(f, group_path, result.metrics, result.done, seconds=result.seconds)

    # evaluate_surface fills `result` in place; every few seconds the finished points are saved.
    shape = "x".join(str(n) for n in result.done.shape)
    try:
        with reporter.phase(
            f"surface {shape}", result.done.size, unit="points", initial=int(result.done.sum())
        ) as phase:
            evaluate_surface(
                model,
                [directions[k] for k in ("x", "y") if k in directions],
                measure,
                xs,
                ys,
                result=result,
                on_save=lambda _: saver.save(update),
                save_every=args.save_every,
                progress=phase,
                partition=partition,
            )
    finally:
        if saver.pending:
            saver.flush(update)

    first = f"{splits[0]}_loss"
    values = result.metrics[first]
    centre_idx = _centre_index(xs, ys)
    print(
        f"{out}:{group_path}  {result.done.sum()}/{result.done.size} points, {result.seconds:.1f} s"
    )
    if centre_idx is not None and np.isfinite(values[centre_idx]):
        print(
            f"  {first} at the centre {values[centre_idx]:.6g}, min {np.nanmin(values):.6g}, "
            f"max {np.nanmax(values):.6g}"
        )
    if not result.done.all():
        raise UserError(
            f"{int((~result.done).sum())} points were not computed; rerun the command to resume"
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


def fit_grid(coordinates, points: int = AUTO_POINTS):
    """An evenly spaced grid covering the centre and every trajectory coordinate with a margin
    of about 20%, placed so that 0 (the centre checkpoint) is one of its nodes."""
    import math

    import numpy as np

    from landscape.cli.common import GridSpec

    lo, hi = min(float(np.min(coordinates)), 0.0), max(float(np.max(coordinates)), 0.0)
    pad = 0.2 * (hi - lo) if hi > lo else 1.0
    lo, hi = lo - pad, hi + pad
    step = (hi - lo) / max(points - 2, 1)  # one spare step to move a node onto 0
    start = -math.ceil(-lo / step - 1e-9) * step
    return grid_values(GridSpec(start, start + (points - 1) * step, points))


def _resolve_norm(args) -> str:
    from landscape.errors import UserError

    if args.directions == "pca":
        if args.norm not in (None, "none"):
            raise UserError(
                "--norm does not apply to --directions pca (principal components are unit vectors)"
            )
        return "none"
    if args.norm is not None:
        return args.norm
    return "none" if args.directions == "hessian" else "filter"


def _check_direction_flags(args) -> None:
    from landscape.errors import UserError

    if args.directions == "pca" and not args.trajectory:
        raise UserError("--directions pca needs --trajectory CKPT... (at least two checkpoints)")
    if args.trajectory and args.directions != "pca":
        raise UserError("--trajectory is only used with --directions pca")
    if args.directions == "between" and not args.other:
        raise UserError("--directions between needs --other CKPT (the second end point)")
    if args.other and args.directions != "between":
        raise UserError("--other is only used with --directions between")


def _default_name(args, one_d: bool) -> str:
    kind = (
        f"between-{short_label(args.other, args.checkpoint)}"
        if args.directions == "between"
        else args.directions
    )
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


def warn_trajectory_outside(info, xs, ys) -> None:
    """Say which trajectory checkpoints a given --x/--y grid leaves out, and the grid that fits."""
    import numpy as np

    x, y = np.asarray(info["x"]), np.asarray(info["y"])
    inside = (x >= xs.min()) & (x <= xs.max())
    if ys is not None:
        inside &= (y >= ys.min()) & (y <= ys.max())
    if inside.all():
        return
    names = [str(c) for c, ok in zip(info["checkpoint"], inside) if not ok]
    fx, fy = fit_grid(x, xs.size), fit_grid(y, ys.size if ys is not None else 1)
    fitted = f"--x={fx[0]:.3g}:{fx[-1]:.3g}:{fx.size}" + (
        f" --y={fy[0]:.3g}:{fy[-1]:.3g}:{fy.size}" if ys is not None else ""
    )
    log.warning(
        "%d of %d trajectory checkpoints lie outside the grid (%s%s); omit --x/--y to fit "
        "the grid around the trajectory, or give e.g. %s",
        len(names),
        x.size,
        ", ".join(names[:4]),
        ", ..." if len(names) > 4 else "",
        fitted,
    )


def _centre_index(xs, ys):
    import numpy as np

    ix = np.flatnonzero(xs == 0)
    if ix.size == 0:
        return None
    if ys is None:
        return (int(ix[0]),)
    iy = np.flatnonzero(ys == 0)
    return (int(ix[0]), int(iy[0])) if iy.size else None


def make_directions(args, model, centre, others, setup, norm: str, *, two_d: bool):
    """``({'x': direction[, 'y': ...]}, extras)``: extras hold attrs and PCA trajectory data."""
    import numpy as np

    from landscape.errors import UserError
    from landscape.progress import cli_reporter
    from landscape.surface import directions as dirs

    weights = {n: p.detach() for n, p in model.named_parameters()}
    extras: dict = {"attrs": {}}
    if args.directions == "random":
        out = {
            "x": dirs.random_direction(
                weights, seed=args.seed, axis="x", norm=norm, ignore=args.ignore
            )
        }
        if two_d:
            out["y"] = dirs.random_direction(
                weights, seed=args.seed, axis="y", norm=norm, ignore=args.ignore
            )
        extras["labels"] = (
            f"direction 1 (random, {norm}-normalised)",
            f"direction 2 (random, {norm}-normalised)",
        )
    elif args.directions == "between":
        other = {n: p.detach() for n, p in others[-1].model.named_parameters()}
        try:
            dx, dy = dirs.between_directions(
                weights, other, seed=args.seed, norm=norm, ignore=args.ignore
            )
        except ValueError as exc:
            raise UserError(f"--directions between: {exc}") from exc
        out = {"x": dx, "y": dy} if two_d else {"x": dx}
        extras["labels"] = (
            f"{centre.path.stem} → {others[-1].path.stem}",
            "orthogonal random direction",
        )
        extras["attrs"].update(a=str(centre.path), b=str(others[-1].path))
    elif args.directions == "hessian":
        x, y = setup.splits.get("train", next(iter(setup.splits.values())))
        try:
            with cli_reporter().phase(
                "Hessian directions (top-2 eigenvectors)", unit="products"
            ) as phase:
                dx, dy, eigenvalues = dirs.hessian_directions(
                    model,
                    setup.loss_fn,
                    x,
                    y,
                    batch_size=setup.batch_size,
                    bn_mode="train" if args.bn == "train" else "eval",
                    seed=args.seed,
                    progress=phase,
                )
        except ImportError as exc:
            raise UserError(
                "--directions hessian needs landscape.curvature, which is not installed"
            ) from exc
        if norm != "none":
            dx = dirs.normalize_direction(dx, weights, norm=norm, ignore=args.ignore)
            dy = dirs.normalize_direction(dy, weights, norm=norm, ignore=args.ignore)
        out = {"x": dx, "y": dy} if two_d else {"x": dx}
        extras["labels"] = ("Hessian eigenvector 1", "Hessian eigenvector 2")
        extras["attrs"].update(eigenvalues=np.asarray(eigenvalues))
    else:  # pca
        states = [{n: p.detach() for n, p in t.model.named_parameters()} for t in others]
        try:
            plane = dirs.pca_directions(weights, states, ignore=args.ignore)
        except ValueError as exc:
            raise UserError(f"--directions pca: {exc}") from exc
        out = {"x": plane.x, "y": plane.y} if two_d else {"x": plane.x}
        extras["labels"] = ("PC 1", "PC 2")
        extras["explained_variance_ratio"] = np.asarray(plane.explained_variance_ratio)
        t = len(others)
        names = [f"{s}_{m}" for s in setup.splits for m in ("loss", "acc")]
        extras["trajectory"] = {
            "x": plane.coordinates[:, 0].numpy(),
            "y": plane.coordinates[:, 1].numpy(),
            "epoch": np.array(
                [np.nan if o.epoch is None else o.epoch for o in others], dtype=np.float64
            ),
            "phase": [o.phase or "" for o in others],
            "checkpoint": [str(o.path) for o in others],
            "distance_to_plane": plane.distance_to_plane.numpy(),
            "metrics": {n: np.full(t, np.nan) for n in names},
            "projected": {n: np.full(t, np.nan) for n in names},
            "done": np.zeros(t, dtype=bool),
            "projected_done": np.zeros(t, dtype=bool),
        }
    return out, extras


def check_same_on_every_rank(partition, directions) -> None:
    """Seeded directions are the same on every rank; a sum per direction proves it (the
    ranks would otherwise compute points of different planes into one grid)."""
    import torch

    from landscape.errors import UserError

    if not partition.is_distributed:
        return
    sums = [
        float(sum(t.double().sum().item() for t in direction.values()))
        for direction in directions.values()
    ]
    if len({tuple(s) for s in partition.gather(sums)}) != 1:
        raise UserError(
            f"the ranks built different directions (torch {torch.__version__}): "
            "compute them on one process first, then resume under torchrun"
        )


def evaluate_trajectory(
    model, directions, measure, info, others, *, save, reporter, partition=None
) -> None:
    """True metrics at the real checkpoints and at their projections onto the plane."""
    from landscape.parallel import SINGLE
    from landscape.surface.flat import preserved_state
    from landscape.surface.grid import PlaneWriter, evaluate_points, evaluate_states

    states = [dict(t.model.state_dict()) for t in others]
    with reporter.phase(
        "trajectory checkpoints", info["done"].size, unit="points", initial=int(info["done"].sum())
    ) as phase:
        evaluate_states(
            model,
            states,
            measure,
            metrics=info["metrics"],
            done=info["done"],
            on_save=save,
            progress=phase,
            partition=partition or SINGLE,
        )
    with preserved_state(model):
        writer = PlaneWriter(
            model, [directions["x"], directions["y"]] if "y" in directions else [directions["x"]]
        )
        coeffs = list(zip(info["x"], info["y"])) if "y" in directions else [(c,) for c in info["x"]]
        done = info["projected_done"]
        with reporter.phase(
            "trajectory projections", done.size, unit="points", initial=int(done.sum())
        ) as phase:
            evaluate_points(
                lambda i: writer.write(coeffs[i]),
                lambda: measure(model),
                info["projected"],
                done,
                on_save=save,
                progress=phase,
                partition=partition or SINGLE,
            )


def write_surface_group(
    f, group_path, result, directions, extras, args, centre, config, setup
) -> None:
    import numpy as np

    from landscape import store
    from landscape.target import provenance

    g = store.replace_group(f, group_path)
    store.set_provenance(
        g,
        provenance(
            centre,
            split=",".join(setup.splits),
            samples=setup.samples,
            bn_mode=args.bn,
            dtype=args.dtype,
            seed=args.seed,
            seconds=result.seconds,
            config=config,
        )
        | setup.partition.provenance(),
    )
    store.set_attrs(
        g,
        directions=args.directions,
        norm=config["norm"],
        ignore=args.ignore,
        **extras.get("attrs", {}),
    )
    labels = extras.get("labels", ("x", "y"))
    axes = [store.write_dataset(g, "x", result.x, label=labels[0])]
    if result.y is not None:
        axes.append(store.write_dataset(g, "y", result.y, label=labels[1]))
    for axis, key in zip(axes, ("x", "y")):
        axis.make_scale(key)
    for name, values in [*result.metrics.items(), ("done", result.done)]:
        ds = store.write_dataset(g, name, values)
        for dim, axis in enumerate(axes):
            ds.dims[dim].attach_scale(axis)
    for axis, direction in directions.items():
        dg = g.create_group(f"directions/{axis}")
        store.set_attrs(
            dg, seed=args.seed, kind=args.directions, norm=config["norm"], ignore=args.ignore
        )
        for pname, tensor in direction.items():
            store.write_dataset(dg, pname, tensor.detach().cpu().numpy())
    if "explained_variance_ratio" in extras:
        comp = store.write_dataset(g, "component", np.array([1, 2]))
        comp.make_scale("component")
        evr = store.write_dataset(g, "explained_variance_ratio", extras["explained_variance_ratio"])
        evr.dims[0].attach_scale(comp)
    if "trajectory" in extras:
        info = extras["trajectory"]
        t = g.create_group("trajectory")
        for key in ("x", "y", "epoch", "distance_to_plane"):
            store.write_dataset(t, key, info[key])  # checksummed, as every numeric array
        t.create_dataset("phase", data=np.array([p.encode() for p in info["phase"]], dtype="S"))
        t.create_dataset(
            "checkpoint", data=np.array([c.encode() for c in info["checkpoint"]], dtype="S")
        )
        _write_trajectory_metrics(t, info)


def _write_trajectory_metrics(t, info) -> None:
    for name, values in info["metrics"].items():
        _put(t, name, values)
        _put(t, f"projected_{name}", info["projected"][name])
    _put(t, "done", info["done"])
    _put(t, "projected_done", info["projected_done"])


def _update_trajectory(f, group_path, info) -> None:
    _write_trajectory_metrics(f[f"{group_path}/trajectory"], info)


def _put(group, name, values) -> None:
    if name in group and group[name].shape == values.shape:
        group[name][...] = values
    else:
        from landscape import store

        store.write_dataset(group, name, values)


def update_metrics(f, group_path, metrics, done, *, seconds: float) -> None:
    """Overwrite the metric arrays and the done mask in place (dimension scales stay attached)."""
    g = f[group_path]
    for name, values in metrics.items():
        g[name][...] = values
    g["done"][...] = done
    g.attrs["seconds"] = float(seconds)


def read_previous(out: Path, group_path: str, sha256: str, config: dict):
    """The stored state of an earlier run of the same command, or None (absent or different:
    the group is then replaced). A damaged file is an error that names it: starting afresh
    would throw its finished points away."""
    from landscape import store
    from landscape.errors import UserError

    try:
        return _read_previous(out, group_path, sha256, config)
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise UserError(store.corrupt_message(out, exc)) from exc


def _read_previous(out: Path, group_path: str, sha256: str, config: dict):
    import h5py
    import numpy as np
    import torch

    from landscape import store

    if not out.exists():
        return None
    with h5py.File(out, "r") as f:
        if group_path not in f:
            return None
        g = f[group_path]
        attrs = store.read_attrs(g)
        if attrs.get("checkpoint_sha256") != sha256 or attrs.get("config") != json.loads(
            json.dumps(config)
        ):
            changed = _changed_keys(attrs.get("config"), config)
            log.warning(
                "replacing %s in %s: it was computed %s",
                group_path,
                out,
                f"with different options ({', '.join(changed)})"
                if changed
                else "from another checkpoint",
            )
            return None
        if "done" not in g:
            return None
        previous = {
            "x": np.array(g["x"][()], dtype=np.float64) if "x" in g else None,
            "y": np.array(g["y"][()], dtype=np.float64) if "y" in g else None,
            "metrics": {
                n: np.array(g[n][()], dtype=np.float64) for n in g if n.endswith(("_loss", "_acc"))
            },
            "done": np.array(g["done"][()], dtype=bool),
            "seconds": float(attrs.get("seconds", 0.0)),
            "directions": {},
        }
        for axis in g.get("directions", {}):
            previous["directions"][axis] = {
                n: torch.from_numpy(np.array(d[()])) for n, d in g[f"directions/{axis}"].items()
            }
        if "trajectory" in g:
            t = g["trajectory"]
            names = [
                n for n in t if n.endswith(("_loss", "_acc")) and not n.startswith("projected_")
            ]
            previous["trajectory"] = {
                "x": t["x"][()],
                "y": t["y"][()],
                "metrics": {n: np.array(t[n][()], dtype=np.float64) for n in names},
                "projected": {
                    n: np.array(t[f"projected_{n}"][()], dtype=np.float64) for n in names
                },
                "done": np.array(t["done"][()], dtype=bool),
                "projected_done": np.array(t["projected_done"][()], dtype=bool),
            }
        return previous


def _changed_keys(old, new) -> list[str]:
    if not isinstance(old, dict):
        return []
    new = json.loads(json.dumps(new))
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


# ------------------------------------------------------------- shared with `landscape interpolate`


class PeriodicSaver:
    """Runs ``write(f)`` inside a store transaction at most every few seconds; the interval grows
    to 20x the cost of one save, so that copying a large file never dominates the run.

    ``group`` is claimed for this process (:func:`landscape.store.claim_group`) and every save
    checks the claim, so that a second command writing the same group stops with a clear error
    instead of mixing its points into another grid. ``finished()`` counts the finished points:
    a stop signal's message says how many are on disk, a failed save how many were not saved.
    """

    def __init__(
        self, out: Path, every: float, group: str, finished, total: int, *, writer: bool = True
    ) -> None:
        self.out, self.every, self.group = out, every, group
        self.finished, self.total = finished, total
        self.last, self.cost, self.pending, self.failed = time.monotonic(), 0.0, False, False
        self.saved = finished()
        self.writer = writer  # under torchrun only rank 0 writes; the others' saves do nothing

    def claim(self) -> None:
        """Make the group this process's (a resumed run takes over what an earlier one left)."""
        from landscape import store

        if not self.writer:
            return
        with store.transaction(self.out) as f:
            store.claim_group(f, self.group)
        self._note_saved()

    def save(self, write) -> None:
        self.pending = True
        if time.monotonic() - self.last >= max(self.every, 20 * self.cost):
            self.flush(write)

    def flush(self, write) -> None:
        from landscape import store
        from landscape.atomic import WriteError

        if self.failed or not self.writer:
            return  # the error is on its way up; do not try again from every finally block
        from landscape import interrupt

        started = time.monotonic()
        count = self.finished()
        with interrupt.held():  # a stop signal during the save acts after the bookkeeping below
            try:
                with store.transaction(self.out) as f:
                    store.owned_group(f, self.group)
                    write(f)
            except WriteError as exc:
                self.failed = True
                exc.lost = (
                    f"{count - self.saved} points finished since the last save "
                    f"({time.monotonic() - self.last:.0f} s ago) could not be saved"
                )
                raise
            except BaseException:
                self.failed = True
                raise
            self.last = time.monotonic()
            self.cost = self.last - started
            self.pending, self.saved = False, count
            self._note_saved()

    def _note_saved(self) -> None:
        from landscape import interrupt

        interrupt.note_saved(
            f"{self.out}:{self.group} with {self.saved} of {self.total} points done"
        )


class Setup:
    """What every point needs: targets, data subsets on the device, loss, and the batch sizes.

    ``batch_size`` is the evaluation batch (measured unless --batch-size or --bn train fixes
    it), ``bn_batch_size`` the batch that defines BatchNorm statistics (recalibration, --bn
    train), ``points_per_pass`` grid points per batched call (measured, :mod:`landscape.surface.stacked`).
    """

    def __init__(
        self,
        targets,
        data,
        splits,
        loss_fn,
        batch_size,
        samples,
        bn_inputs,
        *,
        bn_batch_size=None,
        points_per_pass=1,
        autocast=None,
        partition=None,
    ):
        from landscape.parallel import SINGLE

        self.partition = partition or SINGLE  # this process's share (torchrun), else SINGLE
        self.targets, self.data, self.splits, self.loss_fn = targets, data, splits, loss_fn
        self.batch_size, self.samples, self.bn_inputs = batch_size, samples, bn_inputs
        self.bn_batch_size = bn_batch_size or batch_size
        self.points_per_pass, self.autocast = points_per_pass, autocast

    def measure(self, bn_mode: str):
        """The :class:`landscape.surface.Measure` of these subsets and batches."""
        from landscape.surface import Measure

        return Measure(
            self.loss_fn,
            self.splits,
            batch_size=self.batch_size,
            bn_mode=bn_mode,
            bn_inputs=self.bn_inputs,
            bn_batch_size=self.bn_batch_size,
            points_per_pass=self.points_per_pass if bn_mode == "eval" else 1,
            autocast=self.autocast,
        )


def batch_config(args, setup: Setup) -> dict:
    """The batch entries of a result's config: only batches that change the numbers (BatchNorm
    statistics) are pinned; a measured evaluation batch is "auto", so that a rerun whose probe
    picks another size still resumes. bf16 autocast changes the numbers and is recorded."""
    bn = getattr(args, "bn", "eval")
    config = {"batch_size": setup.batch_size if bn == "train" else (args.batch_size or "auto")}
    if bn in ("recalibrate", "recompute"):
        config["bn_batch_size"] = setup.bn_batch_size
    if setup.autocast is not None:
        config["autocast"] = str(setup.autocast).removeprefix("torch.")
    return config


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

    if out is None:
        folder = Path("analyses")
        folder.mkdir(exist_ok=True)
        out = folder / f"{stem}.h5"
    return store.check_output_path(out)


def grid_values(spec):
    """The grid of a spec, with values within rounding of 0 and 1 snapped to exactly 0 and 1
    (the checkpoint itself, and B in a between plane, are then evaluated exactly)."""
    import numpy as np

    values = np.asarray(spec.values(), dtype=np.float64)
    tol = 1e-9 * max(abs(spec.start), abs(spec.stop), 1.0)
    for anchor in (0.0, 1.0):
        values[np.abs(values - anchor) < tol] = anchor
    return values


def load_setup(
    args, paths, splits, *, recalibrate: bool, bn_train: bool = False, stack: bool = False
) -> Setup:
    """Targets and data on the device, and the batch sizes: ``--batch-size``, else (unless
    ``bn_train``: batches define the statistics) measured on the centre model and cached
    (:mod:`landscape.batching`); ``stack`` also measures several grid points per pass."""
    import torch

    from landscape.cli.common import data_source_from_args, model_source_from_args
    from landscape.data import fixed_subset
    from landscape.devices import resolve_device, resolve_dtype
    from landscape.distributed import join
    from landscape.losses import make_loss
    from landscape.target import load_targets

    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    partition, device = join(device)  # torchrun: this rank's share; else one process
    targets, data = load_targets(
        paths, model_source_from_args(args), data_source_from_args(args), device, dtype
    )
    channels_last = bool(getattr(args, "channels_last", False))
    autocast = torch.bfloat16 if getattr(args, "bf16", False) else None

    def resident(x):  # inputs stay on the device for the whole job
        x = x.to(device=device, dtype=dtype)
        return (
            x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x
        )

    if channels_last:
        for target in targets:
            target.model.to(memory_format=torch.channels_last)
    subsets = {}
    for split in splits:
        x, y = data.split(split)
        x, y = fixed_subset(x, y, args.samples, SUBSET_SEED)
        subsets[split] = (resident(x), y.to(device))
    bn_inputs = None
    if recalibrate:
        if "train" in subsets:
            bn_inputs = subsets["train"][0]
        else:
            x, y = fixed_subset(*data.split("train"), args.samples, SUBSET_SEED)
            bn_inputs = resident(x)
    samples = next(iter(subsets.values()))[0].shape[0]
    loss_fn = make_loss(args.loss)
    # Where batches define BatchNorm statistics (--bn train, recalibration) the batch is part of
    # the result: --batch-size, else 500 (the default before sizes were measured).
    fixed = args.batch_size or min(500, max(v[0].shape[0] for v in subsets.values()))
    if args.batch_size or bn_train:
        return Setup(
            targets,
            data,
            subsets,
            loss_fn,
            fixed,
            samples,
            bn_inputs,
            autocast=autocast,
            partition=partition,
        )
    from landscape.surface.stacked import choose_evaluation

    # measured by the writer alone (no rank competing for the CPU) and taken by every rank, so
    # that all evaluate in the same steps
    choice = partition.broadcast(
        choose_evaluation(targets[0].model, loss_fn, subsets, stack=stack, autocast=autocast)
        if partition.is_writer
        else None
    )
    return Setup(
        targets,
        data,
        subsets,
        loss_fn,
        choice.batch_size,
        samples,
        bn_inputs,
        bn_batch_size=fixed,
        points_per_pass=choice.points,
        autocast=autocast,
        partition=partition,
    )


def check_same_parameters(reference, target) -> None:
    """Refuse a checkpoint whose parameters (names and shapes) differ from the reference's."""
    from landscape.errors import UserError

    a = {n: tuple(p.shape) for n, p in reference.model.named_parameters()}
    b = {n: tuple(p.shape) for n, p in target.model.named_parameters()}
    if a == b:
        return
    missing = [n for n in a if n not in b]
    extra = [n for n in b if n not in a]
    shapes = [n for n in a if n in b and a[n] != b[n]]
    parts = []
    if missing:
        parts.append(f"lacks {', '.join(missing[:3])}")
    if extra:
        parts.append(f"has extra {', '.join(extra[:3])}")
    if shapes:
        parts.append(
            f"differs in shape at {', '.join(f'{n} {b[n]} vs {a[n]}' for n in shapes[:3])}"
        )
    raise UserError(
        f"{target.path} ({target.arch}) has a different architecture from {reference.path} "
        f"({reference.arch}): it {'; '.join(parts)}"
    )
