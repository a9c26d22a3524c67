"""Warm starts for Lanczos: do they save time for the same certificate?

Issue #15 asks for fewer products for the same certificate by starting Lanczos from a cheap
estimate. Two estimates, side by side with a cold (random) start, on the panel of
``bench_hessian.py`` (two training runs, three checkpoints each: initialisation, one epoch,
trained), top-k eigenvalues to relative error 1e-4 by the eigenvalue error bound
(``stop="gap"``), as ``landscape hessian`` runs them:

* ``previous``: the previous checkpoint's k Ritz vectors plus a random part
  (:func:`~landscape.curvature.lanczos.warm_start`), what ``landscape hessian`` does for
  several checkpoints of one run (its default; ``--no-warm-start`` turns it off);
* ``subsample k`` / ``subsample k+1``: Lanczos first on a random eighth of the examples (to
  relative error 1e-2, its k or k + 1 Ritz vectors kept), then on all of them from those
  vectors; the time of both runs is charged.

Every time is the median of ``--repeats`` whole runs (operator set-up included), the variants of
a checkpoint timed in turn. ``err`` is the largest relative error of the k eigenvalues against a
reference on the same operator (every residual <= 1e-8 |lambda|); ``FAIL`` marks an answer whose
certificate said <= 1e-4 when it was not.

Run:  python benchmarks/bench_warm_start.py --threads 2 [--quick]
(the full run took about 12 minutes on a 2-core CPU; ``--quick`` is the digits run alone.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_hessian import training_run  # noqa: E402

from landscape.curvature import HessianOperator, lanczos_eigs  # noqa: E402
from landscape.curvature.lanczos import warm_start  # noqa: E402

TOL = 1e-4
SUBSAMPLE = 8  # one example in SUBSAMPLE for the cheap first run


def lanczos(ck, k: int, tol: float, *, start=None, rows=None, stop="gap", vectors=True):
    """One whole Lanczos run (set-up included): (seconds, result)."""
    x, y = (ck.x, ck.y) if rows is None else (ck.x[rows], ck.y[rows])
    started = time.perf_counter()
    with HessianOperator(ck.model, F.cross_entropy, x, y, batch_size=ck.batch) as op:
        result = lanczos_eigs(op, k, tol=tol, start=start, stop=stop, eigenvectors=vectors)
    return time.perf_counter() - started, result


def subsample_start(ck, k: int, extra: int):
    """Seconds and result of a subsample run, then the full run from its Ritz vectors."""
    rows = torch.randperm(len(ck.x), generator=torch.Generator().manual_seed(0))
    rows = rows[: max(len(ck.x) // SUBSAMPLE, k + extra + 1)].to(ck.x.device)
    first_s, first = lanczos(ck, k + extra, 1e-2, rows=rows)
    second_s, second = lanczos(ck, k, TOL, start=warm_start(first.eigenvectors))
    second.hvp_count += first.hvp_count / SUBSAMPLE  # in full-data products
    return first_s + second_s, second


def measure(ck, k: int, previous, repeats: int) -> tuple[dict, torch.Tensor]:
    """{variant: (median seconds, full-data products, error)} and this checkpoint's Ritz
    vectors for the next one's ``previous`` start."""
    reference = lanczos(ck, k + 1, 1e-8, stop="residual", vectors=False)[1].eigenvalues[:k]
    variants = {
        "cold": lambda: lanczos(ck, k, TOL),
        "previous": (lambda: lanczos(ck, k, TOL, start=warm_start(previous)))
        if previous is not None
        else None,
        "subsample k": lambda: subsample_start(ck, k, 0),
        "subsample k+1": lambda: subsample_start(ck, k, 1),
    }
    times: dict[str, list[float]] = {name: [] for name, run in variants.items() if run}
    results = {}
    for _ in range(repeats):
        for name in times:
            seconds, results[name] = variants[name]()
            times[name].append(seconds)
    out = {}
    for name, result in results.items():
        error = float(np.max(np.abs(result.eigenvalues - reference) / np.abs(reference)))
        out[name] = (statistics.median(times[name]), result.hvp_count, error)
    return out, results["cold"].eigenvectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the digits run only")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    # the panel of bench_hessian.py; digits on all its training examples, in batches of 256
    panel_args = argparse.Namespace(train_inputs=512, inputs=64, digits_inputs=1437)
    runs = ["digits"] if args.quick else ["digits", "resnet20"]
    rows = []
    started = time.perf_counter()
    for run in runs:
        checkpoints = list(training_run(run, panel_args, torch.device("cpu")))
        for k in (1, 5):
            previous = None
            for ck in checkpoints:
                ck.batch = 256 if run == "digits" else len(ck.x)
                out, previous = measure(ck, k, previous, args.repeats)
                rows.append((ck.tag, k, out))
                print(f"{ck.label}, top-{k}: {out}", file=sys.stderr, flush=True)
    names = ("cold", "previous", "subsample k", "subsample k+1")
    print("| checkpoint | k | " + " | ".join(names) + " |")
    print("| --- | --- |" + " --- |" * len(names))
    ratios: dict[str, list[float]] = {name: [] for name in names[1:]}
    for tag, k, out in rows:
        cells = []
        for name in names:
            if name not in out:
                cells.append("--")
                continue
            seconds, products, error = out[name]
            ratio = out["cold"][0] / seconds
            if name != "cold":
                ratios[name].append(ratio)
            flag = " FAIL" if error > TOL else ""
            cells.append(
                f"{seconds:.2f} s ({ratio:.2f}x), {products:.3g} HVP, err {error:.0e}{flag}"
            )
        print(f"| {tag} | {k} | " + " | ".join(cells) + " |")
    print(
        "\nspeed-up over a cold start, median over the rows: "
        + ", ".join(f"{n} {statistics.median(r):.2f}x" for n, r in ratios.items() if r)
    )
    print(
        f"command: python benchmarks/bench_warm_start.py {' '.join(sys.argv[1:])}; "
        f"{time.perf_counter() - started:.0f} s, {torch.get_num_threads()} thread(s)"
    )


if __name__ == "__main__":
    main()
