"""The HDF5 store: atomic writes, root stamps, provenance, clear refusals."""

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from landscape import store
from landscape.errors import UserError

PROVENANCE = {
    "checkpoint": "run/epoch-010-sgd.pt",
    "checkpoint_sha256": "ab" * 32,
    "arch": "mlp",
    "epoch": 10,
    "phase": "sgd",
    "split": "train",
    "samples": 100,
    "bn_mode": "eval",
    "dtype": "float32",
    "seed": 0,
    "seconds": 1.5,
    "config": {"top_k": 5},
}


def test_transaction_creates_file_with_root_attributes(tmp_path):
    path = tmp_path / "out.h5"
    with store.transaction(path, command=["landscape", "hessian", "x.pt"]) as f:
        store.write_dataset(store.replace_group(f, "hessian/x"), "eigenvalues", [3.0, 2.0])
    with h5py.File(path, "r") as f:
        assert f.attrs["schema_version"] == store.SCHEMA_VERSION
        assert "landscape_version" in f.attrs and "created" in f.attrs
        assert f.attrs["command"] == '["landscape", "hessian", "x.pt"]'
        np.testing.assert_array_equal(f["hessian/x/eigenvalues"][()], [3.0, 2.0])


def test_transaction_keeps_other_groups_and_replaces_its_own(tmp_path):
    path = tmp_path / "out.h5"
    with store.transaction(path) as f:
        store.write_dataset(store.replace_group(f, "hessian/a"), "trace", 1.0)
        store.write_dataset(store.replace_group(f, "hessian/b"), "trace", 2.0)
    with store.transaction(path) as f:
        store.write_dataset(store.replace_group(f, "hessian/a"), "eigenvalues", [5.0])
    with h5py.File(path, "r") as f:
        assert "trace" not in f["hessian/a"] and "eigenvalues" in f["hessian/a"]
        assert f["hessian/b/trace"][()] == 2.0


def test_failed_transaction_leaves_old_file_untouched_and_no_temp(tmp_path):
    path = tmp_path / "out.h5"
    with store.transaction(path) as f:
        store.write_dataset(f.create_group("g"), "v", 1.0)
    before = path.read_bytes()
    with pytest.raises(RuntimeError), store.transaction(path) as f:
        del f["g"]
        raise RuntimeError("killed halfway")
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == [".out.h5.lock", "out.h5"]  # the writers' lock stays


def _hessian_dataset(path):
    with h5py.File(path, "w") as f:
        f["hessian"] = np.arange(3.0)


def _damaged_group(path):
    with store.transaction(path) as f:
        store.write_dataset(store.replace_group(f, "hessian/a"), "trace", 18.77)
    data = path.read_bytes()
    value = np.float64(18.77).tobytes()
    path.write_bytes(data.replace(value, np.float64(26.77).tobytes()))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_text("not hdf5"), "not an HDF5 file"),
        (lambda p: p.mkdir(), "is a directory"),
        (_hessian_dataset, "holds 'hessian' as a dataset, where landscape keeps a group"),
        (_damaged_group, r"is damaged \(group hessian/a: its attributes or scalar values"),
    ],
)
def test_check_output_path_refuses_bad_existing_outputs(tmp_path, make, message):
    path = tmp_path / "out.h5"
    make(path)
    with pytest.raises(UserError, match=message):
        store.check_output_path(path)


def test_check_output_path_refuses_missing_folder(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        store.check_output_path(tmp_path / "nope" / "out.h5")


def test_non_hdf5_output_is_left_untouched(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("precious")
    with pytest.raises(UserError), store.transaction(path):
        pass
    assert path.read_text() == "precious"


def test_provenance_round_trips_and_config_is_json(tmp_path):
    path = tmp_path / "out.h5"
    with store.transaction(path) as f:
        store.set_provenance(store.replace_group(f, "hessian/x"), PROVENANCE)
    with h5py.File(path, "r") as f:
        attrs = store.read_attrs(f["hessian/x"])
    assert attrs["config"] == {"top_k": 5}
    assert attrs["epoch"] == 10 and attrs["phase"] == "sgd"


def test_provenance_must_be_complete(tmp_path):
    with store.transaction(tmp_path / "out.h5") as f, pytest.raises(ValueError, match="seed"):
        store.set_provenance(
            f.create_group("g"), {k: v for k, v in PROVENANCE.items() if k != "seed"}
        )


def test_list_results_names_kind_and_group(tmp_path):
    path = tmp_path / "out.h5"
    with store.transaction(path) as f:
        f.create_group("hessian/a")
        f.create_group("surface/plane")
    with store.open_result_file(path) as f:
        assert store.list_results(f) == [("hessian", "a"), ("surface", "plane")]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b"PK\x03\x04 a checkpoint"), "not an HDF5 result file"),
        (lambda p: None, "does not exist"),
    ],
)
def test_open_result_file_refuses_non_results(tmp_path, make, message):
    path = tmp_path / "x.h5"
    make(path)
    with pytest.raises(UserError, match=message):
        store.open_result_file(path)


def test_a_killed_writers_temp_file_is_removed_by_the_next_transaction(tmp_path):
    path = tmp_path / "out.h5"
    dead_pid = 2**22 + 12345  # above the default pid_max: no such process
    stale = tmp_path / f".out.h5.{dead_pid}.abc123.partial"
    stale.write_bytes(b"half written")
    live = tmp_path / f".out.h5.{os.getpid()}.def456.partial"
    live.write_bytes(b"another writer")
    with store.transaction(path) as f:
        f.create_group("g")
    assert not stale.exists() and live.exists()


def test_the_default_output_folder_is_created_and_an_explicit_out_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert store.resolve_output(None, "analyses/hessian.h5") == Path("analyses/hessian.h5")
    assert (tmp_path / "analyses").is_dir()
    assert store.resolve_output("mine.h5", "analyses/x.h5") == Path("mine.h5")


def test_a_save_that_finds_its_own_last_write_in_place_does_not_verify_it_again(
    tmp_path, monkeypatch
):
    from landscape.results import integrity

    path, calls = tmp_path / "r.h5", []
    verify_file = integrity.verify_file
    monkeypatch.setattr(
        integrity, "verify_file", lambda f, p=None: calls.append(p) or verify_file(f, p)
    )
    for value in (1.25, 18.77):
        with store.transaction(path) as f:
            store.write_dataset(store.replace_group(f, "hessian/a"), "trace", value)
    assert len(calls) == 1  # the first transaction; the second found its own file
    path.write_bytes(path.read_bytes())  # the same bytes, rewritten: still its own file
    data = bytearray(path.read_bytes())
    data[data.index(np.float64(18.77).tobytes()) + 6] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(integrity.DamagedResult), store.transaction(path) as f:
        store.replace_group(f, "hessian/b")
    assert len(calls) == 2


def test_a_result_file_behind_a_symbolic_link_gets_the_result_and_the_lock(tmp_path):
    (tmp_path / "shared").mkdir()
    target = tmp_path / "shared" / "results.h5"
    link = tmp_path / "link.h5"
    link.symlink_to(target)  # not there yet: the first result creates it
    for name in ("a", "b"):
        assert store.check_output_path(link) == link
        with store.transaction(link) as f:
            store.write_dataset(store.replace_group(f, f"hessian/{name}"), "trace", [1.0])
    assert link.is_symlink() and os.readlink(link) == str(target)
    with h5py.File(target, "r") as f:
        assert sorted(f["hessian"]) == ["a", "b"]
    assert (tmp_path / "shared" / ".results.h5.lock").exists()
    assert not (tmp_path / ".link.h5.lock").exists()
