"""Models from timm and Transformers: sequence and token classifier folders built as the
folder's own class, their Hessian products equal to an exact float64 dense Hessian of the same
weights; the Hub stays offline while landscape builds one, and a failed weight-name conversion
hides only the failures it expects."""

from __future__ import annotations

import os
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

import landscape
from landscape.curvature import HessianOperator
from landscape.errors import UserError
from landscape.loading.external import OFFLINE_VARIABLES, hf_state_dict, hub_offline
from landscape.losses import make_loss
from tests.curvature.test_substitutions import dense_hessian, finite_difference_column
from tests.loading.tiny_hf import TINY_BERT

transformers = pytest.importorskip("transformers")

BERT = TINY_BERT
CLASSES = {
    "sequence": "BertForSequenceClassification",
    "token": "BertForTokenClassification",
}
# Token ids (4 sequences of 6) with one label per sequence or per token.
DATA = textwrap.dedent(
    """
    import torch

    def sequences():
        g = torch.Generator().manual_seed(0)
        return torch.randint(0, 16, (4, 6), generator=g), torch.tensor([0, 1, 2, 1])

    def tokens():
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(0, 16, (4, 6), generator=g)
        return ids, torch.randint(0, 3, (4, 6), generator=g)
    """
)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("bert")
    for kind, name in {**CLASSES, "masked": "BertForMaskedLM"}.items():
        torch.manual_seed(0)
        getattr(transformers, name)(transformers.BertConfig(**BERT)).save_pretrained(root / kind)
    (root / "data.py").write_text(DATA)
    return root


def load(folders, kind: str):
    factory = "sequences" if kind == "sequence" else "tokens"
    model, data, _ = landscape.load(
        folders / kind, data=f"{folders / 'data.py'}:{factory}", dtype="float64"
    )
    x, y = data.split("train")
    return model, x, y


@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_classifier_folder_is_built_as_its_own_class_with_logits(folders, kind):
    model, x, _ = load(folders, kind)
    assert type(model).__name__ == CLASSES[kind]
    library = getattr(transformers, CLASSES[kind]).from_pretrained(folders / kind).double().eval()
    expected = library(input_ids=x.long()).logits
    got = model(x.double())  # the analyses pass ids in the compute dtype
    assert got.shape == ((4, 3) if kind == "sequence" else (4, 6, 3))
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_classifier_products_equal_the_dense_float64_hessian(folders, kind):
    model, x, y = load(folders, kind)
    reference = getattr(transformers, CLASSES[kind]).from_pretrained(
        folders / kind, attn_implementation="eager", dtype=torch.float64
    )
    for net in (model, reference):
        net.eval().bert.embeddings.requires_grad_(False)  # a smaller dense Hessian

    loss_fn = make_loss()
    params = [p for p in reference.parameters() if p.requires_grad]
    wrapped = _Logits(reference)
    dense = dense_hessian(wrapped, loss_fn, x, y)
    assert dense.shape[0] == sum(p.numel() for p in params)
    column = finite_difference_column(wrapped, loss_fn, x, y, index=dense.shape[0] // 3)
    np.testing.assert_allclose(dense[:, dense.shape[0] // 3], column, atol=1e-7)
    v = torch.randn(dense.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with HessianOperator(model, loss_fn, x.double(), y) as op:
        np.testing.assert_allclose(op.matvec(v).numpy(), dense @ v.numpy(), rtol=1e-9, atol=1e-11)


class _Logits(torch.nn.Module):
    """A Transformers model as ids -> logits, without landscape's hooks (the reference)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.net(input_ids=ids.long()).logits


def test_a_folder_of_another_head_is_refused_in_one_line_naming_what_is_supported(folders):
    with pytest.raises(UserError) as caught:
        load(folders, "masked")
    message = str(caught.value)
    assert "BertForMaskedLM" in message and "ForSequenceClassification" in message
    assert "\n" not in message


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
