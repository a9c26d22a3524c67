"""The surface analysis: loss and accuracy on a grid ``theta0 + x d1 (+ y d2)`` around a
checkpoint, saved periodically into ``surface/<name>/`` and resumed from it.

:func:`compute_surface` takes :class:`SurfaceOptions`, the loaded :class:`~landscape.analysis.
setup.Setup` (centre checkpoint first, then the PCA trajectory or the B of ``between``) and a
:class:`~landscape.parallel.Partition`; it spans the plane with a registered direction kind
(:data:`landscape.surface.directions.DIRECTION_KINDS`), evaluates a PCA plane's trajectory
checkpoints and their projections, then the grid, and returns the
:class:`~landscape.results.surface.Surface` it saved.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landscape.analysis.saving import OwnedPoints, PeriodicSaver, read_previous, write_new_group
from landscape.analysis.setup import Setup
from landscape.parallel import SINGLE, Partition
from landscape.progress import Reporter, cli_reporter
from landscape.results import Provenance
from landscape.results.surface import Surface, Trajectory
from landscape.surface import directions as dirs

log = logging.getLogger("landscape.surface")

AUTO_POINTS = 51  # grid points per axis of a PCA plane fitted around its trajectory


class PlaneError(ValueError):
    """The direction kind cannot span a plane here (identical checkpoints, a trajectory of one
    point, a missing engine); the message says why."""


@dataclass
class SurfaceOptions:
    """``x``/``y``: the grid (``y=None``: a 1-D slice; both None: a PCA plane's grid is fitted
    around its trajectory, :func:`fit_grid`). ``config``: every option that shaped the result
    (recorded; a rerun with the same config resumes)."""

    directions: str = "random"
    norm: str = "filter"
    ignore: str = "biasbn"
    bn: str = "eval"
    x: np.ndarray | None = None
    y: np.ndarray | None = None
    seed: int = 0
    dtype: str = "float32"
    save_every: float = 5.0
    config: dict[str, Any] = field(default_factory=dict)
    curvature: str = "hessian"  # the matrix whose eigenvectors span a hessian plane
    fisher_samples: int = 1  # labels per example of curvature "fisher-mc"
    loss: str = "cross-entropy"  # the loss's name (fisher-mc samples its distribution)


def snap_grid(values: np.ndarray) -> np.ndarray:
    """Grid values within rounding of 0 and 1 set to exactly 0 and 1 (the checkpoint itself, and
    B in a between plane, are then evaluated exactly)."""
    values = np.asarray(values, dtype=np.float64).copy()
    tol = 1e-9 * max(float(np.abs(values).max(initial=0.0)), 1.0)
    for anchor in (0.0, 1.0):
        values[np.abs(values - anchor) < tol] = anchor
    return values


def fit_grid(coordinates, points: int = AUTO_POINTS) -> np.ndarray:
    """An evenly spaced grid covering the centre and every trajectory coordinate with a margin
    of about 20%, placed so that 0 (the centre checkpoint) is one of its nodes."""
    lo, hi = min(float(np.min(coordinates)), 0.0), max(float(np.max(coordinates)), 0.0)
    pad = 0.2 * (hi - lo) if hi > lo else 1.0
    lo, hi = lo - pad, hi + pad
    step = (hi - lo) / max(points - 2, 1)  # one spare step to move a node onto 0
    start = -math.ceil(-lo / step - 1e-9) * step
    return snap_grid(np.linspace(start, start + (points - 1) * step, points))


def warn_trajectory_outside(trajectory: Trajectory, xs: np.ndarray, ys: np.ndarray | None) -> None:
    """Say which trajectory checkpoints a given grid leaves out, and the grid that fits."""
    x, y = np.asarray(trajectory.x), np.asarray(trajectory.y)
    inside = (x >= xs.min()) & (x <= xs.max())
    if ys is not None:
        inside &= (y >= ys.min()) & (y <= ys.max())
    if inside.all():
        return
    names = [str(c) for c, ok in zip(trajectory.checkpoint, inside) if not ok]
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


def span_plane(
    options: SurfaceOptions, setup: Setup, *, two_d: bool, reporter: Reporter
) -> dirs.Plane:
    """The plane of the registered direction kind ``options.directions``."""
    kind = dirs.DIRECTION_KINDS[options.directions]
    centre, others = setup.targets[0], setup.targets[1:]
    model = centre.model
    split = "train" if "train" in setup.splits else next(iter(setup.splits))
    x, y = setup.splits[split]  # the examples of a curvature (hessian plane)
    request = dirs.DirectionRequest(
        model=model,
        weights={n: p.detach() for n, p in model.named_parameters()},
        others=[{n: p.detach() for n, p in t.model.named_parameters()} for t in others],
        paths=[str(t.path) for t in setup.targets],
        seed=options.seed,
        norm=options.norm,
        ignore=options.ignore,
        two_d=two_d,
        loss_fn=setup.loss_fn,
        inputs=x,
        targets=y,
        batch_size=setup.batch_size,
        bn_mode="train" if options.bn == "train" else "eval",
        curvature=options.curvature,
        loss_name=options.loss,
        fisher_samples=options.fisher_samples,
        split=split,
    )
    try:
        if kind.phase is None:
            return kind.span(request)
        label = kind.phase.replace("{matrix}", dirs.CURVATURE_KINDS[request.curvature].title)
        with reporter.phase(label, unit="products") as phase:
            request.progress = phase
            return kind.span(request)
    except ValueError as exc:
        raise PlaneError(str(exc)) from exc
    except ImportError as exc:
        raise PlaneError("needs landscape.curvature, which is not installed") from exc


def new_surface(
    options: SurfaceOptions, setup: Setup, metric_names: list[str], partition: Partition
) -> tuple[Surface, dict[str, dict[str, torch.Tensor]]]:
    """A surface with nothing computed yet, and its directions as tensors."""
    from landscape.loading.loader import provenance

    started = time.monotonic()
    centre, others = setup.targets[0], setup.targets[1:]
    auto = options.x is None
    plane = span_plane(options, setup, two_d=auto or options.y is not None, reporter=cli_reporter())
    trajectory = None
    if plane.coordinates is not None:
        trajectory = Trajectory.empty(
            metric_names,
            x=plane.coordinates[:, 0].numpy(),
            y=plane.coordinates[:, 1].numpy(),
            epoch=np.array([np.nan if o.epoch is None else o.epoch for o in others], float),
            distance_to_plane=plane.distance_to_plane.numpy(),
            phase=[o.phase or "" for o in others],
            checkpoint=[str(o.path) for o in others],
        )
    xs, ys = (
        (options.x, options.y) if not auto else (fit_grid(trajectory.x), fit_grid(trajectory.y))
    )
    if trajectory is not None and not auto:
        warn_trajectory_outside(trajectory, xs, ys)
    shape = (xs.size,) if ys is None else (xs.size, ys.size)
    attrs = {k: np.asarray(v) if isinstance(v, list) else v for k, v in plane.attrs.items()}
    recorded = provenance(
        centre,
        split=",".join(setup.splits),
        samples=setup.samples,
        bn_mode=options.bn,
        dtype=options.dtype,
        seed=options.seed,
        seconds=time.monotonic() - started,
        config=options.config,
    )
    surface = Surface(
        provenance=Provenance(**recorded, **partition.provenance()),
        x=xs,
        y=ys,
        metrics={n: np.full(shape, np.nan) for n in metric_names},
        done=np.zeros(shape, dtype=bool),
        kind=options.directions,
        norm=options.norm,
        ignore=options.ignore,
        x_label=plane.labels[0],
        y_label=plane.labels[1] if ys is not None else None,
        directions={
            axis: {n: t.detach().cpu().numpy() for n, t in d.items()}
            for axis, d in plane.directions.items()
        },
        attrs=attrs,
        explained_variance_ratio=None
        if plane.explained_variance_ratio is None
        else np.asarray(plane.explained_variance_ratio),
        trajectory=trajectory,
    )
    return surface, plane.directions


def _grid_shape(options: SurfaceOptions) -> tuple[int, ...] | None:
    """The shape of the grid the options give (None: fitted to a trajectory, ``auto``)."""
    if options.x is None:
        return None
    return (options.x.size,) if options.y is None else (options.x.size, options.y.size)


def surface_group(out: Path, setup: Setup, base: str) -> str:
    """The group ``surface/<name>`` of ``out`` a surface around ``setup``'s centre checkpoint
    goes to (:func:`~landscape.analysis.saving.claim_grid_group`)."""
    from landscape.analysis.saving import claim_grid_group

    return claim_grid_group(out, "surface", base, [setup.targets[0].sha256], setup.partition)


def compute_surface(
    options: SurfaceOptions,
    setup: Setup,
    out: Path,
    group_path: str,
    *,
    partition: Partition = SINGLE,
    reporter: Reporter | None = None,
) -> Surface:
    """Compute (or finish) ``group_path`` of ``out``; see the module docstring."""
    from landscape.surface import SurfaceResult, evaluate_surface

    reporter = reporter or cli_reporter()
    centre = setup.targets[0]
    model = centre.model
    measure = setup.measure(options.bn)
    # the writer reads what an earlier run left and every process starts from the same copy
    surface = partition.broadcast(
        read_previous(
            out, group_path, centre.sha256, options.config, Surface.read, _grid_shape(options)
        )
        if partition.is_writer
        else None
    )
    resumed = surface is not None
    if resumed:
        directions = {
            axis: {n: torch.from_numpy(v) for n, v in d.items()}
            for axis, d in surface.directions.items()
        }
        log.info(
            "resuming %s:%s: %d of %d points done",
            out,
            group_path,
            int(surface.done.sum()),
            surface.done.size,
        )
    else:
        surface, directions = new_surface(options, setup, measure.names, partition)
        write_new_group(out, group_path, surface, partition)

    trajectory = surface.trajectory
    # The engines deal the points to the processes and gather every value to all of them;
    # these shares move what is finished into the result before each save.
    shares = [OwnedPoints(surface.metrics, surface.done)]
    if trajectory is not None:
        shares += [
            OwnedPoints(trajectory.metrics, trajectory.done),
            OwnedPoints(trajectory.projected, trajectory.projected_done),
        ]
    seconds0, started = surface.provenance.seconds or 0.0, time.monotonic()

    def before_save() -> None:
        for share in shares:
            share.sync()
        surface.provenance.seconds = seconds0 + time.monotonic() - started
        # what the points ran with (the batch may have been measured again: PaceCheck)
        surface.provenance.evaluation_batch = int(setup.batch_size)
        surface.provenance.points_per_pass = int(measure.points_per_pass)

    def finished() -> int:
        return int(surface.done.sum()) + (0 if trajectory is None else trajectory.finished)

    total = surface.done.size + (0 if trajectory is None else trajectory.size)
    saver = PeriodicSaver(
        out,
        options.save_every,
        group_path,
        finished,
        total,
        partition=partition,
        before_save=before_save,
    )
    if resumed:
        saver.claim()

    def write(f) -> None:
        surface.write_values(f[group_path])

    axes = [directions[k] for k in ("x", "y") if k in directions]
    try:
        if trajectory is not None and trajectory.finished < trajectory.size:
            _evaluate_trajectory(
                model, axes, measure, trajectory, setup, shares[1:], saver, write, reporter,
                partition,
            )  # fmt: skip
        grid = SurfaceResult(surface.x, surface.y, surface.metrics, shares[0].view, 0.0)
        size = "x".join(str(n) for n in surface.done.shape)
        with reporter.phase(
            f"surface {size}", surface.done.size, unit="points", initial=int(surface.done.sum())
        ) as phase:
            evaluate_surface(
                model,
                axes,
                measure,
                surface.x,
                surface.y,
                result=grid,
                on_save=lambda _: saver.save(write),
                save_every=options.save_every,
                progress=phase,
                partition=partition,
            )
    finally:
        for share in shares:  # every process ends with every value (the engines gathered them)
            share.sync()
        saver.finish(write)  # also after Ctrl-C: keep what is done
    return surface


def _evaluate_trajectory(
    model, axes, measure, trajectory, setup, shares, saver, write, reporter, partition=SINGLE
):
    """True metrics at the real checkpoints and at their projections onto the plane."""
    from landscape.surface.flat import preserved_state
    from landscape.surface.grid import PlaneWriter, evaluate_points, evaluate_states

    at_checkpoints, at_projections = shares
    states = [dict(t.model.state_dict()) for t in setup.targets[1:]]
    with reporter.phase(
        "trajectory checkpoints",
        trajectory.done.size,
        unit="points",
        initial=int(trajectory.done.sum()),
    ) as phase:
        evaluate_states(
            model,
            states,
            measure,
            metrics=trajectory.metrics,
            done=at_checkpoints.view,
            on_save=lambda: saver.save(write),
            progress=phase,
            partition=partition,
        )
    with preserved_state(model):
        plane = PlaneWriter(model, axes)
        coefficients = (
            list(zip(trajectory.x, trajectory.y))
            if len(axes) == 2
            else [(c,) for c in trajectory.x]
        )
        done = trajectory.projected_done
        with reporter.phase(
            "trajectory projections", done.size, unit="points", initial=int(done.sum())
        ) as phase:
            evaluate_points(
                lambda i: plane.write(coefficients[i]),
                lambda: measure(model),
                trajectory.projected,
                at_projections.view,
                on_save=lambda: saver.save(write),
                progress=phase,
                partition=partition,
            )
