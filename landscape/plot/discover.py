"""Walk result files and run folders and list the figures to make, each named after its result.

A figure job is built lazily (``job.build()`` returns the Figure), so a caller can filter by
kind, render to files (``landscape plot``) or to memory (``landscape report``).
Names: ``<source>-<kind>-<result>[-<what>]`` where source is the file stem or run folder name;
comparisons across sources are ``compare-<kind>``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from landscape.errors import UserError
from landscape.plot import (
    FIGURE_KINDS,
    compare,
    escape,
    experiment,
    hessian,
    interpolation,
    sharpness,
    surface1d,
    surface2d,
)
from landscape.plot.results import ResultFile, TrainingLog, read_result_file, read_training_log
from landscape.registry import RESULT_KINDS, resolve

LOSSES = ("train_loss", "test_loss")
ACCURACIES = ("train_acc", "test_acc")

Source = ResultFile | TrainingLog


@dataclass(frozen=True)
class FigureJob:
    name: str
    kind: str
    caption: str
    build: Callable[[], Figure]


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "figure"


def parse_only(text: str | None) -> set[str] | None:
    """``--only surface,hessian`` -> {"surface", "hessian"}; else UserError listing the kinds."""
    if text is None:
        return None
    kinds = {part.strip().lower() for part in text.split(",") if part.strip()}
    unknown = sorted(kinds - set(FIGURE_KINDS))
    if unknown or not kinds:
        raise UserError(
            f"unknown --only kind {', '.join(unknown) or repr(text)}; "
            f"choose from {', '.join(FIGURE_KINDS)}"
        )
    return kinds


RUN_MARKER = "metrics.jsonl"  # what makes a folder a training run (landscape train)
RESULT_SUFFIXES = (".h5", ".hdf5")
SEARCH_DEPTH = 3  # folder of experiments / experiment / checkpoints / run


def expand_inputs(paths: Sequence[str | Path]) -> list[Path]:
    """Files and run folders as given; any other folder stands for what it holds.

    A folder without ``metrics.jsonl`` -- the ``--out`` folder of ``landscape train`` (run
    folders), an experiment folder (``result.h5`` and ``checkpoints/<run>/``), or a folder of
    those -- is replaced by its result files and run folders, searched up to
    ``SEARCH_DEPTH`` levels down, in sorted order. UserError when it holds none.
    """
    out: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise UserError(
                f"{path} does not exist; give result files (.h5) or run folders (checkpoints/RUN)"
            )
        if not path.is_dir():
            out.append(path)
            continue
        if (path / RUN_MARKER).is_file():
            out += _run_folder(path)
            continue
        found = _contents(path, SEARCH_DEPTH)
        if not found:
            raise UserError(
                f"{path} has no {RUN_MARKER} and holds no run folders, result files (.h5) or "
                "experiment folders; give result files or run folders (checkpoints/RUN)"
            )
        out += found
    return list(dict.fromkeys(out))


def _run_folder(folder: Path) -> list[Path]:
    """A run folder, and the result files inside it (``track.h5`` of ``train --track``)."""
    inside = sorted(c for c in folder.iterdir() if c.is_file() and c.suffix in RESULT_SUFFIXES)
    return [folder, *inside]


def _contents(folder: Path, depth: int) -> list[Path]:
    if (folder / RUN_MARKER).is_file():
        return _run_folder(folder)
    if depth == 0:
        return []
    children = sorted(folder.iterdir())
    found = [c for c in children if c.is_file() and c.suffix in RESULT_SUFFIXES]
    for child in (c for c in children if c.is_dir() and not c.name.startswith(".")):
        found += _contents(child, depth - 1)
    return found


def load_source(path: str | Path) -> Source:
    """A result file, or a run folder (or its metrics.jsonl) for training curves."""
    path = Path(path)
    if not path.exists():
        raise UserError(
            f"{path} does not exist; give result files (.h5) or run folders (checkpoints/RUN)"
        )
    if path.is_dir() or path.name.endswith(".jsonl"):
        return read_training_log(path)
    return read_result_file(path)


def source_label(source: Source) -> str:
    return source.run if isinstance(source, TrainingLog) else source.stem


def _job(jobs: list, name: str, kind: str, caption: str, build: Callable[[], Figure]) -> None:
    jobs.append(_figure(name, kind, caption, build))


def _figure(name: str, kind: str, caption: str, build: Callable[[], Figure]) -> FigureJob:
    return FigureJob(safe_name(name), kind, caption, build)


QUANTITY_WORDS = {
    "train_loss": "training loss",
    "test_loss": "test loss",
    "train_acc": "training accuracy",
    "test_acc": "test accuracy",
}
PLANE_WORDS = {
    "random": "a random filter-normalised plane",
    "pca": "the PCA plane of the training trajectory",
    "hessian": "the plane of the top two Hessian eigenvectors",
    "between": "the plane through two solutions",
}


def _checkpoint_words(meta) -> str:
    """``epoch-060-sam of run digits-...``: the checkpoint and its run, as a reader names them."""
    name = meta.checkpoint_name or "the checkpoint"
    return f"{name} of run {meta.run}" if meta.run else name


def _plane_words(s) -> str:
    directions = str(s.meta.attrs.get("directions", ""))
    if s.ndim == 1:
        return f"a 1-D slice ({directions or 'random'} direction)"
    return PLANE_WORDS.get(directions, "a 2-D plane")


def figures_for(source: Source, prefix: str | None = None) -> list[FigureJob]:
    """Every figure one source gives, in a stable order: a run's training curves; a result
    file's figures kind by kind, in the order of :data:`landscape.registry.RESULT_KINDS`,
    each kind's ``figures`` function on its records."""
    prefix = prefix or source_label(source)
    jobs: list[FigureJob] = []
    if isinstance(source, TrainingLog):
        _job(
            jobs,
            f"{prefix}-training",
            "training",
            f"Training curves of run {source.run}.",
            lambda source=source: _training(source),
        )
        return jobs
    for kind, spec in RESULT_KINDS.items():
        records = source.records.get(kind)
        if records and spec.figures is not None:
            jobs.extend(resolve(spec.figures)(records, prefix))
    return jobs


