"""One self-contained static HTML page: every figure (PNG, base64-embedded, so the page needs no
network and no neighbouring files) and tables of the headline numbers per checkpoint
(epoch, phase, test accuracy, λ1, trace, sharpness), per interpolation (barrier heights),
per escape run and per training run.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from landscape import __version__
from landscape.plot import style
from landscape.plot.discover import FigureJob, Source
from landscape.plot.results import Experiment, Meta, ResultFile, Surface, TrainingLog

log = logging.getLogger(__name__)

REPORT_NAME = "report.html"


@dataclass
class CheckpointRow:
    checkpoint: str  # the stem, as shown
    path: str | None = None
    epoch: int | None = None
    phase: str | None = None
    test_acc: float | None = None
    test_acc_source: str | None = None
    lambda1: float | None = None
    trace: float | None = None
    trace_stderr: float | None = None
    sharpness: dict[str, float] = field(default_factory=dict)


def fmt(value: float | None, digits: int = 4) -> str:
    """Numbers as the tables print them (tests look for exactly this text)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}g}"


# Where a checkpoint's test accuracy comes from, most trustworthy first: the training log
# evaluates the full test set; surfaces and interpolations may use a subset.
ACC_RANK = {"training log": 0, "surface centre": 1, "interpolation end": 2}


class _Rows:
    """Rows keyed by the checkpoint's SHA-256 when known (one checkpoint named by two paths is
    one row), else by its path, else by the result name."""

    def __init__(self) -> None:
        self.rows: dict[str, CheckpointRow] = {}
        self.alias: dict[str, str] = {}  # path or sha256 -> row key

    def get(
        self, path: str | None, sha256: str | None, name: str, epoch=None, phase=None
    ) -> CheckpointRow:
        names = [n for n in (sha256 and f"sha:{sha256}", path and f"path:{path}") if n]
        key = next((self.alias[n] for n in names if n in self.alias), None) or (
            names[0] if names else f"name:{name}"
        )
        for n in names:
            self.alias.setdefault(n, key)
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = CheckpointRow(Path(path).stem if path else name, path)
        row.epoch = row.epoch if row.epoch is not None else epoch
        row.phase = row.phase or phase
        return row

    def of(self, meta: Meta, name: str) -> CheckpointRow:
        return self.get(meta.checkpoint, meta.sha256, name, meta.epoch, meta.phase)


def _set_acc(row: CheckpointRow, value: float | None, source: str) -> None:
    if value is None or not math.isfinite(value):
        return
    if row.test_acc is None or ACC_RANK[source] < ACC_RANK[row.test_acc_source]:
        row.test_acc, row.test_acc_source = float(value), source


def _value_at(axis: np.ndarray, values: np.ndarray, point: float) -> float | None:
    hits = np.flatnonzero(np.isclose(axis, point, atol=1e-9))
    if hits.size == 0:
        return None
    value = float(values[hits[0]])
    return value if math.isfinite(value) else None


def _centre_acc(surface: Surface) -> float | None:
    acc = surface.metrics["test_acc"]
    if surface.ndim == 1:
        return _value_at(surface.x, acc, 0.0)
    ix = np.flatnonzero(np.isclose(surface.x, 0.0, atol=1e-9))
    return _value_at(surface.y, acc[ix[0]], 0.0) if ix.size else None


