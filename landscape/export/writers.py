"""The writers of :mod:`landscape.export`: a result group as a Grid, and a Grid as VTK XML,
CSV or netCDF."""

from __future__ import annotations

import base64
import csv
import io
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landscape.errors import UserError


@dataclass
class Grid:
    """One result's values over its coordinates: ``axes`` maps ``x`` (and ``y``) to their
    values; every metric has the shape of the axes."""

    kind: str  # surface, interpolation
    name: str
    axes: dict[str, np.ndarray]
    metrics: dict[str, np.ndarray]
    done: np.ndarray
    attrs: dict

    @property
    def height(self) -> str | None:
        """The metric drawn as the third coordinate: the first loss, ``train_loss`` first."""
        losses = [n for n in self.metrics if n.endswith("_loss")]
        return "train_loss" if "train_loss" in losses else (losses[0] if losses else None)


def grids(path: str | Path) -> Iterator[Grid]:
    """Every surface and interpolation path of the result file ``path``."""
    from landscape import store
    from landscape.results.interpolation import Interpolation
    from landscape.results.surface import Surface

    with store.open_result_file(path) as f:
        for kind, name in store.list_results(f):
            group = f[f"{kind}/{name}"]
            if kind == "surface":
                surface = Surface.read(group, directions=False)
                axes = {"x": surface.x} if surface.y is None else {"x": surface.x, "y": surface.y}
                metrics = {k: v for k, v in surface.metrics.items() if v.shape == surface.shape}
                yield Grid(kind, name, axes, metrics, surface.done, _attrs(group))
            elif kind == "interpolation":
                path_ = Interpolation.read(group)
                yield Grid(
                    kind,
                    name,
                    {"alpha": np.asarray(path_.alpha, dtype=float)},
                    {k: np.asarray(v) for k, v in path_.metrics.items()},
                    np.asarray(path_.done, dtype=bool),
                    _attrs(group),
                )


def _attrs(group) -> dict:
    out = {}
    for key, value in group.attrs.items():
        if isinstance(value, bytes):
            value = value.decode()
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, np.ndarray):
            value = value.tolist()
        out[key] = value
    return out


# ------------------------------------------------------------------------------------------ vtk


def _array(values: np.ndarray, vtk_type: str, name: str = "", components: int = 1) -> str:
    """One inline binary DataArray: base64 of a UInt64 byte count and the little-endian
    values. Binary, unlike ASCII, keeps NaN (points not computed) readable by VTK."""
    dtype = {"Float64": "<f8", "UInt8": "u1", "Int64": "<i8"}[vtk_type]
    raw = np.ascontiguousarray(np.asarray(values).ravel(), dtype=dtype).tobytes()
    data = base64.b64encode(struct.pack("<Q", len(raw)) + raw).decode()
    named = f' Name="{name}"' if name else ""
    return (
        f'<DataArray type="{vtk_type}"{named} NumberOfComponents="{components}" '
        f'format="binary">{data}</DataArray>'
    )


def _point_data(grid: Grid, order) -> str:
    arrays = [_array(order(values), "Float64", name) for name, values in grid.metrics.items()]
    arrays.append(_array(order(grid.done), "UInt8", "done"))
    scalars = f' Scalars="{grid.height}"' if grid.height else ""
    return f"<PointData{scalars}>" + "".join(arrays) + "</PointData>"


def _heights(grid: Grid) -> np.ndarray:
    if grid.height is None:
        return np.zeros(grid.done.shape)
    z = np.asarray(grid.metrics[grid.height], dtype=np.float64)
    return np.where(np.isfinite(z), z, 0.0)


def _field_data(grid: Grid) -> str:
    """The group's provenance as JSON in one UInt8 array, so that the file says what it shows."""
    text = json.dumps(grid.attrs, default=str, sort_keys=True).encode()
    array = _array(np.frombuffer(text, dtype=np.uint8), "UInt8", "provenance_json")
    tuples = f'<DataArray NumberOfTuples="{len(text)}"'
    return "<FieldData>" + array.replace("<DataArray", tuples, 1) + "</FieldData>"


