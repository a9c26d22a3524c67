"""The sharding plan: which modules FSDP2 shards, and loading weights one shard per rank.

``--shard`` (and :func:`shard_model` from Python) wraps a model with
``torch.distributed.fsdp.fully_shard`` over a 1-D device mesh of all ranks (Gloo on CPU,
NCCL on CUDA). The wrapping rule (each wrapped module is one all-gather in the forward and one
reduce-scatter in the backward, so its unsharded parameters are the most a rank holds at once
besides its shards):

* every element of every ``nn.ModuleList`` (the transformer blocks of Hugging Face models:
  GPT-2's ``transformer.h``, Llama's ``model.layers``; a ResNet's stages are ``Sequential``),
* every other module whose own parameters, not yet wrapped below it, number at least
  ``min_parameters`` (default :data:`MIN_PARAMETERS`),
* then the root, which takes whatever is left (embeddings, heads, norms).

A module holding a weight tied to a module outside it (GPT-2's embedding and its output
layer) is never wrapped on its own: the tied weight stays one parameter, in the unit that holds
both.

Parameters are split by rows (``Shard(0)``), so a rank holds one contiguous slice of every
flattened parameter (:func:`landscape.curvature.sharded.shard_slice`).

:func:`load_sharded` builds the model with its parameters on the meta device (buffers, which
are small, are built for real: non-persistent ones such as rotary frequencies keep their
constructor values), shards it, allocates only this rank's slices and fills them from the
weights file, reading only those rows (safetensors ``get_slice``; a torch file is memory-mapped),
so a checkpoint larger than one rank's memory loads.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from landscape.curvature.sharded import shard_slice
from landscape.errors import UserError
from landscape.parallel import Partition

MIN_PARAMETERS = 1 << 20
"""A module with this many parameters of its own (not wrapped below it) is wrapped."""


@dataclass(frozen=True)
class ShardPlan:
    """What was sharded, for a result's attributes."""

    world_size: int
    mesh: str  # e.g. "cpu:(3,)"
    wrapped: tuple[str, ...]  # module names, "" for the root

    def attributes(self) -> dict[str, Any]:
        return {
            "sharded": True,
            "world_size": self.world_size,
            "mesh": self.mesh,
            "fsdp_units": len(self.wrapped),
        }


def _units(model: nn.Module, min_parameters: int) -> list[str]:
    """Names of the modules to wrap, children before parents (see the module notes)."""
    blocks = {
        id(element)
        for module in model.modules()
        if isinstance(module, nn.ModuleList)
        for element in module
    }
    aliases: dict[int, list[str]] = {}
    for full, p in model.named_parameters(remove_duplicate=False):
        aliases.setdefault(id(p), []).append(full)
    chosen: list[str] = []
    covered: set[int] = set()  # ids of parameters inside a chosen module

    def visit(name: str, module: nn.Module) -> None:
        for child_name, child in module.named_children():
            visit(f"{name}.{child_name}" if name else child_name, child)
        if module is model:
            return
        own = [p for p in module.parameters() if id(p) not in covered]
        if not own or any(
            not a.startswith(name + ".") for p in own for a in aliases[id(p)]
        ):  # nothing left, or a weight tied to a module outside (the root must hold it)
            return
        if id(module) in blocks or sum(p.numel() for p in own) >= min_parameters:
            chosen.append(name)
            covered.update(id(p) for p in own)

    visit("", model)
    return chosen


def shard_model(
    model: nn.Module,
    partition: Partition,
    device: torch.device | str = "cpu",
    *,
    min_parameters: int = MIN_PARAMETERS,
) -> ShardPlan:
    """Wrap ``model`` with FSDP2 over all ranks of ``partition`` (in place; see the module
    notes for the rule); the default process group must be initialised."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    device = torch.device(device)
    mesh = init_device_mesh(device.type, (partition.world_size,))
    names = _units(model, min_parameters)
    modules = dict(model.named_modules())
    for name in names:
        fully_shard(modules[name], mesh=mesh)
    fully_shard(model, mesh=mesh)
    return ShardPlan(partition.world_size, f"{device.type}:({partition.world_size},)", (*names, ""))


@contextlib.contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Build modules with their parameters on the meta device and their buffers for real.

    A parameter is created as its constructor creates it (``torch.empty``: address space, not
    touched memory) and moved to the meta device as it is registered, so its initialisation
    costs nothing."""
    register = nn.Module.register_parameter

    def on_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        register(module, name, param)
        if param is not None and param.device.type != "meta":
            module._parameters[name] = nn.Parameter(
                param.detach().to("meta"), requires_grad=param.requires_grad
            )

    nn.Module.register_parameter = on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register


