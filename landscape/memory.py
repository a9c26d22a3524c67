"""Refusing, before allocating, what the machine cannot hold.

A tiny input can ask for a huge allocation: a 1 MB checkpoint whose compressed zip entries
inflate to a gigabyte, a model folder whose config says ``vocab_size: 10**9``, a grid of
``100000 x 100000`` points. Each is estimated first (from the zip's entry sizes, from the model
built on the meta device, from the grid's shape) and compared here with the memory available
now: ``MemAvailable`` of ``/proc/meminfo`` (or the free pages of ``os.sysconf``), or the
device's free memory on CUDA. Beyond it, one line says what was asked and what there is.
"""

from __future__ import annotations

import os

import torch

from landscape.errors import UserError


def available_bytes(device: torch.device | str = "cpu") -> int | None:
    """Bytes that can be allocated now on ``device`` (None when the system does not say)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(count: float) -> str:
    """``1.5 GiB``, ``12.0 MiB``, ``512 B``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def check_fits(nbytes: int, what: str, device: torch.device | str = "cpu", hint: str = "") -> None:
    """Refuse (UserError, one line) when ``what`` needs more than ``device`` has available."""
    device = torch.device(device)
    limit = available_bytes(device)
    if limit is None or nbytes <= limit:
        return
    where = "memory" if device.type == "cpu" else f"free memory on {device}"
    raise UserError(
        f"{what} needs {format_bytes(nbytes)}, more than the {format_bytes(limit)} of {where} "
        f"available; nothing was allocated{'; ' + hint if hint else ''}"
    )
