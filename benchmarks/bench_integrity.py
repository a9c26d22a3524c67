"""What the result digests (landscape/results/integrity.py) cost a save and a read.

Builds a result file of ten surface groups whose directions have 160 parameter tensors per axis
(ResNet-50 has 161), so 3,220 datasets, and times: one verification of every group (what
``info``, ``plot`` and a resume do once), the first save into the file (verify, change one
point, seal), a later save by the same process (it finds its own last write and only seals),
and the same save with the digests switched off.

    python benchmarks/bench_integrity.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from landscape import store
from landscape.results import integrity

GROUPS, TENSORS = 10, 160


def build(path: Path) -> None:
    with store.transaction(path) as f:
        for k in range(GROUPS):
            group = store.replace_group(f, f"surface/s{k}")
            store.set_attrs(group, config={"x": "-1:1:51"}, checkpoint="m.pt", seed=k)
            for axis in "xy":
                folder = group.create_group(f"directions/{axis}")
                for p in range(TENSORS):
                    store.write_dataset(folder, f"layer{p}.weight", np.zeros(64, np.float32))
            store.write_dataset(group, "done", np.zeros((51, 51), bool))
            store.write_dataset(group, "train_loss", np.zeros((51, 51)))


def save(path: Path, point: int) -> float:
    started = time.perf_counter()
    with store.transaction(path) as f:
        f["surface/s0/done"][0, point] = True
    return time.perf_counter() - started


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "r.h5"
        build(path)
        with h5py.File(path, "r") as f:
            started = time.perf_counter()
            integrity.verify_file(f)
            verify = time.perf_counter() - started
        store._WRITTEN.clear()  # as a new process: the first save verifies
        first, later = save(path, 0), save(path, 1)
        integrity.verify_file = lambda f, path=None: {}
        integrity.seal_changed = lambda f, before: {}
        plain = save(path, 2)
        size = path.stat().st_size / 1e6
    print(f"{GROUPS} surface groups, {GROUPS * (2 * TENSORS + 2)} datasets, {size:.1f} MB")
    print(f"verify every group:        {verify:.3f} s")
    print(f"first save (verify, seal): {first:.3f} s")
    print(f"later save (seal):         {later:.3f} s")
    print(f"save without digests:      {plain:.3f} s")


if __name__ == "__main__":
    main()
