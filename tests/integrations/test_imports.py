"""Each integration names the package to install when its framework is missing."""

import importlib
import sys

import pytest


@pytest.mark.parametrize(
    ("module", "hidden", "advice"),
    [
        ("lightning", ("lightning", "pytorch_lightning"), "pip install lightning"),
        ("transformers", ("transformers",), "pip install transformers"),
    ],
)
def test_an_integration_without_its_framework_is_a_clear_import_error(
    monkeypatch, module, hidden, advice
):
    for name in hidden:
        monkeypatch.setitem(sys.modules, name, None)  # import of it fails
    monkeypatch.delitem(sys.modules, f"landscape.integrations.{module}", raising=False)
    with pytest.raises(ImportError, match=advice):
        importlib.import_module(f"landscape.integrations.{module}")
