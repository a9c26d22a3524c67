"""Surfaces and interpolation paths of a result file, written for other tools.

``landscape export FILE --format vtk|csv|netcdf --out DIR`` writes one file per result:

* ``vtk`` -- VTK XML files that ParaView, VisIt and the ``vtk`` library open. A 2-D surface is a
  structured grid (``.vts``): point ``(i, j)`` at ``(x_i, y_j, z)`` with ``z`` the first loss of
  the group (``train_loss`` when there is one; 0 where a point was not computed) so that the
  grid is the landscape itself, and every metric (loss and accuracy per split) and ``done`` as
  point data. A 1-D slice or an interpolation path is a polyline (``.vtp``) through
  ``(x, 0, z)``, the same point data. This is the layout of Li et al.'s ``h52vtp.py``
  ("Visualizing the loss landscape of neural nets", NeurIPS 2018), with every metric kept.
  The XML is written here (inline base64 binary arrays, float64, NaN where a point was not
  computed); no VTK library is needed to write it.
* ``csv`` -- one row per point: the coordinates (``x``, ``y``; ``alpha`` for a path) and
  every metric, empty where not computed.
* ``netcdf`` -- one ``.nc`` file per result: the group as xarray reads it from the HDF5 file
  (``xarray.open_dataset(FILE, engine="h5netcdf", group=...)``), its metrics over the
  coordinates ``x`` (and ``y``), with the group's attributes; needs xarray and h5netcdf.

Files are named ``<kind>_<name>.<ext>`` and written atomically; the list of written files is
returned.
"""

from __future__ import annotations

from pathlib import Path

from landscape.errors import UserError

FORMATS = ("vtk", "csv", "netcdf")


def export_file(path: str | Path, fmt: str, out_dir: str | Path) -> list[Path]:
    """Write every grid of ``path`` in format ``fmt`` into ``out_dir``; the files written."""
    from landscape.atomic import write_atomic
    from landscape.export.writers import grids, netcdf, table, vtp, vts

    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    out_dir = Path(out_dir)
    found = list(grids(path))
    if not found:
        raise UserError(f"{path} holds no surface or interpolation to export")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create --out {out_dir} ({exc.strerror})") from exc
    written = []
    for grid in found:
        stem = out_dir / f"{grid.kind}_{grid.name}"
        if fmt == "vtk":
            target = stem.with_suffix(".vts" if len(grid.axes) == 2 else ".vtp")
            data = (vts(grid) if len(grid.axes) == 2 else vtp(grid)).encode()
        elif fmt == "csv":
            target, data = stem.with_suffix(".csv"), table(grid).encode()
        else:
            target, data = stem.with_suffix(".nc"), netcdf(path, grid)
        write_atomic(target, data)
        written.append(target)
    return written
