"""Models from timm and Transformers: the Hub stays offline while landscape builds one, and a
failed weight-name conversion hides only the failures it expects."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from landscape.loading.external import OFFLINE_VARIABLES, hf_state_dict, hub_offline


def test_the_hub_is_offline_inside_and_as_before_outside(monkeypatch):
    constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with hub_offline():
        assert constants.is_offline_mode()
        assert all(os.environ[name] == "1" for name in OFFLINE_VARIABLES)
    assert not constants.is_offline_mode()
    assert "HF_HUB_OFFLINE" not in os.environ and os.environ["TRANSFORMERS_OFFLINE"] == "0"


def _model_whose_conversion_raises(exc: Exception) -> nn.Module:
    pytest.importorskip("transformers")

    class Model(nn.Linear):
        config = None

        @classmethod
        def from_pretrained(cls, *args, **kwargs):
            raise exc

    return Model(2, 2)


def test_a_state_dict_the_conversion_cannot_place_keeps_its_names_for_the_report():
    state = {"old.weight": torch.zeros(2, 2)}
    model = _model_whose_conversion_raises(RuntimeError("size mismatch for weight"))
    assert hf_state_dict(model, state) is state


def test_a_bug_in_the_conversion_is_not_taken_for_a_mismatch():
    model = _model_whose_conversion_raises(AttributeError("'NoneType' has no attribute 'x'"))
    with pytest.raises(AttributeError):
        hf_state_dict(model, {"old.weight": torch.zeros(2, 2)})
