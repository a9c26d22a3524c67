"""Attention kernels that can be differentiated twice.

PyTorch's fused attention kernels (flash attention on CPU and CUDA, memory-efficient
attention on CUDA) implement a first derivative only: a double backward through them raises
``derivative for aten::_scaled_dot_product_flash_attention_for_cpu_backward is not
implemented`` (pytorch#116350), and forward-mode AD is missing as well. Transformers in timm
and Hugging Face call ``torch.nn.functional.scaled_dot_product_attention``, which picks a
fused kernel whenever it can. The math kernel computes the same function,
``softmax(Q K^T / sqrt(d) + mask) V`` (Vaswani et al. 2017), out of differentiable primitives.

:func:`twice_differentiable_attention` routes every ``scaled_dot_product_attention`` call made
inside it to the math kernel, and logs once per process that it did so. It intercepts the call
itself (a ``TorchFunctionMode``) instead of switching backends for everything, so code outside
the calls is untouched, and the log line appears only for models that do use attention.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.overrides import TorchFunctionMode

log = logging.getLogger("landscape.curvature")

_announced = False


def _announce() -> None:
    global _announced
    if not _announced:
        _announced = True
        log.info(
            "attention: Hessian products run scaled_dot_product_attention with the math kernel "
            "(the fused kernels have no double backward, pytorch#116350)"
        )


class _MathAttention(TorchFunctionMode):
    """Runs ``F.scaled_dot_product_attention`` under ``sdpa_kernel(MATH)``, nothing else."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            _announce()
            with sdpa_kernel([SDPBackend.MATH]):
                return func(*args, **kwargs)
        return func(*args, **kwargs)


@contextmanager
def twice_differentiable_attention() -> Iterator[None]:
    """Inside: attention has a double backward (and a forward-mode derivative)."""
    with _MathAttention():
        yield


def reset_announcement() -> None:
    """Forget that the log line was written (tests that check it appears once)."""
    global _announced
    _announced = False
