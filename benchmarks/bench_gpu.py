"""The GPU figures of issue #14, timed with CUDA events (``benchmarks/gpu.sh`` runs it).

1. Hessian-vector products per second, ResNet-20 and ResNet-18 (torchvision, 10 classes) on one
   batch of 512 CIFAR-shaped inputs: our cached double-backward engine
   (``landscape.curvature.HessianOperator``), the products queued back to back with no host
   synchronisation between them (``hot path``: the engine's per-batch product), and the library
   call ``HessianOperator.matvec`` (which checks each product for NaN/Inf, one host read each).
   Then one compiled product on ResNet-18 (curvlinops' published case: 4.7x over eager):
   ``torch.compile`` of the forward-over-reverse ``jvp(grad(loss))`` (the compiled model cannot
   be differentiated twice), its first call (compilation) and its rate, against the cached
   engine's hot path (``benchmarks/bench_compiled_products.py`` has the full comparison).
2. A 51 x 51 ResNet-20 surface over 10,000 CIFAR-shaped inputs (batches of 2,000, running
   BatchNorm statistics): ``--points`` grid points are evaluated (weights set in place, summed
   loss and accuracy kept on the device, read back once), and the 2,601-point time is
   extrapolated from their mean; one point per pass and ``--stack`` points per vmapped pass
   (``landscape.surface.stacked``) side by side.
3. One SAM epoch (``landscape.train.loop.train_epoch``) of ResNet-20 on 50,000 CIFAR-shaped
   inputs, batch 128, crop-flip augmentation on the device.

Each figure is timed after a warm-up (cuDNN autotuning, graph building) between two CUDA events,
with one synchronisation at the end. On a CPU (no CUDA) the wall clock is used instead;
``--quick`` shrinks every size so that the whole script runs end to end in about a minute there.

    python benchmarks/bench_gpu.py --device cuda        # the figures (about 2-4 minutes)
    python benchmarks/bench_gpu.py --device cpu --quick  # does it run? (numbers meaningless;
                                                         # --skip compiled: no 2-min compile)
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

GRID_POINTS = 51 * 51


@dataclass
class Sizes:
    hvp_batch: int = 512
    hvp_products: int = 50
    surface_inputs: int = 10_000
    surface_batch: int = 2_000
    sam_examples: int = 50_000
    sam_batch: int = 128

    @classmethod
    def quick(cls) -> Sizes:
        return cls(16, 2, 256, 128, 256, 64)


def timed(device: torch.device, work: Callable[[], object], repeats: int = 1) -> float:
    """Seconds per call of ``work``: CUDA events around ``repeats`` calls queued back to back
    (one synchronisation at the end), or the wall clock on other devices."""
    if device.type == "cuda":
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        for _ in range(repeats):
            work()
        stop.record()
        stop.synchronize()
        return start.elapsed_time(stop) / 1000.0 / repeats
    began = time.perf_counter()
    for _ in range(repeats):
        work()
    return (time.perf_counter() - began) / repeats


def cifar_like(n: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (n,), generator=gen)
    return x.to(device), y.to(device)


def build(name: str, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "resnet18":
        import torchvision

        model = torchvision.models.resnet18(num_classes=10)
    else:
        from landscape.models import build_model

        model = build_model(name, (3, 32, 32), 10)
    return model.to(device)


def hvp_rates(name: str, device: torch.device, sizes: Sizes) -> dict[str, float]:
    """Products per second, queued without host synchronisation and through ``matvec``."""
    from landscape.curvature.hvp import evaluation_context
    from landscape.curvature.operator import HessianOperator

    model = build(name, device).eval()
    x, y = cifar_like(sizes.hvp_batch, device)
    op = HessianOperator(model, F.cross_entropy, x, y, batch_size=sizes.hvp_batch, engine="cached")
    parts = op.split(torch.randn(op.dim, device=device))
    with evaluation_context(model, "eval"):
        op._batch_product(0, parts)  # builds and keeps the batch's first-order graph; warm-up
        hot = timed(device, lambda: op._batch_product(0, parts), sizes.hvp_products)
    v = torch.randn(op.dim, device=device)
    op.matvec(v)
    library = timed(device, lambda: op.matvec(v), sizes.hvp_products)
    return {"params": op.dim, "hot": 1.0 / hot, "matvec": 1.0 / library, "engine": op.engine_name}


def compiled_hvp(name: str, device: torch.device, sizes: Sizes) -> dict[str, float]:
    """A compiled forward-over-reverse product: first call, products per second (hot path) and
    relative error against the cached engine (both float32)."""
    from torch.func import functional_call, grad, jvp

    from landscape.curvature.hvp import CachedGraphEngine, evaluation_context

    model = build(name, device).eval()
    x, y = cifar_like(sizes.hvp_batch, device)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    names, params = [n for n, _ in named], [p for _, p in named]
    gen = torch.Generator().manual_seed(1)
    v = tuple(torch.randn(p.shape, generator=gen).to(device) for p in params)
    theta = tuple(p.detach() for p in params)

    def product(theta, v):
        def loss_of(t):
            return F.cross_entropy(functional_call(model, dict(zip(names, t)), (x,)), y)

        return jvp(grad(loss_of), (theta,), (v,))[1]

    with evaluation_context(model, "eval"):
        compiled = torch.compile(product, fullgraph=True)
        first = timed(device, lambda: compiled(theta, v))
        compiled(theta, v)
        rate = 1.0 / timed(device, lambda: compiled(theta, v), sizes.hvp_products)
        exact = CachedGraphEngine(model, F.cross_entropy, params, [(x, y)], 1 << 40).product(0, v)
        out = compiled(theta, v)
    flat = torch.cat([t.reshape(-1) for t in exact]).double()
    error = (torch.cat([t.reshape(-1) for t in out]).double() - flat).norm() / flat.norm()
    return {"first": first, "rate": rate, "error": float(error)}


def surface_seconds(device: torch.device, sizes: Sizes, points: int, stack: int) -> dict:
    """Seconds per grid point of a ResNet-20 surface, one point per pass and ``stack`` per pass."""
    from landscape.evaluate import evaluate_sums
    from landscape.surface.flat import FlatParameters
    from landscape.surface.stacked import StackedEvaluator

    model = build("resnet20", device).eval()
    x, y = cifar_like(sizes.surface_inputs, device, seed=1)
    flat = FlatParameters(model)
    origin = flat.get().clone()
    gen = torch.Generator().manual_seed(2)
    d1, d2 = (torch.randn(flat.dim, generator=gen).to(device) for _ in range(2))
    coords = torch.linspace(-1, 1, 51, device=device)
    grid = [(a, b) for a in coords for b in coords][:points]
    results = torch.zeros(len(grid), 2, dtype=torch.float64, device=device)

    def one_per_pass() -> None:
        for i, (a, b) in enumerate(grid):
            flat.set(origin + 0.01 * (a * d1 + b * d2))
            results[i] = evaluate_sums(model, x, y, F.cross_entropy, sizes.surface_batch)

    one_per_pass()  # warm-up
    single = timed(device, one_per_pass) / len(grid)
    flat.set(origin)
    out = {"single": single}
    if stack > 1:
        evaluator = StackedEvaluator(model, F.cross_entropy, {"test": (x, y)}, sizes.surface_batch)
        vectors = torch.stack([origin + 0.01 * (a * d1 + b * d2) for a, b in grid[:stack]])

        def stacked_pass() -> None:
            evaluator.sums(vectors, x, y, sizes.surface_batch)

        try:
            stacked_pass()
            out["stacked"] = timed(device, stacked_pass) / len(vectors)
        except (RuntimeError, torch.OutOfMemoryError) as exc:  # vmap of a model it cannot map
            out["stacked_error"] = str(exc).splitlines()[0][:80]
    return out


def sam_epoch_seconds(device: torch.device, sizes: Sizes) -> float:
    from landscape.train.loop import seeded_generators, train_epoch
    from landscape.train.sam import SAM

    model = build("resnet20", device)
    x, y = cifar_like(sizes.sam_examples, device, seed=3)
    base = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    sam = SAM(base, rho=0.05)

    def epoch(inputs: torch.Tensor, targets: torch.Tensor) -> None:
        train_epoch(
            model,
            F.cross_entropy,
            inputs,
            targets,
            batch_size=sizes.sam_batch,
            augmentation="crop-flip",
            optimizer=base,
            sam=sam,
            generators=seeded_generators(0),
        )

    warm = min(x.shape[0], 8 * sizes.sam_batch)
    epoch(x[:warm], y[:warm])  # cuDNN autotuning on the shapes of the epoch
    # train_epoch reads its statistics back once at the end: that is inside the timing.
    return timed(device, lambda: epoch(x, y))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check it runs")
    parser.add_argument("--points", type=int, help="surface points measured (default 200; 2)")
    parser.add_argument("--stack", type=int, default=8, help="points per stacked pass")
    parser.add_argument("--threads", type=int, help="CPU threads for torch")
    parser.add_argument("--skip", default="", help="comma-separated: hvp,compiled,surface,sam")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sizes = Sizes.quick() if args.quick else Sizes()
    points = args.points or (2 if args.quick else 200)
    skip = set(filter(None, args.skip.split(",")))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False  # float32 figures, as the CLI computes
        torch.backends.cudnn.allow_tf32 = False
        name = torch.cuda.get_device_name(device)
    else:
        name = (
            f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
        )
    print(f"device: {name}; torch {torch.__version__}; float32" + ("; --quick" * args.quick))
    print(f"timing: {'CUDA events' if device.type == 'cuda' else 'wall clock'}")
    began = time.perf_counter()

    if "hvp" not in skip:
        print(f"\nHessian-vector products, one batch of {sizes.hvp_batch} CIFAR-shaped inputs")
        print(f"{'model':<10} {'params':>10} {'HVP/s hot path':>15} {'HVP/s matvec':>13}  engine")
        hot = {}
        for model in ("resnet20", "resnet18"):
            r = hvp_rates(model, device, sizes)
            hot[model] = r["hot"]
            print(
                f"{model:<10} {r['params']:>10,} {r['hot']:>15.2f} {r['matvec']:>13.2f}  "
                f"{r['engine']} ({sizes.hvp_products} products each)"
            )

    if "surface" not in skip:
        n = sizes.surface_inputs
        print(f"\n51x51 ResNet-20 surface over {n:,} inputs, from {points} measured points")
        s = surface_seconds(device, sizes, points, args.stack)
        print(f"{'evaluation':<22} {'s / point':>10} {'points/s':>9} {'51x51 (est.)':>13}")
        rows = [("one point per pass", s["single"])]
        if "stacked" in s:
            rows.append((f"{args.stack} points per pass", s["stacked"]))
        for label, per in rows:
            print(f"{label:<22} {per:>10.4f} {1 / per:>9.1f} {per * GRID_POINTS:>12.1f}s")
        if "stacked_error" in s:
            print(f"stacked: not run ({s['stacked_error']})")

    if "sam" not in skip:
        seconds = sam_epoch_seconds(device, sizes)
        steps = -(-sizes.sam_examples // sizes.sam_batch)
        print(
            f"\nSAM epoch, ResNet-20, {sizes.sam_examples:,} inputs, batch {sizes.sam_batch}: "
            f"{seconds:.2f} s ({steps} steps, {sizes.sam_examples / seconds:,.0f} images/s)"
        )
    # Last: its compile takes minutes, and gpu.sh's time limit must not cost the figures above.
    if "compiled" not in skip and "hvp" not in skip:
        try:
            c = compiled_hvp("resnet18", device, sizes)
            print(
                f"\nresnet18 compiled jvp(grad): {c['rate']:.2f} HVP/s hot path "
                f"({c['rate'] / hot['resnet18']:.2f}x cached), first call {c['first']:.1f} s,"
                f" rel. error {c['error']:.1e} vs cached"
            )
        except Exception as exc:  # noqa: BLE001 -- the compiler's failure is the figure
            print(f"\nresnet18 compiled jvp(grad): failed ({str(exc).splitlines()[0][:100]})")
    print(f"\ntotal wall time {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
