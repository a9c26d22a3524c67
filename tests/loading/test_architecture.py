"""Resolving --arch: registry names, torchvision models, user factories."""

from __future__ import annotations

import textwrap

import pytest
import torch

from landscape.errors import UserError
from landscape.loading.architecture import build_architecture, load_factory, parse_kwargs

FACTORIES = textwrap.dedent(
    """
    from torch import nn

    def mlp(hidden=5, num_classes=3):
        return nn.Sequential(
            nn.Flatten(), nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def fixed():
        return nn.Linear(4, 2)

    def raises():
        raise ValueError("no such width")

    def not_a_module():
        return {"weights": 1}
    """
)


@pytest.fixture
def factory_file(tmp_path):
    path = tmp_path / "my_models.py"
    path.write_text(FACTORIES)
    return path


def build(spec, **kwargs):
    return build_architecture(spec, input_shape=(1, 8, 8), num_classes=10, **kwargs)


def test_registry_name_builds_for_the_data_shape():
    model = build("mlp")  # input (1, 8, 8), 10 classes
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_unknown_registry_name_is_a_user_error():
    with pytest.raises(UserError, match="resnet20"):
        build("resnet-9000")


def test_torchvision_model_gets_the_class_count():
    model = build_architecture("torchvision:resnet18", input_shape=(3, 32, 32), num_classes=7)
    assert model.fc.out_features == 7


def test_unknown_torchvision_model_is_a_user_error():
    with pytest.raises(UserError, match="no such torchvision"):
        build("torchvision:resnet1800")


def test_file_factory_receives_arch_kwargs(factory_file):
    model = build(f"{factory_file}:mlp", kwargs={"hidden": 7})
    assert model[1].out_features == 7 and model[3].out_features == 3


def test_explicit_class_count_is_passed_to_a_factory_that_accepts_it(factory_file):
    model = build(f"{factory_file}:mlp", explicit_num_classes=True)
    assert model[3].out_features == 10


def test_explicit_class_count_is_not_forced_on_a_factory_without_it(factory_file):
    model = build(f"{factory_file}:fixed", explicit_num_classes=True)
    assert (model.in_features, model.out_features) == (4, 2)  # as the factory built it


def test_module_factory_is_imported_by_dotted_name(factory_file, monkeypatch):
    monkeypatch.syspath_prepend(str(factory_file.parent))
    model = build("my_models:fixed")
    assert (model.in_features, model.out_features) == (4, 2)


@pytest.mark.parametrize(
    "name, message",
    [
        ("raises", "factory raised ValueError: no such width"),
        ("not_a_module", "returned a dict, not a torch.nn.Module"),
        ("missing", "has no attribute 'missing'"),
    ],
)
def test_bad_factories_are_user_errors(factory_file, name, message):
    with pytest.raises(UserError, match=message):
        build(f"{factory_file}:{name}")


def test_factory_file_that_does_not_exist_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_factory(f"{tmp_path / 'nope.py'}:f")


def test_factory_file_that_fails_to_import_is_a_user_error(tmp_path):
    (tmp_path / "broken.py").write_text("import no_such_module_anywhere\n")
    with pytest.raises(UserError, match="ModuleNotFoundError"):
        load_factory(f"{tmp_path / 'broken.py'}:f")


@pytest.mark.parametrize("text", ["{bad json", "[1, 2]"])
def test_arch_kwargs_must_be_a_json_object(text):
    with pytest.raises(UserError, match="--arch-kwargs"):
        parse_kwargs(text)


def test_arch_kwargs_json_is_parsed():
    assert parse_kwargs('{"width": 2}') == {"width": 2} and parse_kwargs(None) == {}


@pytest.fixture
def eight_mib(monkeypatch):
    """A machine with 8 MiB of memory available."""
    from landscape import memory

    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 8 << 20)


def test_a_config_asking_for_more_memory_than_there_is_is_refused_before_building(
    eight_mib, monkeypatch
):
    pytest.importorskip("transformers")
    from landscape.loading import external

    built = []
    real = external._hf_model
    monkeypatch.setattr(
        external, "_hf_model", lambda *a: built.append(torch.get_default_device()) or real(*a)
    )
    config = {"model_type": "gpt2", "n_embd": 4, "n_layer": 1, "n_head": 2, "vocab_size": 10**6}
    with pytest.raises(UserError, match=r"model hf:gpt2 \(4,0\d\d,\d\d\d parameters\) needs 15\.3"):
        build("hf:gpt2", kwargs=config)
    assert built == [torch.device("meta")], "sized on the meta device, never built for real"


def test_a_model_that_fits_is_built_after_sizing(eight_mib):
    assert sum(p.numel() for p in build("cnn-bn").parameters()) > 0
