"""Worst-case (SAM) sharpness and its adaptive variant, by projected gradient ascent.

    S_max(w) = max_{||delta / c||_p <= rho} L(w + delta) - L(w)

with c = 1 (plain worst-case sharpness, the quantity SAM minimises; Foret et al., ICLR 2021)
or c = |w| elementwise (adaptive sharpness: Kwon et al., ICML 2021; Andriushchenko et al.,
"A modern look at the relationship between sharpness and generalization", ICML 2023), and
p = 2 or infinity. With ``m`` set, the maximum is taken separately for each group of m
examples and the group values are averaged (m-sharpness; Foret et al. 2021, Andriushchenko &
Flammarion, ICML 2022).

The ascent runs in the rescaled variable u = delta / c, where the constraint is a plain
ball: u <- P(u + step * d), with d = g_u / ||g_u||_2 (l2) or sign(g_u) (linf) and
g_u = c * grad L(w + c u). It follows the step-size schedule and momentum of APGD (Croce &
Hein, ICML 2020) as used by Andriushchenko et al. 2023: random start, initial step 2*rho,
momentum 0.75, step halved (and the best point restored) at checkpoints where the ascent
stalls. The returned value is the largest loss seen at a feasible point, so it is always a
lower bound of the true maximum, and it is exact for a quadratic at its minimum
(rho^2 lambda_max / 2 for the l2 ball) once the ascent has converged.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from landscape.bn import analysis_mode
from landscape.losses import LossFn
from landscape.parallel import SINGLE, Partition
from landscape.progress import ProgressFn, report
from landscape.sharpness._batched import (
    Origin,
    global_norm,
    loss_and_accuracy,
    loss_and_grad,
    perturbable,
)
from landscape.sharpness.result import SharpnessMeasurement

NORMS = ("l2", "linf")


def apgd_checkpoints(steps: int) -> set[int]:
    """Iterations after which APGD checks its progress (Croce & Hein 2020, Sec. 3.1)."""
    fractions = [0.0, 0.22]
    while True:
        nxt = fractions[-1] + max(fractions[-1] - fractions[-2] - 0.03, 0.06)
        if nxt > 1.0:
            break
        fractions.append(nxt)
    # The small offset keeps 0.57 * 100 at 57 despite rounding in the sum above.
    marks = {math.ceil(f * steps - 1e-9) for f in fractions[1:]}
    return {k for k in marks if 0 < k < steps}


def _project(u: list[torch.Tensor], rho: float, norm: str) -> list[torch.Tensor]:
    if norm == "linf":
        return [t.clamp(-rho, rho) for t in u]
    size = global_norm(u).item()
    if size <= rho:
        return u
    return [t * (rho / size) for t in u]


def _random_start(
    shapes: list[torch.Tensor], rho: float, norm: str, generator: torch.Generator
) -> list[torch.Tensor]:
    """A random point on the l2 sphere of radius rho, or uniform in the linf box."""
    if norm == "linf":
        return [
            (2 * torch.rand(t.shape, generator=generator, dtype=torch.float64) - 1).to(t) * rho
            for t in shapes
        ]
    u = [torch.randn(t.shape, generator=generator, dtype=torch.float64).to(t) for t in shapes]
    size = global_norm(u).item()
    return [t * (rho / size) for t in u]


def _ascent_direction(g: list[torch.Tensor], norm: str) -> list[torch.Tensor]:
    if norm == "linf":
        return [t.sign() for t in g]
    size = global_norm(g).item()
    if size == 0.0:
        return [torch.zeros_like(t) for t in g]
    return [t / size for t in g]


def _maximise_group(
    model: nn.Module,
    loss_fn: LossFn,
    origin: Origin,
    scale: list[torch.Tensor] | None,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    rho: float,
    norm: str,
    steps: int,
    batch_size: int | None,
    generator: torch.Generator,
    random_start: bool,
    on_step: Callable[[float], None] | None = None,
    base_loss: float | None = None,
    partition: Partition = SINGLE,
) -> tuple[float, float]:
    """APGD on one group of examples: (unperturbed loss, largest perturbed loss found).
    ``base_loss``, when known, saves the forward pass at the unperturbed weights."""

    def delta_of(u):
        return u if scale is None else [c * t for c, t in zip(scale, u)]

    origin.restore()
    if base_loss is None:
        base_loss, _ = loss_and_accuracy(
            model, loss_fn, inputs, targets, batch_size, partition=partition
        )
    if random_start:
        u = _random_start(origin.values, rho, norm, generator)
    else:
        u = [torch.zeros_like(t) for t in origin.values]
    best_loss, best_u = -math.inf, u
    previous = u
    step = 2.0 * rho
    checkpoints = apgd_checkpoints(steps)
    improvements, last_checkpoint = 0, 0
    step_at_checkpoint, best_at_checkpoint = step, -math.inf
    for i in range(steps):
        origin.move_to(delta_of(u))
        loss, _, grads = loss_and_grad(
            model, loss_fn, inputs, targets, origin.params, batch_size, partition=partition
        )
        if loss > best_loss:
            best_loss, best_u = loss, u
            improvements += 1
        if on_step is not None:
            on_step(best_loss - base_loss)
        if scale is not None:
            grads = [c * g for c, g in zip(scale, grads)]
        direction = _ascent_direction(grads, norm)
        z = _project([t + step * d for t, d in zip(u, direction)], rho, norm)
        if i == 0:
            u_next = z
        else:  # APGD momentum, alpha = 0.75
            u_next = _project(
                [t + 0.75 * (zt - t) + 0.25 * (t - p) for t, zt, p in zip(u, z, previous)],
                rho,
                norm,
            )
        previous, u = u, u_next
        if i + 1 in checkpoints:
            stalled = improvements < 0.75 * (i + 1 - last_checkpoint)
            unchanged = step_at_checkpoint == step and best_at_checkpoint == best_loss
            step_at_checkpoint, best_at_checkpoint = step, best_loss
            improvements, last_checkpoint = 0, i + 1
            if stalled or unchanged:
                step /= 2.0
                u, previous = best_u, best_u
    origin.move_to(delta_of(u))
    final_loss, _ = loss_and_accuracy(
        model, loss_fn, inputs, targets, batch_size, partition=partition
    )
    best_loss = max(best_loss, final_loss)
    origin.restore()
    return base_loss, best_loss


def worst_case_sharpness(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    rho: float,
    steps: int = 20,
    m: int | None = None,
    norm: str = "l2",
    adaptive: bool = False,
    adaptive_eta: float = 0.0,
    random_start: bool = True,
    batch_size: int | None = None,
    bn_mode: str = "eval",
    seed: int = 0,
    progress: ProgressFn | None = None,
    partition: Partition = SINGLE,
) -> SharpnessMeasurement:
    """max_{||delta / c||_p <= rho} L(w + delta) - L(w), averaged over groups of m examples.

    ``c = |w| + adaptive_eta`` elementwise when ``adaptive`` (else 1); ``norm`` is "l2" or
    "linf"; ``m=None`` takes the maximum on all examples at once. The model's parameters
    are restored exactly afterwards, and BatchNorm statistics are left untouched.
    ``progress`` sees ascent steps done of ``steps`` per group times the groups, and the
    best loss increase of the current group.
    """
    (result,) = worst_case_sharpness_radii(
        model,
        loss_fn,
        inputs,
        targets,
        radii=[rho],
        steps=steps,
        m=m,
        norm=norm,
        adaptive=adaptive,
        adaptive_eta=adaptive_eta,
        random_start=random_start,
        batch_size=batch_size,
        bn_mode=bn_mode,
        seed=seed,
        progress=progress,
        partition=partition,
    )
    return result


def worst_case_sharpness_radii(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    radii: list[float],
    steps: int = 20,
    m: int | None = None,
    norm: str = "l2",
    adaptive: bool = False,
    adaptive_eta: float = 0.0,
    random_start: bool = True,
    batch_size: int | None = None,
    bn_mode: str = "eval",
    seed: int = 0,
    progress: ProgressFn | None = None,
    partition: Partition = SINGLE,
) -> list[SharpnessMeasurement]:
    """:func:`worst_case_sharpness` at every radius in ``radii``, in one pass over the groups.

    Each group of m examples is taken once: its unperturbed loss is computed once and the
    ascent runs for every radius on it (the ascents themselves cannot be shared: each
    radius has its own maximiser). Every radius gets the random start it would get alone
    (a generator seeded with ``seed`` per radius), so the values equal separate calls.
    ``progress`` sees ascent steps done of ``steps`` per group and radius times the groups
    and radii, and the best loss increase of the current ascent.
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, not {norm!r}")
    radii = [float(r) for r in radii]
    if not radii or any(r < 0 for r in radii) or steps < 1:
        raise ValueError("radii must be a non-empty list of values >= 0 and steps >= 1")
    n = inputs.shape[0]
    group = n if m is None else min(m, n)
    generators = [torch.Generator().manual_seed(seed) for _ in radii]
    gap, base_total, best_total = [0.0] * len(radii), 0.0, [0.0] * len(radii)
    group_values: list[list[float]] = [[] for _ in radii]
    with analysis_mode(model, bn_mode), perturbable(model) as origin:
        scale = [w.abs() + adaptive_eta for w in origin.values] if adaptive else None
        groups = math.ceil(n / group)
        for index, start in enumerate(range(0, n, group)):
            x, y = inputs[start : start + group], targets[start : start + group]
            origin.restore()
            base, _ = loss_and_accuracy(model, loss_fn, x, y, batch_size, partition=partition)
            base_total += base * x.shape[0]
            for i, rho in enumerate(radii):
                steps_done = (index * len(radii) + i) * steps
                note = f"group {index + 1}/{groups}" + (f", rho {rho:g}" if len(radii) > 1 else "")

                def on_step(increase: float, note: str = note) -> None:
                    nonlocal steps_done
                    steps_done += 1
                    report(
                        progress,
                        done=steps_done,
                        total=groups * len(radii) * steps,
                        estimate=increase,
                        name="max loss increase",
                        note=note,
                    )

                _, best = _maximise_group(
                    model,
                    loss_fn,
                    origin,
                    scale,
                    x,
                    y,
                    rho=rho,
                    norm=norm,
                    steps=steps,
                    batch_size=batch_size,
                    generator=generators[i],
                    random_start=random_start,
                    on_step=on_step if progress is not None else None,
                    base_loss=base,
                    partition=partition,
                )
                group_values[i].append(best - base)
                gap[i] += (best - base) * x.shape[0]
                best_total[i] += best * x.shape[0]
    name = ("adaptive_" if adaptive else "") + "worst_case" + ("_linf" if norm == "linf" else "")
    results = []
    for i, rho in enumerate(radii):
        params = {
            "rho": rho,
            "norm": norm,
            "adaptive": adaptive,
            "adaptive_eta": adaptive_eta,
            "m": m if m is not None else n,
            "steps": steps,
            "random_start": random_start,
            "algorithm": "apgd",
            "bn_mode": bn_mode,
            "seed": seed,
            "examples": n,
        }
        results.append(
            SharpnessMeasurement(
                measure=name,
                value=gap[i] / n,
                loss=base_total / n,
                params=params,
                extra={"perturbed_loss": best_total[i] / n, "group_values": group_values[i]},
                # the unperturbed forward pass (1/3) is shared by all radii
                gradient_evaluations=steps + 1 / 3 + 1 / (3 * len(radii)),
            )
        )
    return results
