"""Device, dtype and seeding helpers shared by every command (no argv here)."""

from __future__ import annotations

import logging
import random

import numpy as np
import torch

from landscape.errors import UserError

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}


MPS_REFUSED = (
    "Apple's MPS has no float64, in which landscape sums losses, gradients and "
    "Hessian-vector products"
)


def resolve_device(name: str = "auto") -> torch.device:
    """Map `auto|cpu|cuda|cuda:N|mps` to a torch.device, refusing ones that are not there.

    MPS is refused: every analysis accumulates in float64 (sums over batches, Lanczos, the
    trace estimators), which MPS does not support, so it would fail part-way or, cast down,
    give other numbers than the CPU; ``auto`` on Apple silicon is the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            logging.getLogger("landscape").info("%s; using the CPU", MPS_REFUSED)
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise UserError(f"unknown device {name!r}: use auto, cpu, cuda or mps") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(
            "--device cuda was asked for but no CUDA device is available; use --device cpu"
        )
    if device.type == "mps":
        raise UserError(f"--device mps: {MPS_REFUSED}; use --device cpu (or cuda)")
    return device


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def resolve_dtype(name: str) -> torch.dtype:
    try:
        return DTYPES[name]
    except KeyError as exc:
        raise UserError(f"unknown dtype {name!r}: use one of {', '.join(DTYPES)}") from exc


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_deterministic(device: torch.device) -> None:
    """Deterministic kernels where torch offers them; on CPU this makes runs bit-reproducible."""
    torch.use_deterministic_algorithms(True, warn_only=True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
