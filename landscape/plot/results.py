"""Read result groups (docs/file-format.md, "Result files") into plain arrays for the figure functions.

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


def _metrics(group: h5py.Group, shape: tuple[int, ...], where: str) -> dict[str, np.ndarray]:
    out = {}
    for name in METRICS:
        values = _array(group, name)
        if values is None:
            continue
        if values.shape != shape:
            raise UserError(
                f"{where}/{name} has shape {values.shape}, expected {shape} from its axes "
                "('ij' order: (len(x), len(y))); the file does not follow the landscape layout"
            )
        out[name] = _as_fraction(values) if name.endswith("_acc") else values
    return out


def _axis_label(dataset: h5py.Dataset, default: str) -> str:
    label = _text(dataset.attrs.get("label"))
    return label or default


# --------------------------------------------------------------------------------------------
# one reader per result kind


def read_surface(group: h5py.Group) -> Surface:
    where = group.name.lstrip("/")
    if "x" not in group:
        raise UserError(
            f"{where} has no 'x' axis dataset; the file does not follow the landscape layout"
        )
    x = np.asarray(group["x"][()], dtype=float)
    y = np.asarray(group["y"][()], dtype=float) if "y" in group else None
    shape = (x.size,) if y is None else (x.size, y.size)
    metrics = _metrics(group, shape, where)
    if not metrics:
        raise UserError(f"{where} holds none of {', '.join(METRICS)}")
    finite = np.all([np.isfinite(v) for v in metrics.values()], axis=0)
    if "done" in group:
        done = np.asarray(group["done"][()], dtype=bool)
        if done.shape != shape:
            raise UserError(f"{where}/done has shape {done.shape}, expected {shape}")
        done = done & finite  # a point marked done but NaN still cannot be drawn
    else:
        done = finite
    for name in metrics:  # never draw values of points that are not done
        metrics[name] = np.where(done, metrics[name], np.nan)

    evr = _array(group, "explained_variance_ratio")
    trajectory = None
    if "trajectory" in group and "x" in group["trajectory"] and "y" in group["trajectory"]:
        t = group["trajectory"]
        epoch = _array(t, "epoch")
        tx = np.asarray(t["x"][()], dtype=float)
        phase = _strings(t["phase"]) if "phase" in t else [None] * tx.size
        trajectory = Trajectory(tx, np.asarray(t["y"][()], dtype=float), epoch, phase)
    pca = evr is not None or trajectory is not None
    x_default = "PC 1" if pca else "direction 1 (α)"
    y_default = "PC 2" if pca else "direction 2 (β)"
    if y is None:
        x_default = "PC 1" if pca else "step along direction (α)"
    x_label = _axis_label(group["x"], x_default)
    y_label = _axis_label(group["y"], y_default) if y is not None else None
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
    alpha = np.asarray(group["alpha"][()], dtype=float)
    metrics = _metrics(group, alpha.shape, where)
    if not metrics:
        raise UserError(f"{where} holds none of {', '.join(METRICS)}")
    done = None
    if "done" in group and group["done"].shape == alpha.shape:
        done = np.asarray(group["done"][()], dtype=bool)
        for name in metrics:
            metrics[name] = np.where(done, metrics[name], np.nan)
    attrs = store.read_attrs(group)
    barriers = {}
    for key, value in attrs.items():
        if key.startswith("barrier_"):
            number = _number(value)
            if number is not None:
                barriers[key] = number
    checkpoints = _json_list(attrs.get("checkpoints"))
    return Interpolation(
        name=group.name.split("/")[-1],
        alpha=alpha,
        metrics=metrics,
        a=_text(attrs.get("a")),
        b=_text(attrs.get("b")),
        barriers=barriers,
        meta=read_meta(group),
        checkpoints=[str(c) for c in checkpoints] if len(checkpoints) >= 2 else [],
        checkpoint_sha256s=[_text(c) for c in _json_list(attrs.get("checkpoint_sha256s"))],
        epochs=[
            int(e) if _number(e) is not None else None for e in _json_list(attrs.get("epochs"))
        ],
        phases=[(_text(p) or "").lower() or None for p in _json_list(attrs.get("phases"))],
        done=done,
        alpha_label=_text(group["alpha"].attrs.get("label")),
    )


def _json_list(value: Any) -> list:
    if isinstance(value, str) and value.startswith("["):
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError:
            return []
        return decoded if isinstance(decoded, list) else []
    if isinstance(value, np.ndarray):
        return [_text(v) for v in value.tolist()]
    return []


def _density(group: h5py.Group) -> tuple[np.ndarray | None, np.ndarray | None]:
    if "density" in group and "grid" in group["density"] and "values" in group["density"]:
        grid = np.asarray(group["density/grid"][()], dtype=float)
        return grid, np.asarray(group["density/values"][()], dtype=float)
    return None, None


def _json_list(value: Any) -> list:
    """A list attribute (:func:`landscape.store.set_attrs` writes lists as JSON)."""
    try:
        parsed = json.loads(_text(value) or "[]")
    except ValueError:
        return []
    return parsed if isinstance(parsed, list) else []


def read_blocks(group: h5py.Group) -> list[BlockRecord]:
    """The blocks of a hessian group, in the order they were written."""
    if "blocks" not in group:
        return []
    folder = group["blocks"]
    order = _json_list(folder.attrs.get("order")) or list(folder)
    records = []
    for key in order:
        if key not in folder:
            continue
        block = folder[key]
        eigenvalues = _array(block, "eigenvalues")
        grid, values = _density(block)
        names = _json_list(block.attrs.get("parameter_names"))
        records.append(
            BlockRecord(
                name=_text(block.attrs.get("name", key)) or key,
                parameters=[str(n) for n in names],
                eigenvalues=np.atleast_1d(eigenvalues) if eigenvalues is not None else np.empty(0),
                trace=_number(_array(block, "trace")),
                trace_stderr=_number(_array(block, "trace_stderr")),
                density_grid=grid,
                density_values=values,
            )
        )
    return records


def read_hessian(group: h5py.Group) -> HessianRecord:
    eigenvalues = _array(group, "eigenvalues")
    grid, values = _density(group)
    return HessianRecord(
        name=group.name.split("/")[-1],
        eigenvalues=np.atleast_1d(eigenvalues) if eigenvalues is not None else np.empty(0),
        trace=_number(_array(group, "trace")),
        trace_stderr=_number(_array(group, "trace_stderr")),
        density_grid=grid,
        density_values=values,
        meta=read_meta(group),
        blocks=read_blocks(group),
    )


def read_sharpness(group: h5py.Group) -> SharpnessRecord:
    measures, measure_attrs = {}, {}
    for name, item in group.items():
        if isinstance(item, h5py.Dataset) and np.issubdtype(item.dtype, np.number):
            measures[name] = np.asarray(item[()], dtype=float)
            measure_attrs[name] = store.read_attrs(item)
    return SharpnessRecord(group.name.split("/")[-1], measures, measure_attrs, read_meta(group))


def read_escape(group: h5py.Group) -> Escape:
    where = group.name.lstrip("/")
    if "step" not in group:
        raise UserError(
            f"{where} has no 'step' dataset; the file does not follow the landscape layout"
        )
    step = np.asarray(group["step"][()], dtype=float)
    series = {}
    for name in ("distance", "train_loss", "train_acc", "eigenvalue"):
        values = _array(group, name)
        if values is not None and values.shape == step.shape:
            series[name] = _as_fraction(values) if name.endswith("_acc") else values
    attrs = store.read_attrs(group)
    return Escape(
        group.name.split("/")[-1],
        step,
        series,
        _number(attrs.get("growth_rate")),
        attrs,
        read_meta(group),
    )


def _table(group: h5py.Group) -> dict[str, np.ndarray]:
    out = {}
    for name, item in group.items():
        if isinstance(item, h5py.Dataset) and item.ndim == 1:
            values = item[()]
            if values.dtype.kind in "SO":
                out[name] = np.array([_text(v) or "" for v in values], dtype=object)
            elif values.dtype.kind in "biuf":
                out[name] = values.astype(float)
    return out


def read_experiment(group: h5py.Group) -> Experiment | None:
    """Only experiments with a summary table are plotted (others are skipped)."""
    if "summary" not in group or not isinstance(group["summary"], h5py.Group):
        return None
    runs = (
        _table(group["runs"]) if "runs" in group and isinstance(group["runs"], h5py.Group) else {}
    )
    return Experiment(
        group.name.split("/")[-1], store.read_attrs(group), _table(group["summary"]), runs
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
    """``checkpoints/<run>/metrics.jsonl``: one row per epoch (the last line wins after a resume)."""

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