def checkpoint_rows(sources: Sequence[Source]) -> list[CheckpointRow]:
    """Per checkpoint: epoch, phase, test accuracy, λ1, trace and scalar sharpness measures."""
    rows = _Rows()
    logs = {s.run: s for s in sources if isinstance(s, TrainingLog)}
    for source in sources:
        if not isinstance(source, ResultFile):
            continue
        for r in source.hessian:
            row = rows.of(r.meta, r.name)
            row.lambda1 = float(r.eigenvalues[0]) if r.eigenvalues.size else None
            row.trace, row.trace_stderr = r.trace, r.trace_stderr
        for r in source.sharpness:
            row = rows.of(r.meta, r.name)
            row.sharpness.update(
                {m: float(v.reshape(-1)[0]) for m, v in r.measures.items() if v.size == 1}
            )
        for s in source.surfaces:
            if "test_acc" in s.metrics:
                _set_acc(rows.of(s.meta, s.name), _centre_acc(s), "surface centre")
        for it in source.interpolations:
            if "test_acc" not in it.metrics:
                continue
            paths = it.checkpoints or [it.a, it.b]
            shas = (
                it.checkpoint_sha256s
                if len(it.checkpoint_sha256s) == len(paths)
                else [None] * len(paths)
            )
            epochs = it.epochs if len(it.epochs) == len(paths) else [None] * len(paths)
            phases = it.phases if len(it.phases) == len(paths) else [None] * len(paths)
            for k, path in enumerate(paths):
                if path:
                    row = rows.get(path, shas[k], Path(path).stem, epochs[k], phases[k])
                    _set_acc(
                        row,
                        _value_at(it.alpha, it.metrics["test_acc"], float(k)),
                        "interpolation end",
                    )
    for (
        row
    ) in rows.rows.values():  # the training log's evaluation of that epoch, when we have the run
        run = logs.get(Path(row.path).parent.name) if row.path else None
        if run is not None and row.epoch is not None and "test_acc" in run.columns:
            hit = np.flatnonzero(run.epoch == row.epoch)
            if hit.size:
                _set_acc(row, float(run.columns["test_acc"][hit[0]]), "training log")
    return sorted(rows.rows.values(), key=lambda r: (r.epoch is None, r.epoch or 0, r.checkpoint))


# ---------------------------------------------------------------------------------------- HTML


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], caption: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>\n" for row in rows
    )
    return (
        f"<table><caption>{html.escape(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>\n{body}</tbody></table>\n"
    )


MEASURE_HEADINGS = {
    "worst_case": "worst-case sharpness",
    "adaptive_worst_case_l2": "adaptive worst-case (ℓ2)",
    "adaptive_worst_case_linf": "adaptive worst-case (ℓ∞)",
    "average_case": "average-case sharpness",
    "adaptive_average_case": "adaptive average-case",
    "gradient_norm": "gradient norm",
    "fisher_rao_norm": "Fisher–Rao norm",
    "top_eigenvalue": "λ1 (sharpness run)",
    "trace": "trace (sharpness run)",
}
MEASURE_ORDER = list(MEASURE_HEADINGS)
# Barrier columns: loss before error, train before test, Frankle (max minus mean of the ends)
# before Entezari (max above the chord); error barriers in percentage points, as in the figures.
BARRIER_ORDER = [
    f"barrier_{split}_{q}_{m}"
    for q in ("loss", "error")
    for split in ("train", "test")
    for m in ("frankle", "entezari")
]
SECTION_ORDER = (
    "training",
    "hessian",
    "surface",
    "interpolation",
    "sharpness",
    "escape",
    "experiment",
    "compare",
)
SECTION_TITLES = {
    "training": "Training",
    "hessian": "Curvature",
    "surface": "Loss surfaces",
    "interpolation": "Interpolation",
    "sharpness": "Sharpness",
    "escape": "Escape from a minimum",
    "experiment": "Experiment",
    "compare": "Comparisons",
}
BN_WORDS = {
    "eval": "running statistics",
    "train": "batch statistics",
    "recalibrate": "recalibrated",
    "recompute": "recomputed per point",
    "interpolate": "interpolated",
}


def _barrier_heading(key: str) -> str:
    parts = key.removeprefix("barrier_").split("_")
    if len(parts) == 3:
        split, quantity, method = parts
        unit = " (%)" if quantity == "error" else ""
        return f"{split} {quantity} barrier{unit}, {method.capitalize()}"
    return key.removeprefix("barrier_").replace("_", " ")


def _barrier_value(key: str, value: float | None) -> str:
    return fmt(100 * value if value is not None and "_error_" in f"_{key}_" else value)


