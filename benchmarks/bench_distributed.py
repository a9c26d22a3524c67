"""1 rank x 1 thread against N ranks x 1 thread (torchrun, Gloo on this CPU), side by side.

Cases (ResNet-20, random weights, float32, CIFAR-shaped random inputs, eval-mode BatchNorm):

* ``surface`` -- grid points of a 21x21 random-direction surface over ``--samples`` inputs
  (:func:`landscape.surface.evaluate_surface`, points dealt by ``Partition.owned``); the grid is
  started as a resumed one with ``--points`` points left, so the 441-point time is extrapolated
  from the measured rate;
* ``eigenvalues`` -- top-5 Lanczos eigenvalues (:class:`landscape.curvature.HessianOperator`,
  each rank its share of ``--samples`` examples, one all-reduce of the float64 product),
  stopped after ``--products`` products; the bytes and the median time of the all-reduce;
* ``train`` -- a SAM epoch, ``landscape train --arch resnet20 --dataset digits --epochs 2
  --sam-start 0`` under torchrun (DistributedDataParallel, BatchNorm per rank): the second
  epoch's time as the run records it (``metrics.jsonl``), without process start and loading;
  digits images are 8x8, so a step is short and its fixed costs (two gradient all-reduces,
  Python) weigh;
* ``train-cifar`` -- the same on 2,048 CIFAR-shaped (32x32) random images written here as
  CIFAR-10 files: the per-step work of a CIFAR run.

Printed: seconds per unit (point, product, epoch) at 1 and N ranks, the speed-up (1-rank time /
N-rank time), the efficiency (speed-up / N), for products what the collectives cost, and the
ceiling this machine allows: the speed-up N independent processes reach when started together,
each with one rank's work and no process group (*free collectives*; see :func:`free_collectives`),
and the share of that ceiling the ranks reach. On a 2-core CPU the two processes share caches and
memory bandwidth, so the ceiling is below N: what the ranks miss of it is the cost of
distribution itself (collectives, waiting for the slowest rank), the rest is the machine's.

    python benchmarks/bench_distributed.py            # all cases, N = 2
    python benchmarks/bench_distributed.py --cases surface eigenvalues --ranks 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _model_and_data(samples: int):
    import torch

    from landscape.models import build_model

    torch.manual_seed(0)
    model = build_model("resnet20", (3, 32, 32), 10).eval()
    x = torch.randn(samples, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 10, (samples,), generator=torch.Generator().manual_seed(2))
    return model, x, y


def surface_case(partition, args) -> dict:
    import numpy as np
    import torch
    import torch.nn.functional as F

    from landscape.surface import PointEvaluator, SurfaceResult, evaluate_surface

    model, x, y = _model_and_data(args.samples)
    gen = torch.Generator().manual_seed(3)
    directions = [
        {n: torch.randn(p.shape, generator=gen) for n, p in model.named_parameters()} for _ in "xy"
    ]
    grid = np.linspace(-1, 1, 21)
    measure = PointEvaluator(F.cross_entropy, {"test": (x, y)}, batch_size=args.samples)
    result = SurfaceResult.empty(grid, grid, measure.names)
    result.done.reshape(-1)[: result.done.size - args.points] = True  # a resumed grid
    partition.barrier()
    started = time.perf_counter()
    evaluate_surface(model, directions, measure, grid, grid, result=result, partition=partition)
    seconds = time.perf_counter() - started
    return {"unit": "point", "seconds": seconds / args.points, "units": args.points}


def eigenvalues_case(partition, args) -> dict:
    import statistics

    import torch.nn.functional as F

    from landscape.curvature import HessianOperator, lanczos_eigs

    model, x, y = _model_and_data(args.samples)
    op = HessianOperator(model, F.cross_entropy, x, y, batch_size=args.samples, partition=partition)
    op.matvec(op.flat_parameters())  # builds the kept graph: not part of the rate
    partition.barrier()
    started = time.perf_counter()
    before = op.hvp_count
    lanczos_eigs(op, 5, tol=1e-12, max_hvps=args.products, seed=0)
    seconds = (time.perf_counter() - started) / (op.hvp_count - before)
    reduce = op.collective_seconds[1:]
    return {
        "unit": "product",
        "seconds": seconds,
        "units": op.hvp_count - before,
        "collective_bytes": op.collective_bytes,
        "collective_seconds": statistics.median(reduce) if reduce else 0.0,
    }


def train_command(ranks: int, folder: Path, dataset: str, batch: int) -> list[str]:
    launcher = [sys.executable, "-m", "landscape"]
    if ranks > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        launcher += [f"--nproc_per_node={ranks}", "-m", "landscape"]
    return launcher + [
        "train", "--arch", "resnet20", "--dataset", dataset, "--data-dir", str(folder),
        "--epochs", "2", "--sam-start", "0", "--batch-size", str(batch), "--device", "cpu",
        "--threads", "1", "--run-name", str(folder / f"ranks{ranks}"), "--quiet",
    ]  # fmt: skip


def write_cifar_shaped(folder: Path, train: int = 2048, test: int = 256) -> None:
    """CIFAR-10 python-pickle files of random images (a CIFAR-sized epoch's work per step)."""
    import pickle

    import numpy as np

    rng = np.random.default_rng(0)
    files = folder / "cifar-10-batches-py"
    files.mkdir()
    sizes = {f"data_batch_{i}": train // 5 for i in range(1, 6)} | {"test_batch": test}
    for name, n in sizes.items():
        batch = {
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"labels": rng.integers(0, 10, n).tolist(),
        }
        (files / name).write_bytes(pickle.dumps(batch, protocol=2))


class Job:
    """One run of a case in its own folder: started now, its seconds per unit read at the end.

    ``ranks`` > 1 runs it under torchrun; ``share`` < 1 gives a single process the work of one
    rank of a larger world (its share of the examples, or of the training batch) and ``plain``
    runs it outside torchrun, so that
    several such processes started together measure what the ranks could reach if their
    collectives cost nothing.
    """

    def __init__(self, case: str, ranks: int, args, share: float = 1.0, plain: bool = False):
        self.case, self.folder = case, tempfile.TemporaryDirectory()
        folder = Path(self.folder.name)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        if case in ("train", "train-cifar"):
            dataset = "digits" if case == "train" else "cifar10"
            if dataset == "cifar10":
                write_cifar_shaped(folder)
            command = train_command(ranks, folder, dataset, round(args.batch * share))
        else:
            samples = round(args.samples * share) if case == "eigenvalues" else args.samples
            command = [str(Path(__file__).resolve()), "--worker", case]
            command += ["--result", str(folder / "result.json"), "--samples", str(samples)]
            command += ["--points", str(args.points), "--products", str(args.products)]
            launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
            command = [*launcher, f"--nproc_per_node={ranks}", *command]
            if plain:  # a process of its own, in no process group
                command = [sys.executable, *command[len(launcher) + 1 :]]
        self.process = subprocess.Popen(command, env=env, cwd=folder)

    def result(self) -> dict:
        failed = self.process.wait() != 0
        folder = Path(self.folder.name)
        try:
            if self.case in ("train", "train-cifar"):
                if failed:
                    return {"unit": "epoch", "seconds": float("nan"), "failed": True}
                # the run's own time of its last epoch (the first pays for warm-up): process
                # start, imports and data loading are not training and would swamp a small epoch
                [log] = folder.rglob("metrics.jsonl")
                last = json.loads(log.read_text().splitlines()[-1])
                return {"unit": "epoch", "seconds": float(last["seconds"]), "units": 1}
            if failed:
                raise SystemExit(f"bench_distributed: the {self.case} worker failed")
            return json.loads((folder / "result.json").read_text())
        finally:
            self.folder.cleanup()


def run_case(case: str, ranks: int, args) -> dict:
    return Job(case, ranks, args).result()


def free_collectives(case: str, ranks: int, args) -> float:
    """Seconds per unit the ranks would take if their collectives were free: ``ranks``
    independent single processes, each with one rank's work, started together on this machine.

    The ranks' arithmetic then competes for the same cores, caches and memory bandwidth as under
    torchrun, and only the communication and the waiting for each other are gone. A surface
    rank evaluates whole points (so each process does all ``--points`` and the world finishes
    ``ranks`` points in the time one takes); a product or training rank does its share of the
    examples or of the batch (a training process, with the per-rank batch, runs ``ranks`` times
    the steps of one rank: its epoch is divided by ``ranks``).
    """
    share = 1.0 if case == "surface" else 1.0 / ranks
    jobs = [Job(case, 1, args, share, plain=True) for _ in range(ranks)]
    slowest = max(job.result()["seconds"] for job in jobs)
    return slowest if case == "eigenvalues" else slowest / ranks


def worker(args) -> None:
    import torch

    from landscape.distributed import partition_from_environment, shutdown

    torch.set_num_threads(1)
    partition = partition_from_environment(torch.device("cpu"))
    found = {"surface": surface_case, "eigenvalues": eigenvalues_case}[args.worker](partition, args)
    seconds = partition.gather(found["seconds"])
    found["seconds"] = max(seconds)  # the slowest rank decides
    if partition.is_writer:
        Path(args.result).write_text(json.dumps(found))
    shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases", nargs="+", default=["surface", "eigenvalues", "train", "train-cifar"]
    )
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--samples", type=int, default=256, help="examples (default: 256)")
    parser.add_argument("--points", type=int, default=16, help="grid points timed (default: 16)")
    parser.add_argument("--products", type=int, default=12, help="products timed (default: 12)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of each column, medians shown (default: 3)"
    )
    parser.add_argument("--batch", type=int, default=128, help="training batch (default: 128)")
    parser.add_argument(
        "--no-ceiling",
        action="store_true",
        help="skip the free-collectives runs (independent processes with one rank's work each)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    rows = []
    for case in args.cases:
        # 1 rank, N ranks and the free-collectives runs taken in turn, --repeats times: the
        # medians, so that a moment of load on a shared machine slows one sample, not one column
        ones, manys, frees = [], [], []
        for _ in range(args.repeats):
            ones.append(run_case(case, 1, args))
            manys.append(run_case(case, args.ranks, args))
            if not args.no_ceiling:
                frees.append(free_collectives(case, args.ranks, args))
        one = dict(ones[0], seconds=statistics.median(o["seconds"] for o in ones))
        many = dict(manys[0], seconds=statistics.median(m["seconds"] for m in manys))
        if "collective_seconds" in many:
            many["collective_seconds"] = statistics.median(m["collective_seconds"] for m in manys)
        speedup = one["seconds"] / many["seconds"]
        ceiling = one["seconds"] / statistics.median(frees) if frees else float("nan")
        extra = ""
        if "collective_bytes" in many:
            share = many["collective_seconds"] / many["seconds"]
            extra = (
                f"{many['collective_bytes'] / 2**20:.2f} MiB, "
                f"{1e3 * many['collective_seconds']:.1f} ms ({100 * share:.0f}%)"
            )
        rows.append(
            [
                case,
                f"{one['seconds']:.3f} s/{one['unit']}",
                f"{many['seconds']:.3f} s/{many['unit']}",
                f"{speedup:.2f}x",
                f"{100 * speedup / args.ranks:.0f}%",
                f"{ceiling:.2f}x",
                f"{100 * speedup / ceiling:.0f}%",
                extra,
            ]
        )
        if case == "surface":
            rows[-1][0] += " (21x21: " + f"{441 * many['seconds']:.0f} s on {args.ranks})"
    header = ["case", "1 rank", f"{args.ranks} ranks", "speed-up", "efficiency"]
    header += ["free collectives", "of that", "all-reduce per product"]
    table = [header, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    print(
        f"ResNet-20, {args.samples} inputs (train: digits; train-cifar: 2,048 CIFAR-shaped), "
        "float32, 1 thread per rank, Gloo, CPU"
    )
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


if __name__ == "__main__":
    main()
