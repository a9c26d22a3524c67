"""Cost of each sharpness measure in gradient-equivalents.

For every measure of ``landscape sharpness``: wall time, and that time divided by the time
of one full gradient (forward + backward) over the same examples with the same batch size,
measured right before and after the measure (the faster of the two). Side by side: the
nominal count each measure reports (``gradient_evaluations``: ascent steps, forward passes
at 1/3, Hessian-vector products at 2), and measured / nominal.

Models: the digits default (cnn-bn on 8x8 digits) and a CIFAR ResNet-20 on random 32x32
inputs, both on CPU, at their initialisation (the cost does not depend on the weights,
except through the number of Lanczos / Hutch++ iterations).

    python benchmarks/bench_sharpness.py            # digits 1024 examples, ResNet-20 1000 inputs
    python benchmarks/bench_sharpness.py --quick    # 256 examples / 128 inputs, a minute or two
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from landscape.data import fixed_subset, load_dataset
from landscape.losses import make_loss
from landscape.models import build_model
from landscape.sharpness import compute_measure
from landscape.sharpness._batched import loss_and_grad, trainable_parameters

# Parameters of each measure in this benchmark (costs scale linearly with steps / draws).
OPTIONS = dict(
    rho=0.05,
    adaptive_rho=0.5,
    steps=5,
    sigma=0.01,
    adaptive_sigma=0.1,
    draws=10,
    bn_mode="eval",
    seed=0,
)
MEASURES = [
    ("worst-case", "5 ascent steps"),
    ("adaptive-worst-case", "5 ascent steps"),
    ("adaptive-worst-case-linf", "5 ascent steps"),
    ("average-case", "10 antithetic draws"),
    ("adaptive-average-case", "10 antithetic draws"),
    ("gradient-norm", ""),
    ("fisher-rao-norm", "forward-mode JVP"),
    ("top-eigenvalue", "Lanczos, tol 1e-3"),
    ("trace", "Hutch++, 5% stderr, <= 40 HVPs"),
]


def gradient_seconds(model, loss_fn, x, y, batch_size: int, repeats: int = 3) -> float:
    params = trainable_parameters(model)
    if repeats > 1:
        loss_and_grad(model, loss_fn, x, y, params, batch_size)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        loss_and_grad(model, loss_fn, x, y, params, batch_size)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_measure(name, model, loss_fn, x, y, batch_size, warm_up: bool = False):
    """Time one measure; ``warm_up`` first runs a tiny version of it on 4 examples, so that
    one-time costs (torch.func tracing, allocator growth) do not count."""
    from landscape.sharpness import hessian_trace, top_eigenvalue

    if warm_up:
        run_measure(name, model, loss_fn, x[:4], y[:4], batch_size, warm_up=False)
    start = time.perf_counter()
    if name == "top-eigenvalue":
        result = top_eigenvalue(model, loss_fn, x, y, tol=1e-3, batch_size=batch_size)
    elif name == "trace":
        result = hessian_trace(
            model,
            loss_fn,
            x,
            y,
            rel_stderr=0.05,
            max_hvps=40 if x.shape[0] > 4 else 8,
            batch_size=batch_size,
        )
    else:
        result = compute_measure(name, model, loss_fn, x, y, batch_size=batch_size, **OPTIONS)
    return time.perf_counter() - start, result


def setups(quick: bool):
    digits = load_dataset("digits")
    x, y = fixed_subset(digits.train_x, digits.train_y, 256 if quick else 1024, 0)
    torch.manual_seed(0)
    yield "digits cnn-bn", build_model("cnn-bn", (1, 8, 8), 10).eval(), x, y, 512
    n = 128 if quick else 1000
    generator = torch.Generator().manual_seed(0)
    xr = torch.randn(n, 3, 32, 32, generator=generator)
    yr = torch.randint(0, 10, (n,), generator=generator)
    yield "cifar resnet20", build_model("resnet20", (3, 32, 32), 10).eval(), xr, yr, 250


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer examples: a minute or two")
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    loss_fn = make_loss()
    columns = []
    for label, model, x, y, batch_size in setups(args.quick):
        grad = gradient_seconds(model, loss_fn, x, y, batch_size)
        rows = {}
        for name, _ in MEASURES:
            # The unit is re-measured next to each measure, so that a machine whose load
            # drifts during the run still gives comparable ratios.
            unit = gradient_seconds(model, loss_fn, x, y, batch_size, repeats=1)
            seconds, result = run_measure(name, model, loss_fn, x, y, batch_size, warm_up=True)
            unit = min(unit, gradient_seconds(model, loss_fn, x, y, batch_size, repeats=1))
            rows[name] = (seconds, seconds / unit, result.gradient_evaluations)
        columns.append((f"{label} ({x.shape[0]} examples)", grad, rows))

    print(
        f"torch {torch.__version__}, {args.threads} CPU threads; one full gradient: "
        + ", ".join(f"{label} {grad * 1000:.0f} ms" for label, grad, _ in columns)
    )
    print()
    header = "| measure | parameters |"
    rule = "|---|---|"
    for label, _, _ in columns:
        header += f" {label}: s | grad-equiv. | nominal | measured/nominal |"
        rule += "---:|---:|---:|---:|"
    print(header)
    print(rule)
    for name, params in MEASURES:
        line = f"| {name} | {params} |"
        for _, _, rows in columns:
            seconds, equiv, nominal = rows[name]
            ratio = equiv / nominal if nominal else float("nan")
            line += f" {seconds:.2f} | {equiv:.1f} | {nominal:.1f} | {ratio:.2f} |"
        print(line)


if __name__ == "__main__":
    main()
