"""Compiled Hessian-vector products (``torch.compile``): do they repay their compilation?

For each model (BatchNorm in eval mode, float32, one batch), side by side in one run:

* ``cached``: our eager double backward through a kept first-order graph
  (:class:`landscape.curvature.hvp.CachedGraphEngine`, what ``engine="auto"`` uses);
* ``func``: the eager forward-over-reverse product (:class:`~landscape.curvature.hvp.FuncEngine`,
  ``jvp(grad(loss))`` over ``functional_call``);
* ``compiled <mode>``: the same ``jvp(grad(loss))`` function under ``torch.compile`` (inductor,
  ``fullgraph=True``) with the mode given (``default``, ``reduce-overhead``, ``max-autotune``)
  or ``dynamic=False``.

``torch.compile`` of the *model* followed by our double backward is not an option: AOTAutograd
refuses it ("torch.compile with aot_autograd does not currently support double backward",
checked at start and printed); compiling the whole forward-over-reverse function works.

Columns: the first call (for the compiled products: tracing and code generation; for
``cached``: building the kept graph), the median of ``--repeats`` (>= 5) products after it, the
ratio to ``cached``, the relative error against ``cached`` (float32 both) and the break-even
number of products ``n`` at which ``first + (n - 1) * per`` drops below ``cached``'s. Inductor's
on-disk caches are switched off (``--warm-cache`` to keep them), so the first call is what a
fresh analysis pays. Example (2 threads, about 6 minutes on this 2-core machine)::

    python benchmarks/bench_compiled_products.py --threads 2 --quick
    python benchmarks/bench_compiled_products.py --device cuda        # the GPU figures
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.func import functional_call, grad, jvp  # noqa: E402

from landscape.curvature.hvp import CachedGraphEngine, FuncEngine, evaluation_context  # noqa: E402
from landscape.models import build_model  # noqa: E402

MODES = ("default", "reduce-overhead", "dynamic=False")


def cases(quick: bool, device: torch.device):
    g = torch.Generator().manual_seed(0)
    yield (
        "digits cnn-bn, 500 inputs",
        build_model("cnn-bn", (1, 8, 8), 10),
        torch.randn(500, 1, 8, 8, generator=g),
        torch.randint(0, 10, (500,), generator=g),
    )
    n = 32 if quick else 128
    if device.type == "cuda":
        n = 512  # curvlinops' published figure is at batch 512
    yield (
        f"resnet20, {n} CIFAR-shaped inputs",
        build_model("resnet20", (3, 32, 32), 10),
        torch.randn(n, 3, 32, 32, generator=g),
        torch.randint(0, 10, (n,), generator=g),
    )


def compiled_product(model, loss_fn, names, x, y, mode: str):
    """``v -> H v`` as one compiled forward-over-reverse function of ``(theta, v)``."""

    def product(theta: tuple[torch.Tensor, ...], v: tuple[torch.Tensor, ...]):
        def loss_of(t):
            return loss_fn(functional_call(model, dict(zip(names, t)), (x,), strict=False), y)

        return jvp(grad(loss_of), (theta,), (v,))[1]

    options = {"dynamic": False} if mode == "dynamic=False" else {}
    if mode not in ("default", "dynamic=False"):
        options["mode"] = mode
    return torch.compile(product, fullgraph=True, **options)


def clocked(fn, device: torch.device) -> tuple[float, object]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started, out


def first_and_median(fn, device: torch.device, repeats: int) -> tuple[float, float, object]:
    first, out = clocked(fn, device)
    fn()  # a second warm-up: CUDA graphs are recorded on the second call
    per = statistics.median(clocked(fn, device)[0] for _ in range(repeats))
    return first, per, out


def relative_error(a, b) -> float:
    fa = torch.cat([t.reshape(-1) for t in a]).double()
    fb = torch.cat([t.reshape(-1) for t in b]).double()
    return float((fa - fb).norm() / fb.norm())


def double_backward_of_compiled_model(model, x, y) -> str:
    """What happens with the obvious route: compile the model, differentiate twice."""
    torch._dynamo.reset()
    compiled = torch.compile(model)
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        grads = torch.autograd.grad(
            F.cross_entropy(compiled(x[:8]), y[:8]), params, create_graph=True
        )
        torch.autograd.grad(grads, params, [torch.ones_like(p) for p in params])
        return "works"
    except RuntimeError as exc:
        return f"fails: {str(exc).splitlines()[0][:100]}"


def measure(name, model, x, y, modes, repeats: int, device: torch.device):
    model = model.to(device).eval()
    x, y = x.to(device), y.to(device)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    names, params = [n for n, _ in named], [p for _, p in named]
    g = torch.Generator().manual_seed(1)
    v = tuple(torch.randn(p.shape, generator=g).to(device) for p in params)
    rows = []
    with evaluation_context(model, "eval"):
        cached = CachedGraphEngine(model, F.cross_entropy, params, [(x, y)], 1 << 40)
        first, per, exact = first_and_median(lambda: cached.product(0, v), device, repeats)
        base_first, base = first, per
        rows.append((name, "cached (eager)", first, per, 1.0, 0.0, "-"))
        cached.release()
        func = FuncEngine(model, F.cross_entropy, names, params, [(x, y)])
        first, per, out = first_and_median(lambda: func.product(0, v), device, repeats)
        rows.append((name, "func (eager)", first, per, per / base, relative_error(out, exact), "-"))
        theta = tuple(p.detach() for p in params)
        for mode in modes:
            torch._dynamo.reset()
            label = f"compiled {mode}"
            try:
                fn = compiled_product(model, F.cross_entropy, names, x, y, mode)
                first, per, out = first_and_median(lambda fn=fn: fn(theta, v), device, repeats)
            except Exception as exc:  # noqa: BLE001 -- report whatever the compiler raises
                print(f"  {label}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
                continue
            saved = base - per
            even = 1 + (first - base_first) / saved if saved > 0 else math.inf
            rows.append((name, label, first, per, per / base, relative_error(out, exact), even))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--quick", action="store_true", help="ResNet-20 on 32 inputs (CPU)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated {MODES}")
    parser.add_argument("--warm-cache", action="store_true", help="keep inductor's disk caches")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.repeats < 5:
        parser.error("--repeats must be at least 5")
    if not args.warm_cache:
        import torch._inductor.config as inductor_config

        inductor_config.force_disable_caches = True
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # float32 figures, as the CLI computes
        torch.backends.cudnn.allow_tf32 = False
    modes = [m for m in args.modes.split(",") if m]
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads, float32")
    began = time.perf_counter()
    print("| case | product | first call s | s / product | vs cached | rel. error | break-even |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    probe = None
    for name, model, x, y in cases(args.quick, device):
        if probe is None:
            probe = double_backward_of_compiled_model(
                model.to(device).eval(), x.to(device), y.to(device)
            )
        for case, label, first, per, ratio, error, even in measure(
            name, model, x, y, modes, args.repeats, device
        ):
            shown = (
                even
                if isinstance(even, str)
                else ("never" if math.isinf(even) else f"{math.ceil(even):,}")
            )
            print(
                f"| {case} | {label} | {first:.3g} | {per:.4g} | {ratio:.2f}x | {error:.1e} "
                f"| {shown} |",
                flush=True,
            )
    print(f"\ntorch.compile(model) + double backward: {probe}")
    print(f"total wall time {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
