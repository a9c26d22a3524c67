"""Saving figures: every format, decent PNGs, small vector files with rasterized fills."""

import pytest

from landscape.plot import discover, style


def test_parse_formats_accepts_known_formats_and_refuses_others():
    assert style.parse_formats("png, PDF,svg,png") == ["png", "pdf", "svg"]
    with pytest.raises(ValueError, match="choose from png, pdf, svg"):
        style.parse_formats("png,jpeg")


def _one_per_family(jobs):
    """The first figure of each family (slice, contour, 3d, density, ...), to keep tests fast."""
    families = {}
    for job in jobs:
        family = job.kind + "".join(
            f"-{w}"
            for w in ("slice", "contour", "filled", "3d", "epochs", "density", "measures")
            if f"-{w}" in job.name
        )
        families.setdefault(family, job)
    return list(families.values())


def test_every_figure_family_renders_to_a_decent_png(files, run_dir, tmp_path, check_png):
    _, jobs = discover.plan([files["all"], run_dir])
    picked = _one_per_family(jobs)
    assert len(picked) >= 10
    for job in picked:
        path = style.save_figure(job.build(), tmp_path / job.name, ["png"], dpi=40)[0]
        check_png(path)
    assert not list(tmp_path.glob(".*partial"))


def test_vector_output_of_a_dense_filled_surface_stays_small(build, tmp_path):
    from landscape.plot import results, surface2d

    path = build.write_result_file(
        tmp_path / "big.h5", lambda f: build.write_surface_2d(f, nx=121, ny=101)
    )
    fig = surface2d.plot_filled(results.read_result_file(path).surfaces[0])
    pdf, svg = style.save_figure(fig, tmp_path / "big", ["pdf", "svg"], dpi=100)
    assert pdf.read_bytes().startswith(b"%PDF") and b"/Subtype /Image" in pdf.read_bytes()
    assert pdf.stat().st_size < 150_000 and svg.stat().st_size < 250_000
    assert "<image" in svg.read_text()
