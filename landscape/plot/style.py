"""One figure style for every plot: readable at paper column width, headless, colour-blind safe.

Figures are built as :class:`matplotlib.figure.Figure` objects directly (no ``pyplot``), so no
GUI backend and no global figure registry is involved: rendering goes through Agg, and a
figure returned to a notebook displays like any other.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import matplotlib
from matplotlib.figure import Figure

# Widths of a two-column paper (inches): one column, and the full text width.
COLUMN_WIDTH = 3.4
FULL_WIDTH = 7.0

# Okabe & Ito (2008) colour-blind safe palette; phases keep fixed colours everywhere.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
PHASE_COLORS = {"sgd": "#0072B2", "sam": "#D55E00"}
UNKNOWN_PHASE_COLOR = "#777777"
SWITCH_COLOR = "#444444"
SWITCH_LABEL = "SGD→SAM switch"
MISSING_COLOR = "#bbbbbb"
# Perceptually uniform maps (Smith & van der Walt, 2015): loss fields and accuracy fields.
LOSS_CMAP = "viridis"
ACCURACY_CMAP = "cividis"

FORMATS = ("png", "pdf", "svg")

RC = {
    "figure.dpi": 100,
    "figure.constrained_layout.use": True,
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.3,
    "lines.markersize": 4,
    "axes.prop_cycle": matplotlib.cycler(color=list(PALETTE)),
    "image.cmap": LOSS_CMAP,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.03,
    "pdf.fonttype": 42,  # TrueType in PDF: editable text, accepted by publishers
    "ps.fonttype": 42,
    "svg.fonttype": "none",  # text stays text in SVG: small and searchable
}

F = TypeVar("F", bound=Callable[..., Figure])


def styled(build: F) -> F:
    """Build the figure under :data:`RC` so it looks the same from the CLI and a notebook."""

    @functools.wraps(build)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(RC):
            return build(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def new_figure(width: float = COLUMN_WIDTH, height: float | None = None, **kwargs) -> Figure:
    """A figure ``width`` inches wide (golden-ratio height unless given)."""
    if height is None:
        height = width / 1.618
    return Figure(figsize=(width, height), **kwargs)


def phase_color(phase: str | None) -> str:
    return PHASE_COLORS.get((phase or "").lower(), UNKNOWN_PHASE_COLOR)


def phase_label(phase: str | None) -> str:
    return (phase or "unknown").upper()


def mark_switch(ax, epoch: float, *, label: bool = True, color: str = SWITCH_COLOR) -> None:
    """A dashed vertical line at the SGD->SAM switch, named in the legend (never over the data)."""
    ax.axvline(
        epoch,
        color=color,
        linestyle="--",
        linewidth=1.0,
        zorder=1,
        gid="switch",
        label=SWITCH_LABEL if label else None,
    )


def log_scale(ax, axis: str = "y") -> None:
    """Log axis with plain labels (0.01, 1, 100); within two decades also 2x and 5x get labels."""
    import math

    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    getattr(ax, f"set_{axis}scale")("log")
    target = ax.yaxis if axis == "y" else ax.xaxis
    low, high = ax.dataLim.intervaly if axis == "y" else ax.dataLim.intervalx
    if low > 0 and math.isfinite(low) and math.isfinite(high) and high / low < 100:
        target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(NullFormatter())


def parse_formats(text: str) -> list[str]:
    """``"png,pdf"`` -> ``["png", "pdf"]``; ValueError naming the known formats otherwise."""
    formats = [part.strip().lower().lstrip(".") for part in text.split(",") if part.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(
            f"unknown format {', '.join(unknown) or repr(text)}; choose from {', '.join(FORMATS)}"
        )
    return list(dict.fromkeys(formats))


def save_figure(
    fig: Figure, stem: str | Path, formats: Iterable[str] = ("png",), dpi: int = 200
) -> list[Path]:
    """Write ``stem.<format>`` for every format, each atomically.

    Through :func:`landscape.atomic.write_atomic`: rendered in memory, so a full disk is one
    clear error and an older figure stays whole.
    """
    from landscape.atomic import write_atomic

    stem = Path(stem)
    written = []
    with matplotlib.rc_context(RC):
        for fmt in formats:
            target = stem.with_name(f"{stem.name}.{fmt}")
            buffer = io.BytesIO()
            # dpi also sets the resolution of rasterized artists (dense fills) in PDF/SVG.
            fig.savefig(buffer, format=fmt, dpi=dpi, metadata=_metadata(fmt))
            write_atomic(target, buffer.getbuffer())
            written.append(target)
    return written


def _metadata(fmt: str) -> dict:
    # No creation dates: rerunning the same plot gives byte-identical vector files.
    if fmt == "pdf":
        return {"CreationDate": None, "Creator": "landscape"}
    if fmt == "svg":
        return {"Date": None, "Creator": "landscape"}
    return {"Software": "landscape"}