def settings_rows(sources: Sequence[Source]) -> list[list[str]]:
    """Per result group: what it measured on (split, examples, BatchNorm mode, dtype, seed)."""
    rows = []
    for source in sources:
        if not isinstance(source, ResultFile):
            continue
        groups = [("curvature", r) for r in source.hessian] + [
            ("surface", r) for r in source.surfaces
        ]
        groups += [("interpolation", r) for r in source.interpolations] + [
            ("sharpness", r) for r in source.sharpness
        ]
        groups += [("escape", r) for r in source.escapes]
        for kind, record in groups:
            attrs = record.meta.attrs
            bn = str(attrs.get("bn_mode", "")) or "–"
            samples = attrs.get("samples")
            rows.append(
                [
                    f"{kind}: {record.name}",
                    record.meta.checkpoint_name or "–",
                    str(attrs.get("split", "")) or "–",
                    str(samples) if samples not in (None, "") else "–",
                    BN_WORDS.get(bn, bn),
                    str(attrs.get("dtype", "")) or "–",
                    str(attrs.get("seed", "")) if attrs.get("seed", "") != "" else "–",
                ]
            )
    return rows


def _training_table(sources: Sequence[Source]) -> str:
    logs = [s for s in sources if isinstance(s, TrainingLog)]
    if not logs:
        return ""
    body = []
    for t in logs:
        acc, loss = _last(t, "test_acc"), _last(t, "train_loss")
        body.append(
            [
                t.run,
                str(int(t.epoch.max())),
                fmt(t.switch_epoch()),
                fmt(loss),
                fmt(100 * acc if acc is not None else None),
            ]
        )
    return _table(
        [
            "run",
            "epochs",
            "SGD→SAM switch (epoch)",
            "final training loss",
            "final test accuracy (%)",
        ],
        body,
        "Training runs",
    )


def tables_html(sources: Sequence[Source]) -> str:
    parts = [_training_table(sources)]
    rows = checkpoint_rows(sources)
    if rows:
        found = list(dict.fromkeys(m for r in rows for m in r.sharpness))
        measures = [m for m in MEASURE_ORDER if m in found] + [
            m for m in found if m not in MEASURE_ORDER
        ]
        headers = [
            "checkpoint",
            "epoch",
            "phase",
            "test accuracy (%)",
            "top eigenvalue λ1",
            "trace ± s.e.",
            *[MEASURE_HEADINGS.get(m, m.replace("_", " ")) for m in measures],
        ]
        body = []
        for r in rows:
            trace = fmt(r.trace) + (
                f" ± {fmt(r.trace_stderr, 2)}" if r.trace is not None and r.trace_stderr else ""
            )
            body.append(
                [
                    r.checkpoint,
                    str(r.epoch) if r.epoch is not None else "–",
                    (r.phase or "–").upper(),
                    fmt(100 * r.test_acc if r.test_acc is not None else None),
                    fmt(r.lambda1),
                    trace,
                    *[fmt(r.sharpness.get(m)) for m in measures],
                ]
            )
        parts.append(_table(headers, body, "Curvature and sharpness per checkpoint"))
    interps = [(s, it) for s in sources if isinstance(s, ResultFile) for it in s.interpolations]
    if interps:
        found = list(dict.fromkeys(k for _, it in interps for k in it.barriers))
        keys = [k for k in BARRIER_ORDER if k in found] + [
            k for k in found if k not in BARRIER_ORDER
        ]
        body = [
            [it.a_name, it.b_name, *[_barrier_value(k, it.barriers.get(k)) for k in keys]]
            for s, it in interps
        ]
        parts.append(
            _table(
                ["from (α = 0)", "to (α = 1)", *[_barrier_heading(k) for k in keys]],
                body,
                "Barrier heights on the straight line between checkpoints "
                "(error in percentage points)",
            )
        )
    escapes = [(s, e) for s in sources if isinstance(s, ResultFile) for e in s.escapes]
    if escapes:
        body = []
        for s, e in escapes:
            rho, lr = e.attrs.get("rho"), e.attrs.get("lr")
            body.append(
                [
                    f"{s.stem}: {e.name}",
                    e.meta.checkpoint_name or "–",
                    fmt(e.growth_rate),
                    fmt(rho if isinstance(rho, (int, float)) else None),
                    fmt(lr if isinstance(lr, (int, float)) else None),
                ]
            )
        parts.append(
            _table(
                ["escape", "from", "growth rate / step", "ρ", "lr"], body, "Escape from a minimum"
            )
        )
    for source in sources:
        if isinstance(source, ResultFile):
            parts.extend(_experiment_table(source, x) for x in source.experiments)
            parts.extend(_gap_table(source, x) for x in source.experiments if _gap_metrics(x))
            parts.extend(_verdict_table(source, x) for x in source.experiments if x.verdicts)
    settings = settings_rows(sources)
    if settings:
        parts.append(
            _table(
                ["result", "checkpoint", "split", "examples", "BatchNorm", "dtype", "seed"],
                settings,
                "Analysis settings of every result",
            )
        )
    return "\n".join(p for p in parts if p)


