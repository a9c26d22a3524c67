"""Several Hessian-vector products per pass, and lower-precision products: do they pay here?

For each model, one kept first-order graph (the cached engine's), then, side by side in one run:

* ``sequential``: V products, one double backward each (what the operators do today);
* ``batched``: the same V products in one double backward (``is_grads_batched=True``, a vmap
  over the backward) -- what block Lanczos, Hutch++ sketches and SLQ runs could use;
* ``func-vmap``: forward-over-reverse ``jvp(grad(loss))`` vmapped over the V vectors;
* ``bf16``: one product through a bfloat16 copy of the model (autocast off; float64 Lanczos
  recurrences would stay as they are), with its relative error against float32;
* ``SLQ lockstep`` / ``SLQ one run at a time``: the whole of ``slq_density`` (V runs of
  ``--slq-steps`` steps, products and float64 reorthogonalisation) through a
  :class:`~landscape.curvature.HessianOperator`, its runs advanced together (one batched
  product of V vectors per step; ``lockstep=True``) or one after another (the default);
  seconds per product.

Prints seconds per vector and ratios to ``sequential``. Example::

    python benchmarks/bench_batched_products.py --vectors 4 --threads 2
    python benchmarks/bench_batched_products.py --vectors 3 --threads 2 --quick --only slq
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, jvp, vmap

from landscape.curvature import HessianOperator, slq_density
from landscape.curvature.hvp import evaluation_context
from landscape.models import build_model


def cases(quick: bool):
    g = torch.Generator().manual_seed(0)
    yield (
        "digits cnn-bn, 500 inputs",
        build_model("cnn-bn", (1, 8, 8), 10),
        torch.randn(500, 1, 8, 8, generator=g),
        torch.randint(0, 10, (500,), generator=g),
    )
    n = 32 if quick else 128
    yield (
        f"resnet20, {n} CIFAR-shaped inputs",
        build_model("resnet20", (3, 32, 32), 10),
        torch.randn(n, 3, 32, 32, generator=g),
        torch.randint(0, 10, (n,), generator=g),
    )


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - started) / repeats


def measure(name, model, x, y, vectors: int, repeats: int) -> list[str]:
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    g = torch.Generator().manual_seed(1)
    V = [torch.randn(vectors, *p.shape, generator=g) for p in params]
    rows = []
    with evaluation_context(model, "eval"):
        grads = torch.autograd.grad(F.cross_entropy(model(x), y), params, create_graph=True)

        def sequential():
            return [
                torch.autograd.grad(grads, params, [v[i] for v in V], retain_graph=True)
                for i in range(vectors)
            ]

        def batched():
            return torch.autograd.grad(grads, params, V, retain_graph=True, is_grads_batched=True)

        detached = tuple(p.detach() for p in params)

        def loss_of(theta):
            return F.cross_entropy(functional_call(model, dict(zip(names, theta)), (x,)), y)

        def func_vmap():
            return vmap(lambda *v: jvp(grad(loss_of), (detached,), (v,))[1])(*V)

        base = timed(sequential, repeats) / vectors
        rows.append((name, "sequential", base, 1.0, ""))
        for label, fn in (("batched", batched), ("func-vmap", func_vmap)):
            try:
                seconds = timed(fn, repeats) / vectors
                rows.append((name, label, seconds, seconds / base, ""))
            except (RuntimeError, NotImplementedError) as exc:
                rows.append((name, label, float("nan"), float("nan"), str(exc).split("\n")[0][:60]))
        exact = sequential()[0]
    low = copy.deepcopy(model).to(torch.bfloat16)
    low_params = [p for p in low.parameters() if p.requires_grad]
    with evaluation_context(low, "eval"):
        low_grads = torch.autograd.grad(
            F.cross_entropy(low(x.bfloat16()), y), low_params, create_graph=True
        )

        def bf16():
            v0 = [v[0].bfloat16() for v in V]
            return torch.autograd.grad(low_grads, low_params, v0, retain_graph=True)

        seconds = timed(bf16, repeats)
        approx = bf16()
    flat = torch.cat([h.reshape(-1) for h in exact]).double()
    error = (torch.cat([h.reshape(-1) for h in approx]).double() - flat).norm() / flat.norm()
    rows.append((name, "bf16 (1 vector)", seconds, seconds / base, f"rel. error {error:.1e}"))
    return rows


def measure_slq(name, model, x, y, runs: int, steps: int) -> list:
    """Seconds per product of a whole SLQ density, runs in lockstep against one at a time."""
    model.eval()
    op = HessianOperator(model, F.cross_entropy, x, y)
    op.matvec(torch.randn(op.dim))  # builds and keeps the first-order graph(s) for both
    op.matmat(torch.randn(runs, op.dim))  # and a batched product's one-time set-up
    seconds = {}
    for lockstep in (True, False):
        count = op.hvp_count
        started = time.perf_counter()
        slq_density(op, runs=runs, steps=steps, lockstep=lockstep)
        seconds[lockstep] = (time.perf_counter() - started) / (op.hvp_count - count)
    base = seconds[False]
    note = f"{runs} runs x {steps} steps"
    return [
        (name, "SLQ one run at a time", base, 1.0, note),
        (name, "SLQ lockstep", seconds[True], seconds[True] / base, note),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vectors", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--quick", action="store_true", help="smaller ResNet-20 batch")
    parser.add_argument("--slq-steps", type=int, default=20, help="Lanczos steps per SLQ run")
    parser.add_argument("--only", choices=("products", "slq"), help="one part of the table")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"| case | products | s / vector | vs sequential | note |  (V = {args.vectors})")
    print("| --- | --- | ---: | ---: | --- |")
    for name, model, x, y in cases(args.quick):
        rows = []
        if args.only != "slq":
            rows += measure(name, model, x, y, args.vectors, args.repeats)
        if args.only != "products":
            rows += measure_slq(name, model, x, y, args.vectors, args.slq_steps)
        for case, label, seconds, rel, note in rows:
            print(f"| {case} | {label} | {seconds:.4g} | {rel:.2f}x | {note} |", flush=True)


if __name__ == "__main__":
    main()
