"""The analysis subset of every command: which examples an analysis is computed on.

One rule everywhere (docs/architecture.md, "Vocabulary"): ``samples`` examples of one split,
drawn without augmentation by ``subset_seed`` alone, so that ``--seed`` (directions, probes)
never changes the examples and two commands on the same checkpoint see the same ones.
"""

from __future__ import annotations

import logging

import torch

from landscape.data import fixed_subset
from landscape.errors import UserError


def analysis_subset(
    data, split: str, samples: int, subset_seed: int, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """``samples`` examples of ``data``'s ``split`` (all of it if smaller), drawn by
    ``subset_seed``, on ``device``: inputs in ``dtype``, class labels as integers and
    regression targets in ``dtype``."""
    x, y = fixed_subset(*data.split(split), samples, subset_seed)
    if x.shape[0] == 0:
        raise UserError(f"the {split} split of {data.name} is empty")
    x = x.to(device=device, dtype=dtype)
    y = y.to(device) if not y.is_floating_point() else y.to(device=device, dtype=dtype)
    return x, y


def say_short_splits(samples: int | None, dataset: str, sizes: dict[str, int]) -> None:
    """One line when ``--samples`` (``samples``; None when not given) asks for more examples
    than a split has: all of them are used, and the result records the count used."""
    short = {split: n for split, n in sizes.items() if samples is not None and n < samples}
    if short:
        have = ", ".join(f"the {split} split {n:,}" for split, n in short.items())
        logging.getLogger("landscape.data").warning(
            "--samples %s is more than %s has (%s); using all of them (recorded: samples=%d)",
            f"{samples:,}",
            dataset,
            have,
            next(iter(sizes.values())),
        )
