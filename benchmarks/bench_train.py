"""Training-loop benchmark: is the loop data-bound, what does SAM cost, how long is the default run?

Measured in one process, side by side, on the same batches:

(a) images/s of a real training epoch (landscape.train.loop.train_epoch: shuffling, whole-batch
    augmentation, forward, backward, SGD step, metrics) against the model's own forward+backward
    throughput on the same, pre-made batches (and forward+backward+step, the least a training
    step can cost). Target: epoch >= 90% of forward+backward.
(b) SAM epoch time / SGD epoch time. Target <= 2.2 (SAM's ideal is 2: two forward/backward passes).
(c) wall time of the default `landscape train` in a fresh process. Target < 2 minutes on 2 cores.

Cases: the digits default (cnn-bn, 8x8) and a CIFAR-shaped ResNet-20 on random 32x32 images
(crop+flip augmentation). Best of ``--repeats`` timings each, to see through a busy machine.

    python benchmarks/bench_train.py            # ~3-5 minutes on 2 cores
    python benchmarks/bench_train.py --quick    # ~1 minute
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `landscape train` does

import torch  # noqa: E402

from landscape.data import augment_batch, batches, load_dataset  # noqa: E402
from landscape.losses import make_loss  # noqa: E402
from landscape.models import build_model  # noqa: E402
from landscape.train.loop import seeded_generators, train_epoch  # noqa: E402
from landscape.train.sam import SAM  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def best_times(fns: dict, repeats: int) -> dict[str, float]:
    """Best wall time of each function, run round-robin so that all of them see the same load."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[key] = min(best[key], time.perf_counter() - start)
    return best


def measure(name, model, x, y, augmentation, batch_size, repeats):
    loss_fn = make_loss()
    base = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    sam = SAM(base, rho=0.05)
    generators = seeded_generators(0)
    # The same batches the loop would see, made ahead of time.
    premade = [
        (augment_batch(xb, augmentation, generators["augment"]), yb)
        for xb, yb in batches(x, y, batch_size, shuffle=True, generator=generators["shuffle"])
    ]
    n = sum(xb.shape[0] for xb, _ in premade)
    model.train()

    def forward_backward(step: bool):
        def go():
            for xb, yb in premade:
                base.zero_grad(set_to_none=True)
                loss_fn(model(xb), yb).backward()
                if step:
                    base.step()

        return go

    def epoch(use_sam: bool):
        def go():
            train_epoch(
                model,
                loss_fn,
                x,
                y,
                batch_size=batch_size,
                augmentation=augmentation,
                optimizer=base,
                sam=sam if use_sam else None,
                generators=generators,
            )

        return go

    epoch(False)()  # warm-up: allocator, kernels
    best = best_times(
        {
            "fb": forward_backward(False),
            "fbs": forward_backward(True),
            "sgd": epoch(False),
            "sam": epoch(True),
        },
        repeats,
    )
    fb, fbs, sgd, sam_t = best["fb"], best["fbs"], best["sgd"], best["sam"]
    return {
        "case": name,
        "images": n,
        "fb": n / fb,
        "fbs": n / fbs,
        "epoch": n / sgd,
        "sgd_s": sgd,
        "sam_s": sam_t,
    }


def default_cli_wall_time() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "landscape", "train", "--out", tmp],
            env=env,
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and repeats")
    parser.add_argument("--repeats", type=int, help="timings per measurement (best is kept)")
    parser.add_argument(
        "--cifar-images", type=int, help="random 32x32 images for the ResNet-20 case"
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--skip-cli", action="store_true", help="do not time the default `landscape train`"
    )
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.quick else 3)
    if args.threads:
        torch.set_num_threads(args.threads)
    cifar_images = args.cifar_images or (1024 if args.quick else 4096)

    rows = []
    digits = load_dataset("digits")
    torch.manual_seed(0)
    rows.append(
        measure(
            "digits, cnn-bn, batch 128",
            build_model("cnn-bn", (1, 8, 8), 10),
            digits.train_x,
            digits.train_y,
            "none",
            128,
            4 * repeats,
        )
    )  # cheap: more tries
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(cifar_images, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (cifar_images,), generator=gen)
    rows.append(
        measure(
            "random CIFAR-shaped, resnet20, batch 128",
            build_model("resnet20", (3, 32, 32), 10),
            x,
            y,
            "crop-flip",
            128,
            repeats,
        )
    )
    cli = None if args.skip_cli else default_cli_wall_time()

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"best of {4 * repeats} (digits) and {repeats} (resnet20), round-robin\n"
    )
    print(
        "| case | images | fwd+bwd img/s | fwd+bwd+step img/s | train epoch img/s "
        "| epoch / fwd+bwd | epoch / fwd+bwd+step | SGD epoch s | SAM epoch s | SAM / SGD |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['case']} | {r['images']} | {r['fb']:.0f} | {r['fbs']:.0f} | {r['epoch']:.0f} "
            f"| {r['epoch'] / r['fb']:.1%} | {r['epoch'] / r['fbs']:.1%} | {r['sgd_s']:.3f} "
            f"| {r['sam_s']:.3f} | {r['sam_s'] / r['sgd_s']:.2f} |"
        )
    if cli is not None:
        print(
            f"\ndefault `landscape train` (digits, cnn-bn, 60 epochs, SAM from 45), fresh process: "
            f"{cli:.1f} s wall"
        )


if __name__ == "__main__":
    main()
