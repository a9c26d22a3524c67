"""landscape export: surfaces and interpolation paths as VTK, CSV or netCDF files."""

from __future__ import annotations

import argparse

HELP = "write the surfaces and paths of a result file as VTK (ParaView), CSV or netCDF files"
DESCRIPTION = """\
Write every surface and interpolation path of FILE into the folder --out, one file each:
  vtk     2-D surfaces as VTK XML structured grids (.vts), 1-D slices and paths as polylines
          (.vtp); the loss as height and every metric (loss and accuracy per split) as point
          data: open them in ParaView or VisIt
  csv     one row per point: the coordinates and every metric
  netcdf  the result group as xarray reads it (.nc)

examples:
  landscape export analyses/surface.h5 --format vtk --out paraview/
  landscape export analyses/surface.h5 --format csv --out tables/
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from landscape.export import FORMATS

    parser.add_argument("file", metavar="FILE", help="a result file (.h5)")
    parser.add_argument("--format", choices=FORMATS, default="vtk", help="(default: vtk)")
    parser.add_argument(
        "--out", metavar="DIR", default="export", help="folder for the files (default: export/)"
    )


def run(args: argparse.Namespace) -> int:
    from landscape.export import export_file

    for path in export_file(args.file, args.format, args.out):
        print(f"wrote {path}")
    return 0
