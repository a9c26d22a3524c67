"""Twice-differentiable forms of the operations whose backward PyTorch cannot differentiate.

Hessian products differentiate the model twice (double backward, or forward-over-reverse).
A few PyTorch kernels implement a first derivative only, and a model that calls them fails
inside the first product:

* **Fused attention.** Flash attention (CPU and CUDA) and memory-efficient attention (CUDA)
  raise ``derivative for aten::_scaled_dot_product_flash_attention_for_cpu_backward is not
  implemented`` (pytorch#116350) and have no forward-mode derivative either. Transformers in
  timm and Hugging Face call ``F.scaled_dot_product_attention`` directly; ``nn.MultiheadAttention``
  (and so ``nn.TransformerEncoder``) calls it from inside ``F.multi_head_attention_forward``.
  The math kernel computes the same function, ``softmax(Q K^T / sqrt(d) + mask) V``
  (Vaswani et al. 2017), out of differentiable primitives; both calls run under it.
  ``nn.MultiheadAttention``'s and ``nn.TransformerEncoderLayer``'s eval-mode fast path (one fused
  native kernel) is switched off for the duration as well.
* **Hardsigmoid.** ``aten::hardsigmoid_backward`` has no derivative (torch 2.x), so
  MobileNetV3's squeeze-excitation gates fail. ``hardsigmoid(x) = relu6(x + 3) / 6``
  (Howard et al., "Searching for MobileNetV3", ICCV 2019, eq. 2 defines it so) is the same
  function, and ``relu6`` is differentiable twice (its second derivative is zero almost
  everywhere, as is hardsigmoid's). It is the only activation of ``torch.nn`` without a double
  backward in the installed torch (``tests/curvature/test_substitutions.py`` checks them all);
  Hardswish has one.

:func:`twice_differentiable` intercepts these calls (a ``TorchFunctionMode``) instead of
switching backends for everything, so code outside them is untouched, and logs once per
process and substitution what it did, so the note appears only for models that need it.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.overrides import TorchFunctionMode

log = logging.getLogger("landscape.curvature")

_announced: set[str] = set()


def _announce(what: str, message: str) -> None:
    if what not in _announced:
        _announced.add(what)
        log.info(message)


def _math_attention(func: Callable, args: tuple, kwargs: dict):
    _announce(
        "attention",
        "attention: Hessian products run scaled_dot_product_attention with the math kernel "
        "(the fused kernels have no double backward, pytorch#116350)",
    )
    with sdpa_kernel([SDPBackend.MATH]):
        return func(*args, **kwargs)


def _relu6_hardsigmoid(func: Callable, args: tuple, kwargs: dict) -> torch.Tensor:
    _announce(
        "hardsigmoid",
        "hardsigmoid: Hessian products compute it as relu6(x + 3) / 6, the same function "
        "(aten::hardsigmoid_backward has no derivative)",
    )
    x = args[0] if args else kwargs["input"]
    # Out of place even when asked in place: the result is what callers use, and writing into
    # an input that the graph saved would break the backward.
    return F.relu6(x + 3.0) / 6.0


_SUBSTITUTES: dict[Callable, Callable] = {
    F.scaled_dot_product_attention: _math_attention,
    # The attention inside runs with this mode switched off (a handler is not re-entered),
    # so the kernel choice is made around the whole call.
    F.multi_head_attention_forward: _math_attention,
    F.hardsigmoid: _relu6_hardsigmoid,
}


class _TwiceDifferentiable(TorchFunctionMode):
    """Sends the calls in ``_SUBSTITUTES`` to their twice-differentiable form, nothing else."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        substitute = _SUBSTITUTES.get(func)
        if substitute is not None:
            return substitute(func, args, kwargs)
        return func(*args, **kwargs)


@contextmanager
def twice_differentiable() -> Iterator[None]:
    """Inside: attention and hardsigmoid have a double backward and a forward-mode derivative.

    Also silences the one ``FutureWarning`` that torch's first forward-mode product prints
    (its jvp decompositions are compiled with the deprecated ``torch.jit.script``): it is
    about torch's internals, not about anything the user can change.
    """
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with warnings.catch_warnings(), _TwiceDifferentiable():
            warnings.filterwarnings(
                "ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning
            )
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def reset_announcement() -> None:
    """Forget which notes were written (tests that check each appears once)."""
    _announced.clear()
