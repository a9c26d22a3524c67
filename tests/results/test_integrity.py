"""Each result group's digest: damage HDF5's own checksums miss (a scalar, an attribute, a
dataset's shape) is a named error that leaves the file as it was, on every read and resume."""

import json
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest

from landscape import store
from landscape.analysis.saving import read_previous
from landscape.results import integrity
from landscape.results.hessian import HessianResult, Trace
from landscape.results.provenance import Provenance
from landscape.results.sharpness import MeasureValue, SharpnessResult
from landscape.results.surface import Surface

SHA = "ab" * 32
CONFIG = {"loss": "cross-entropy", "x": "-1:1:5", "y": "-1:1:7"}
SHAPE = (5, 7)


def _provenance() -> Provenance:
    return Provenance(checkpoint="m.pt", checkpoint_sha256=SHA, config=dict(CONFIG))


def _surface() -> Surface:
    done = np.zeros(SHAPE, dtype=bool)
    done[:2] = True
    loss = np.where(done, 0.5, np.nan)
    return Surface(
        _provenance(), np.linspace(-1, 1, 5), np.linspace(-1, 1, 7), {"train_loss": loss}, done
    )


@pytest.fixture
def result_file(tmp_path) -> Path:
    """A file holding a hessian trace of 18.77, a sharpness value and a partial surface."""
    path = tmp_path / "r.h5"
    with store.transaction(path) as f:
        trace = Trace(18.77, 0.5, "hutchinson", True, 100, 0, 100)
        HessianResult(_provenance(), 100, trace=trace).write(store.replace_group(f, "hessian/m"))
        sharp = SharpnessResult(_provenance(), {"worst_case": MeasureValue(0.123456)})
        sharp.write(store.replace_group(f, "sharpness/m"))
        _surface().write(store.replace_group(f, "surface/A"))
    return path


def _replace_once(path: Path, old: bytes, new: bytes, start: int = 0) -> None:
    data = path.read_bytes()
    at = data.index(old, start)
    path.write_bytes(data[:at] + new + data[at + len(old) :])


def _flip_bit(path: Path, value: bytes) -> None:
    """One bit flipped in the (only) stored copy of ``value``."""
    data = bytearray(path.read_bytes())
    assert data.count(value) == 1
    data[data.index(value) + 6] ^= 0x10
    path.write_bytes(bytes(data))


def _flip_done_dimension(path: Path) -> None:
    """A bit flipped in the second dimension of surface/A/done (in its object header)."""
    with h5py.File(path, "r") as f:
        header = h5py.h5o.get_info(f["surface/A/done"].id).addr
    _replace_once(path, struct.pack("<QQ", *SHAPE), struct.pack("<QQ", SHAPE[0], 7 ^ 4), header)


def _damage_config(path: Path) -> None:
    """The config attribute of every group no longer JSON (one character changed)."""
    data = path.read_bytes()
    assert data.count(b'"loss": "cross-entropy"') == 3
    path.write_bytes(data.replace(b'"loss": "cross-entropy"', b'"loss"; "cross-entropy"'))


def _unseal(path: Path) -> None:
    """What a file written before digests looks like."""
    with h5py.File(path, "r+") as f:
        for group in integrity.result_groups(f):
            del group.attrs["digest"]


def _resume(path: Path):
    return read_previous(path, "surface/A", SHA, CONFIG, Surface.read, SHAPE)


DAMAGE = {
    "scalar-trace": (lambda p: _flip_bit(p, np.float64(18.77).tobytes()), "hessian/m"),
    "sharpness-value": (lambda p: _flip_bit(p, np.float64(0.123456).tobytes()), "sharpness/m"),
    "done-dimension": (_flip_done_dimension, "surface/A"),
    "config-attribute": (_damage_config, "hessian/m"),
}


def test_every_result_group_written_by_a_transaction_carries_a_matching_digest(result_file):
    with h5py.File(result_file, "r") as f:
        groups = integrity.result_groups(f)
        assert [g.name for g in groups] == ["/hessian/m", "/surface/A", "/sharpness/m"]
        assert all(integrity.verify(g) for g in groups)
        assert all(integrity.stored_digest(g).startswith("sha256:") for g in groups)


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_damage_is_a_named_error_on_read_and_the_file_is_unchanged(result_file, damage):
    make, group = DAMAGE[damage]
    make(result_file)
    before = result_file.read_bytes()
    with pytest.raises(integrity.DamagedResult) as caught:
        store.open_result_file(result_file).close()
    message = str(caught.value)
    assert message.startswith(f"result file {result_file} is damaged (group {group}: ")
    assert f"mv {result_file} {result_file}.damaged" in message
    assert result_file.read_bytes() == before


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_file_with_a_damaged_group_is_not_written_to(result_file, damage):
    DAMAGE[damage][0](result_file)
    before = result_file.read_bytes()
    with pytest.raises(integrity.DamagedResult), store.transaction(result_file) as f:
        store.replace_group(f, "escape/new")
    assert result_file.read_bytes() == before


def test_a_resume_from_a_flipped_dimension_of_done_is_refused(result_file):
    _flip_done_dimension(result_file)
    before = result_file.read_bytes()
    with pytest.raises(integrity.DamagedResult, match="group surface/A: its attributes"):
        _resume(result_file)
    assert result_file.read_bytes() == before


def test_a_resume_checks_shapes_against_the_options_in_files_without_digests(result_file):
    _unseal(result_file)
    assert _resume(result_file).done.sum() == 14  # an old file resumes as before
    _flip_done_dimension(result_file)
    with pytest.raises(integrity.DamagedResult, match=r"done has shape \(5, 3\), the grid"):
        _resume(result_file)


def test_a_damaged_config_in_a_file_without_digests_is_damage_not_other_options(
    result_file, caplog
):
    _unseal(result_file)
    _damage_config(result_file)
    before = result_file.read_bytes()
    with pytest.raises(integrity.DamagedResult, match="its config attribute is not JSON"):
        _resume(result_file)
    assert "another checkpoint" not in caplog.text
    assert result_file.read_bytes() == before


def test_groups_without_a_digest_stay_unsealed_when_another_group_is_written(result_file):
    _unseal(result_file)
    with store.transaction(result_file) as f:
        store.write_dataset(store.replace_group(f, "escape/new"), "step", np.arange(3))
    with store.open_result_file(result_file) as f:
        sealed = {
            g.name: integrity.stored_digest(g) is not None for g in integrity.result_groups(f)
        }
    assert sealed == {"/hessian/m": False, "/surface/A": False, "/sharpness/m": False,
                      "/escape/new": True}  # fmt: skip


def test_a_changed_group_is_sealed_again(result_file):
    with store.transaction(result_file) as f:
        surface = Surface.read(f["surface/A"])
        surface.done[:] = True
        surface.write_values(f["surface/A"])
    with store.open_result_file(result_file) as f:
        assert Surface.read(f["surface/A"]).done.all()
        assert integrity.verify(f["surface/A"])


def test_the_digest_is_no_attribute_of_the_result(result_file):
    with store.open_result_file(result_file) as f:
        assert "digest" not in store.read_attrs(f["hessian/m"])
        assert "digest" not in Surface.read(f["surface/A"]).attrs
        assert json.loads(f["hessian/m"].attrs["config"]) == CONFIG
