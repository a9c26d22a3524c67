"""A file is data: what a checkpoint records about its model never runs code or reaches the
network unless the user says so (``--arch`` on the command line or ``--trust-checkpoint``).

Each test builds the malicious file itself and checks that nothing it asks for happened.
"""

from __future__ import annotations

import json
import logging
import socket
import textwrap

import pytest
import torch

from landscape.errors import UserError
from landscape.loading.checkpoint import FORMAT, save_checkpoint
from landscape.loading.loader import DataSource, ModelSource, load_models
from landscape.loading.recorded import is_plain, scrub_hf_config, vet_recorded_arch
from landscape.models import build_model

DIGITS = DataSource(dataset="digits")
IMAGES = textwrap.dedent(
    """
    import torch

    def images():
        return torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    """
)


def cnn_state():
    torch.manual_seed(0)
    return build_model("cnn-bn", (1, 8, 8), 10).state_dict()


@pytest.fixture
def no_network(monkeypatch):
    """Every connection and name lookup fails, and is recorded."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", lambda self, *a: refuse(*a))
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def landscape_file(path, arch, arch_kwargs):
    """A landscape checkpoint that loads with weights_only=True: only strings and tensors."""
    save_checkpoint(
        path,
        {
            "format": FORMAT,
            "version": 1,
            "arch": arch,
            "model": cnn_state(),
            "epoch": 1,
            "config": {"dataset": "digits", "arch": arch, "arch_kwargs": arch_kwargs},
            "history": [],
        },
    )
    return path


def marker_code(tmp_path, marker):
    """A .py file whose import (and factory) would create ``marker``."""
    code = tmp_path / "evil.py"
    code.write_text(
        textwrap.dedent(
            f"""
            from pathlib import Path
            Path({str(marker)!r}).write_text("ran")
            from landscape.models import build_model

            def build(**kwargs):
                return build_model("cnn-bn", (1, 8, 8), 10)
            """
        )
    )
    return code


def test_recorded_shell_command_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = landscape_file(tmp_path / "evil.pt", "subprocess:getoutput", {"cmd": f"touch {marker}"})
    with pytest.raises(UserError, match=r"subprocess:getoutput.*nothing was run.*--arch"):
        load_models(path, ModelSource(), DIGITS)
    assert not marker.exists()


def test_python_api_refuses_the_recorded_shell_command(tmp_path):
    import landscape

    marker = tmp_path / "pwned"
    path = landscape_file(tmp_path / "evil.pt", "subprocess:getoutput", {"cmd": f"touch {marker}"})
    with pytest.raises(UserError, match="--trust-checkpoint"):
        landscape.load(path, dataset="digits")
    assert not marker.exists()


def test_safetensors_metadata_naming_a_python_file_is_refused(tmp_path):
    from safetensors.torch import save_file

    marker = tmp_path / "pwned"
    code = marker_code(tmp_path, marker)
    path = tmp_path / "model.safetensors"
    save_file(cnn_state(), str(path), metadata={"arch": f"{code}:build"})
    with pytest.raises(UserError, match=r"evil\.py:build.*nothing was run"):
        load_models(path, ModelSource(), DIGITS)
    assert not marker.exists()


def test_trust_checkpoint_allows_the_recorded_factory(tmp_path):
    from safetensors.torch import save_file

    marker = tmp_path / "ran"
    code = marker_code(tmp_path, marker)
    path = tmp_path / "model.safetensors"
    save_file(cnn_state(), str(path), metadata={"arch": f"{code}:build"})
    [target], _ = load_models(path, ModelSource(trust=True), DIGITS)
    assert marker.exists() and target.arch == f"{code}:build"


def test_the_same_factory_named_on_the_command_line_runs(tmp_path):
    marker = tmp_path / "ran"
    code = marker_code(tmp_path, marker)
    path = tmp_path / "raw.pt"
    torch.save(cnn_state(), path)
    load_models(path, ModelSource(arch=f"{code}:build"), DIGITS)
    assert marker.exists()


@pytest.mark.parametrize(
    "kwargs, refused",
    [
        ({"checkpoint_path": "/etc/passwd"}, "checkpoint_path"),
        ({"pretrained_cfg": "augreg_in21k"}, "pretrained_cfg"),
        ({"pretrained_cfg_overlay": {"file": "/tmp/w.bin"}}, "pretrained_cfg_overlay"),
        ({"pretrained": True}, "pretrained"),
        ({"act_layer": "../../evil"}, "not a plain"),
        ({"act_layer": "https://example.com/x"}, "not a plain"),
    ],
    ids=["checkpoint_path", "pretrained_cfg", "cfg_overlay", "pretrained", "path", "url"],
)
def test_timm_folder_model_args_that_load_files_are_refused(tmp_path, kwargs, refused):
    pytest.importorskip("timm")
    from tests import external_models as em

    folder = em.save_timm(em.vit(), tmp_path / "vit", {**em.VIT_ARGS, **kwargs})
    images = tmp_path / "images.py"
    images.write_text(IMAGES)
    with pytest.raises(UserError, match=rf"{refused}.*--trust-checkpoint"):
        load_models(folder, ModelSource(), DataSource(data=f"{images}:images"))


def test_plain_timm_model_args_still_build_the_folder():
    kwargs = {"img_size": 32, "depths": [1, 1], "act_layer": "gelu", "pretrained": False}
    assert vet_recorded_arch("timm:vit_tiny_patch16_224", kwargs, source="x") == kwargs


@pytest.mark.parametrize(
    "value, plain",
    [(3, True), (0.5, True), ([2, [2, 3]], True), ("layernorm2d", True), (None, True)]
    + [("/abs/x", False), ("a.py", False), ({"k": 1}, False), (float("nan"), False)],
)
def test_plain_values_are_numbers_flags_and_short_names(value, plain):
    assert is_plain(value) is plain


def test_torchvision_weights_recorded_in_a_file_are_refused():
    with pytest.raises(UserError, match="weights.*nothing was read"):
        vet_recorded_arch("torchvision:resnet18", {"weights": "DEFAULT"}, source="checkpoint x")


def test_hf_config_loses_code_and_kernel_keys_at_every_depth(caplog):
    config = {
        "model_type": "gpt2",
        "auto_map": {"AutoModel": "evil.Model"},
        "trust_remote_code": True,
        "attn_implementation": "kernels-community/flash-attn2",
        "text_config": {"_attn_implementation": "org/kernel", "hidden_size": 4},
        "n_embd": 4,
    }
    with caplog.at_level(logging.WARNING):
        clean = scrub_hf_config(config, source="model folder f")
    assert clean == {"model_type": "gpt2", "text_config": {"hidden_size": 4}, "n_embd": 4}
    assert len(caplog.records) == 4
    assert all("--trust-checkpoint" in r.getMessage() for r in caplog.records)


def test_hf_config_keeps_the_built_in_attention():
    config = {"model_type": "gpt2", "attn_implementation": "eager"}
    assert scrub_hf_config(config, source="f") == config


def test_hf_folder_with_a_hub_kernel_loads_offline_without_it(tmp_path, no_network, caplog):
    pytest.importorskip("transformers")
    from tests import external_models as em

    folder = em.save_gpt2(tmp_path / "gpt2")
    config = json.loads((folder / "config.json").read_text())
    config["attn_implementation"] = "kernels-community/flash-attn2"
    (folder / "config.json").write_text(json.dumps(config))
    data = DataSource(data=f"tokens:{em.token_file(tmp_path / 'train.bin')}", block_size=8)
    with caplog.at_level(logging.WARNING):
        [target], _ = load_models(folder, ModelSource(), data)
    assert no_network == []
    assert target.model.config._attn_implementation in ("eager", "sdpa")
    assert any("kernels-community/flash-attn2" in r.getMessage() for r in caplog.records)


def test_a_hub_kernel_named_on_the_command_line_is_not_downloaded(no_network):
    pytest.importorskip("transformers")
    from landscape.loading.external import hf_model
    from tests import external_models as em

    kwargs = {**em.GPT2_CONFIG, "attn_implementation": "kernels-community/flash-attn2"}
    with pytest.raises(UserError):
        hf_model("gpt2", None, kwargs)
    assert no_network == []
