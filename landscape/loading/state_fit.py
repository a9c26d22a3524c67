"""Fitting a state dict into a model, with a clear report when it does not fit.

Third-party state dicts rarely match an architecture's names exactly: Lightning stores
``self.model`` as ``model.*``, wrappers add a prefix the bare model lacks, and old
checkpoints miss BatchNorm's ``num_batches_tracked``. :func:`fit_state_dict` repairs what is
unambiguous (one prefix that makes every key match) and otherwise names the first few
missing and unexpected keys and shape mismatches, with the fix when one is evident.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from landscape.errors import UserError

log = logging.getLogger("landscape.loading.loader")

# BatchNorm counters that old checkpoints lack; their absence never matters for analysis.
OPTIONAL_SUFFIXES = ("num_batches_tracked",)
SHOWN = 3  # keys named per category in a mismatch report


def _is_optional(key: str) -> bool:
    return key.endswith(OPTIONAL_SUFFIXES)


def _matches(keys: set[str], expected: set[str]) -> bool:
    return {k for k in expected if not _is_optional(k)} <= keys <= expected


def align_prefix(
    state: dict[str, torch.Tensor], expected: set[str]
) -> tuple[dict[str, torch.Tensor], str | None, str | None]:
    """Strip (or add) one leading name prefix when that makes the keys match the model exactly.

    Returns the state dict to use, a description of the fix applied (or None), and a hint
    describing a prefix fix that would make most keys match but not all (or None).
    Lightning saves ``model.conv1.weight`` for a module stored as ``self.model``; other
    entries outside that prefix (a loss's buffers, say) are dropped only if the rest matches.
    """
    if _matches(set(state), expected):
        return state, None, None
    best_hint: tuple[int, str] | None = None
    base_overlap = len(set(state) & expected)
    for prefix in _candidate_prefixes(state):
        inside = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if _matches(set(inside), expected):
            outside = len(state) - len(inside)
            note = f"stripped prefix {prefix!r}" + (
                f" (ignored {outside} entries outside it)" if outside else ""
            )
            return inside, note, None
        overlap = len(set(inside) & expected)
        if overlap > base_overlap and (best_hint is None or overlap > best_hint[0]):
            best_hint = (
                overlap,
                f"stripping prefix {prefix!r} would match {overlap} of {len(expected)} keys",
            )
    for prefix in _candidate_prefixes({k: None for k in expected}):
        added = {prefix + k: v for k, v in state.items()}
        if _matches(set(added), expected):
            return added, f"added prefix {prefix!r}", None
    return state, None, best_hint[1] if best_hint else None


def _candidate_prefixes(state: dict[str, Any]) -> list[str]:
    """Leading dotted prefixes (one or two components) shared by at least half the keys."""
    counts: dict[str, int] = {}
    for key in state:
        parts = key.split(".")
        for depth in (1, 2):
            if len(parts) > depth:
                prefix = ".".join(parts[:depth]) + "."
                counts[prefix] = counts.get(prefix, 0) + 1
    return [p for p, c in sorted(counts.items(), key=lambda kv: -kv[1]) if c * 2 >= len(state)]


def fit_state_dict(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    *,
    strict: bool = True,
    path: str | Path = "checkpoint",
    arch: str = "",
) -> dict:
    """Load ``state`` into ``model``; a mismatch is a UserError naming the first few missing
    and unexpected keys and shape mismatches (``strict``), or a warning after loading what
    fits (not ``strict``). Returns a report dict (``prefix``, ``missing``, ``unexpected``,
    ``shape_mismatches``, ``loaded``)."""
    expected = model.state_dict()
    state, prefix_fix, hint = align_prefix(state, set(expected))
    state = fill_tied(model, state)
    missing = [k for k in expected if k not in state and not _is_optional(k)]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        (k, tuple(state[k].shape), tuple(expected[k].shape))
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    fitting = {
        k: v
        for k, v in state.items()
        if k in expected and tuple(v.shape) == tuple(expected[k].shape)
    }
    report = {
        "prefix": prefix_fix,
        "missing": missing,
        "unexpected": unexpected,
        "shape_mismatches": mismatched,
        "loaded": len(fitting),
    }
    if prefix_fix:
        log.info("%s: %s to match --arch %s", path, prefix_fix, arch)
    if missing or unexpected or mismatched:
        summary = mismatch_summary(missing, unexpected, mismatched, hint)
        if strict:
            raise UserError(
                f"checkpoint {path} does not fit architecture {arch}: {summary}; "
                "check --arch/--num-classes, or pass --non-strict to load what fits"
            )
        if not fitting:
            raise UserError(f"checkpoint {path} does not fit architecture {arch} at all: {summary}")
        log.warning(
            "%s: --non-strict: loaded %d of %d tensors; %s",
            path,
            len(fitting),
            len(expected),
            summary,
        )
    # Non-float tensors keep their dtype; float ones take the model's (copy_ converts).
    model.load_state_dict(fitting, strict=False)
    return report


def fill_tied(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Names that share one parameter in ``model`` (GPT-2's token embedding and output head,
    ``tie_word_embeddings``) are one tensor: a state dict that stores it under one of the names,
    as ``save_pretrained`` does, supplies the others."""
    groups: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(param), []).append(name)
    filled = None
    for names in groups.values():
        present = [n for n in names if n in state]
        if len(names) > 1 and present and len(present) < len(names):
            filled = dict(state) if filled is None else filled
            for name in names:
                filled.setdefault(name, state[present[0]])
    return state if filled is None else filled


def mismatch_summary(
    missing: list[str],
    unexpected: list[str],
    mismatched: list[tuple[str, tuple, tuple]],
    hint: str | None = None,
) -> str:
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing ({_first(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({_first(unexpected)})")
    if mismatched:
        shown = ", ".join(
            f"{k}: checkpoint {list(a)} vs model {list(b)}" for k, a, b in mismatched[:SHOWN]
        )
        more = f", and {len(mismatched) - SHOWN} more" if len(mismatched) > SHOWN else ""
        parts.append(f"{len(mismatched)} shape mismatches ({shown}{more})")
        classes = _class_count_hint(mismatched)
        if classes is not None:
            parts.append(
                f"the checkpoint seems to have {classes} classes: try --num-classes {classes}"
            )
    if hint:
        parts.append(hint)
    return "; ".join(parts)


def _first(keys: list[str]) -> str:
    more = f", ... {len(keys) - SHOWN} more" if len(keys) > SHOWN else ""
    return ", ".join(keys[:SHOWN]) + more


def _class_count_hint(mismatched: list[tuple[str, tuple, tuple]]) -> int | None:
    """The output layer (weight and bias) differing only in its first dimension: a class count."""
    if not 1 <= len(mismatched) <= 2:
        return None
    counts = {a[0] for _, a, b in mismatched if a and b and len(a) == len(b) and a[1:] == b[1:]}
    if len(counts) == 1 and all(len(a) == len(b) for _, a, b in mismatched):
        return counts.pop()
    return None
