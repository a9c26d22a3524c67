"""What one periodic save of a surface costs, and what the atomic, locked contract adds.

A surface run saves its finished points every few seconds
(:class:`landscape.analysis.saving.PeriodicSaver`). Each save is one
:func:`landscape.store.transaction`: under the file's lock the whole file is read into memory,
the surface's values are overwritten in place there (``Surface.write_values``), and the file is
written to a temporary file, fsynced and moved into place, so that a kill leaves the old file or
the new one. The file's size is dominated by the stored directions (two model-sized arrays),
so one save costs about one copy of the file. This script times, for surfaces of models of
growing size (a 51 x 51 grid, directions stored as float32):

    transaction   a save as the commands do it (lock, read, write_values, fsync, replace)
    in place      ``write_values`` into the open file with plain h5py, flushed (not atomic:
                  a kill during the write can leave a damaged file)

and prints the median of each, their ratio, and the share of a run that saves take given the
saver's rule (the interval grows to 20x the cost of a save, so saves take at most ~1/21 of the
run time once they cost more than the 5 s interval / 20).

    python benchmarks/bench_saving.py            # ~1 minute
    python benchmarks/bench_saving.py --quick    # smaller models, one repeat
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from landscape import store
from landscape.results import Provenance
from landscape.results.surface import Surface


def _surface(parameters: int, points: int = 51) -> Surface:
    rng = np.random.default_rng(0)
    x = np.linspace(-1, 1, points)
    shape = (points, points)
    direction = {"w": rng.normal(size=parameters).astype(np.float32)}
    return Surface(
        Provenance("c.pt", "0" * 64),
        x,
        x.copy(),
        {m: np.full(shape, np.nan) for m in ("train_loss", "train_acc")},
        np.zeros(shape, dtype=bool),
        kind="random",
        directions={"x": direction, "y": {"w": direction["w"][::-1].copy()}},
    )


def _median_seconds(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(parameters: int, folder: Path, repeats: int) -> dict[str, float]:
    path = folder / f"s{parameters}.h5"
    surface = _surface(parameters)
    with store.transaction(path) as f:
        surface.write(store.replace_group(f, "surface/s"))

    def transaction() -> None:
        surface.done[0, 0] = not surface.done[0, 0]
        with store.transaction(path) as f:
            surface.write_values(f["surface/s"])

    def in_place() -> None:
        surface.done[0, 0] = not surface.done[0, 0]
        with h5py.File(path, "r+") as f:
            surface.write_values(f["surface/s"])
            f.flush()

    return {
        "megabytes": path.stat().st_size / 2**20,
        "transaction": _median_seconds(transaction, repeats),
        "in place": _median_seconds(in_place, repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = [10**5, 10**6] if args.quick else [10**5, 10**6, 10**7]
    repeats = 1 if args.quick else 5
    print(
        f"{'parameters':>11} {'file MB':>8} {'transaction s':>14} {'in place s':>11} "
        f"{'ratio':>6} {'interval s':>11} {'share of run':>13}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            row = measure(n, Path(tmp), repeats)
            interval = max(5.0, 20 * row["transaction"])
            share = row["transaction"] / (interval + row["transaction"])
            print(
                f"{n:>11,} {row['megabytes']:>8.1f} {row['transaction']:>14.4f} "
                f"{row['in place']:>11.4f} {row['transaction'] / row['in place']:>6.1f} "
                f"{interval:>11.1f} {100 * share:>12.1f}%"
            )


if __name__ == "__main__":
    main()
