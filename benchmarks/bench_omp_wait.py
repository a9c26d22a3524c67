"""What OpenMP's wait policy costs the Python API on a CPU that other processes share.

The command line sets ``OMP_WAIT_POLICY=PASSIVE`` before torch loads; a notebook that imports
torch first cannot, and torch's OpenMP threads then spin while they wait for work, taking
the cores from the threads that have work. ``import landscape`` sets the policy itself when
it comes before ``import torch`` (and warns when it comes after). This script runs one
notebook job -- ``landscape.load`` of a checkpoint, then the top-5 Hessian eigenvalues on
1,000 examples, as in the README -- in fresh processes that differ only in the policy:

    unset      torch imported first, OMP_WAIT_POLICY unset (libgomp spins a while, then sleeps)
    ACTIVE     OMP_WAIT_POLICY=ACTIVE (threads spin all the time)
    landscape  ``import landscape`` first, OMP_WAIT_POLICY unset: landscape sets PASSIVE

on the CPU as found and with one busy-looping process per core beside it (a shared
machine), round-robin so that every policy sees the same load, and prints the median time
of each with its ratio to ``landscape``. torch uses its default thread count (one per core).

    python benchmarks/bench_omp_wait.py            # ~2 minutes on 2 cores
    python benchmarks/bench_omp_wait.py --quick    # one repeat
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault(
    "OMP_WAIT_POLICY", "PASSIVE"
)  # for this process only; each child sets its own

POLICIES = ("unset", "ACTIVE", "landscape")

# The child: the README's notebook job, timed after the imports.
JOB = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
if sys.argv[1] == "landscape":
    import landscape
import torch
import landscape
from landscape.curvature import hessian_eigenvalues
from landscape.data import fixed_subset
import torch.nn.functional as F

started = time.perf_counter()
model, data, meta = landscape.load(sys.argv[2])
x, y = fixed_subset(*data.split("train"), 1000, seed=0)
eig = hessian_eigenvalues(model, F.cross_entropy, x, y, k=5, tol=1e-4)
print(json.dumps({"seconds": time.perf_counter() - started, "threads": torch.get_num_threads(),
                  "hvps": eig.hvp_count}))
"""

SPIN = "while True:\n    pass\n"


def write_checkpoint(path: Path) -> None:
    """A cnn-bn digits checkpoint in landscape's format (freshly initialised, seed 0)."""
    import torch

    from landscape.loading import checkpoint
    from landscape.models import build_model

    torch.manual_seed(0)
    model = build_model("cnn-bn", (1, 8, 8), 10)
    checkpoint.save_checkpoint(
        path,
        {
            "format": checkpoint.FORMAT,
            "version": checkpoint.VERSION,
            "arch": "cnn-bn",
            "model": model.state_dict(),
            "epoch": 0,
            "phase": "sgd",
            "config": {"dataset": "digits"},
            "history": [],
        },
    )


def run_job(policy: str, ckpt: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    if policy == "ACTIVE":
        env["OMP_WAIT_POLICY"] = "ACTIVE"
    done = subprocess.run(
        [sys.executable, "-c", JOB, policy, str(ckpt)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(ckpt: Path, repeats: int, busy: bool) -> dict[str, list[float]]:
    spinners = []
    if busy:
        spinners = [
            subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(os.cpu_count() or 1)
        ]
    try:
        times: dict[str, list[float]] = {p: [] for p in POLICIES}
        for _ in range(repeats):
            for policy in POLICIES:
                times[policy].append(run_job(policy, ckpt)["seconds"])
        return times
    finally:
        for proc in spinners:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per policy and load (default: 3)"
    )
    parser.add_argument("--quick", action="store_true", help="one run each")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "run" / "epoch-000-sgd.pt"
        ckpt.parent.mkdir()
        write_checkpoint(ckpt)
        threads = run_job("landscape", ckpt)["threads"]
        load_average = os.getloadavg()[0]
        rows = [
            (load, measure(ckpt, repeats, busy=load == "busy")) for load in ("as found", "busy")
        ]
    print(
        f"top-5 Hessian eigenvalues, cnn-bn, 1,000 digits; {os.cpu_count()} cores, torch threads "
        f"{threads}; median of {repeats} (s), ratio to 'landscape'"
    )
    print()
    print(
        "| CPU | "
        + " | ".join(POLICIES)
        + " | "
        + " | ".join(f"{p} / landscape" for p in POLICIES[:-1])
        + " |"
    )
    print("|---|" + "---:|" * (2 * len(POLICIES) - 1))
    for load, times in rows:
        medians = {p: statistics.median(t) for p, t in times.items()}
        cells = [f"{medians[p]:.2f}" for p in POLICIES]
        ratios = [f"{medians[p] / medians['landscape']:.1f}x" for p in POLICIES[:-1]]
        label = (
            f"as found (load average {load_average:.1f})"
            if load == "as found"
            else f"+ {os.cpu_count()} spinning processes"
        )
        print(f"| {label} | " + " | ".join(cells + ratios) + " |")


if __name__ == "__main__":
    main()
