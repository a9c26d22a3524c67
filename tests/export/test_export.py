"""landscape export: every surface and path of a result file, read back by VTK's own readers,
by the csv module and by xarray, equal to the values stored."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from landscape.cli import main
from landscape.errors import UserError
from landscape.export import export_file

# The result-file builders of tests/plot (written by landscape.results), loaded by path.
_spec = importlib.util.spec_from_file_location(
    "plot_result_files", Path(__file__).parents[1] / "plot" / "conftest.py"
)
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> Path:
    return build.write_result_file(
        tmp_path_factory.mktemp("export") / "r.h5",
        build.write_surface_2d,  # 15 x 11, partly not done
        build.write_surface_1d,
        build.write_interpolation,
    )


def stored(path: Path, group: str) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        g = f[group]
        return {k: np.asarray(g[k][()]) for k in g if isinstance(g[k], h5py.Dataset)}


def vtk_arrays(data) -> dict[str, np.ndarray]:
    from vtkmodules.util.numpy_support import vtk_to_numpy

    points = data.GetPointData()
    return {
        points.GetArrayName(i): vtk_to_numpy(points.GetArray(i))
        for i in range(points.GetNumberOfArrays())
    }


def test_a_2d_surface_is_a_vtk_structured_grid_with_every_metric_as_point_data(result, tmp_path):
    vtk = pytest.importorskip("vtk")
    from vtkmodules.util.numpy_support import vtk_to_numpy

    export_file(result, "vtk", tmp_path)
    reader = vtk.vtkXMLStructuredGridReader()
    reader.SetFileName(str(tmp_path / "surface_random_2d.vts"))
    reader.Update()
    grid = reader.GetOutput()
    dims = [0, 0, 0]
    grid.GetDimensions(dims)
    assert dims == [15, 11, 1]
    values = stored(result, "surface/random_2d")
    arrays = vtk_arrays(grid)
    assert set(arrays) == {"train_loss", "test_loss", "train_acc", "test_acc", "done"}
    for name in ("train_loss", "test_acc", "done"):  # VTK orders points x fastest
        np.testing.assert_array_equal(arrays[name], values[name].T.ravel())
    points = vtk_to_numpy(grid.GetPoints().GetData()).reshape(11, 15, 3)
    np.testing.assert_array_equal(points[:, :, 0], np.tile(values["x"], (11, 1)))
    np.testing.assert_array_equal(points[:, :, 1], np.tile(values["y"][:, None], (1, 15)))
    height = np.where(values["done"], values["train_loss"], 0.0).T
    np.testing.assert_array_equal(points[:, :, 2], height)


@pytest.mark.parametrize("name", ["surface_random_1d", "interpolation_sgd_to_sam"])
def test_slices_and_paths_are_vtk_polylines(result, tmp_path, name):
    vtk = pytest.importorskip("vtk")
    from vtkmodules.util.numpy_support import vtk_to_numpy

    export_file(result, "vtk", tmp_path)
    reader = vtk.vtkXMLPolyDataReader()
    reader.SetFileName(str(tmp_path / f"{name}.vtp"))
    reader.Update()
    line = reader.GetOutput()
    n = line.GetNumberOfPoints()
    assert line.GetNumberOfLines() == 1 and line.GetCell(0).GetNumberOfPoints() == n
    values = stored(result, name.replace("_", "/", 1))
    np.testing.assert_array_equal(vtk_arrays(line)["train_loss"], values["train_loss"])
    points = vtk_to_numpy(line.GetPoints().GetData())
    np.testing.assert_array_equal(points[:, 2], values["train_loss"])


def test_csv_has_one_row_per_point_and_empty_cells_where_not_computed(result, tmp_path):
    export_file(result, "csv", tmp_path)
    with open(tmp_path / "surface_random_2d.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    values = stored(result, "surface/random_2d")
    assert len(rows) == 15 * 11
    row = rows[2 * 11 + 3]  # x index 2, y index 3 (x-major, as the HDF5 arrays)
    assert float(row["x"]) == values["x"][2] and float(row["y"]) == values["y"][3]
    assert float(row["test_loss"]) == values["test_loss"][2, 3]
    assert rows[-1]["train_loss"] == "" and rows[-1]["done"] == "0"


def test_netcdf_reads_back_in_xarray_with_the_coordinates_and_provenance(result, tmp_path):
    xr = pytest.importorskip("xarray")
    export_file(result, "netcdf", tmp_path)
    values = stored(result, "surface/random_2d")
    with xr.open_dataset(tmp_path / "surface_random_2d.nc", engine="h5netcdf") as ds:
        assert ds["train_loss"].dims == ("x", "y")
        np.testing.assert_array_equal(ds["y"].values, values["y"])
        np.testing.assert_array_equal(ds["train_loss"].values, values["train_loss"])
        assert json.loads(ds.attrs["config"]) == {"note": "test fixture"}
    with xr.open_dataset(tmp_path / "interpolation_sgd_to_sam.nc", engine="h5netcdf") as ds:
        assert ds["train_loss"].dims == ("alpha",)


def test_the_command_prints_what_it_wrote_and_a_file_without_surfaces_is_one_error(
    result, tmp_path, capsys
):
    assert main(["export", str(result), "--format", "csv", "--out", str(tmp_path / "new")]) == 0
    assert capsys.readouterr().out.count("wrote ") == 3
    empty = build.write_result_file(tmp_path / "h.h5", build.write_hessian)
    with pytest.raises(UserError, match="no surface or interpolation"):
        export_file(empty, "vtk", tmp_path / "none")
    assert not (tmp_path / "none").exists()
