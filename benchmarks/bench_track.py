"""What tracking lambda1 costs a training: the tracker's time as a share of the training time.

Issue #27: ``landscape.Tracker`` measures lambda1 (to relative error 1e-4, as ``landscape
hessian``) every ``every`` steps. Two models, plain SGD (momentum 0.9) on batches drawn at random:

* ``digits cnn-bn``: the built-in digits data (8x8 images, 1437 training examples), batch 128,
  lambda1 on 512 tracking examples;
* ``resnet-20``: ResNet-20 (width 16, 0.27 M parameters) on CIFAR-shaped random data (32x32x3,
  10 classes, random labels), batch 64, lambda1 on 64 tracking examples.

Four trackers follow one training at once -- every 50 and every 200 steps, each with and without
warm starts from the previous measurement's Ritz vectors. That is valid because a tracker leaves
the training exactly as it found it (tests/track/test_tracker.py); each tracker times its own
measurements, and the training steps are timed without them. ``share`` is a tracker's seconds
over the training's seconds; ``HVP`` the mean products per measurement.

Run:  python benchmarks/bench_track.py --threads 2 [--quick] [--model digits|resnet20]
(``--quick``: 400 digits steps and 200 ResNet-20 steps; the full run 2000 and 1000.)
"""

from __future__ import annotations

import argparse
import time

import landscape  # first: it lets idle OpenMP threads sleep (landscape/__init__.py)

# isort: split
import numpy as np
import torch
from torch import nn

from landscape.data import load_dataset
from landscape.models import build_model

SCHEDULES = [(50, True), (50, False), (200, True), (200, False)]


def problem(name: str):
    """(model, training x, y, batch, tracking samples)."""
    torch.manual_seed(0)
    if name == "digits cnn-bn":
        x, y = load_dataset("digits").split("train")
        return build_model("cnn-bn", (1, 8, 8), 10), x, y, 128, 512
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2048, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (2048,), generator=g)
    return build_model("resnet20", (3, 32, 32), 10), x, y, 64, 64


def run(name: str, steps: int) -> list[dict]:
    model, x, y, batch, samples = problem(name)
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    trackers = {
        (every, warm): landscape.Tracker(
            model, loss_fn, x, y, every=every, samples=samples, warm_start=warm, out=None,
            optimizer=opt,
        )
        for every, warm in SCHEDULES
    }  # fmt: skip
    g = torch.Generator().manual_seed(1)
    training = 0.0
    model.train()
    for step in range(1, steps + 1):
        started = time.perf_counter()
        rows = torch.randint(0, x.shape[0], (batch,), generator=g)
        loss = loss_fn(model(x[rows]), y[rows])
        opt.zero_grad()
        loss.backward()
        opt.step()
        training += time.perf_counter() - started
        for tracker in trackers.values():
            tracker.step(step)
    rows = []
    for (every, warm), tracker in trackers.items():
        series = tracker.result.series
        seconds = float(np.sum(series["seconds"]))
        rows.append(
            {
                "model": name,
                "every": every,
                "start": "warm" if warm else "cold",
                "measurements": int(tracker.result.steps.size),
                "hvp": float(np.mean(series["hvp_count"])),
                "seconds": seconds,
                "training": training,
                "share": seconds / training,
                "lambda1": float(series["lambda1"][-1]),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="400 and 200 steps")
    parser.add_argument("--model", choices=["digits", "resnet20"], help="one model only")
    parser.add_argument("--steps", type=int, help="training steps (overrides the plan)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    plan = {"digits cnn-bn": 400, "resnet-20": 200} if args.quick else {
        "digits cnn-bn": 2000, "resnet-20": 1000
    }  # fmt: skip
    if args.model:
        plan = {k: v for k, v in plan.items() if k.startswith(args.model[:6])}
    if args.steps:
        plan = dict.fromkeys(plan, args.steps)
    print(f"threads {args.threads}, torch {torch.__version__}")
    header = (
        f"{'model':<14} {'steps':>5} {'every':>5} {'start':>5} {'n':>3} {'HVP':>6} "
        f"{'track s':>8} {'train s':>8} {'share':>7} {'lambda1':>9}"
    )
    print(header)
    print("-" * len(header))
    for name, steps in plan.items():
        for r in run(name, steps):
            print(
                f"{r['model']:<14} {steps:>5} {r['every']:>5} {r['start']:>5} "
                f"{r['measurements']:>3} {r['hvp']:>6.1f} {r['seconds']:>8.2f} "
                f"{r['training']:>8.2f} {r['share']:>7.1%} {r['lambda1']:>9.4g}"
            )


if __name__ == "__main__":
    main()
