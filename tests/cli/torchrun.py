"""Launch ``landscape`` the user's way, ``torchrun --nproc_per_node=N -m landscape ...``, from
the tests: this checkout's code, one thread per rank, and a timeout so a hang fails."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _environment(env=None) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "OMP_NUM_THREADS": "1",
        "LANDSCAPE_COLLECTIVE_TIMEOUT": "60",
        **(env or {}),
    }


def torchrun(
    *args: str, ranks: int = 2, script: str | None = None, cwd=None, timeout: float = 150, env=None
) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=ranks -m landscape args`` (or ``script args``)."""
    target = [str(script)] if script else ["-m", "landscape"]
    environment = _environment(env)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += [f"--nproc_per_node={ranks}", *target, *map(str, args)]
    return subprocess.run(
        command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout
    )


def two_nodes(*args: str, cwd=None, timeout: float = 150) -> list[subprocess.CompletedProcess]:
    """``torchrun --nnodes=2 --node-rank=K --nproc_per_node=1 -m landscape args`` for K = 0, 1:
    two "nodes" on this machine, meeting at a free local port. Each node's one process has
    ``LOCAL_RANK`` 0; only ``RANK`` tells them apart, as on two real machines."""
    with socket.socket() as probe:  # a port free now (the launchers bind it a moment later)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    launchers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes=2",
                f"--node-rank={node}",
                "--nproc_per_node=1",
                "--master-addr=127.0.0.1",
                f"--master-port={port}",
                "-m",
                "landscape",
                *map(str, args),
            ],  # fmt: skip
            cwd=cwd,
            env=_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for node in (0, 1)
    ]
    done = []
    for launcher in launchers:
        stdout, stderr = launcher.communicate(timeout=timeout)
        done.append(subprocess.CompletedProcess(launcher.args, launcher.returncode, stdout, stderr))
    return done


def landscape_lines(stderr: str) -> list[str]:
    """The lines the ranks printed as ``landscape: ...`` (torchrun's own report left out)."""
    return [line for line in stderr.splitlines() if line.startswith("landscape: ")]
