"""The one loading path: checkpoints + flags -> models on a device, and the data to analyse them."""

from __future__ import annotations

import logging
import textwrap

import pytest
import torch
from torch import nn

from landscape.data import load_dataset
from landscape.errors import UserError
from landscape.loading.checkpoint import FORMAT, save_checkpoint
from landscape.loading.loader import (
    DataSource,
    ModelSource,
    align_prefix,
    load_data,
    load_models,
    provenance,
    renormalise,
)
from landscape.models import build_model
from landscape.store import PROVENANCE_KEYS

DIGITS = DataSource(dataset="digits")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture
def cnn():
    torch.manual_seed(0)
    return build_model("cnn-bn", (1, 8, 8), 10).eval()


def landscape_payload(model, **extra):
    return {
        "format": FORMAT,
        "version": 1,
        "arch": "cnn-bn",
        "model": model.state_dict(),
        "epoch": 4,
        "phase": "sgd",
        "config": {"dataset": "digits", "arch": "cnn-bn"},
        "history": [],
        **extra,
    }


def outputs_match(target, reference, data, dtype=torch.float32):
    x = data.test_x[:16]
    with torch.no_grad():
        got = target.model(x.to(dtype))
        want = reference.to(dtype).eval()(x.to(dtype))
    return torch.allclose(got, want, atol=1e-6)


# -------------------------------------------------------------------------- the happy paths


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_landscape_checkpoint_needs_no_flags(tmp_path, cnn, digits, dtype):
    save_checkpoint(tmp_path / "epoch-004-sgd.pt", landscape_payload(cnn))
    [target], data = load_models(
        tmp_path / "epoch-004-sgd.pt", ModelSource(), DataSource(), "cpu", dtype
    )
    assert (target.arch, target.epoch, target.phase, target.stem) == (
        "cnn-bn",
        4,
        "sgd",
        f"{tmp_path.name}_epoch-004-sgd",
    )
    assert data.name == "digits" and not target.model.training
    assert next(target.model.parameters()).dtype == dtype
    assert outputs_match(target, cnn, data, dtype)


@pytest.mark.parametrize(
    "rename",
    [
        lambda k: k,
        lambda k: "module." + k,  # DataParallel / DDP
        lambda k: "_orig_mod." + k,  # torch.compile
        lambda k: "model." + k,  # Lightning
    ],
    ids=["raw", "dataparallel", "compiled", "lightning"],
)
def test_third_party_state_dicts_load_with_arch(tmp_path, cnn, digits, rename):
    torch.save(
        {"state_dict": {rename(k): v for k, v in cnn.state_dict().items()}}, tmp_path / "c.pt"
    )
    [target], data = load_models([tmp_path / "c.pt"], ModelSource(arch="cnn-bn"), DIGITS)
    assert outputs_match(target, cnn, data)


def test_lightning_prefix_is_stripped_only_when_keys_then_match(cnn):
    expected = set(cnn.state_dict())
    state = {"model." + k: v for k, v in cnn.state_dict().items()}
    state["criterion.weight"] = torch.ones(10)
    fixed, note, _ = align_prefix(state, expected)
    assert set(fixed) == expected and "model." in note and "ignored 1" in note
    unrelated = {"encoder." + k: v for k, v in list(cnn.state_dict().items())[:3]}
    assert align_prefix(unrelated, expected)[0] is unrelated


def test_third_party_checkpoint_without_arch_asks_for_it(tmp_path, cnn):
    torch.save(cnn.state_dict(), tmp_path / "c.pt")
    with pytest.raises(UserError, match="give --arch"):
        load_models([tmp_path / "c.pt"], ModelSource(), DIGITS)


def test_trusted_whole_module_is_its_own_architecture(tmp_path, cnn, digits):
    torch.save(cnn, tmp_path / "whole.pt")
    [target], data = load_models([tmp_path / "whole.pt"], ModelSource(trust=True), DIGITS)
    assert outputs_match(target, cnn, data)


def test_resnet18_dataparallel_checkpoint_worked_example(tmp_path):
    """README: someone's DataParallel ResNet-18 analysed with --arch torchvision:resnet18."""
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10)
    torch.save(
        {"epoch": 30, "state_dict": nn.DataParallel(net).state_dict()}, tmp_path / "resnet18_dp.pt"
    )
    (tmp_path / "cifar_like.py").write_text(
        textwrap.dedent(
            """
            import torch

            def data():
                g = torch.Generator().manual_seed(0)
                return torch.randn(8, 3, 32, 32, generator=g), torch.arange(8) % 10
            """
        )
    )
    [target], data = load_models(
        [tmp_path / "resnet18_dp.pt"],
        ModelSource(arch="torchvision:resnet18", num_classes=10),
        DataSource(data=f"{tmp_path / 'cifar_like.py'}:data"),
    )
    assert target.checkpoint.prefixes_stripped == ["module."] and target.epoch == 30
    assert outputs_match(target, net, data)


