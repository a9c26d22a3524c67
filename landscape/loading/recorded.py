"""What a file says about its own model, vetted: a file is data, never code.

A checkpoint can record how to build its model: a landscape checkpoint's ``arch`` and
``config["arch_kwargs"]``, the ``arch`` key of a third-party dict, a safetensors header's
``arch``, a timm or Transformers model folder's ``config.json``. Unlike ``--arch`` on the command
line (where ``file.py:factory`` is the user's own code, run because the user named it), such a
name is resolved only against built-in builders, and its keyword arguments only where they
describe the shape of the model, never where they make a library read a file or the network:

* the name must be a registry name, ``torchvision:NAME``, ``timm:NAME`` or ``hf:NAME``
  (resolved by :mod:`landscape.loading.architecture` against the library's own model lists);
  ``module:function`` and ``file.py:function`` are refused;
* registry, torchvision and timm keyword arguments must be plain values (numbers, booleans,
  short identifiers and lists of them: no paths, no URLs), and their names must not be one of
  the loading options of those libraries (``pretrained``, ``checkpoint_path``,
  ``pretrained_cfg``, ``pretrained_cfg_overlay``, ``weights``, ``cache_dir`` ...);
* a Transformers config loses, at every depth, the keys that load code or kernels
  (``auto_map``, ``trust_remote_code``, ``quantization_config``, an ``attn_implementation``
  other than the built-in ``eager`` and ``sdpa``: a Hub kernel name such as
  ``kernels-community/flash-attn2`` makes Transformers fetch that kernel), each with a warning.

``--trust-checkpoint`` lifts all of this: the user vouches for the file.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

from landscape.errors import UserError

log = logging.getLogger("landscape.loading")

LIBRARY_PREFIXES = ("torchvision:", "timm:", "hf:")
# Words of a keyword's name that mark a loading option: timm's create_model and
# build_model_with_cfg (pretrained, pretrained_cfg, pretrained_cfg_overlay, checkpoint_path,
# cache_dir, feature_cfg, kwargs_filter, pretrained_strict), torchvision's builders (weights,
# weights_backbone, progress) and the Hub's (hf_hub_id, url, file, revision).
LOADING_WORDS = frozenset(
    "pretrained checkpoint path file url dir cache hub hf cfg weights download revision "
    "repo overlay kwargs progress".split()
)
PLAIN_STRING = re.compile(r"[A-Za-z0-9_\-]{0,64}")
MAX_LIST = 256
# Transformers config keys that load code, kernels or quantisation backends.
HF_CODE_KEYS = frozenset(
    ("auto_map", "trust_remote_code", "custom_pipelines", "quantization_config")
)
HF_IMPLEMENTATION_KEYS = {
    "attn_implementation": ("eager", "sdpa"),
    "_attn_implementation": ("eager", "sdpa"),
    "_attn_implementation_internal": ("eager", "sdpa"),
    "experts_implementation": ("eager",),
    "_experts_implementation": ("eager",),
    "_experts_implementation_internal": ("eager",),
}
HOW_TO_ALLOW = "pass --trust-checkpoint if you trust the file"


def is_code_spec(spec: str) -> bool:
    """``module:function``, ``file.py:function`` or a bare ``file.py``: a spec that imports code."""
    if spec.startswith(LIBRARY_PREFIXES):
        return False
    return ":" in spec or spec.endswith(".py") or "/" in spec or "\\" in spec


def vet_recorded_arch(
    arch: str,
    kwargs: dict[str, Any],
    *,
    source: str,
    trust: bool = False,
    trust_flag: bool = True,
) -> dict[str, Any]:
    """``kwargs`` fit to build ``arch`` when both come from the file ``source``.

    Refuses (UserError, one line) a name that imports code and keyword arguments that name
    files, URLs or loading options; drops, with a warning, the code and kernel keys of a
    Transformers config. With ``trust`` everything is returned as it is. ``trust_flag=False``
    for commands without ``--trust-checkpoint`` (``train``): the messages then do not offer it.
    """
    if trust:
        return dict(kwargs)
    allow = f", or {HOW_TO_ALLOW}" if trust_flag else ""
    if is_code_spec(arch):
        raise UserError(
            f"{source} names the architecture {arch!r}, which is code to import and run; "
            f"nothing was run. Name it yourself with --arch {arch}{allow}"
        )
    if arch.startswith("hf:"):
        return scrub_hf_config(kwargs, source=source)
    for key, value in kwargs.items():
        words = set(str(key).lower().split("_"))
        if words & LOADING_WORDS and not (key == "pretrained" and value in (False, None)):
            raise UserError(
                f"{source} records {key}={_short(value)} for {arch}, a loading option that "
                f"can read files or the network; nothing was read. Give the keyword yourself "
                f"with --arch {arch} --arch-kwargs{allow}"
            )
        if not is_plain(value):
            raise UserError(
                f"{source} records {key}={_short(value)} for {arch}, which is not a plain "
                f"number, flag or name (paths and URLs are refused); give the keyword "
                f"yourself with --arch {arch} --arch-kwargs{allow}"
            )
    return dict(kwargs)


def is_plain(value: Any, depth: int = 0) -> bool:
    """A number, flag, None, short identifier, or a (nested) list of them."""
    if value is None or isinstance(value, (bool, int)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return PLAIN_STRING.fullmatch(value) is not None
    if isinstance(value, (list, tuple)) and depth < 3 and len(value) <= MAX_LIST:
        return all(is_plain(v, depth + 1) for v in value)
    return False


def scrub_hf_config(config: dict[str, Any], *, source: str) -> dict[str, Any]:
    """``config`` without, at any depth, the keys that make Transformers load code or kernels;
    each dropped key is one warning line."""
    dropped: list[str] = []
    clean = _scrub(config, "", dropped)
    for where in dropped:
        log.warning(
            "%s: dropped %s, which loads code or kernels (Transformers' built-in code is used "
            "instead); %s to keep it",
            source,
            where,
            HOW_TO_ALLOW,
        )
    return clean


def _scrub(value: Any, where: str, dropped: list[str]) -> Any:
    if isinstance(value, list):
        return [_scrub(v, f"{where}[{i}]", dropped) for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    clean = {}
    for key, item in value.items():
        name = f"{where}.{key}" if where else str(key)
        allowed = HF_IMPLEMENTATION_KEYS.get(key)
        if key in HF_CODE_KEYS or (
            allowed is not None and item is not None and item not in allowed
        ):
            dropped.append(f"{name}={_short(item)}")
            continue
        clean[key] = _scrub(item, name, dropped)
    return clean


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