EXPERIMENT_METRICS = (
    ("test_acc", "test acc. (%)", 100.0),
    ("lambda1", "λ1", 1.0),
    ("trace", "trace", 1.0),
    ("worst_case", "worst case", 1.0),
)


def _experiment_table(source: ResultFile, x: Experiment) -> str:
    """One row per arm: mean ± std over seeds of each metric the experiment computed."""
    s = x.summary
    labels = s.get("arm_label", s.get("arm", []))
    metrics = [
        m
        for m in EXPERIMENT_METRICS
        if f"{m[0]}_mean" in s and np.isfinite(s[f"{m[0]}_mean"]).any()
    ]
    body = []
    for i, label in enumerate(labels):
        row = [str(label), fmt(float(s["n_seeds"][i])) if "n_seeds" in s else "–"]
        for key, _, scale in metrics:
            mean = float(s[f"{key}_mean"][i]) * scale
            std = float(s[f"{key}_std"][i]) * scale if f"{key}_std" in s else math.nan
            row.append(
                fmt(mean)
                + (f" ± {fmt(std, 2)}" if math.isfinite(std) and math.isfinite(mean) else "")
            )
        body.append(row)
    return _table(
        ["arm", "seeds", *[m[1] for m in metrics]],
        body,
        f"Experiment {x.name} ({source.stem}): mean ± std over seeds",
    )


GAP_METRICS = (
    ("test_acc", "test error"),
    ("test_loss", "test loss"),
    ("lambda1", "λ1"),
    ("trace", "trace"),
    ("worst_case", "worst case"),
)


def _gap_metrics(x: Experiment) -> list[tuple[str, str]]:
    s = x.summary
    return [
        m
        for m in GAP_METRICS
        if f"{m[0]}_gap_mean" in s and np.isfinite(s[f"{m[0]}_gap_mean"]).any()
    ]


def _gap_table(source: ResultFile, x: Experiment) -> str:
    """Per arm (but SGD and full SAM, 0 and 100 % by definition): the share of the SGD -> full-SAM
    gap closed within each seed, mean [95 % t-interval] over seeds, beside its SAM steps."""
    s = x.summary
    metrics = _gap_metrics(x)
    body = []
    for i, arm in enumerate(s.get("arm", [])):
        if str(arm) in ("sgd", "full-sam"):
            continue
        steps = float(s["sam_steps"][i]) if "sam_steps" in s else math.nan
        row = [str(s.get("arm_label", s["arm"])[i]), fmt(steps, 6)]
        for key, _ in metrics:
            mean, low, high = (
                float(s[f"{key}_gap_{k}"][i]) * 100 if f"{key}_gap_{k}" in s else math.nan
                for k in ("mean", "low", "high")
            )
            row.append(
                fmt(mean, 3) + (f" [{fmt(low, 3)}, {fmt(high, 3)}]" if math.isfinite(low) else "")
            )
        body.append(row)
    return _table(
        ["arm", "SAM steps", *[f"{m[1]} gap closed (%)" for m in metrics]],
        body,
        f"Experiment {x.name} ({source.stem}): share of the SGD → full-SAM gap closed, "
        "paired within each seed; mean [95 % t-interval] over seeds",
    )


