"""Loss-surface throughput against the forward-pass limit (issue 4).

A 2-D 51 x 51 surface of a CIFAR ResNet-20 on 1,000 CIFAR-shaped inputs. The forward-pass
limit is the throughput of plain batched forward passes of the same model on the same
tensors (``inference_mode``, no loss, no parameter writes); one grid point costs at least
one such pass, so ``points/s / passes/s`` is the engine's efficiency (target >= 90%).

The two are measured in alternating blocks in the same process, so a machine whose load
changes during the run affects both alike; the ratio is the median over blocks. Without
``--full`` only some grid points are evaluated and the 51 x 51 wall time is extrapolated
(the table says so).

    python benchmarks/bench_surface.py            # 4 blocks of 3 points (a few minutes on 2 CPU cores)
    python benchmarks/bench_surface.py --quick    # 2 blocks of 1 point
    python benchmarks/bench_surface.py --full --device cuda   # the whole grid
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from landscape.devices import resolve_device
from landscape.models import build_model
from landscape.surface import Measure, SurfaceResult, evaluate_surface, random_direction

GRID = 51
SAMPLES = 1000


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Timer:
    """Wall and process-CPU seconds of a block (CPU time is robust to other load on the machine)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __enter__(self) -> Timer:
        synchronize(self.device)
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        synchronize(self.device)
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0


def forward_passes(model, x, batch_size: int, passes: int, device) -> Timer:
    """Plain passes over all of ``x`` (the forward-pass limit); per-pass seconds."""
    with Timer(device) as t, torch.inference_mode():
        for _ in range(passes):
            for i in range(0, x.shape[0], batch_size):
                model(x[i : i + batch_size])
    t.wall, t.cpu = t.wall / passes, t.cpu / passes
    return t


def grid_points(model, directions, measure, xs, ys, points: list[int], device) -> Timer:
    """Grid points (flat indices) through the public engine; per-point seconds."""
    result = SurfaceResult.empty(xs, ys, measure.names)
    result.done[...] = True
    result.done.reshape(-1)[points] = False
    with Timer(device) as t:
        evaluate_surface(model, directions, measure, xs, ys, result=result)
    t.wall, t.cpu = t.wall / len(points), t.cpu / len(points)
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 blocks of 1 point")
    parser.add_argument("--full", action="store_true", help="evaluate the whole 51 x 51 grid")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--blocks", type=int, help="alternating measurement blocks")
    parser.add_argument("--points", type=int, help="grid points per block")
    parser.add_argument("--channels-last", action="store_true", help="channels_last model and inputs")
    args = parser.parse_args()
    device = resolve_device(args.device)
    blocks = args.blocks or (2 if args.quick else 4)
    per_block = args.points or (1 if args.quick else 3)

    torch.manual_seed(0)
    model = build_model("resnet20", (3, 32, 32), 10).to(device).eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(SAMPLES, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, 10, (SAMPLES,), generator=gen).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    weights = {n: p.detach() for n, p in model.named_parameters()}
    directions = [random_direction(weights, seed=0, axis=a) for a in ("x", "y")]
    measure = Measure(F.cross_entropy, {"train": (x, y)}, batch_size=args.batch_size)
    xs = ys = np.linspace(-1, 1, GRID)

    forward_passes(model, x, args.batch_size, 1, device)  # warm-up (allocator, cuDNN autotune)
    total = GRID * GRID
    if args.full:
        blocks, per_block = 1, total
    order = np.random.default_rng(0).permutation(total)
    limits, points = [], []
    for b in range(blocks):
        limits.append(forward_passes(model, x, args.batch_size, max(1, min(per_block, 20)), device))
        chosen = list(order[b * per_block : (b + 1) * per_block])
        points.append(grid_points(model, directions, measure, xs, ys, chosen, device))
    if args.full:
        limits.append(forward_passes(model, x, args.batch_size, 20, device))
    clocks = ["wall", "cpu"] if device.type == "cpu" else ["wall"]
    limit = {c: statistics.median(getattr(t, c) for t in limits) for c in clocks}
    per_point = {c: statistics.median(getattr(t, c) for t in points) for c in clocks}
    ratio = {c: statistics.median(getattr(a, c) / getattr(p, c) for a, p in zip(limits, points)) for c in clocks}
    wall = points[0].wall * total if args.full else per_point["wall"] * total
    measured = f"all {total} points" if args.full else f"{blocks * per_block} random points, extrapolated"

    threads = torch.get_num_threads() if device.type == "cpu" else "-"
    print(f"\nResNet-20, {SAMPLES} CIFAR-shaped inputs, batch {args.batch_size}, device {device} "
          f"(threads {threads}){', channels_last' if args.channels_last else ''}; "
          f"{blocks} alternating block(s) of {per_block} point(s)\n")
    print("| measure | " + " | ".join(f"{c} clock" for c in clocks) + " |")
    print("|---|" + "---|" * len(clocks))
    print(f"| forward-pass limit (passes/s over {SAMPLES} inputs) | "
          + " | ".join(f"{1 / limit[c]:.3f}" for c in clocks) + " |")
    print("| grid points/s (`evaluate_surface`) | " + " | ".join(f"{1 / per_point[c]:.3f}" for c in clocks) + " |")
    print("| points/s ÷ forward limit (median over blocks) | "
          + " | ".join(f"{100 * ratio[c]:.1f}%" for c in clocks) + " |")
    print(f"\n51×51 wall time ({measured}): {wall:.1f} s ({wall / 60:.1f} min); "
          f"at the forward limit: {limit['wall'] * total:.1f} s")

if __name__ == "__main__":
    main()