# ---------------------------------------------------------------------- mismatch reports


def test_wrong_architecture_reports_the_first_keys(tmp_path, cnn):
    torch.save(cnn.state_dict(), tmp_path / "c.pt")
    with pytest.raises(UserError) as info:
        load_models([tmp_path / "c.pt"], ModelSource(arch="mlp"), DIGITS)
    message = str(info.value)
    assert "does not fit architecture mlp" in message
    assert "missing (" in message and "unexpected (" in message and "features.0.weight" in message
    assert "--non-strict" in message and "\n" not in message


def test_wrong_class_count_suggests_the_right_one(tmp_path):
    three_class = build_model("cnn-bn", (1, 8, 8), 3)
    torch.save(three_class.state_dict(), tmp_path / "c.pt")
    with pytest.raises(UserError, match=r"shape mismatches.*\[3, .*try --num-classes 3"):
        load_models([tmp_path / "c.pt"], ModelSource(arch="cnn-bn"), DIGITS)


def test_non_strict_loads_what_fits_and_warns(tmp_path, cnn, caplog):
    state = dict(cnn.state_dict())
    head = [
        k for k in state if k.startswith("head") or k.startswith("classifier") or k.startswith("fc")
    ]
    last = head[-1] if head else list(state)[-1]
    del state[last]
    state["extra.weight"] = torch.zeros(2)
    torch.save(state, tmp_path / "c.pt")
    with caplog.at_level(logging.WARNING, logger="landscape.loading.loader"):
        [target], _ = load_models(
            [tmp_path / "c.pt"], ModelSource(arch="cnn-bn", strict=False), DIGITS
        )
    assert target.load_report["missing"] == [last]
    assert target.load_report["unexpected"] == ["extra.weight"]
    assert "--non-strict" in caplog.text
    loaded = target.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items() if k in loaded)


def test_missing_batchnorm_counters_are_tolerated(tmp_path, cnn, digits):
    state = {k: v for k, v in cnn.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "old.pt")
    [target], data = load_models([tmp_path / "old.pt"], ModelSource(arch="cnn-bn"), DIGITS)
    assert outputs_match(target, cnn, data)


def test_nonfinite_weights_are_refused_naming_the_parameter(tmp_path, cnn):
    state = dict(cnn.state_dict())
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name].clone().fill_(float("nan"))
    torch.save(state, tmp_path / "nan.pt")
    with pytest.raises(UserError, match=f"NaN or Inf weights in {name}"):
        load_models([tmp_path / "nan.pt"], ModelSource(arch="cnn-bn"), DIGITS)


# ---------------------------------------------------------------------------------- data


def test_data_shape_mismatch_is_found_by_one_forward(tmp_path):
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    torch.save(net.state_dict(), tmp_path / "c.pt")
    (tmp_path / "f.py").write_text(
        "import torch.nn as nn\ndef net():\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(3072, 10))\n"
    )
    with pytest.raises(UserError, match=r"does not accept inputs of shape \[1, 8, 8\]"):
        load_models([tmp_path / "c.pt"], ModelSource(arch=f"{tmp_path / 'f.py'}:net"), DIGITS)


def test_dataset_comes_from_the_checkpoint_config_unless_overridden(tmp_path, cnn):
    save_checkpoint(tmp_path / "c.pt", landscape_payload(cnn, config={"dataset": "cifar10"}))
    with pytest.raises(UserError, match="cifar10"):  # not downloaded here: the config was honoured
        load_models([tmp_path / "c.pt"], ModelSource(), DataSource(data_dir=str(tmp_path)))
    [target], data = load_models([tmp_path / "c.pt"], ModelSource(), DIGITS)
    assert data.name == "digits"


def test_the_training_split_carries_the_checkpoints_label_noise(tmp_path, cnn):
    from landscape.data import load_dataset, with_label_noise

    config = {"dataset": "digits", "label_noise": 0.2, "label_noise_seed": 4}
    save_checkpoint(tmp_path / "c.pt", landscape_payload(cnn, config=config))
    _, data = load_models([tmp_path / "c.pt"], ModelSource(), DataSource())
    clean = load_dataset("digits")
    assert torch.equal(data.train_y, with_label_noise(clean, 0.2, 4).train_y)
    assert torch.equal(data.test_y, clean.test_y)


