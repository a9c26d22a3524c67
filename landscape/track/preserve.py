"""Measuring a model in the middle of its training without changing the training.

A measurement runs forward and backward passes of its own. Everything a training step can
depend on is put back exactly afterwards, so that the same loop with and without a tracker
gives bit-identical weights:

* the random-number generators (torch CPU and every initialised CUDA device, numpy, Python's
  ``random``): dropout masks, data shuffling and augmentation draw from them;
* every buffer of the model (BatchNorm running statistics and ``num_batches_tracked``), copied
  back in place, so that references held elsewhere stay valid;
* each parameter's ``.grad`` (the same tensor object, set aside during the measurement, so a
  loop that accumulates gradients over several calls keeps its sum);
* each module's train/eval flag, the grad mode and the autocast state (the measurement runs in
  full precision with autocast off, whatever context the loop calls it from).

The parameters themselves are not copied: the engines leave them as found (the worst-case
ascent restores them with an exact copy, :func:`landscape.sharpness._batched.perturbable`). The
optimizer is only read (its learning rate), never stepped.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import numpy as np
import torch
from torch import nn

AUTOCAST_DEVICES = ("cpu", "cuda")


def _rng_state() -> dict:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


@contextmanager
def rng_preserved() -> Iterator[None]:
    """Every global random-number generator as it was, whatever the body draws."""
    state = _rng_state()
    try:
        yield
    finally:
        _set_rng_state(state)


@contextmanager
def training_preserved(model: nn.Module) -> Iterator[None]:
    """The body may run ``model`` forwards and backwards; the training sees no trace of it
    (module docstring)."""
    flags = {m: m.training for m in model.modules()}
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    params = list(model.parameters())
    grads = [p.grad for p in params]
    grad_mode = torch.is_grad_enabled()
    with ExitStack() as stack:
        stack.enter_context(rng_preserved())
        for device in AUTOCAST_DEVICES:
            if device == "cpu" or torch.cuda.is_available():
                stack.enter_context(torch.autocast(device, enabled=False))
        for p in params:
            p.grad = None
        try:
            torch.set_grad_enabled(True)
            yield
        finally:
            torch.set_grad_enabled(grad_mode)
            for p, g in zip(params, grads):
                p.grad = g
            with torch.no_grad():
                for live, kept in buffers:
                    live.copy_(kept)
            for module, flag in flags.items():
                module.train(flag)
