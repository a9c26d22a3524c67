"""Loss-surface throughput: landscape vs loss-landscape's per-point loop vs the forward-pass
limit (issue 18).

Three cases: a CIFAR ResNet-20 (after a few SGD steps, BatchNorm in eval mode) on 512 and on
2,000 CIFAR-shaped inputs, and the digits default (``cnn-bn`` on the 1,437 digits training
images that ``landscape surface`` evaluates). A 2-D filter-normalised random plane, 51 x 51.

* **forward limit**: plain batched forward passes over the same tensors (``inference_mode``,
  no loss, no parameter writes) at the *best* batch size, found by timing every balanced batch
  size ``ceil(n / k)``; one grid point costs at least one such pass.
* **landscape**: :func:`landscape.surface.evaluate_surface` with the batch size and points per
  pass chosen by :func:`landscape.surface.stacked.choose_evaluation`, as ``landscape surface``
  does (the probe runs on an empty cache, and its cost is reported).
* **loss-landscape**: a re-creation of tomgoldstein/loss-landscape's loop (``plot_surface.py``
  ``crunch``): ``net_plotter.set_weights`` (``p.data = w + d0 * x + d1 * y`` for every
  parameter), then ``evaluation.eval_loss`` over a torchvision DataLoader (batch 128, 2 workers,
  its defaults) whose dataset turns each stored uint8 image into a PIL image and applies
  ``ToTensor`` + ``Normalize``, as ``torchvision.datasets.CIFAR10`` does; the surface is written
  to an HDF5 file after every point; no MPI.

The three are timed in alternating blocks in one process, so load that changes during the run
affects all alike. A block times a run of back-to-back forward passes, then as many landscape
points (at least about a second of them), then a few loss-landscape points; each figure is the
median over blocks of a block's mean, and every ratio is a ratio of those medians (so that it
follows from the columns shown). The 51 x 51 wall time is extrapolated from
the measured points (+ the probe for landscape). Ratios are also given on the CPU clock (user +
system time of the process and its DataLoader workers), which other load on a shared machine
barely moves; on a GPU only the wall clock means anything.

    python benchmarks/bench_surface.py              # 3 blocks per case (~5 min, 2 busy CPU cores)
    python benchmarks/bench_surface.py --quick      # 1 block, ResNet-20 on 512 inputs and digits
    python benchmarks/bench_surface.py --device cuda
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from dataclasses import dataclass

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from landscape.batching import candidate_sizes
from landscape.devices import resolve_device
from landscape.models import build_model
from landscape.surface import PointEvaluator, SurfaceResult, evaluate_surface, random_direction
from landscape.surface.stacked import choose_evaluation

GRID = 51
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
LOSS_LANDSCAPE_BATCH, LOSS_LANDSCAPE_WORKERS = 128, 2  # plot_surface.py defaults


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Case:
    name: str
    model: torch.nn.Module
    x: torch.Tensor  # normalised inputs, as landscape keeps them on the device
    y: torch.Tensor
    images: np.ndarray  # the same examples as stored uint8 images (N, H, W, C), for the DataLoader
    mean: tuple[float, ...]
    std: tuple[float, ...]


def resnet_case(n: int, device: torch.device) -> Case:
    """ResNet-20 after 3 SGD steps (non-trivial BatchNorm statistics) on n CIFAR-shaped images."""
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 32, 32, 3), generator=gen, dtype=torch.uint8).numpy()
    y = torch.randint(0, 10, (n,), generator=gen)
    mean, std = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1), torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - mean) / std
    torch.manual_seed(0)
    model = build_model("resnet20", (3, 32, 32), 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for i in range(3):
        opt.zero_grad()
        F.cross_entropy(model(x[i * 128 : (i + 1) * 128]), y[i * 128 : (i + 1) * 128]).backward()
        opt.step()
    model.eval().to(device)
    return Case(
        f"ResNet-20, {n} CIFAR-shaped",
        model,
        x.to(device),
        y.to(device),
        images,
        CIFAR_MEAN,
        CIFAR_STD,
    )


def digits_case(device: torch.device) -> Case:
    """The digits default: cnn-bn (briefly trained) on the digits training split."""
    from landscape.data import fixed_subset, load_dataset

    data = load_dataset("digits")
    x, y = fixed_subset(*data.split("train"), 2000, 0)
    torch.manual_seed(0)
    model = build_model("cnn-bn", tuple(x.shape[1:]), 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(20):
        opt.zero_grad()
        F.cross_entropy(model(x[:128]), y[:128]).backward()
        opt.step()
    model.eval().to(device)
    # Stored as 8-bit images the way a torchvision dataset would hold them; normalised back to x.
    lo, hi = float(x.min()), float(x.max())
    images = np.round((x.permute(0, 2, 3, 1).numpy() - lo) / (hi - lo) * 255).astype(np.uint8)
    std = (hi - lo) / 1.0
    return Case(
        f"digits default (cnn-bn, {x.shape[0]})",
        model,
        x.to(device),
        y.to(device),
        images,
        (-lo / std,),
        (1 / std,),
    )


# ------------------------------------------------------------------------- the forward limit


def forward_pass(model, x: torch.Tensor, batch: int) -> None:
    with torch.inference_mode():
        for i in range(0, x.shape[0], batch):
            model(x[i : i + batch])


def cpu_seconds() -> float:
    """User + system time of this process and its reaped children (DataLoader workers)."""
    t = os.times()  # children only in clock ticks; our own process at full resolution
    return time.process_time() + t.children_user + t.children_system


def timed(fn, device: torch.device) -> np.ndarray:
    """``[wall, cpu]`` seconds of ``fn()``; the CPU clock does not count time lost to other load."""
    synchronize(device)
    wall, cpu = time.perf_counter(), cpu_seconds()
    fn()
    synchronize(device)
    return np.array([time.perf_counter() - wall, cpu_seconds() - cpu])


def best_forward_batch(case: Case, device: torch.device) -> tuple[int, dict[int, float]]:
    """Every balanced batch size: warm-up, then the faster of two full passes."""
    times = {}
    for b in candidate_sizes(case.x.shape[0]):
        forward_pass(case.model, case.x[: 2 * b], b)
        times[b] = min(
            timed(lambda b=b: forward_pass(case.model, case.x, b), device)[0] for _ in range(2)
        )
    return min(times, key=times.get), times


# ---------------------------------------------------------------------- loss-landscape's loop


class StoredImages(torch.utils.data.Dataset):
    """What torchvision.datasets.CIFAR10 does per item: uint8 array -> PIL image -> transform."""

    def __init__(self, images: np.ndarray, targets: torch.Tensor, transform) -> None:
        self.images, self.targets, self.transform = images, targets.cpu().tolist(), transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from PIL import Image

        image = self.images[i]
        image = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
        return self.transform(image), self.targets[i]


def loss_landscape_loader(case: Case):
    import torchvision.transforms as T

    transform = T.Compose([T.ToTensor(), T.Normalize(case.mean, case.std)])
    dataset = StoredImages(case.images, case.y, transform)
    return torch.utils.data.DataLoader(
        dataset, batch_size=LOSS_LANDSCAPE_BATCH, shuffle=False, num_workers=LOSS_LANDSCAPE_WORKERS
    )


class LossLandscapeLoop:
    """Per point: set_weights (new parameter tensors w + x d0 + y d1), eval_loss over the loader
    (loss.item() and a correct count per batch), then the whole surface written to HDF5."""

    def __init__(self, case: Case, directions, device: torch.device, folder: str) -> None:
        self.net, self.device = case.model, device
        self.weights = [p.data.clone() for p in self.net.parameters()]
        self.dx, self.dy = ([d[n] for n, _ in self.net.named_parameters()] for d in directions)
        self.loader = loss_landscape_loader(case)
        self.criterion = torch.nn.CrossEntropyLoss()
        self.file = h5py.File(os.path.join(folder, "loss-landscape-surface.h5"), "w")
        self.losses = -np.ones((GRID, GRID))
        self.file["train_loss"] = self.losses
        self.file["train_acc"] = self.losses

    def set_weights(self, step) -> None:
        changes = [d0 * step[0] + d1 * step[1] for d0, d1 in zip(self.dx, self.dy)]
        for p, w, d in zip(self.net.parameters(), self.weights, changes):
            p.data = w + d.to(w)

    def eval_loss(self) -> tuple[float, float]:
        correct, total_loss, total = 0, 0.0, 0
        self.net.eval()
        with torch.no_grad():
            for inputs, targets in self.loader:
                batch = inputs.size(0)
                total += batch
                inputs, targets = inputs.to(self.device), targets.to(self.device)
                outputs = self.net(inputs)
                total_loss += self.criterion(outputs, targets).item() * batch
                _, predicted = outputs.max(1)
                correct += predicted.eq(targets).sum().item()
        return total_loss / total, 100.0 * correct / total

    def point(self, index: int, coords) -> None:
        self.set_weights(coords)
        loss, acc = self.eval_loss()
        self.losses.ravel()[index] = loss
        self.file["train_loss"][:] = self.losses
        self.file["train_acc"][:] = self.losses

    def restore(self) -> None:
        for p, w in zip(self.net.parameters(), self.weights):
            p.data = w.clone()
        self.file.close()


# ------------------------------------------------------------------------------- the runner


def run_case(case: Case, device: torch.device, blocks: int, per_block: int, folder: str) -> dict:
    model = case.model
    weights = {k: p.detach() for k, p in model.named_parameters()}
    directions = [random_direction(weights, seed=0, axis=a) for a in ("x", "y")]
    xs = ys = np.linspace(-1, 1, GRID)
    coords = np.stack(np.meshgrid(xs, ys, indexing="ij"), -1).reshape(-1, 2)
    order = np.random.default_rng(0).permutation(GRID * GRID)

    best, scan = best_forward_batch(case, device)
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(dir=folder)  # an empty cache: the probe runs
    started = time.perf_counter()
    choice = choose_evaluation(model, F.cross_entropy, {"train": (case.x, case.y)})
    probe = time.perf_counter() - started
    measure = PointEvaluator(
        F.cross_entropy,
        {"train": (case.x, case.y)},
        batch_size=choice.batch_size,
        points_per_pass=choice.points,
    )
    theirs = LossLandscapeLoop(case, directions, device, folder)
    rows = {"limit": [], "landscape": [], "loss-landscape": []}
    # Enough points per block that a block of a fast case lasts about a second (timer and load
    # noise), the same count for the forward passes: both figures are means over a run of
    # back-to-back units, so their ratio compares like with like.
    first = timed(lambda: forward_pass(model, case.x, best), device)[0]
    per_block = max(per_block, math.ceil(1.0 / max(first, 1e-6)))
    theirs_count = max(1, min(per_block, 4) // 2)  # slower: fewer points
    try:
        for b in range(blocks):
            chosen = order[b * per_block : (b + 1) * per_block]
            rows["limit"].append(
                timed(lambda c=chosen: [forward_pass(model, case.x, best) for _ in c], device)
                / len(chosen)
            )
            result = SurfaceResult.empty(xs, ys, measure.names)
            result.done[...] = True
            result.done.reshape(-1)[chosen] = False
            ours = timed(
                lambda r=result: evaluate_surface(model, directions, measure, xs, ys, result=r),
                device,
            )
            rows["landscape"].append(ours / len(chosen))
            theirs_points = chosen[:theirs_count]
            spent = timed(
                lambda p=theirs_points: [theirs.point(int(i), coords[i]) for i in p], device
            )
            rows["loss-landscape"].append(spent / len(theirs_points))
    finally:
        theirs.restore()
    # Medians over blocks of each column, and the ratios of those medians: the table's ratios
    # follow from its columns (a median of per-block ratios need not, when the load changes).
    med = {k: np.median(np.stack(v), axis=0) for k, v in rows.items()}  # [wall, cpu]
    efficiency = med["limit"] / med["landscape"]
    speedup = med["loss-landscape"] / med["landscape"]
    theirs_over_limit = med["loss-landscape"] / med["limit"]
    ours_51 = med["landscape"][0] * GRID * GRID + probe
    return {
        "case": case.name,
        "best": best,
        "scan": scan,
        "choice": choice,
        "probe": probe,
        **med,
        "efficiency": efficiency,
        "speedup": speedup,
        "theirs_over_limit": theirs_over_limit,
        "per_block": (per_block, theirs_count),
        "ours_51": ours_51,
        "theirs_51": med["loss-landscape"][0] * GRID * GRID,
        "probe_share": probe / ours_51,
    }


def bf16_error(case: Case, device: torch.device) -> float:
    """Relative error of the mean loss at the centre under bfloat16 autocast vs float32."""
    full = PointEvaluator(F.cross_entropy, {"t": (case.x, case.y)}, batch_size=256)(case.model)[
        "t_loss"
    ]
    half = PointEvaluator(
        F.cross_entropy, {"t": (case.x, case.y)}, batch_size=256, autocast=torch.bfloat16
    )(case.model)
    return abs(half["t_loss"] - full) / abs(full)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="1 block; ResNet-20 on 512 inputs and digits"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="intra-op threads (default: torch's)")
    parser.add_argument(
        "--blocks", type=int, help="alternating measurement blocks (default 3, --quick 1)"
    )
    parser.add_argument(
        "--points",
        type=int,
        default=4,
        help="landscape grid points per block (at least; more for a fast case)",
    )
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    blocks = args.blocks or (1 if args.quick else 3)
    sizes = [512] if args.quick else [512, 2000]
    with tempfile.TemporaryDirectory() as folder:
        cases = [resnet_case(n, device) for n in sizes] + [digits_case(device)]
        load0 = os.getloadavg()[0]
        results = [run_case(c, device, blocks, args.points, folder) for c in cases]
        load1 = os.getloadavg()[0]
        errors = {c.name: bf16_error(c, device) for c in cases}

    threads = torch.get_num_threads() if device.type == "cpu" else "-"
    print(
        f"\ndevice {device} (threads {threads}), {os.cpu_count()} CPUs, "
        f"load average {load0:.1f} -> {load1:.1f}; {blocks} alternating block(s) per case; "
        "s = seconds per grid point or pass (median over blocks of each block's mean); "
        "ratios are ratios of these medians\n"
    )
    print(
        "| case | forward limit: best batch, s/pass | landscape: batch × points, s/point "
        "| % of limit (CPU clock) | loss-landscape s/point | speed-up (CPU clock) "
        "| loss-landscape ÷ limit (CPU clock) | 51×51 landscape / loss-landscape "
        "| probe s (% of 51×51) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        c, eff, up, cap = (
            r["choice"],
            100 * r["efficiency"],
            r["speedup"],
            r["theirs_over_limit"],
        )
        print(
            f"| {r['case']} | {r['best']}, {r['limit'][0]:.4f} | {c.batch_size} × {c.points}, "
            f"{r['landscape'][0]:.4f} | {eff[0]:.1f}% ({eff[1]:.1f}%) | "
            f"{r['loss-landscape'][0]:.4f} "
            f"| {up[0]:.2f}× ({up[1]:.2f}×) | {cap[0]:.2f}× ({cap[1]:.2f}×) | "
            f"{r['ours_51'] / 60:.1f} / {r['theirs_51'] / 60:.1f} min "
            f"| {r['probe']:.2f} ({100 * r['probe_share']:.2f}%) |"
        )
    print(
        "\nloss-landscape ÷ limit bounds the speed-up of any tool that evaluates each point "
        "with one forward pass over the inputs at the best batch"
    )
    print("points per block (landscape and forward passes / loss-landscape):")
    for r in results:
        print(f"  {r['case']}: {r['per_block'][0]} / {r['per_block'][1]}")
    print("\nforward pass over all inputs by batch size (s, faster of two):")
    for r in results:
        print(f"  {r['case']}: " + ", ".join(f"{b}: {t:.3f}" for b, t in r["scan"].items()))
    print(
        "\nbf16 autocast, relative error of the mean loss at the centre vs float32: "
        + "; ".join(f"{k}: {v:.1e}" for k, v in errors.items())
    )


if __name__ == "__main__":
    main()
