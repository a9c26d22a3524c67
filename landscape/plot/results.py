"""Read result groups (docs/file-format.md, "Result files") into plain arrays for the figure
functions.

Figure functions take these dataclasses, never paths or h5py objects, so they work from a
notebook on numbers computed there. Everything is read eagerly and the file is closed again;
the potentially large ``directions`` and ``eigenvectors`` datasets are never read.
The names read here are those of docs/file-format.md.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from landscape import store
from landscape.errors import UserError
from landscape.results import interpolation as results_interpolation
from landscape.results import surface as results_surface
from landscape.results.interpolation import json_list

log = logging.getLogger(__name__)

METRICS = ("train_loss", "train_acc", "test_loss", "test_acc")


@dataclass
class Meta:
    """Provenance of one result group (the attrs every group carries)."""

    checkpoint: str | None = None
    sha256: str | None = None
    epoch: int | None = None
    phase: str | None = None
    arch: str | None = None
    split: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def checkpoint_name(self) -> str | None:
        return Path(self.checkpoint).stem if self.checkpoint else None

    @property
    def run(self) -> str | None:
        """The folder holding the checkpoint: checkpoints of one training run share it."""
        return Path(self.checkpoint).parent.name or None if self.checkpoint else None


@dataclass
class Trajectory:
    x: np.ndarray
    y: np.ndarray
    epoch: np.ndarray | None
    phase: list[str | None]


@dataclass
class Surface:
    """``surface/<name>``: values shaped (nx,) or (nx, ny) in 'ij' order, NaN where not done."""

    name: str
    x: np.ndarray
    y: np.ndarray | None
    metrics: dict[str, np.ndarray]
    done: np.ndarray
    x_label: str
    y_label: str | None
    meta: Meta
    explained_variance_ratio: np.ndarray | None = None
    trajectory: Trajectory | None = None

    @property
    def ndim(self) -> int:
        return 1 if self.y is None else 2

    @property
    def is_partial(self) -> bool:
        return not bool(np.all(self.done))


@dataclass
class Interpolation:
    """``interpolation/<name>``; a polyline through K+1 checkpoints has checkpoint k at α = k."""

    name: str
    alpha: np.ndarray
    metrics: dict[str, np.ndarray]
    a: str | None
    b: str | None
    barriers: dict[str, float]
    meta: Meta
    checkpoints: list[str] = field(default_factory=list)
    checkpoint_sha256s: list[str] = field(default_factory=list)
    epochs: list[int | None] = field(default_factory=list)
    phases: list[str | None] = field(default_factory=list)
    done: np.ndarray | None = None
    alpha_label: str | None = None

    @property
    def checkpoint_names(self) -> list[str]:
        paths = self.checkpoints or [self.a or "a", self.b or "b"]
        return [Path(p).stem for p in paths]

    @property
    def a_name(self) -> str:
        return Path(self.a).stem if self.a else "a"

    @property
    def b_name(self) -> str:
        return Path(self.b).stem if self.b else "b"


@dataclass
class BlockRecord:
    """One block of ``hessian/<ckpt>/blocks/`` (``landscape hessian --blocks``)."""

    name: str
    parameters: list[str]
    eigenvalues: np.ndarray
    trace: float | None
    trace_stderr: float | None
    density_grid: np.ndarray | None
    density_values: np.ndarray | None


@dataclass
class HessianRecord:
    name: str
    eigenvalues: np.ndarray
    trace: float | None
    trace_stderr: float | None
    density_grid: np.ndarray | None
    density_values: np.ndarray | None
    meta: Meta
    blocks: list[BlockRecord] = field(default_factory=list)


@dataclass
class SharpnessRecord:
    name: str
    measures: dict[str, np.ndarray]
    measure_attrs: dict[str, dict[str, Any]]
    meta: Meta


@dataclass
class Escape:
    name: str
    step: np.ndarray
    series: dict[
        str, np.ndarray
    ]  # distance, train_loss, train_acc, eigenvalue (NaN = not computed)
    growth_rate: float | None
    attrs: dict[str, Any]
    meta: Meta


@dataclass
class Experiment:
    """``experiment/<name>``: a ``summary`` table (one row per arm) and a ``runs`` table."""

    name: str
    attrs: dict[str, Any]
    summary: dict[str, np.ndarray]
    runs: dict[str, np.ndarray]
    verdicts: dict[str, np.ndarray] = field(default_factory=dict)  # one row per claim


@dataclass
class ResultFile:
    path: Path
    surfaces: list[Surface] = field(default_factory=list)
    interpolations: list[Interpolation] = field(default_factory=list)
    hessian: list[HessianRecord] = field(default_factory=list)
    sharpness: list[SharpnessRecord] = field(default_factory=list)
    escapes: list[Escape] = field(default_factory=list)
    experiments: list[Experiment] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def stem(self) -> str:
        return self.path.stem

    def is_empty(self) -> bool:
        return not (
            self.surfaces
            or self.interpolations
            or self.hessian
            or self.sharpness
            or self.escapes
            or self.experiments
        )


# --------------------------------------------------------------------------------------------
# small readers


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, (str, bytes)) and not value:
        return None
    try:
        number = float(np.asarray(value).reshape(-1)[0]) if np.ndim(value) else float(value)
    except (TypeError, ValueError, IndexError):
        return None
    return number if math.isfinite(number) else None


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode()
    if value is None:
        return None
    value = str(value)
    return value or None


def read_meta(group: h5py.Group) -> Meta:
    attrs = store.read_attrs(group)
    epoch = _number(attrs.get("epoch"))
    phase = _text(attrs.get("phase"))
    return Meta(
        checkpoint=_text(attrs.get("checkpoint")),
        sha256=_text(attrs.get("checkpoint_sha256")),
        epoch=int(epoch) if epoch is not None else None,
        phase=phase.lower() if phase else None,
        arch=_text(attrs.get("arch")),
        split=_text(attrs.get("split")),
        attrs=attrs,
    )


def _array(group: h5py.Group, name: str) -> np.ndarray | None:
    if name not in group or not isinstance(group[name], h5py.Dataset):
        return None
    return np.asarray(group[name][()], dtype=float)


def _strings(dataset: h5py.Dataset) -> list[str | None]:
    values = dataset[()]
    return [_text(v.decode() if isinstance(v, bytes) else v) for v in np.atleast_1d(values)]


def _as_fraction(values: np.ndarray) -> np.ndarray:
    """Accuracies are stored as fractions; a producer writing percent still plots right."""
    finite = values[np.isfinite(values)]
    if finite.size and finite.max() > 1.0 + 1e-9:
        return values / 100.0
    return values


def _metrics(stored: dict[str, np.ndarray], shape: tuple[int, ...], where: str) -> dict:
    out = {}
    for name in METRICS:
        if name not in stored:
            continue
        values = np.asarray(stored[name], dtype=float)
        if values.shape != shape:
            raise UserError(
                f"{where}/{name} has shape {values.shape}, expected {shape} from its axes "
                "('ij' order: (len(x), len(y))); the file does not follow the landscape layout"
            )
        out[name] = _as_fraction(values) if name.endswith("_acc") else values
    return out


# --------------------------------------------------------------------------------------------
# one reader per result kind: the result modules read, these check and prepare for drawing


def read_surface(group: h5py.Group) -> Surface:
    where = group.name.lstrip("/")
    if "x" not in group:
        raise UserError(
            f"{where} has no 'x' axis dataset; the file does not follow the landscape layout"
        )
    stored = results_surface.Surface.read(group, directions=False)
    x = np.asarray(stored.x, dtype=float)
    y = None if stored.y is None else np.asarray(stored.y, dtype=float)
    shape = (x.size,) if y is None else (x.size, y.size)
    metrics = _metrics(stored.metrics, shape, where)
    if not metrics:
        raise UserError(f"{where} holds none of {', '.join(METRICS)}")
    finite = np.all([np.isfinite(v) for v in metrics.values()], axis=0)
    if stored.done.shape != shape:
        raise UserError(f"{where}/done has shape {stored.done.shape}, expected {shape}")
    done = stored.done & finite  # a point marked done but NaN still cannot be drawn
    for name in metrics:  # never draw values of points that are not done
        metrics[name] = np.where(done, metrics[name], np.nan)

    evr = stored.explained_variance_ratio
    evr = None if evr is None else np.asarray(evr, dtype=float)
    trajectory = None
    if stored.trajectory is not None:
        t = stored.trajectory
        epoch = None if t.epoch is None else np.asarray(t.epoch, dtype=float)
        phase = [p or None for p in t.phase]
        trajectory = Trajectory(np.asarray(t.x, float), np.asarray(t.y, float), epoch, phase)
    pca = evr is not None or trajectory is not None
    x_default = "PC 1" if pca else "direction 1 (α)"
    y_default = "PC 2" if pca else "direction 2 (β)"
    if y is None:
        x_default = "PC 1" if pca else "step along direction (α)"
    x_label = stored.x_label or x_default
    y_label = (stored.y_label or y_default) if y is not None else None
    if evr is not None and evr.size >= 1 and "%" not in x_label:
        x_label = f"{x_label} ({100 * evr[0]:.1f}% var.)"
    if evr is not None and evr.size >= 2 and y is not None and "%" not in y_label:
        y_label = f"{y_label} ({100 * evr[1]:.1f}% var.)"
    if y is not None and 1 in shape and trajectory is None:
        # A grid one point wide is a 1D slice along its other axis; draw it as one.
        along_y = x.size == 1
        x, x_label = (y, y_label) if along_y else (x, x_label)
        metrics = {k: v.reshape(-1) for k, v in metrics.items()}
        done, y, y_label = done.reshape(-1), None, None
    return Surface(
        name=group.name.split("/")[-1],
        x=x,
        y=y,
        metrics=metrics,
        done=done,
        x_label=x_label,
        y_label=y_label,
        meta=read_meta(group),
        explained_variance_ratio=evr,
        trajectory=trajectory,
    )


def read_interpolation(group: h5py.Group) -> Interpolation:
    where = group.name.lstrip("/")
    if "alpha" not in group:
        raise UserError(
            f"{where} has no 'alpha' dataset; the file does not follow the landscape layout"
        )
    stored = results_interpolation.Interpolation.read(group)
    alpha = np.asarray(group["alpha"][()], dtype=float)
    metrics = _metrics(stored.metrics, alpha.shape, where)
    if not metrics:
        raise UserError(f"{where} holds none of {', '.join(METRICS)}")
    done = None
    if "done" in group and stored.done.shape == alpha.shape:
        done = stored.done
        for name in metrics:
            metrics[name] = np.where(done, metrics[name], np.nan)
    barriers = {f"barrier_{k}": v for k, v in stored.barriers.items() if math.isfinite(v)}
    label = group["alpha"].attrs.get("label")
    return Interpolation(
        name=group.name.split("/")[-1],
        alpha=alpha,
        metrics=metrics,
        a=stored.checkpoints[0] if stored.checkpoints else None,
        b=stored.checkpoints[-1] if stored.checkpoints else None,
        barriers=barriers,
        meta=read_meta(group),
        checkpoints=stored.checkpoints if len(stored.checkpoints) >= 2 else [],
        checkpoint_sha256s=[_text(c) for c in stored.checkpoint_sha256s],
        epochs=[int(e) if _number(e) is not None else None for e in stored.epochs],
        phases=[(_text(p) or "").lower() or None for p in stored.phases],
        done=done,
        alpha_label=_text(label),
    )


def _json_list(value: Any) -> list:
    if isinstance(value, np.ndarray):
        return [_text(v) for v in value.tolist()]
    return json_list(value)


def read_hessian(group: h5py.Group) -> HessianRecord:
    """The figure's view of a :class:`landscape.results.hessian.HessianResult`."""
    from landscape.results.hessian import HessianResult

    result = HessianResult.read(group)
    density = result.density
    return HessianRecord(
        name=group.name.split("/")[-1],
        eigenvalues=result.top.values if result.top is not None else np.empty(0),
        trace=_number(result.trace.value) if result.trace else None,
        trace_stderr=_number(result.trace.stderr) if result.trace else None,
        density_grid=density.grid if density else None,
        density_values=density.values if density else None,
        meta=read_meta(group),
        blocks=read_blocks(result),
    )


