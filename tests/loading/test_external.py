"""The Hub stays offline while landscape builds a timm or Transformers model."""

from __future__ import annotations

import os

import pytest

from landscape.loading.external import OFFLINE_VARIABLES, hub_offline


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
