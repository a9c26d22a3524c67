"""``landscape experiment late-sam --dry-run``: the plan of an experiment and its expected time.

The cost of training is counted in epoch-equivalents (landscape.experiment.progress: a SAM
epoch costs two SGD epochs, Foret et al. 2021). The time per epoch is measured, not assumed:
a few SGD steps of the model at the training batch size on random inputs of the dataset's
shape, on the device the experiment would use, times the steps per epoch. The analyses are
listed by count, not timed (their cost depends on convergence).
"""

from __future__ import annotations

import math
import time
from collections import Counter

from landscape.experiment.config import LateSamConfig
from landscape.experiment.plan import Run, plan_runs
from landscape.experiment.progress import SAM_COST, clock_text, epochs_trained

# (training examples, input shape, classes) of the built-in datasets, so that a plan needs no
# data on disk (CIFAR may live only on the GPU machine). Digits: the 80 % split of 1,797.
DATASET_SHAPES = {
    "digits": (1437, (1, 8, 8), 10),
    "mnist1d": (4000, (1, 40), 10),
    "cifar10": (50000, (3, 32, 32), 10),
    "cifar100": (50000, (3, 32, 32), 100),
}


def measure_step_seconds(
    arch: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    batch_size: int,
    device: str = "cpu",
    steps: int = 3,
) -> float:
    """Median seconds of one SGD step (forward, backward, update) of a fresh ``arch`` on random
    inputs, after one warm-up step."""
    import torch

    from landscape.models import build_model

    torch.manual_seed(0)
    model = build_model(arch, input_shape, num_classes).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(batch_size, *input_shape, device=device)
    y = torch.randint(0, num_classes, (batch_size,), device=device)
    seconds = []
    for i in range(steps + 1):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        began = time.perf_counter()
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i:
            seconds.append(time.perf_counter() - began)
    return sorted(seconds)[len(seconds) // 2]


def format_plan(
    config: LateSamConfig,
    train_examples: int,
    step_seconds: float = math.nan,
    basis: str = "",
) -> str:
    """The runs per arm, their epochs and SAM steps, and the expected training time."""
    config.validate()
    runs = plan_runs(config)
    steps = config.steps_per_epoch(train_examples)
    arms: dict[str, list[Run]] = {}
    for run in runs:
        arms.setdefault(run.arm_label, []).append(run)
    lines = [
        f"plan of {config.name} on {config.dataset} / {config.arch}: {len(runs)} runs "
        f"({len(arms)} arms x {len(config.seeds)} seeds), {config.epochs} epochs each, "
        f"{steps} steps per epoch ({train_examples:,} examples, batch {config.batch_size})",
    ]
    if config.label_noise:
        lines.append(
            f"{100 * config.label_noise:g} % of the training labels replaced "
            f"(label_noise_seed {config.label_noise_seed}); test labels clean"
        )
    lines += [
        "",
        "| arm | runs | trains epochs | SGD epochs | SAM epochs | SAM steps |",
        "|---|---|---|---|---|---|",
    ]
    total_sgd = total_sam = 0
    for label, members in arms.items():
        run = members[0]
        sgd, sam = epochs_trained(run, config.epochs)
        total_sgd += sgd * len(members)
        total_sam += sam * len(members)
        own_sam = (config.epochs if run.sam_end is None else run.sam_end) - (run.sam_start or 0)
        sam_steps = own_sam * steps if run.sam_start is not None else 0
        where = f"{run.branch_epoch or 0}-{config.epochs}"
        if run.parent:
            where += f" (from {run.parent.rsplit('-s', 1)[0]})"
        lines.append(f"| {label} | {len(members)} | {where} | {sgd} | {sam} | {sam_steps:,} |")
    cost = total_sgd + SAM_COST * total_sam
    lines += [
        "",
        f"training: {total_sgd:,} SGD + {total_sam:,} SAM epochs = {cost:,.0f} epoch-equivalents "
        f"(a SAM epoch costs {SAM_COST:g}), {cost * steps:,.0f} step-equivalents",
    ]
    if math.isfinite(step_seconds):
        lines.append(
            f"measured: {step_seconds:.3g} s per SGD step{basis} -> "
            f"{step_seconds * steps:.3g} s per SGD epoch; expected training time "
            f"{clock_text(cost * steps * step_seconds)}"
        )
    per_seed = Counter(run.arm for run in runs if run.seed == config.seeds[0])
    interpolations = (per_seed["late-sam"] + per_seed["full-sam"]) * len(config.seeds)
    escapes = len(config.seeds) if config.escape else 0
    lines.append(
        f"then the analyses (not timed): {len(runs)} models (λ1, trace, worst-case sharpness at "
        f"{len(config.sharpness_radii)} radii on {config.samples} examples), {interpolations} "
        f"interpolations, {escapes} escape curves of {config.escape_steps} SAM steps"
    )
    return "\n".join(lines)