def read_blocks(result) -> list[BlockRecord]:
    """The figure's view of the blocks of a :class:`landscape.results.hessian.HessianResult`."""
    return [
        BlockRecord(
            name=block.name,
            parameters=list(block.parameter_names),
            eigenvalues=block.top.values if block.top is not None else np.empty(0),
            trace=_number(block.trace.value) if block.trace else None,
            trace_stderr=_number(block.trace.stderr) if block.trace else None,
            density_grid=block.density.grid if block.density else None,
            density_values=block.density.values if block.density else None,
        )
        for block in result.blocks.values()
    ]


def read_sharpness(group: h5py.Group) -> SharpnessRecord:
    """The figure's view of a :class:`landscape.results.sharpness.SharpnessResult`."""
    from landscape.results.sharpness import SharpnessResult

    result = SharpnessResult.read(group)
    measures = {name: np.asarray(m.value, dtype=float) for name, m in result.measures.items()}
    measure_attrs = {name: store.read_attrs(group[name]) for name in result.measures}
    return SharpnessRecord(group.name.split("/")[-1], measures, measure_attrs, read_meta(group))


def read_escape(group: h5py.Group) -> Escape:
    """The figure's view of a :class:`landscape.results.escape.EscapeCurve`."""
    from landscape.results.escape import EscapeCurve

    try:
        curve = EscapeCurve.read(group)
    except ValueError as exc:
        raise UserError(f"{exc}; the file does not follow the landscape layout") from exc
    series = {}
    for name in ("distance", "train_loss", "train_acc", "eigenvalue"):
        values = getattr(curve, name)
        if name in group and values.shape == curve.step.shape:
            series[name] = _as_fraction(values) if name.endswith("_acc") else values
    return Escape(
        group.name.split("/")[-1],
        curve.step,
        series,
        _number(curve.growth_rate),
        store.read_attrs(group),
        read_meta(group),
    )