# Default arguments bind each lambda to its own records (closures would see the last ones).


def surface_figures(surfaces: list, prefix: str) -> Iterator[FigureJob]:
    """Slices, contours, colour maps and 3-D views of each surface."""
    for s in surfaces:
        base = f"{prefix}-surface-{s.name}"
        where = f"{_plane_words(s)} around {_checkpoint_words(s.meta)}"
        if s.ndim == 1:
            yield _figure(
                f"{base}-slice",
                "surface",
                f"Loss and accuracy along {where}.",
                lambda s=s: surface1d.plot_slice_1d(s),
            )
            continue
        for metric in (m for m in LOSSES if m in s.metrics):
            words = QUANTITY_WORDS.get(metric, metric)
            yield _figure(
                f"{base}-contour-{metric}",
                "surface",
                f"Contour lines of the {words} on {where}.",
                lambda s=s, m=metric: surface2d.plot_contour(s, m),
            )
            yield _figure(
                f"{base}-filled-{metric}",
                "surface",
                f"The {words} on {where}, as a colour map.",
                lambda s=s, m=metric: surface2d.plot_filled(s, m),
            )
            yield _figure(
                f"{base}-3d-{metric}",
                "surface",
                f"The {words} on {where}, in 3-D.",
                lambda s=s, m=metric: surface2d.plot_surface_3d(s, m),
            )
        for metric in (m for m in ACCURACIES if m in s.metrics):
            words = QUANTITY_WORDS.get(metric, metric)
            yield _figure(
                f"{base}-filled-{metric}",
                "surface",
                f"The {words} on {where}, as a colour map.",
                lambda s=s, m=metric: surface2d.plot_filled(s, m),
            )


