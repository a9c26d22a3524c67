"""Cost of one Hessian-vector product on attention models, ours beside hessian-eigenthings.

Cases (random weights, eval mode, float32, the same model object and batch for both):

* ``vit-tiny`` -- timm ``vit_tiny_patch16_224`` at CIFAR size (``img_size=32, patch_size=4``:
  64 patches + a class token, width 192, 12 blocks, 5.4 M parameters) on ``--vit-batch``
  3x32x32 inputs, 10 classes;
* ``gpt2-6l`` -- a GPT-2-sized Transformers ``GPT2LMHeadModel`` with 6 layers (width 768, 12
  heads, 50,257-token vocabulary, tied embeddings, 81 M parameters) on ``--gpt-batch`` blocks of
  256 tokens, next-token cross-entropy.

Both libraries compute exact double-backward products (Pearlmutter 1994). Ours:
``landscape.curvature.HessianOperator`` (the graph of the batch is kept between products, and
``scaled_dot_product_attention`` is routed to the math kernel). hessian-eigenthings 1.0:
``HessianOperator(model, [(x, y)], supervised_loss(criterion))``, which rebuilds the graph for
every product; PyTorch's fused CPU attention kernel has no double backward, so its products
run inside ``sdpa_kernel(MATH)`` (without it they raise). Printed per case: one gradient (the
yardstick), the median of ``--products`` products after a warm-up one, and the ratios.

    python benchmarks/bench_external.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel


def vit_case(batch: int):
    import timm

    torch.manual_seed(0)
    model = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=4, num_classes=10
    ).eval()
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    return model, x, y


def gpt2_case(batch: int, block: int = 256):
    import transformers

    from landscape.loading.external import with_logits

    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=6, n_positions=1024, use_cache=False)
    model = with_logits(transformers.GPT2LMHeadModel(config).eval(), "causal-lm")
    stream = torch.randint(0, config.vocab_size, (batch * block + 1,))
    x = torch.stack([stream[i * block : (i + 1) * block] for i in range(batch)])
    y = torch.stack([stream[i * block + 1 : (i + 1) * block + 1] for i in range(batch)])
    return model, x, y


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def measure(name: str, model, x, y, products: int) -> dict:
    import hessian_eigenthings as he

    from landscape.curvature import HessianOperator
    from landscape.losses import make_loss

    loss_fn = make_loss("cross-entropy")
    params = sum(p.numel() for p in model.parameters())
    generator = torch.Generator().manual_seed(0)
    with HessianOperator(model, loss_fn, x, y, batch_size=x.shape[0]) as ours:
        v = torch.randn(ours.dim, generator=generator)
        gradient = min(timed(ours.gradient, 2))
        ours.matvec(v)  # warm-up: builds and keeps the graph
        mine = statistics.median(timed(lambda: ours.matvec(v), products))
        ours_hv = ours.matvec(v)
    theirs_op = he.HessianOperator(model, [(x, y)], he.supervised_loss(loss_fn))
    with sdpa_kernel([SDPBackend.MATH]):
        theirs_op.matvec(v)  # warm-up
        theirs = statistics.median(timed(lambda: theirs_op.matvec(v), products))
        theirs_hv = theirs_op.matvec(v)
    agree = float((ours_hv - theirs_hv).norm() / theirs_hv.norm())
    return dict(
        case=name,
        params=params,
        gradient=gradient,
        ours=mine,
        theirs=theirs,
        agree=agree,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vit-batch", type=int, default=16)
    parser.add_argument("--gpt-batch", type=int, default=1)
    parser.add_argument("--products", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"{'case':<28} {'params':>8} {'gradient':>9} {'ours':>8} {'eigenthings':>12} "
        f"{'ours/grad':>9} {'theirs/grad':>11} {'theirs/ours':>11} {'|dHv|/|Hv|':>10}",
        flush=True,
    )
    cases = [
        (f"vit-tiny, {args.vit_batch} x 3x32x32", lambda: vit_case(args.vit_batch)),
        (f"gpt2-6l, {args.gpt_batch} x 256 tokens", lambda: gpt2_case(args.gpt_batch)),
    ]
    for name, build in cases:
        r = measure(name, *build(), args.products)
        print(
            f"{r['case']:<28} {r['params'] / 1e6:>7.1f}M {r['gradient']:>8.2f}s {r['ours']:>7.2f}s "
            f"{r['theirs']:>11.2f}s {r['ours'] / r['gradient']:>9.2f} "
            f"{r['theirs'] / r['gradient']:>11.2f} {r['theirs'] / r['ours']:>11.2f} "
            f"{r['agree']:>10.1e}",
            flush=True,
        )


if __name__ == "__main__":
    main()
