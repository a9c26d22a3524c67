"""What ``landscape info`` shows of each result kind: its headline numbers as plain Python
values (``--json`` prints them all), the options that made it by flag name, and the words of
the kinds that need their own. :data:`landscape.registry.RESULT_KINDS` names these functions;
nothing here imports torch.
"""

from __future__ import annotations

import math


def number(value) -> str:
    """Floats to 4 significant digits; everything else as it is."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(number(v) for v in value) + "]"
    if isinstance(value, dict):
        return ", ".join(f"{k} {number(v)}" for k, v in value.items())
    return str(value)


def hessian_values(group) -> dict:
    from landscape.results.hessian import HessianResult

    result, out = HessianResult.read(group), {}
    for prefix, eig in (("", result.top), ("bottom_", result.bottom)):
        if eig is not None:
            out[f"{prefix}eigenvalues"] = eig.values.tolist()
            out[f"{prefix}residuals"] = eig.residuals.tolist()
            out[f"{prefix}eigenvalues_start"] = eig.start
            # unknown (None) in files without the run's attributes (tol NaN), not "not converged"
            out[f"{prefix}eigenvalues_converged"] = eig.converged if eig.tol == eig.tol else None
    out["trace"] = result.trace.value if result.trace else float("nan")
    out["trace_stderr"] = result.trace.stderr if result.trace else float("nan")
    out["hvp_count"] = float(result.hvp_count)
    out["curvature"] = result.curvature
    density = result.density
    if density is not None:
        runs, steps = density.nodes.shape if density.nodes.ndim == 2 else (0, 0)
        out["density"] = {
            "points": int(density.grid.size),
            "sigma": density.sigma,
            "runs": int(runs),
            "steps": int(steps),
            "lockstep": density.lockstep,
        }
    if result.blocks:
        out["blocks"] = {
            name: {
                "dim": block.dim,
                "lambda1": float(block.top.values[0]) if block.top is not None else None,
                "trace": block.trace.value if block.trace else None,
                "trace_stderr": block.trace.stderr if block.trace else None,
            }
            for name, block in result.blocks.items()
        }
    return out


def hessian_options(group) -> dict:
    from landscape.results.hessian import HessianResult

    return HessianResult.read(group).options()


def hessian_lines(values: dict) -> list[str]:
    """Eigenvalues with residuals, trace, products, density and blocks, in words."""
    lines = []
    for prefix, which in (("", "top"), ("bottom_", "bottom")):
        if f"{prefix}eigenvalues" in values:
            lines.append(
                f"{which} eigenvalues: {number(values[f'{prefix}eigenvalues'])}"
                + _eigenvalue_note(values, prefix)
            )
            if f"{prefix}residuals" in values:
                lines.append(f"  residuals:     {number(values[f'{prefix}residuals'])}")
    trace = values.get("trace")
    if trace is not None and trace == trace:
        lines.append(f"trace: {number(trace)} ± {number(values.get('trace_stderr'))}")
    if "hvp_count" in values:
        matrix = values.get("curvature", "hessian")
        what = "Hessian-vector products" if matrix == "hessian" else f"{matrix} products"
        lines.append(f"{what}: {int(values['hvp_count'])}")
    if "density" in values:
        density = values["density"]
        runs = f"{density['runs']} runs x {density['steps']} steps, " if "runs" in density else ""
        lines.append(
            f"spectral density: {runs}{density['points']} points, "
            f"sigma {number(density['sigma'])}" + (", lockstep" if density.get("lockstep") else "")
        )
    for name, block in values.get("blocks", {}).items():
        parts = [f"dim {block['dim']}"]
        if block["lambda1"] is not None:
            parts.append(f"lambda1 {number(block['lambda1'])}")
        if block["trace"] is not None:
            parts.append(f"trace {number(block['trace'])} ± {number(block['trace_stderr'])}")
        lines.append(f"block {name}: {', '.join(parts)}")
    return lines


def _eigenvalue_note(values: dict, prefix: str) -> str:
    """`` (warm start, not converged)``: how a Lanczos run started and whether it met tol."""
    notes = []
    if values.get(f"{prefix}eigenvalues_start") == "warm":
        notes.append("warm start")
    if values.get(f"{prefix}eigenvalues_converged") is False:
        notes.append("not converged")
    return f" ({', '.join(notes)})" if notes else ""


def sharpness_values(group) -> dict:
    from landscape.results.sharpness import SharpnessResult

    out = {}
    for name, measure in SharpnessResult.read(group).measures.items():
        if isinstance(measure.value, float):
            out[name] = {"value": measure.value}
            if math.isfinite(measure.stderr) and measure.stderr > 0:
                out[name]["stderr"] = measure.stderr
            out[name]["options"] = measure.options()
            out[name]["parameters"] = dict(measure.parameters)
    return out


def sharpness_options(group) -> dict:
    from landscape.results.sharpness import SharpnessResult

    return SharpnessResult.read(group).options()


def escape_values(group) -> dict:
    import numpy as np

    from landscape.results.escape import EscapeCurve

    curve = EscapeCurve.read(group)
    out = {
        "growth_rate": curve.growth_rate,
        "growth_factor": curve.growth_factor,
        "fit_start": float(curve.fit_start),
        "fit_stop": float(curve.fit_stop),
    }
    out.update({k: float(curve.parameters[k]) for k in ("rho", "lr") if k in curve.parameters})
    if curve.step.size:
        out["steps"] = int(curve.step[-1])
    for key in ("distance", "train_loss", "eigenvalue"):
        values = getattr(curve, key)
        finite = values[np.isfinite(values)]
        if finite.size:
            out[f"{key}_first_last"] = [float(finite[0]), float(finite[-1])]
    return out


def surface_values(group) -> dict:
    """Axes, points done, metric ranges and, for a hessian plane, what its eigenvectors are."""
    return _path_values("surface", group)


def surface_options(group) -> dict:
    from landscape.results.surface import Surface

    return Surface.read(group, directions=False).options()


def interpolation_values(group) -> dict:
    """The alpha axis, points done, metric ranges and the barriers."""
    return _path_values("interpolation", group)


def _path_values(kind: str, group) -> dict:
    """Axes, points done, metric ranges (and barriers) of a surface or interpolation group."""
    import numpy as np

    from landscape.results.interpolation import Interpolation
    from landscape.results.surface import Surface

    if kind == "surface":
        result = Surface.read(group, directions=False)
        axes = {"x": result.x, "y": result.y}
    else:
        result = Interpolation.read(group)
        axes = {"alpha": result.alpha}
    out: dict = {}
    for axis, values in axes.items():
        if values is not None and values.size:
            out[axis] = {"min": float(values.min()), "max": float(values.max()), "num": values.size}
    out["done"] = f"{int(result.done.sum())}/{result.done.size}"
    for name, values in result.metrics.items():
        finite = values[np.isfinite(values)]
        out[name] = (
            {"min": float(finite.min()), "max": float(finite.max())} if finite.size else None
        )
    if kind == "surface" and result.kind:
        out["directions"] = result.kind
        if "eigenvalues" in result.attrs:  # a hessian plane: what its eigenvectors are
            out["eigenvalues"] = np.asarray(result.attrs["eigenvalues"], np.float64).tolist()
        if "tol" in result.attrs:
            out["eigenvector_tol"] = float(result.attrs["tol"])
        if "curvature_split" in result.attrs:
            out["eigenvector_split"] = str(result.attrs["curvature_split"])
    if kind == "interpolation":
        out["barriers"] = dict(result.barriers)
    if runs := _sessions(group):
        out["computed by"] = runs
    return out


def _sessions(group) -> str | None:
    """The runs that computed a resumed result's points (attr ``sessions``), when several:
    ``2 processes (gloo): 580 points; 1 process: 381 points``."""
    import json

    raw = group.attrs.get("sessions")
    try:
        sessions = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw or "[]"))
    except json.JSONDecodeError:
        return None
    if not isinstance(sessions, list) or len(sessions) < 2:
        return None
    parts = []
    for s in sessions:
        n = int(s.get("world_size", 1))
        backend = f" ({s['backend']})" if s.get("backend") not in (None, "none") else ""
        parts.append(f"{n} process{'es' if n > 1 else ''}{backend}: {s.get('points')} points")
    return "; ".join(parts)


def track_values(group) -> dict:
    """Steps measured and each measure's last and largest value (:mod:`landscape.results.track`)."""
    from landscape.results.track import TrackResult

    return TrackResult.read(group).summary()
