"""The one registry mechanism: vocabularies of the command line, declared without torch.

A registry is a plain ``dict`` from a name to a frozen spec; :func:`register` adds a spec (and
refuses a name twice), and a spec names its code as ``"module:attribute"`` (or holds a callable),
which :func:`resolve` imports only when it runs. So listing a vocabulary -- the command line's
choices, its help -- imports no torch, and a new entry is one spec in one ``register`` call.

Four registries use it:

* the sharpness measures, :data:`landscape.sharpness.registry.MEASURES` (``--measure``);
* the curvature matrices, :data:`CURVATURE_KINDS` here (``--curvature``; their operator
  classes through :data:`landscape.curvature.gauss_newton.CURVATURES`);
* the direction kinds of ``surface``, :data:`DIRECTION_KINDS` here (``--directions``);
* the result kinds, :data:`RESULT_KINDS` here: a result file's groups, and what ``info``,
  ``plot`` and ``report`` show of them.

The curvatures, direction kinds and result kinds are declared here rather than beside their
code because the packages that hold the code (``curvature/``, ``surface/``, ``plot/``) import
torch, h5py or matplotlib when imported.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

Spec = TypeVar("Spec")


def register(table: dict[str, Spec], spec: Spec, *, what: str, reserved: tuple = ()) -> Spec:
    """Add ``spec`` to ``table`` under ``spec.name``; a name registered already (or reserved,
    like the ``all`` of ``--measure``) is refused, so that no entry silently replaces another."""
    name = spec.name  # type: ignore[attr-defined]
    if name in table or name in reserved:
        raise ValueError(f"a {what} named {name!r} exists already (it is already registered)")
    check = getattr(spec, "check", None)
    if check is not None:
        check()
    table[name] = spec
    return spec


def resolve(reference: str | Callable[..., Any]) -> Any:
    """``"package.module:attribute"`` -> that attribute (imported now); a callable as it is."""
    if not isinstance(reference, str):
        return reference
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


# ----------------------------------------------------------------------- curvature matrices


@dataclass(frozen=True)
class CurvatureKind:
    """One curvature matrix: ``operator`` is its :class:`~landscape.curvature.operator.
    HessianOperator` subclass (``"module:Class"``), ``title`` how axis labels and reports name
    it."""

    name: str
    title: str
    operator: str | Callable[..., Any]


CURVATURE_KINDS: dict[str, CurvatureKind] = {}


def register_curvature(kind: CurvatureKind) -> CurvatureKind:
    """Add ``kind`` to :data:`CURVATURE_KINDS` (``--curvature`` of hessian, surface and
    sharpness takes it)."""
    return register(CURVATURE_KINDS, kind, what="curvature")


_GN = "landscape.curvature.gauss_newton"
for _curvature in (
    CurvatureKind("hessian", "Hessian", "landscape.curvature.operator:HessianOperator"),
    CurvatureKind("ggn", "GGN", f"{_GN}:GGNOperator"),
    CurvatureKind("fisher", "empirical Fisher", f"{_GN}:EmpiricalFisherOperator"),
    CurvatureKind("fisher-mc", "Monte-Carlo Fisher", f"{_GN}:MonteCarloFisherOperator"),
):
    register_curvature(_curvature)


# -------------------------------------------------------------------- direction kinds (surface)

NORMS = ("filter", "layer", "none")  # the normalisations of a direction (--norm)


@dataclass(frozen=True)
class DirectionKind:
    """One way to span a surface and what it needs.

    ``make``: ``"module:function"`` (or the function) taking a
    :class:`~landscape.surface.directions.DirectionRequest` and returning a
    :class:`~landscape.surface.directions.Plane`. ``others``: which other checkpoints it takes
    (``"trajectory"``: two or more, ``"other"``: exactly one B, ``None``: none). ``norms``: the
    normalisations it accepts, ``default_norm`` the one used when none is asked for.
    ``phase``: a progress label for kinds that work long before the first point (``{matrix}``
    in it: the title of the request's curvature matrix, :data:`CURVATURE_KINDS`)."""

    name: str
    help: str
    make: str | Callable[..., Any]
    default_norm: str = "filter"
    norms: tuple[str, ...] = NORMS
    others: str | None = None
    phase: str | None = None

    def check(self) -> None:
        if self.default_norm not in self.norms:
            raise ValueError(f"{self.name}: default norm {self.default_norm!r} not in {self.norms}")
        if self.others not in (None, "trajectory", "other"):
            raise ValueError(f"{self.name}: others must be None, 'trajectory' or 'other'")

    def span(self, request: Any) -> Any:
        """The plane of ``request`` (imports the kind's code now)."""
        return resolve(self.make)(request)


DIRECTION_KINDS: dict[str, DirectionKind] = {}


def register_direction_kind(kind: DirectionKind) -> DirectionKind:
    """Add ``kind`` to :data:`DIRECTION_KINDS` (``surface --directions`` takes it)."""
    return register(DIRECTION_KINDS, kind, what="direction kind")


_DIRS = "landscape.surface.directions"
for _kind in (
    DirectionKind("random", "Gaussian, normalised per --norm", f"{_DIRS}:random_plane"),
    DirectionKind(
        "pca",
        "top two principal components of --trajectory",
        f"{_DIRS}:pca_plane",
        default_norm="none",
        norms=("none",),
        others="trajectory",
    ),
    DirectionKind(
        "hessian",
        "top two eigenvectors of the Hessian (or of --curvature)",
        f"{_DIRS}:hessian_plane",
        default_norm="none",
        phase="{matrix} directions (top-2 eigenvectors)",
    ),
    DirectionKind(
        "between",
        "CKPT to --other plus an orthogonal random direction",
        f"{_DIRS}:between_plane",
        others="other",
    ),
):
    register_direction_kind(_kind)


# -------------------------------------------------------------------------------- result kinds


@dataclass(frozen=True)
class ResultKind:
    """One kind of result, the top-level group ``<name>/`` of a result file, and everything that
    reads it back, declared once. Each reference is ``"module:attribute"``:

    * ``record``: the stored record, a class with ``write(group)`` and ``read(group)``
      (:mod:`landscape.results`; docs/file-format.md documents its layout);
    * ``values``: ``group -> dict``, the numbers ``landscape info`` shows (``--json``: all of
      them); ``lines``: ``values -> list[str]``, how info words them (None: one line per value);
      ``options``: ``group -> dict``, the options that made it, by flag name (None: none);
    * ``reader``: ``group -> record or None``, the figures' view of it (None: not plotted);
      ``figures``: ``(records, prefix) -> iterable of FigureJob``, the figures of a file's records
      of this kind (:mod:`landscape.plot.discover`);
    * ``section``: the heading of its section in ``landscape report``.

    Listings (the groups of a file, ``info``, the report's sections) order the kinds by
    ``rank``, then by registration; ``plot``'s figures and ``--only`` by registration.
    """

    name: str
    record: str
    section: str
    values: str | None = None
    lines: str | None = None
    options: str | None = None
    reader: str | None = None
    figures: str | None = None
    rank: int = 1


RESULT_KINDS: dict[str, ResultKind] = {}


def register_result_kind(kind: ResultKind) -> ResultKind:
    """Add ``kind`` to :data:`RESULT_KINDS`: the store lists its groups, ``info``, ``plot`` and
    ``report`` show them."""
    return register(RESULT_KINDS, kind, what="result kind")


_SUMMARY, _READ, _FIGURES = (
    "landscape.results.summary",
    "landscape.plot.results",
    ("landscape.plot.discover"),
)
for _result in (
    ResultKind(
        "surface",
        "landscape.results.surface:Surface",
        "Loss surfaces",
        values=f"{_SUMMARY}:surface_values",
        options=f"{_SUMMARY}:surface_options",
        reader=f"{_READ}:read_surface",
        figures=f"{_FIGURES}:surface_figures",
    ),
    ResultKind(
        "interpolation",
        "landscape.results.interpolation:Interpolation",
        "Interpolation",
        values=f"{_SUMMARY}:interpolation_values",
        reader=f"{_READ}:read_interpolation",
        figures=f"{_FIGURES}:interpolation_figures",
    ),
    ResultKind(
        "hessian",
        "landscape.results.hessian:HessianResult",
        "Curvature",
        rank=0,  # info and the report lead with the curvature
        values=f"{_SUMMARY}:hessian_values",
        lines=f"{_SUMMARY}:hessian_lines",
        options=f"{_SUMMARY}:hessian_options",
        reader=f"{_READ}:read_hessian",
        figures=f"{_FIGURES}:hessian_figures",
    ),
    ResultKind(
        "sharpness",
        "landscape.results.sharpness:SharpnessResult",
        "Sharpness",
        values=f"{_SUMMARY}:sharpness_values",
        options=f"{_SUMMARY}:sharpness_options",
        reader=f"{_READ}:read_sharpness",
        figures=f"{_FIGURES}:sharpness_figures",
    ),
    ResultKind(
        "escape",
        "landscape.results.escape:EscapeCurve",
        "Escape from a minimum",
        values=f"{_SUMMARY}:escape_values",
        reader=f"{_READ}:read_escape",
        figures=f"{_FIGURES}:escape_figures",
    ),
    ResultKind(
        "track",
        "landscape.results.track:TrackResult",
        "Sharpness along training",
        values=f"{_SUMMARY}:track_values",
        reader="landscape.plot.track:read_track",
        figures=f"{_FIGURES}:track_figures",
    ),
    ResultKind(
        "experiment",
        "landscape.results.experiment:ExperimentResult",
        "Experiment",
        reader=f"{_READ}:read_experiment",
        figures=f"{_FIGURES}:experiment_figures",
    ),
):
    register_result_kind(_result)


def ranked_result_kinds() -> list[ResultKind]:
    """The registered result kinds in the order of listings: by ``rank``, then registration."""
    return sorted(RESULT_KINDS.values(), key=lambda kind: kind.rank)  # sorted() is stable