class _Weights:
    """Named tensors of a weights file or model folder, read a slice of rows at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.files: dict[str, Path] = {}  # tensor name -> safetensors file
        self.torch_state: dict[str, torch.Tensor] | None = None
        try:
            self._index(path)
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 -- any reader's failure is a bad file
            raise UserError(f"{path}: cannot read its weights: {_first_line(exc)}") from exc

    def _index(self, path: Path) -> None:
        from safetensors import safe_open

        if path.is_dir():
            index = path / "model.safetensors.index.json"
            if index.is_file():
                mapping = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
                self.files = {name: path / file for name, file in mapping.items()}
                return
            path = path / "model.safetensors"
            if not path.is_file():
                raise UserError(
                    f"{self.path}: --shard reads model.safetensors (or its index) from a "
                    "model folder, and there is none"
                )
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as handle:
                self.files = {name: path for name in handle.keys()}
            return
        state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        if isinstance(state, dict) and isinstance(state.get("model"), dict):
            state = state["model"]
        if not isinstance(state, dict) or not all(
            isinstance(v, torch.Tensor) for v in state.values()
        ):
            raise UserError(f"{path}: --shard needs a state dict of tensors (or safetensors)")
        self.torch_state = state

    def names(self) -> set[str]:
        return set(self.torch_state) if self.torch_state is not None else set(self.files)

    def shape(self, name: str) -> tuple[int, ...]:
        if self.torch_state is not None:
            return tuple(self.torch_state[name].shape)
        from safetensors import safe_open

        with safe_open(str(self.files[name]), framework="pt") as handle:
            return tuple(handle.get_slice(name).get_shape())

    def rows(self, name: str, start: int, stop: int) -> torch.Tensor:
        """Rows ``[start, stop)`` of tensor ``name`` (the whole of a 0-d tensor)."""
        if self.torch_state is not None:
            tensor = self.torch_state[name]
            return tensor.clone() if tensor.dim() == 0 else tensor[start:stop].clone()
        from safetensors import safe_open

        with safe_open(str(self.files[name]), framework="pt") as handle:
            view = handle.get_slice(name)
            if len(view.get_shape()) == 0:
                return handle.get_tensor(name)
            return view[start:stop]

    def whole(self, name: str) -> torch.Tensor:
        """All of tensor ``name`` (buffers: small)."""
        shape = self.shape(name)
        return self.rows(name, 0, shape[0] if shape else 1)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _stored_names(model: nn.Module, available: set[str]) -> dict[str, str | None]:
    """For each parameter (by its first name) the name it is stored under: any of the names it
    has in the model (a tied weight has several; a file keeps one), or None."""
    aliases: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        aliases.setdefault(id(p), []).append(name)
    return {
        name: next((a for a in aliases[id(p)] if a in available), None)
        for name, p in model.named_parameters()
    }


def load_sharded(
    build: Callable[[], nn.Module],
    weights: str | Path,
    partition: Partition,
    device: torch.device | str = "cpu",
    *,
    dtype: torch.dtype | None = None,
    min_parameters: int = MIN_PARAMETERS,
) -> tuple[nn.Module, ShardPlan]:
    """The model ``build()`` returns, sharded over ``partition``'s ranks, with this rank's
    slices of its weights read from ``weights`` (a ``.safetensors`` file, a model folder with
    ``model.safetensors`` or its index, or a torch state-dict file); see the module notes.

    Every rank reads the same file, so a missing, misshapen or unreadable tensor stops every
    rank with the same one-line :class:`~landscape.errors.UserError`."""
    weights = Path(weights)
    device = torch.device(device)
    reader = _Weights(weights)
    with parameters_on_meta():
        model = build()
    if dtype is not None:
        model.to(dtype)
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    available = reader.names()
    stored = _stored_names(model, available)
    missing = [name for name, found in stored.items() if found is None]
    if missing:
        shown = ", ".join(missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        raise UserError(f"{weights}: no weights for parameter(s) {shown}")
    for name, p in model.named_parameters():
        shape = reader.shape(stored[name])
        if shape != tuple(p.shape):
            raise UserError(
                f"{weights}: {stored[name]} has shape {list(shape)}, the model's {name} "
                f"{list(p.shape)}"
            )
    plan = shard_model(model, partition, device, min_parameters=min_parameters)
    model.to_empty(device=device)
    with torch.no_grad():
        for name, b in model.named_buffers():
            stored = buffers[name]
            b.copy_(reader.whole(name) if name in available else stored)
        stored = _stored_names(model, available)  # FSDP2 made new parameter objects
        for name, p in model.named_parameters():
            piece = shard_slice(name, p, partition)
            local = p.to_local() if hasattr(p, "to_local") else p
            row = max(p.numel() // p.shape[0], 1) if p.dim() else 1
            start = piece.start // row
            values = reader.rows(stored[name], start, start + local.shape[0] if p.dim() else 1)
            local.copy_(values.reshape(local.shape).to(local.dtype))
    return model, plan