def _verdict_table(source: ResultFile, x: Experiment) -> str:
    """One row per claim of the paper: the verdict its rule gave and the deciding numbers."""
    v = x.verdicts
    body = [
        [str(v["verdict"][i]), str(v["claim"][i]), str(v["rule"][i]), str(v["numbers"][i])]
        for i in range(len(v.get("verdict", [])))
    ]
    return _table(
        ["verdict", "claim", "rule", "deciding numbers"],
        body,
        f"Experiment {x.name} ({source.stem}): verdicts on the paper's claims "
        "(rules: docs/experiment.md)",
    )


def _last(log: TrainingLog, key: str) -> float | None:
    return float(log.columns[key][-1]) if key in log.columns else None


CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; \
padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
caption { text-align: left; font-weight: bold; padding-bottom: 0.3em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; width: 340px; } figure img { width: 100%; height: auto; }
figcaption { font-size: 0.8em; color: #555; }
"""


def render_png(job: FigureJob, dpi: int) -> bytes:
    fig = job.build()
    buffer = io.BytesIO()
    import matplotlib

    with matplotlib.rc_context(style.RC):
        fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": "landscape"})
    return buffer.getvalue()


def build_html(sources: Sequence[Source], jobs: Sequence[FigureJob], dpi: int = 120) -> str:
    inputs = ", ".join(html.escape(str(getattr(s, "path", s))) for s in sources)
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    runs = report_runs(sources)
    title = "landscape report" + (
        f": {', '.join(runs[:4])}{' …' if len(runs) > 4 else ''}" if runs else ""
    )
    sections = []
    found = list(dict.fromkeys(job.kind for job in jobs))
    for kind in [k for k in SECTION_ORDER if k in found] + [
        k for k in found if k not in SECTION_ORDER
    ]:
        figures = []
        for job in (j for j in jobs if j.kind == kind):
            data = base64.b64encode(render_png(job, dpi)).decode("ascii")
            figures.append(
                f'<figure id="{html.escape(job.name)}"><img alt="{html.escape(job.caption)}" '
                f'src="data:image/png;base64,{data}" title="{html.escape(job.name)}">'
                f"<figcaption>{html.escape(job.caption)}</figcaption></figure>"
            )
        heading = SECTION_TITLES.get(kind, kind)
        sections.append(
            f'<h2>{html.escape(heading)}</h2>\n<div class="figures">\n'
            + "\n".join(figures)
            + "\n</div>"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>\n"
        f"<h1>{html.escape(title)}</h1>\n<p>Inputs: {inputs}<br>"
        f"Written {created} by landscape {__version__}.</p>\n"
        "<h2>Headline numbers</h2>\n"
        f"{tables_html(sources) or '<p>No per-checkpoint numbers in these inputs.</p>'}\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )


def report_runs(sources: Sequence[Source]) -> list[str]:
    """The training runs the report is about: run folders given, else those of the checkpoints
    the results were computed from."""
    runs = [s.run for s in sources if isinstance(s, TrainingLog)]
    for source in sources:
        if isinstance(source, ResultFile):
            records = [
                *source.hessian,
                *source.surfaces,
                *source.interpolations,
                *source.sharpness,
                *source.escapes,
            ]
            runs += [r.meta.run for r in records if r.meta.run]
    return list(dict.fromkeys(runs))


def write_report(
    sources: Sequence[Source], jobs: Sequence[FigureJob], out_dir: str | Path, dpi: int = 120
) -> Path:
    """Render and write ``out_dir/report.html`` atomically; returns its path."""
    out_dir = Path(out_dir)
    page = build_html(sources, jobs, dpi)
    out_dir.mkdir(parents=True, exist_ok=True)
    from landscape.atomic import write_atomic

    target = out_dir / REPORT_NAME
    write_atomic(target, page.encode("utf-8"))
    return target