def interpolation_figures(interpolations: list, prefix: str) -> Iterator[FigureJob]:
    """One figure per interpolation: loss and error along the line, with the barriers."""
    for it in interpolations:
        yield _figure(
            f"{prefix}-interpolation-{it.name}",
            "interpolation",
            f"Loss and error on the straight line from {it.a_name} to {it.b_name}"
            + (f" (run {it.meta.run})" if it.meta.run else "")
            + ", with the barrier heights.",
            lambda it=it: interpolation.plot_interpolation(it),
        )


def hessian_figures(hess: list, prefix: str) -> Iterator[FigureJob]:
    """Eigenvalues (against epoch where there are several), per-block spectra, densities."""
    if hessian.has_epoch_series(hess):
        yield _figure(
            f"{prefix}-hessian-epochs",
            "hessian",
            "Top Hessian eigenvalues and trace against epoch.",
            lambda hess=hess: hessian.plot_hessian_vs_epoch(hessian.group_by_run(hess)),
        )
    else:
        yield _figure(
            f"{prefix}-hessian-topk",
            "hessian",
            "Top Hessian eigenvalues.",
            lambda hess=hess: hessian.plot_top_eigenvalues(hess),
        )
    for r in (r for r in hess if r.blocks):
        yield _figure(
            f"{prefix}-hessian-blocks-{r.name}",
            "hessian",
            f"Per-block spectra of {_checkpoint_words(r.meta)}: the largest eigenvalue, trace "
            "and spectral density of each diagonal block.",
            lambda r=r: hessian.plot_blocks(r),
        )
    dense = [r for r in hess if r.density_grid is not None]
    if len(dense) > 1:
        yield _figure(
            f"{prefix}-hessian-density",
            "hessian",
            "Spectral densities of all checkpoints.",
            lambda dense=dense: hessian.plot_density(dense),
        )
    for r in dense:
        yield _figure(
            f"{prefix}-hessian-density-{r.name}",
            "hessian",
            f"Hessian spectral density of {_checkpoint_words(r.meta)}, with its top eigenvalues.",
            lambda r=r: hessian.plot_density([r]),
        )


def sharpness_figures(sharp: list, prefix: str) -> Iterator[FigureJob]:
    """The scalar measures per checkpoint, and each measure with a curve."""
    if sharpness.scalar_measures(sharp):
        yield _figure(
            f"{prefix}-sharpness-measures",
            "sharpness",
            "Sharpness measures per checkpoint.",
            lambda sharp=sharp: sharpness.plot_sharpness_measures(sharp),
        )
    for measure in sharpness.curve_measures(sharp):
        yield _figure(
            f"{prefix}-sharpness-{measure}",
            "sharpness",
            f"Sharpness measure {measure}.",
            lambda m=measure, sharp=sharp: sharpness.plot_sharpness_curve(sharp, m),
        )


def escape_figures(escapes: list, prefix: str) -> Iterator[FigureJob]:
    """One figure per escape curve: distance, loss and top eigenvalue per SAM step."""
    for e in escapes:
        yield _figure(
            f"{prefix}-escape-{e.name}",
            "escape",
            f"SAM steps from {_checkpoint_words(e.meta)}: "
            "distance travelled, loss and top eigenvalue.",
            lambda e=e: escape.plot_escape(e),
        )


def track_figures(tracks: list, prefix: str) -> Iterator[FigureJob]:
    """One figure per track: each measure against the training step (with 2/lr on lambda1)."""
    from landscape.plot import track

    for t in tracks:
        yield _figure(
            f"{prefix}-track-{t.name}",
            "track",
            f"Sharpness along training ({t.name}) against the training step"
            + (", with 2/lr" if track.stability_line(t.result) is not None else "")
            + ".",
            lambda t=t: track.plot_track(t),
        )


def experiment_figures(experiments: list, prefix: str) -> Iterator[FigureJob]:
    """The late-SAM summary and its dose-response, where the tables hold them."""
    for x in experiments:
        if experiment.panels_present(x):
            yield _figure(
                f"{prefix}-experiment-{x.name}",
                "experiment",
                f"Experiment {x.name}: test error and sharpness against the SAM start epoch.",
                lambda x=x: experiment.plot_late_sam_summary(x),
            )
        if experiment.gap_panels_present(x):
            yield _figure(
                f"{prefix}-experiment-{x.name}-dose-response",
                "experiment",
                f"Experiment {x.name}: share of the SGD → full-SAM gap closed against SAM steps.",
                lambda x=x: experiment.plot_dose_response(x),
            )