_HEADER = (
    '<?xml version="1.0"?>\n<VTKFile type="{kind}" version="1.0" byte_order="LittleEndian" '
    'header_type="UInt64">\n'
)


def vts(grid: Grid) -> str:
    """A 2-D grid as a VTK XML StructuredGrid (x varies fastest, as VTK orders points)."""
    x, y = grid.axes["x"], grid.axes["y"]
    nx, ny = x.size, y.size
    gx, gy = np.meshgrid(x, y, indexing="ij")  # (nx, ny), like the metrics
    points = np.stack([gx, gy, _heights(grid)], axis=-1).transpose(1, 0, 2)  # (ny, nx, 3)
    extent = f"0 {nx - 1} 0 {ny - 1} 0 0"
    return (
        _HEADER.format(kind="StructuredGrid")
        + f'<StructuredGrid WholeExtent="{extent}">{_field_data(grid)}<Piece Extent="{extent}">'
        + _point_data(grid, lambda a: np.asarray(a).T)
        + f"<Points>{_array(points, 'Float64', components=3)}</Points>"
        + "</Piece></StructuredGrid>\n</VTKFile>\n"
    )


def vtp(grid: Grid) -> str:
    """A 1-D slice or path as a VTK XML PolyData polyline through ``(x, 0, height)``."""
    (x,) = grid.axes.values()
    n = x.size
    points = np.stack([x, np.zeros(n), _heights(grid)], axis=-1)
    return (
        _HEADER.format(kind="PolyData")
        + f"<PolyData>{_field_data(grid)}"
        + f'<Piece NumberOfPoints="{n}" NumberOfVerts="0" NumberOfLines="1" '
        + 'NumberOfStrips="0" NumberOfPolys="0">'
        + _point_data(grid, lambda a: np.asarray(a))
        + f"<Points>{_array(points, 'Float64', components=3)}</Points>"
        + "<Lines>"
        + _array(np.arange(n), "Int64", "connectivity")
        + _array(np.array([n]), "Int64", "offsets")
        + "</Lines></Piece></PolyData>\n</VTKFile>\n"
    )


# ------------------------------------------------------------------------------------------ csv


def table(grid: Grid) -> str:
    """One row per point: coordinates, then every metric (empty where not computed)."""
    names = list(grid.axes)
    coords = np.meshgrid(*grid.axes.values(), indexing="ij")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*names, *grid.metrics, "done"])
    for index in np.ndindex(grid.done.shape):
        values = [grid.metrics[m][index] for m in grid.metrics]
        writer.writerow(
            [repr(float(c[index])) for c in coords]
            + ["" if not np.isfinite(v) else repr(float(v)) for v in values]
            + [int(grid.done[index])]
        )
    return buffer.getvalue()


# --------------------------------------------------------------------------------------- netcdf


def netcdf(path: str | Path, grid: Grid) -> bytes:
    """The group as xarray reads it from the result file, its metrics only, as netCDF4."""
    try:
        import xarray as xr
    except ImportError as exc:
        raise UserError(
            "--format netcdf needs xarray and h5netcdf; pip install xarray h5netcdf"
        ) from exc
    if grid.kind == "surface":
        with xr.open_dataset(path, engine="h5netcdf", group=f"surface/{grid.name}") as ds:
            keep = [n for n in [*grid.metrics, "done"] if n in ds.variables]
            dataset = ds[keep].load()
    else:  # a path: its metrics over alpha
        dataset = xr.Dataset(
            {n: ("alpha", v) for n, v in {**grid.metrics, "done": grid.done}.items()},
            coords={"alpha": grid.axes["alpha"]},
        )
    dataset.attrs = {
        k: json.dumps(v) if not isinstance(v, (str, int, float)) else v
        for k, v in grid.attrs.items()
    }
    dataset["done"] = dataset["done"].astype("uint8")  # netCDF has no boolean
    return dataset.to_netcdf(engine="h5netcdf")
