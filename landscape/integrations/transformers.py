"""``SharpnessCallback`` for Hugging Face's ``Trainer``: :class:`landscape.Tracker` called at
every ``on_step_end`` with ``state.global_step``.

::

    from landscape.integrations.transformers import SharpnessCallback

    callback = SharpnessCallback(input_ids, labels, every=50, measures="lambda1")
    Trainer(model=model, args=args, train_dataset=data, callbacks=[callback]).train()

A Hugging Face model takes keywords and returns an output object, so the tracker measures
``loss_fn(model(**{input_name: x}), y)``; the default loss is the cross-entropy of the output's
``logits`` (a sequence classifier's). Give ``loss_fn`` for other heads. Under several processes
every rank measures its share and the main process writes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

try:
    from transformers import TrainerCallback
except ImportError as exc:
    raise ImportError(
        "landscape.integrations.transformers needs transformers: pip install transformers"
    ) from exc


def logits_cross_entropy(outputs: Any, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``outputs.logits`` (or of ``outputs`` when it is a tensor)."""
    logits = outputs if isinstance(outputs, torch.Tensor) else outputs["logits"]
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


class KeywordInput(nn.Module):
    """``model(**{name: x})`` as a module of one positional input (the parameters are the
    model's own, under the prefix ``model.``)."""

    def __init__(self, model: nn.Module, name: str = "input_ids") -> None:
        super().__init__()
        self.model, self.name = model, name

    def forward(self, x: torch.Tensor) -> Any:
        return self.model(**{self.name: x})


class SharpnessCallback(TrainerCallback):
    """Track sharpness during ``Trainer.train``. ``x, y`` (or a DataLoader of ``(x, y)`` as
    ``x``) are the inputs under ``input_name`` and the targets; every keyword of
    :class:`landscape.Tracker` (``every``, ``measures``, ``out``, ``name``, ``samples``,
    ``budget``, ``tensorboard``, ...) is the tracker's; the optimizer (for the 2/lr line) is the
    trainer's."""

    def __init__(
        self,
        x: Any,
        y: Any = None,
        *,
        loss_fn=logits_cross_entropy,
        input_name: str = "input_ids",
        **options: Any,
    ) -> None:
        self.x, self.y, self.loss_fn, self.input_name = x, y, loss_fn, input_name
        self.options = options
        self.tracker = None

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        from landscape.track import Tracker

        options = {"name": type(model).__name__, **self.options}
        self.tracker = Tracker(
            KeywordInput(model, self.input_name),
            self.loss_fn,
            self.x,
            self.y,
            optimizer=optimizer,
            **options,
        )

    def on_step_end(self, args, state, control, **kwargs):
        if self.tracker is not None:
            self.tracker.step(state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        if self.tracker is not None:
            self.tracker.close()
