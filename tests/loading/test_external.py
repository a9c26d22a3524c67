"""Models from timm and Transformers: what a failed weight-name conversion may and may not hide."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from landscape.loading.external import hf_state_dict

pytest.importorskip("transformers")


def _model_whose_conversion_raises(exc: Exception) -> nn.Module:
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