def _columns(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Table rows as columns: strings as object arrays, numbers as floats."""
    out = {}
    for name in dict.fromkeys(k for row in rows for k in row):
        values = [row.get(name) for row in rows]
        if all(isinstance(v, str) for v in values):
            out[name] = np.array(values, dtype=object)
        elif all(isinstance(v, (int, float, bool)) for v in values):
            out[name] = np.asarray(values, dtype=float)
    return out


def read_experiment(group: h5py.Group) -> Experiment | None:
    """The figure's view of a :class:`landscape.results.experiment.ExperimentResult`; only
    experiments with a summary table are plotted (others are skipped)."""
    from landscape.results.experiment import ExperimentResult

    result = ExperimentResult.read(group)
    if not result.summary:
        return None
    return Experiment(
        group.name.split("/")[-1],
        store.read_attrs(group),
        _columns(result.summary),
        _columns(result.runs),
        _columns(result.verdicts),
    )


READERS = {
    "surface": read_surface,
    "interpolation": read_interpolation,
    "hessian": read_hessian,
    "sharpness": read_sharpness,
    "escape": read_escape,
    "experiment": read_experiment,
}


def read_result_file(path: str | Path) -> ResultFile:
    """Every result in ``path``; UserError if it is not a result file or holds none."""
    path = Path(path)
    result = ResultFile(path)
    with store.open_result_file(path) as f:
        for kind, name in store.list_results(f):
            group = f[kind][name]
            if kind not in READERS or not isinstance(group, h5py.Group):
                result.skipped.append(f"{kind}/{name}")
                continue
            record = READERS[kind](group)
            if record is None:
                result.skipped.append(f"{kind}/{name}")
                continue
            {
                "surface": result.surfaces,
                "interpolation": result.interpolations,
                "hessian": result.hessian,
                "sharpness": result.sharpness,
                "escape": result.escapes,
                "experiment": result.experiments,
            }[kind].append(record)
    if result.skipped:
        log.info("%s: not plotted (no figure for these yet): %s", path, ", ".join(result.skipped))
    if result.is_empty():
        kinds = ", ".join(f"{k}/" for k in READERS)
        raise UserError(f"{path} holds no landscape results to plot (looked for groups {kinds})")
    return result


# --------------------------------------------------------------------------------------------
# training logs


@dataclass
class TrainingLog:
    """``checkpoints/<run>/metrics.jsonl``: one row per epoch (the last line wins after a
    resume)."""

    run: str
    path: Path
    epoch: np.ndarray
    phase: list[str | None]
    columns: dict[str, np.ndarray]

    def switch_epoch(self) -> float | None:
        return switch_epoch(self.epoch, self.phase)


def read_training_log(run_dir: str | Path) -> TrainingLog:
    run_dir = Path(run_dir)
    path = run_dir / "metrics.jsonl" if run_dir.is_dir() else run_dir
    if not path.is_file():
        raise UserError(
            f"{run_dir} has no metrics.jsonl; give a run folder written by 'landscape train'"
        )
    rows: dict[int, dict] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            log.warning("%s:%d: not JSON, skipped (cut short by a kill?)", path, number)
            continue
        if isinstance(row, dict) and _number(row.get("epoch")) is not None:
            rows[int(_number(row["epoch"]))] = row
    if not rows:
        raise UserError(f"{path} holds no epoch records; train for at least one epoch first")
    epochs = sorted(rows)
    keys = [
        k
        for k in ("train_loss", "test_loss", "train_acc", "test_acc", "lr", "seconds")
        if any(k in rows[e] for e in epochs)
    ]
    columns = {}
    for key in keys:
        values = np.array(
            [
                _number(rows[e].get(key)) if _number(rows[e].get(key)) is not None else np.nan
                for e in epochs
            ]
        )
        columns[key] = _as_fraction(values) if key.endswith("_acc") else values
    phases = [(_text(rows[e].get("phase")) or "").lower() or None for e in epochs]
    run = path.parent.name if path.name == "metrics.jsonl" else path.stem
    return TrainingLog(run, path, np.array(epochs, dtype=float), phases, columns)


def switch_epoch(epochs, phases) -> float | None:
    """The epoch after which SAM took over: the last SGD epoch before the first SAM one.

    ``epoch`` counts completed epochs, so a checkpoint ``epoch-080-sgd`` followed by
    ``epoch-081-sam`` switched at 80. With gaps between checkpoints the last known SGD
    epoch is used (the switch happened at or after it).
    """
    pairs = sorted(
        (float(e), p) for e, p in zip(epochs, phases) if e is not None and np.isfinite(e)
    )
    first_sam = next((e for e, p in pairs if p == "sam"), None)
    if first_sam is None:
        return None
    before = [e for e, p in pairs if p == "sgd" and e < first_sam]
    if before:
        return max(before)
    return first_sam - 1 if any(p == "sgd" for _, p in pairs) else None
