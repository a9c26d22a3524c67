"""track/<name>/: read back as written, appended without duplicates, as file-format.md says."""

import h5py
import numpy as np
import pytest

from landscape.results import Provenance
from landscape.results.track import TrackResult

PROVENANCE = Provenance(checkpoint="", checkpoint_sha256="", arch="Net", samples=64)


@pytest.fixture
def track() -> TrackResult:
    result = TrackResult(PROVENANCE, parameters={"every": 10, "requested": "lambda1,top-k"})
    result.append(10, {"lambda1": 2.0, "top_k": [2.0, 1.0], "lr": 0.1})
    result.append(20, {"lambda1": 3.0, "top_k": [3.0, 0.5], "lr": 0.1})
    return result


def test_a_track_reads_back_as_written(tmp_path, track):
    with h5py.File(tmp_path / "r.h5", "w") as f:
        track.write(f.create_group("track/x"))
        assert TrackResult.read(f["track/x"]) == track


def test_a_step_measured_again_replaces_the_rows_from_it_on(track):
    track.append(10, {"lambda1": 5.0, "top_k": [5.0, 4.0], "lr": 0.2})
    np.testing.assert_array_equal(track.steps, [10])
    np.testing.assert_array_equal(track.series["top_k"], [[5.0, 4.0]])


def test_a_series_first_given_later_is_nan_before(track):
    track.append(30, {"lambda1": 1.0, "loss": 0.5})
    np.testing.assert_array_equal(track.series["loss"], [np.nan, np.nan, 0.5])
    assert np.isnan(track.series["lr"][2]) and track.series["top_k"].shape == (3, 2)


def test_every_name_the_writer_produces_is_documented(tmp_path, track, format_doc):
    with h5py.File(tmp_path / "r.h5", "w") as f:
        track.write(f.create_group("track/x"))
        names = format_doc.written_names(f["track/x"]) - set(vars(PROVENANCE))
    assert sorted(names - format_doc.names("track")) == []
