"""`landscape surface` / `interpolate`: evaluation batches measured, cached, overridden, or fixed
where they define BatchNorm statistics."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from landscape import batching, store
from landscape.cli import main
from tests.cli.test_surface_cli import _checkpoint

SAMPLES = ["--samples", "150"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpts")
    return {"a": _checkpoint(folder / "c.pt", seed=0), "b": _checkpoint(folder / "d.pt", seed=1)}


@pytest.fixture
def no_probe(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the batch size was probed")

    monkeypatch.setattr(batching, "probe", refuse)
    import landscape.surface.stacked as stacked

    monkeypatch.setattr(stacked, "probe", refuse)


def _surface(ckpt, out, *extra):
    assert (
        main(["surface", str(ckpt["a"]), "--x=-1:1:5", "--out", str(out), "-q", *SAMPLES, *extra])
        == 0
    )
    with h5py.File(out, "r") as f:
        g = f[f"surface/{store.checkpoint_label(ckpt['a'])}-random-1d"]
        return json.loads(g.attrs["config"]), g["train_loss"][()]


def test_default_batch_is_measured_and_cached_and_does_not_change_the_numbers(ckpt, tmp_path):
    config, loss = _surface(ckpt, tmp_path / "auto.h5")
    assert config["batch_size"] == "auto"
    entries = json.loads(batching.cache_file().read_text())
    assert {e["kind"] for e in entries.values()} >= {"forward"}
    _, given = _surface(ckpt, tmp_path / "given.h5", "--batch-size", "7")
    np.testing.assert_allclose(loss, given, rtol=1e-6)


def test_a_rerun_uses_the_cached_size_without_probing(ckpt, tmp_path, monkeypatch):
    _surface(ckpt, tmp_path / "first.h5")
    calls = []
    monkeypatch.setattr(batching, "probe", lambda *a, **k: calls.append(a) or {16: 1.0})
    _surface(ckpt, tmp_path / "second.h5")
    assert calls == []


@pytest.mark.parametrize(
    ("flags", "batch"),
    [
        (["--batch-size", "9"], 9),
        (["--bn", "train"], 150),
    ],  # 150 = min(500, samples): the fixed default
    ids=["given", "bn-train"],
)
def test_no_probe_where_the_batch_is_given_or_defines_the_statistics(
    ckpt, tmp_path, no_probe, flags, batch
):
    config, _ = _surface(ckpt, tmp_path / "s.h5", *flags)
    assert config["batch_size"] == batch


def test_recalibration_batch_stays_fixed_while_evaluation_is_measured(ckpt, tmp_path):
    config, _ = _surface(ckpt, tmp_path / "s.h5", "--bn", "recalibrate")
    assert config["batch_size"] == "auto" and config["bn_batch_size"] == 150


def test_interpolate_measures_its_batch(ckpt, tmp_path):
    out = tmp_path / "i.h5"
    assert (
        main(
            [
                "interpolate",
                str(ckpt["a"]),
                str(ckpt["b"]),
                "--alpha=0:1:3",
                "--out",
                str(out),
                "-q",
                *SAMPLES,
            ]
        )
        == 0
    )
    with h5py.File(out, "r") as f:
        (name,) = list(f["interpolation"])
        config = json.loads(f[f"interpolation/{name}"].attrs["config"])
    assert config["batch_size"] == "auto" and config["bn_batch_size"] == 150


def test_channels_last_gives_the_same_surface_and_bf16_is_close_and_recorded(ckpt, tmp_path):
    plain, loss = _surface(ckpt, tmp_path / "plain.h5", "--batch-size", "50")
    _, channels_last = _surface(ckpt, tmp_path / "cl.h5", "--batch-size", "50", "--channels-last")
    config, bf16 = _surface(ckpt, tmp_path / "bf16.h5", "--batch-size", "50", "--bf16")
    np.testing.assert_allclose(channels_last, loss, rtol=1e-6)
    # docs/guide.md: bf16 autocast moves the loss by a few 1e-4 relative. Equal values would
    # mean autocast did nothing; more than 1e-3 would contradict the docs.
    relative = np.abs(bf16 - loss) / np.abs(loss)
    assert 1e-6 < relative.max() < 1e-3, relative
    assert config["autocast"] == "bfloat16" and "autocast" not in plain
