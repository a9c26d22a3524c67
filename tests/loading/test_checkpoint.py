"""Checkpoint loading: formats told from bytes, wrappers, prefixes, and never running code."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from landscape.errors import UserError
from landscape.loading.checkpoint import (
    FORMAT,
    check_finite,
    load_checkpoint,
    nonfinite_entries,
    save_checkpoint,
    sniff_container,
    strip_prefixes,
)


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))


@pytest.fixture
def state() -> dict[str, torch.Tensor]:
    return tiny().state_dict()


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class WritesAFile:
    """Unpickling this would create ``target`` (a stand-in for arbitrary code)."""

    def __init__(self, target: Path) -> None:
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


# ------------------------------------------------------------------------ format from bytes


@pytest.mark.parametrize("name", ["weights.pt", "weights.txt", "weights"])
def test_zip_checkpoint_is_recognised_whatever_its_name(tmp_path, state, name):
    torch.save(state, tmp_path / name)
    assert sniff_container(tmp_path / name) == "torch-zip"
    assert same(load_checkpoint(tmp_path / name).state_dict, state)


def test_legacy_pickle_checkpoint_loads(tmp_path, state):
    torch.save(state, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    ckpt = load_checkpoint(tmp_path / "legacy.pt")
    assert ckpt.container == "torch-legacy"
    assert same(ckpt.state_dict, state)


def test_safetensors_file_named_pt_loads_with_metadata(tmp_path, state):
    from safetensors.torch import save_file

    save_file(
        {k: v.contiguous() for k, v in state.items()},
        str(tmp_path / "w.pt"),
        metadata={"arch": "mlp"},
    )
    ckpt = load_checkpoint(tmp_path / "w.pt")
    assert (ckpt.format, ckpt.arch) == ("safetensors", "mlp")
    assert same(ckpt.state_dict, state)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (b"epoch,loss\n1,0.5\n", "is a text file"),
        (bytes(range(7, 200)), "not a checkpoint in any known format"),
        (b"\x89HDF\r\n\x1a\n" + b"\0" * 64, "HDF5 result file"),
    ],
    ids=["empty", "text", "random-bytes", "hdf5"],
)
def test_files_that_are_not_checkpoints_are_named_as_such(tmp_path, content, message):
    path = tmp_path / "x.pt"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        load_checkpoint(path)


def test_truncated_zip_is_reported_as_truncated(tmp_path, state):
    torch.save(state, tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "cut.pt")


def test_truncated_legacy_pickle_is_reported_as_truncated(tmp_path, state):
    torch.save(state, tmp_path / "full.pt", _use_new_zipfile_serialization=False)
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "cut.pt")


def test_directory_and_missing_file_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="is a directory"):
        load_checkpoint(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


# ------------------------------------------------------------------------------ wrappers


@pytest.mark.parametrize("key", ["state_dict", "model", "net", "model_state_dict", "module"])
def test_wrapped_state_dicts_are_unwrapped(tmp_path, state, key):
    torch.save({key: state, "epoch": 12, "optimizer": {"lr": 0.1}}, tmp_path / "c.pt")
    ckpt = load_checkpoint(tmp_path / "c.pt")
    assert (ckpt.format, ckpt.wrapper_key, ckpt.epoch) == ("wrapped", key, 12)
    assert same(ckpt.state_dict, state)


def test_nested_wrapper_is_unwrapped(tmp_path, state):
    torch.save({"model": {"state_dict": state}}, tmp_path / "c.pt")
    ckpt = load_checkpoint(tmp_path / "c.pt")
    assert ckpt.wrapper_key == "model.state_dict"
    assert same(ckpt.state_dict, state)


@pytest.mark.parametrize("ema_key", ["state_dict_ema", "model_ema"])
def test_ema_weights_are_used_only_on_request(tmp_path, state, ema_key):
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}
    torch.save({"state_dict": state, ema_key: ema}, tmp_path / "c.pt")
    assert same(load_checkpoint(tmp_path / "c.pt").state_dict, state)
    ckpt = load_checkpoint(tmp_path / "c.pt", ema=True)
    assert ckpt.wrapper_key == ema_key
    assert same(ckpt.state_dict, ema)


def test_ema_requested_but_absent_is_a_user_error(tmp_path, state):
    torch.save({"state_dict": state}, tmp_path / "c.pt")
    with pytest.raises(UserError, match="--ema"):
        load_checkpoint(tmp_path / "c.pt", ema=True)


def test_dict_without_weights_names_its_keys(tmp_path):
    torch.save({"optimizer": {"lr": 0.1}, "epoch": 3}, tmp_path / "c.pt")
    with pytest.raises(UserError, match="optimizer, epoch"):
        load_checkpoint(tmp_path / "c.pt")


def test_landscape_checkpoint_fields_are_read(tmp_path, state):
    payload = {
        "format": FORMAT,
        "version": 1,
        "arch": "mlp",
        "model": state,
        "epoch": 5,
        "phase": "sam",
        "config": {"dataset": "digits", "rho": 0.05},
        "history": [{"epoch": 1}],
        "optimizer": {},
    }
    save_checkpoint(tmp_path / "run" / "epoch-005-sam.pt", payload)
    ckpt = load_checkpoint(tmp_path / "run" / "epoch-005-sam.pt")
    assert (ckpt.format, ckpt.arch, ckpt.epoch, ckpt.phase) == ("landscape", "mlp", 5, "sam")
    assert ckpt.config["dataset"] == "digits" and ckpt.history == [{"epoch": 1}]
    assert same(ckpt.state_dict, state)


# ------------------------------------------------------------------------------ prefixes


@pytest.mark.parametrize(
    "prefix", ["module.", "_orig_mod.", "module._orig_mod.", "_orig_mod.module."]
)
def test_wrapper_prefixes_are_always_stripped(tmp_path, state, prefix):
    torch.save({prefix + k: v for k, v in state.items()}, tmp_path / "c.pt")
    ckpt = load_checkpoint(tmp_path / "c.pt")
    assert same(ckpt.state_dict, state)
    assert "".join(ckpt.prefixes_stripped) in (prefix, prefix[len("module.") :] + "module.", prefix)


def test_compiled_submodule_prefix_inside_names_is_stripped():
    stripped, notes = strip_prefixes({"body._orig_mod.0.weight": torch.ones(1)})
    assert list(stripped) == ["body.0.weight"] and notes


def test_other_prefixes_are_left_for_the_architecture_to_decide(state):
    lightning = {"model." + k: v for k, v in state.items()}
    assert strip_prefixes(lightning)[0].keys() == lightning.keys()


# -------------------------------------------------------------------------------- safety


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_crafted_pickle_is_refused_without_running_it(tmp_path, state, legacy):
    marker = tmp_path / "pwned"
    torch.save(
        {"state_dict": state, "payload": WritesAFile(marker)},
        tmp_path / "evil.pt",
        _use_new_zipfile_serialization=not legacy,
    )
    with pytest.raises(UserError) as info:
        load_checkpoint(tmp_path / "evil.pt")
    message = str(info.value)
    assert "io.open" in message and "--trust-checkpoint" in message
    assert "\n" not in message
    assert not marker.exists()


def test_pickled_whole_module_needs_trust(tmp_path):
    model = tiny()
    torch.save(model, tmp_path / "whole.pt")
    with pytest.raises(UserError, match="--trust-checkpoint"):
        load_checkpoint(tmp_path / "whole.pt")
    ckpt = load_checkpoint(tmp_path / "whole.pt", trust=True)
    assert ckpt.format == "pickled-module" and isinstance(ckpt.module, nn.Sequential)
    assert same(ckpt.state_dict, model.state_dict())


def test_torchscript_archive_is_recognised_and_needs_trust(tmp_path):
    model = torch.jit.trace(nn.Linear(3, 2).eval(), torch.zeros(1, 3))
    model.save(str(tmp_path / "scripted.bin"))
    assert sniff_container(tmp_path / "scripted.bin") == "torchscript"
    with pytest.raises(UserError, match="TorchScript.*--trust-checkpoint"):
        load_checkpoint(tmp_path / "scripted.bin")
    ckpt = load_checkpoint(tmp_path / "scripted.bin", trust=True)
    assert ckpt.format == "torchscript" and set(ckpt.state_dict) == {"weight", "bias"}


def test_plain_pickle_of_a_dict_is_not_a_torch_checkpoint_but_is_safe(tmp_path, state):
    with open(tmp_path / "p.pkl", "wb") as fh:
        pickle.dump({"x": 1}, fh, protocol=2)
    with pytest.raises(UserError):
        load_checkpoint(tmp_path / "p.pkl")


# --------------------------------------------------------------------------- finite weights


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_weights_are_named(state, bad):
    state = dict(state)
    state["2.weight"] = state["2.weight"].clone()
    state["2.weight"][0, 0] = bad
    assert nonfinite_entries(state) == ["2.weight"]
    with pytest.raises(UserError, match=r"NaN or Inf weights in 2\.weight"):
        check_finite(state, "c.pt")


def test_data_only_extras_beside_the_weights_load_without_trust(tmp_path, state):
    import argparse

    import numpy as np

    extras = {"acc": np.float64(0.93), "curve": np.arange(3.0), "args": argparse.Namespace(lr=0.1)}
    torch.save({"net": state, **extras}, tmp_path / "c.pt")
    ckpt = load_checkpoint(tmp_path / "c.pt")
    assert ckpt.wrapper_key == "net" and same(ckpt.state_dict, state)
    assert ckpt.raw["args"].lr == 0.1 and float(ckpt.raw["acc"]) == 0.93


def test_code_hidden_in_an_object_array_is_still_refused(tmp_path, state):
    import numpy as np

    marker = tmp_path / "pwned"
    torch.save(
        {"net": state, "objects": np.array([WritesAFile(marker)], dtype=object)}, tmp_path / "c.pt"
    )
    with pytest.raises(UserError, match="--trust-checkpoint"):
        load_checkpoint(tmp_path / "c.pt")
    assert not marker.exists()


def deflated_copy(source: Path, target: Path) -> Path:
    """``source``, a torch.save zip, rewritten with every entry deflated (as no torch writes)."""
    import zipfile

    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for entry in old.infolist():
            new.writestr(entry.filename, old.read(entry.filename))
    return target


def test_a_compressed_checkpoint_inflating_beyond_memory_is_refused_unread(tmp_path, monkeypatch):
    from landscape import memory

    torch.save({"w": torch.zeros(1 << 20)}, tmp_path / "plain.pt")  # 4 MiB of zeros
    bomb = deflated_copy(tmp_path / "plain.pt", tmp_path / "bomb.pt")
    assert bomb.stat().st_size < 64 << 10
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 1 << 20)
    loads = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a))
    with pytest.raises(UserError, match=r"bomb\.pt .*compressed entr.* needs 4\.0 MiB.*1\.0 MiB"):
        load_checkpoint(bomb)
    assert loads == []


def test_a_compressed_checkpoint_that_fits_still_loads(tmp_path, state):
    torch.save(state, tmp_path / "plain.pt")
    packed = deflated_copy(tmp_path / "plain.pt", tmp_path / "packed.pt")
    loaded = load_checkpoint(packed)
    assert all(torch.equal(loaded.state_dict[k], v) for k, v in state.items())
