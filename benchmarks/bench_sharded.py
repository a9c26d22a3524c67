"""Memory per rank and time per product of sharded curvature (FSDP2 + sharded Krylov vectors)
against the unsharded run, for world sizes 1, 2 and 4 on this CPU (one thread per rank).

The model is a stack of ``--blocks`` residual MLP blocks of width ``--width`` in an
``nn.ModuleList`` (each block one FSDP2 unit), float32, over ``--samples`` random examples. Per
world size every rank loads its shards from one safetensors file
(:func:`landscape.sharding.load_sharded`), then runs Lanczos with a basis of ``--basis``
vectors (``basis_size``, ``--basis`` products). Printed per rank 0 (the largest shard):

* ``params MiB``: resident memory added by loading (the shards, FSDP2's padded storage);
* ``basis MiB``: peak resident memory added by the Lanczos run (basis + products + the
  transient unsharded units of each gradient);
* ``s/product``: median seconds of one product (four gradients under FSDP2 for the
  extrapolated finite differences; one double backward unsharded).

The row ``unsharded`` is one process with the whole model, exact double-backward products
(``HessianOperator``) and a flat basis.

    flock -x /tmp/landscape-cpu.lock python benchmarks/bench_sharded.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import landscape  # noqa: E402,F401 -- before torch: the OpenMP wait policy
from tests.ranks import run_ranks  # noqa: E402


class Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.up, self.down = nn.Linear(width, 2 * width), nn.Linear(2 * width, width)

    def forward(self, x):
        return x + self.down(torch.tanh(self.up(x)))


class Stack(nn.Module):
    def __init__(self, width: int, blocks: int, classes: int = 10) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(width) for _ in range(blocks))
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def resident_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakResident:
    """The largest resident memory seen while the block runs (sampled every 2 ms), MiB."""

    def __enter__(self):
        import threading

        self.peak, self.running = resident_mib(), True
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def _watch(self) -> None:
        while self.running:
            self.peak = max(self.peak, resident_mib())
            time.sleep(0.002)

    def __exit__(self, *exc) -> None:
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, resident_mib())


def data(args):
    g = torch.Generator().manual_seed(0)
    return torch.randn(args.samples, args.width, generator=g), torch.randint(
        0, 10, (args.samples,), generator=g
    )


def sharded_rank(partition, args, weights: str) -> dict:
    import safetensors.torch  # noqa: F401 -- imported before the baseline, not counted
    import torch.distributed.fsdp  # noqa: F401

    from landscape.curvature import lanczos_eigs
    from landscape.curvature.sharded import ShardedHessianOperator
    from landscape.sharding import load_sharded

    x, y = data(args)
    before = resident_mib()  # after the imports and the examples
    model, plan = load_sharded(lambda: Stack(args.width, args.blocks), weights, partition)
    loaded = resident_mib()
    op = ShardedHessianOperator(
        model, F.cross_entropy, x, y, batch_size=args.samples, partition=partition
    )
    start = resident_mib()
    with PeakResident() as peak:
        lanczos_eigs(
            op, 1, basis_size=args.basis, max_hvps=args.basis, tol=1e-12, eigenvectors=False
        )
    return {
        "params": loaded - before,
        "basis": peak.peak - start,
        "product": statistics.median(op.product_seconds[1:] or op.product_seconds),
        "local_dim": op.space.local_dim,
        "dim": op.dim,
    }


def unsharded(args) -> dict:
    from landscape.curvature import HessianOperator, lanczos_eigs

    torch.set_num_threads(1)
    x, y = data(args)
    before = resident_mib()
    model = Stack(args.width, args.blocks)
    loaded = resident_mib()
    op = HessianOperator(model, F.cross_entropy, x, y, batch_size=args.samples, engine="func")
    start = resident_mib()
    with PeakResident() as peak:
        lanczos_eigs(
            op, 1, basis_size=args.basis, max_hvps=args.basis, tol=1e-12, eigenvectors=False
        )
    return {
        "params": loaded - before,
        "basis": peak.peak - start,
        "product": statistics.median(op.product_seconds[1:]),
        "local_dim": op.dim,
        "dim": op.dim,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--basis", type=int, default=12)
    parser.add_argument("--worlds", default="1,2,4")
    args = parser.parse_args()
    from safetensors.torch import save_file

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        weights = str(Path(folder) / "stack.safetensors")
        save_file(Stack(args.width, args.blocks).state_dict(), weights)
        rows = [("unsharded", unsharded(args))]
        for world in [int(w) for w in args.worlds.split(",")]:
            started = time.perf_counter()
            result = run_ranks(sharded_rank, world, args, weights, timeout=600)[0]
            result["wall"] = time.perf_counter() - started
            rows.append((f"world {world}", result))
    dim = rows[0][1]["dim"]
    print(
        f"{dim} parameters (float32), basis {args.basis} float64 vectors, "
        f"{args.samples} examples; load {os.getloadavg()[0]:.2f}"
    )
    print(f"{'run':<10} {'local dim':>10} {'params MiB':>11} {'basis MiB':>10} {'s/product':>10}")
    for name, r in rows:
        print(
            f"{name:<10} {r['local_dim']:>10} {r['params']:>11.1f} {r['basis']:>10.1f} "
            f"{r['product']:>10.4f}"
        )


if __name__ == "__main__":
    main()