@pytest.mark.parametrize("kind", ["pair", "dataset", "split"])
def test_user_data_factories(tmp_path, kind):
    (tmp_path / "d.py").write_text(
        textwrap.dedent(
            """
            import torch
            from torch.utils.data import TensorDataset

            X, Y = torch.randn(6, 2, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2])

            def pair():
                return X, Y

            def dataset():
                return TensorDataset(X, Y)

            def split(split):
                return (X, Y) if split == "train" else (X[:2], Y[:2])
            """
        )
    )
    data = load_data(DataSource(data=f"{tmp_path / 'd.py'}:{kind}"))
    assert data.input_shape == (2, 4, 4) and data.num_classes == 3 and data.train_x.shape[0] == 6
    assert data.test_x.shape[0] == (2 if kind == "split" else 6)


def test_renormalise_recovers_raw_values_then_applies_new_statistics(digits):
    renormed = renormalise(digits, mean=(0.5,), std=(0.25,))
    raw = digits.train_x * digits.std[0] + digits.mean[0]
    assert torch.allclose(renormed.train_x, (raw - 0.5) / 0.25, atol=1e-5)
    assert renormed.mean == (0.5,) and renormed.std == (0.25,)


def test_normalisation_from_checkpoint_config(tmp_path, cnn, digits):
    save_checkpoint(
        tmp_path / "c.pt",
        landscape_payload(cnn, config={"dataset": "digits", "mean": [0.5], "std": [0.25]}),
    )
    _, data = load_models([tmp_path / "c.pt"], ModelSource(), DataSource())
    assert data.mean == (0.5,) and data.std == (0.25,)


# ------------------------------------------------------------------------ names, provenance


def test_group_names_stay_unique_when_stems_collide(tmp_path, cnn):
    for run in ("a", "b"):
        save_checkpoint(tmp_path / run / "last.pt", landscape_payload(cnn))
    targets, _ = load_models(
        [tmp_path / "a" / "last.pt", tmp_path / "b" / "last.pt"], ModelSource(), DIGITS
    )
    assert [t.stem for t in targets] == ["a_last", "b_last"]


def test_provenance_has_every_attribute_the_store_requires(tmp_path, cnn):
    save_checkpoint(tmp_path / "c.pt", landscape_payload(cnn))
    [target], _ = load_models([tmp_path / "c.pt"], ModelSource(), DIGITS)
    prov = provenance(
        target,
        split="train",
        samples=100,
        bn_mode="eval",
        dtype="float64",
        seed=1,
        seconds=0.5,
        config={"k": 5},
    )
    assert set(PROVENANCE_KEYS) <= set(prov)
    assert prov["checkpoint_sha256"] == target.sha256 and len(target.sha256) == 64
    assert (prov["arch"], prov["epoch"], prov["phase"]) == ("cnn-bn", 4, "sgd")


def test_tied_parameters_stored_once_fill_every_name():
    """save_pretrained stores GPT-2's shared embedding/head weight once (issue 16)."""
    from landscape.loading.state_fit import fit_state_dict

    class Tied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(5, 3)
            self.head = torch.nn.Linear(3, 5, bias=False)
            self.head.weight = self.embed.weight

    model = Tied()
    weight = torch.randn(5, 3)
    report = fit_state_dict(model, {"embed.weight": weight})
    assert report["missing"] == [] and torch.equal(model.head.weight, weight)


def test_a_model_beyond_the_free_device_memory_is_refused_before_the_move(
    tmp_path, cnn, monkeypatch
):
    from landscape import memory

    monkeypatch.setattr(
        memory, "available_bytes", lambda device="cpu": 1024 if device.type == "cuda" else 1 << 40
    )
    torch.save(cnn.state_dict(), tmp_path / "raw.pt")
    with pytest.raises(
        UserError, match=r"model cnn-bn from .*raw\.pt needs .* free memory on cuda"
    ):
        load_models(
            tmp_path / "raw.pt", ModelSource(arch="cnn-bn"), DataSource(), "cuda", torch.float64
        )


def test_a_folder_config_far_larger_than_its_weights_is_refused_unbuilt(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    import json

    from landscape import memory
    from landscape.loading import external
    from tests import external_models as em

    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 1 << 40)
    builds = []
    real = external._hf_model
    monkeypatch.setattr(
        external, "_hf_model", lambda *a: builds.append(torch.get_default_device()) or real(*a)
    )
    folder = em.save_gpt2(tmp_path / "gpt2")
    config = json.loads((folder / "config.json").read_text())
    config["vocab_size"] = 10**8  # a 100-byte edit: 400 million parameters
    (folder / "config.json").write_text(json.dumps(config))
    data = DataSource(data=f"tokens:{em.token_file(tmp_path / 'train.bin')}", block_size=8)
    with pytest.raises(UserError, match=r"has 400,00\d,\d+ parameters, more than the \d+ numbers"):
        load_models(folder, ModelSource(), data)
    assert builds == [torch.device("meta")]
