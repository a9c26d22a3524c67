"""Launch ``landscape`` the user's way, ``torchrun --nproc_per_node=N -m landscape ...``, from
the tests: this checkout's code, one thread per rank, and a timeout so a hang fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def torchrun(
    *args: str, ranks: int = 2, script: str | None = None, cwd=None, timeout: float = 150, env=None
) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=ranks -m landscape args`` (or ``script args``)."""
    target = [str(script)] if script else ["-m", "landscape"]
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "OMP_NUM_THREADS": "1",
        "LANDSCAPE_COLLECTIVE_TIMEOUT": "60",
        **(env or {}),
    }
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += [f"--nproc_per_node={ranks}", *target, *map(str, args)]
    return subprocess.run(
        command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout
    )


def landscape_lines(stderr: str) -> list[str]:
    """The lines the ranks printed as ``landscape: ...`` (torchrun's own report left out)."""
    return [line for line in stderr.splitlines() if line.startswith("landscape: ")]