def _training(log: TrainingLog) -> Figure:
    from landscape.plot.training import plot_training

    return plot_training(log)


def comparison_figures(sources: Sequence[Source]) -> list[FigureJob]:
    """Figures that put several sources on one axis; none for a single source."""
    if len(sources) < 2:
        return []
    labels = _unique_labels(sources)
    jobs: list[FigureJob] = []
    results = [s if isinstance(s, ResultFile) else None for s in sources]

    def from_files(attribute: str, keep=lambda r: True) -> list[tuple[str, object]]:
        picked = [
            (i, s)
            for i, s in enumerate(results)
            if s is not None and any(keep(r) for r in getattr(s, attribute))
        ]
        if len(picked) < 2:
            return []
        out = []
        for i, s in picked:
            records = [r for r in getattr(s, attribute) if keep(r)]
            for r in records:
                out.append((labels[i] if len(records) == 1 else f"{labels[i]}: {r.name}", r))
        return out

    slices = from_files("surfaces", lambda s: s.ndim == 1)
    if slices:
        _job(
            jobs,
            "compare-surface1d",
            "compare",
            "1D slices compared.",
            lambda: compare.plot_compare_slices(slices),
        )
    interps = from_files("interpolations")
    if interps:
        _job(
            jobs,
            "compare-interpolation",
            "compare",
            "Interpolation curves compared.",
            lambda: compare.plot_compare_interpolations(interps),
        )
    series = [
        (labels[i], s.hessian)
        for i, s in enumerate(results)
        if s is not None and hessian.has_epoch_series(s.hessian)
    ]
    if len(series) >= 2:
        _job(
            jobs,
            "compare-hessian",
            "compare",
            "Hessian spectra during training compared.",
            lambda: compare.plot_compare_hessian(series),
        )
    escapes = from_files("escapes")
    if escapes:
        _job(
            jobs,
            "compare-escape",
            "compare",
            "Escape distances compared.",
            lambda: compare.plot_compare_escape(escapes),
        )
    logs = [(labels[i], s) for i, s in enumerate(sources) if isinstance(s, TrainingLog)]
    if len(logs) >= 2:
        _job(
            jobs,
            "compare-training",
            "compare",
            "Training runs compared.",
            lambda: compare.plot_compare_training(logs),
        )
    return jobs


def _unique_labels(sources: Sequence[Source]) -> dict[int, str]:
    labels = {i: source_label(s) for i, s in enumerate(sources)}
    for i, s in enumerate(sources):
        if list(labels.values()).count(labels[i]) > 1:
            path = s.path.parent if isinstance(s, TrainingLog) else s.path
            labels[i] = f"{path.parent.name}/{labels[i]}"
    return labels


def plan(
    paths: Sequence[str | Path], only: set[str] | None = None
) -> tuple[list[Source], list[FigureJob]]:
    """Read every input (UserError on the first bad one) and list the figures, unique names.
    Folders of runs and experiment folders stand for their contents (:func:`expand_inputs`)."""
    sources = [load_source(p) for p in expand_inputs(paths)]
    labels = _unique_labels(sources)
    jobs = [job for i, s in enumerate(sources) for job in figures_for(s, labels[i])]
    jobs += comparison_figures(sources)
    if only is not None:
        jobs = [job for job in jobs if job.kind in only]
    seen: dict[str, int] = {}
    unique = []
    for job in jobs:  # two inputs with the same name must not overwrite each other's figures
        count = seen.get(job.name, 0)
        seen[job.name] = count + 1
        unique.append(
            job
            if count == 0
            else FigureJob(f"{job.name}-{count + 1}", job.kind, job.caption, job.build)
        )
    return sources, unique
