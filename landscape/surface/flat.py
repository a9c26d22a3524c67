"""A model's parameters as one flat vector, written back into the same model in place.

Every grid or interpolation point is a weight vector ``theta`` of the form
``theta0 + a * d1 + b * d2`` or ``(1 - alpha) * A + alpha * B``. We keep ``theta0``, the
directions and one work buffer as flat tensors on the model's device and copy the buffer
into the existing parameter tensors: no model copies per point, and the model is restored
exactly afterwards (:func:`preserved_state`).

Directions and checkpoints are matched to parameters *by name* (never by position), so a
direction stored in a file fits a model whatever order its modules were registered in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn


class FlatParameters:
    """The named parameters of ``model`` laid end to end in ``named_parameters()`` order.

    ``names`` chooses (and orders) the tensors: parameters by default, floating-point buffers
    (BatchNorm running statistics) may be named too. Vectors made by this object live on the
    first tensor's device and dtype.
    """

    def __init__(self, model: nn.Module, names: list[str] | None = None) -> None:
        named = state_tensors(model)
        self.names: list[str] = (
            list(dict(model.named_parameters())) if names is None else list(names)
        )
        missing = [n for n in self.names if n not in named]
        if missing:
            raise KeyError(f"model has no parameters or buffers named {missing}")
        self.params: list[torch.Tensor] = [named[n] for n in self.names]
        self.shapes = [tuple(p.shape) for p in self.params]
        self.numels = [p.numel() for p in self.params]
        self.offsets = [0]
        for n in self.numels:
            self.offsets.append(self.offsets[-1] + n)
        first = self.params[0] if self.params else torch.empty(0)
        self.device = first.device
        self.dtype = first.dtype

    @property
    def dim(self) -> int:
        return self.offsets[-1]

    def empty(self) -> torch.Tensor:
        return torch.empty(self.dim, device=self.device, dtype=self.dtype)

    def get(self) -> torch.Tensor:
        """A copy of the current parameters as one flat vector."""
        with torch.no_grad():
            if not self.params:
                return self.empty()
            return torch.cat([p.detach().reshape(-1) for p in self.params]).to(self.dtype)

    def views(self, vector: torch.Tensor) -> list[torch.Tensor]:
        """Views of ``vector`` shaped like each parameter (no copies)."""
        return [
            vector[start:stop].view(shape)
            for start, stop, shape in zip(self.offsets[:-1], self.offsets[1:], self.shapes)
        ]

    @torch.no_grad()
    def set(self, vector: torch.Tensor) -> None:
        """Copy ``vector`` into the model's parameter tensors in place."""
        if vector.numel() != self.dim:
            raise ValueError(f"vector has {vector.numel()} entries, the parameters {self.dim}")
        views = self.views(vector)
        if hasattr(torch, "_foreach_copy_") and self.params:
            torch._foreach_copy_(self.params, views)  # one fused launch on GPUs
        else:
            for param, view in zip(self.params, views):
                param.copy_(view)

    def to_dict(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{name: view}`` of a flat vector."""
        return dict(zip(self.names, self.views(vector)))

    def from_dict(
        self, tensors: Mapping[str, torch.Tensor], *, what: str = "tensors"
    ) -> torch.Tensor:
        """A flat vector assembled by parameter name; refuses missing names or wrong shapes."""
        missing = [n for n in self.names if n not in tensors]
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise ValueError(f"{what} lack parameters {shown}")
        wrong = [
            f"{n} {tuple(tensors[n].shape)} != {s}"
            for n, s in zip(self.names, self.shapes)
            if tuple(tensors[n].shape) != s
        ]
        if wrong:
            shown = "; ".join(wrong[:3]) + (" ..." if len(wrong) > 3 else "")
            raise ValueError(f"{what} do not fit the model: {shown}")
        if not self.names:
            return self.empty()
        return torch.cat(
            [
                tensors[n].detach().reshape(-1).to(device=self.device, dtype=self.dtype)
                for n in self.names
            ]
        )


def state_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer of ``model`` by name (live tensors, not copies)."""
    out = dict(model.named_parameters())
    out.update(dict(model.named_buffers()))
    return out


@contextmanager
def preserved_state(model: nn.Module) -> Iterator[nn.Module]:
    """Run a block that overwrites parameters and buffers; restore them exactly afterwards,
    together with every module's train/eval flag."""
    saved = {name: t.detach().clone() for name, t in state_tensors(model).items()}
    flags = {m: m.training for m in model.modules()}
    try:
        yield model
    finally:
        live = state_tensors(model)
        with torch.no_grad():
            for name, kept in saved.items():
                live[name].copy_(kept)
        for module, flag in flags.items():
            module.train(flag)
