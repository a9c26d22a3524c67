"""Checkpoint files: atomic saving of landscape's own format, and safe loading of any format.

Saving: :func:`save_checkpoint` (atomic). Loading: :func:`load_checkpoint` detects the
format from the file's bytes and never unpickles arbitrary objects unless trusted.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import struct
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from landscape.errors import UserError

FORMAT = "landscape-checkpoint"
VERSION = 1


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (:func:`landscape.atomic.write_atomic`).

    The archive is built in memory first: torch's zip writer never meets a full disk (where it
    fails with an unhelpful ``PytorchStreamWriter`` error); the one write that can fail says why.
    A missing folder is created.
    """
    from landscape.atomic import write_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_atomic(path, buffer.getbuffer())
    return path


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------
# Loading, safely.
#
# A checkpoint from a stranger is a pickle, and unpickling runs code. Everything
# below reads with ``torch.load(..., weights_only=True)`` unless the caller passes
# ``trust=True`` (the CLI's --trust-checkpoint). The format is told from the file's
# first bytes, never from its name.
# ---------------------------------------------------------------------------

ZIP_MAGIC = b"PK\x03\x04"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
WRAPPER_KEYS = ("state_dict", "model", "net", "model_state_dict", "module")
EMA_KEYS = ("state_dict_ema", "model_ema", "ema_state_dict", "ema")
# Prefixes that wrappers add and that never belong to the architecture.
ALWAYS_STRIPPED = ("module.", "_orig_mod.")
_GLOBAL_RE = re.compile(r"GLOBAL ([\w.]+)")


@dataclass
class LoadedCheckpoint:
    """What a checkpoint file holds, independent of how it was written."""

    path: Path
    format: str  # landscape | state_dict | wrapped | safetensors | torchscript | pickled-module
    # | timm-folder | hf-folder (path is then the weights file inside the folder)
    state_dict: dict[str, torch.Tensor]
    arch: str | None = None
    epoch: int | None = None
    phase: str | None = None
    config: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    raw: dict | None = None
    wrapper_key: str | None = None
    prefixes_stripped: list[str] = field(default_factory=list)
    module: nn.Module | None = None
    container: str = ""  # torch-zip | torch-legacy | safetensors | torchscript
    top_level_keys: list[str] = field(default_factory=list)
    dropped_keys: list[str] = field(default_factory=list)  # non-tensor entries of the state dict
    metadata: dict = field(default_factory=dict)  # safetensors header metadata

    @property
    def parameter_count(self) -> int:
        return sum(t.numel() for t in self.state_dict.values() if t.is_floating_point())


def sniff_container(path: str | Path) -> str:
    """The container format from the file's bytes: ``torch-zip``, ``torchscript``,
    ``torch-legacy``, ``safetensors``; anything else is a UserError that says what it is."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise UserError(f"{path} is a directory, not a checkpoint file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
            size = os.fstat(fh.fileno()).st_size
    except PermissionError as exc:
        raise UserError(f"checkpoint {path} cannot be read (permission denied)") from exc
    except OSError as exc:
        raise UserError(f"checkpoint {path} cannot be read: {exc.strerror or exc}") from exc
    if size == 0:
        raise UserError(f"checkpoint {path} is empty (0 bytes); was it written completely?")
    if head.startswith(HDF5_SIGNATURE):
        raise UserError(
            f"{path} is an HDF5 result file, not a checkpoint; "
            f"use 'landscape info {path}' to see it"
        )
    if head.startswith(ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as archive:
                entries = archive.infolist()
        except (zipfile.BadZipFile, OSError) as exc:
            raise UserError(
                f"checkpoint {path} is a truncated or corrupt zip archive; "
                "was it written completely?"
            ) from exc
        names = [entry.filename for entry in entries]
        check_zip_contents_fit(path, entries, size)
        # TorchScript archives carry compiled code and constants beside the pickle.
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            return "torchscript"
        if any(n.endswith("data.pkl") for n in names):
            return "torch-zip"
        raise UserError(
            f"{path} is a zip archive but not a PyTorch checkpoint (no data.pkl inside)"
        )
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "torch-legacy"
    if size >= 10:
        header_len = struct.unpack("<Q", head[:8])[0]
        if 0 < header_len <= size - 8 and head[8:9] == b"{":
            return "safetensors"
    if _looks_like_text(head):
        raise UserError(f"{path} is a text file, not a checkpoint (PyTorch .pt or .safetensors)")
    raise UserError(
        f"{path} is not a checkpoint in any known format (PyTorch zip or legacy pickle, "
        "safetensors, TorchScript)"
    )


def check_zip_contents_fit(path: Path, entries: list[zipfile.ZipInfo], size: int) -> None:
    """Refuse a zip checkpoint whose contents would not fit in memory, judged from the sizes
    that the archive's directory declares, before anything is decompressed.

    torch's writer stores every entry uncompressed, so an honest checkpoint holds about its
    own size; a compressed entry can inflate a 1 MB file into a gigabyte tensor, which
    ``torch.load`` (and the CRC check) would then allocate.
    """
    from landscape.memory import check_fits, format_bytes

    total = sum(entry.file_size for entry in entries)
    if total <= size:
        return
    compressed = sum(entry.compress_type != zipfile.ZIP_STORED for entry in entries)
    check_fits(
        total,
        f"checkpoint {path} ({format_bytes(size)} on disk, {compressed} compressed "
        f"entr{'y' if compressed == 1 else 'ies'}) when decompressed",
        hint="torch.save never compresses, so such a file was not written by it",
    )


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\t\r\n" for ch in text)


def unsafe_globals(path: str | Path, error: BaseException | None = None) -> list[str]:
    """Names of the globals a checkpoint would import when unpickled, read without running them."""
    names: list[str] = []
    try:
        with torch.serialization.safe_globals(data_only_globals()):
            names = list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # legacy pickles are not supported there; fall back to the error text
        pass
    if not names and error is not None:
        names = _GLOBAL_RE.findall(str(error))
    return sorted(set(names))


def _refuse_unpickling(path: Path, error: BaseException) -> UserError:
    names = unsafe_globals(path, error)
    what = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    found = f" (it imports {what})" if what else ""
    return UserError(
        f"checkpoint {path} needs arbitrary unpickling to load{found}, which can run code; "
        "nothing was run. If you trust the file, pass --trust-checkpoint"
    )


def data_only_globals() -> list[Any]:
    """Globals that third-party checkpoints often hold beside their weights and that only
    rebuild data (never call user code): NumPy scalars, arrays and dtypes (as the torch
    docs suggest allowing) and ``argparse.Namespace`` (training flags saved with the weights)."""
    import argparse

    import numpy as np

    allowed: list[Any] = [np.dtype, np.ndarray, argparse.Namespace]
    try:  # the module moved in NumPy 2 (numpy._core); pickles name whichever wrote them
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # pragma: no cover - NumPy 1
        from numpy.core.multiarray import _reconstruct, scalar
    allowed += [_reconstruct, scalar]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return allowed


def check_zip_integrity(path: Path) -> None:
    """Refuse a zip checkpoint whose bytes changed on disk.

    ``torch.load`` does not check the CRC-32 that every member of the archive carries, so a
    flipped bit in the tensor data would load as silently wrong weights; this reads every member
    once and compares (about one extra read of the file).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except Exception as exc:  # BadZipFile, a garbled member name (UnicodeDecodeError), ...
        bad, detail = None, _first_line(exc)
    else:
        detail = None if bad is None else f"CRC-32 mismatch in {bad}"
    if detail is not None:
        raise UserError(
            f"checkpoint {path} is damaged ({detail}): its bytes changed after it was written; "
            f"move it away (mv {path} {path}.damaged) and use an intact copy "
            "or an earlier checkpoint"
        )


def _torch_load(path: Path, container: str, trust: bool) -> Any:
    if container == "torch-zip":
        check_zip_integrity(path)
    try:
        if trust:
            return torch.load(path, map_location="cpu", weights_only=False)
        with torch.serialization.safe_globals(data_only_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not trust and "Weights only load failed" in str(exc):
            raise _refuse_unpickling(path, exc) from exc
        raise UserError(f"checkpoint {path} is corrupt: {_first_line(exc)}") from exc
    except (EOFError, RuntimeError, ValueError, OSError, struct.error) as exc:
        if "Weights only load failed" in str(exc) and not trust:
            raise _refuse_unpickling(path, exc) from exc
        kind = "zip archive" if container == "torch-zip" else "pickle"
        raise UserError(
            f"checkpoint {path} is a truncated or corrupt PyTorch {kind}: {_first_line(exc)}"
        ) from exc
    except (AttributeError, ModuleNotFoundError, ImportError) as exc:
        # Only reachable when trusted: the pickle names a class this Python cannot find.
        raise UserError(
            f"checkpoint {path} refers to code that is not importable here: {_first_line(exc)}"
        ) from exc


def read_torch_object(path: str | Path, *, trust: bool = False) -> Any:
    """The object a ``torch.save`` file holds, after the byte-level checks of
    :func:`sniff_container` and with the same safety rules as :func:`load_checkpoint`."""
    path = Path(path)
    container = sniff_container(path)
    if container not in ("torch-zip", "torch-legacy"):
        raise UserError(f"{path} is a {container} file, not a torch.save checkpoint")
    return _torch_load(path, container, trust)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _is_tensor_dict(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and len(obj) > 0
        and all(isinstance(k, str) for k in obj)
        and any(isinstance(v, torch.Tensor) for v in obj.values())
    )


def strip_prefixes(
    state_dict: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Remove the ``module.`` (DataParallel/DDP) and ``_orig_mod.`` (torch.compile)
    prefixes that wrappers add; ``_orig_mod.`` is also removed inside names, where
    compiling a submodule puts it."""
    stripped: list[str] = []
    changed = True
    while changed and state_dict:
        changed = False
        for prefix in ALWAYS_STRIPPED:
            if all(k.startswith(prefix) for k in state_dict):
                state_dict = {k[len(prefix) :]: v for k, v in state_dict.items()}
                stripped.append(prefix)
                changed = True
    if any("._orig_mod." in k for k in state_dict):
        state_dict = {k.replace("._orig_mod.", "."): v for k, v in state_dict.items()}
        stripped.append("._orig_mod. (inside names)")
    return state_dict, stripped


def _split_tensors(obj: dict) -> tuple[dict[str, torch.Tensor], list[str]]:
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    dropped = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    return tensors, dropped


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        return int(value.item())
    return None


def load_checkpoint(
    path: str | Path, *, trust: bool = False, ema: bool = False
) -> LoadedCheckpoint:
    """Read any supported checkpoint into a state dict, without running code unless ``trust``.

    Supported: landscape's own checkpoints; raw state dicts; dicts wrapping one under
    ``state_dict``, ``model``, ``net``, ``model_state_dict`` or ``module`` (``state_dict_ema``
    or ``model_ema`` when ``ema``); safetensors; and, only when ``trust``, TorchScript
    archives and whole pickled modules. ``module.`` and ``_orig_mod.`` prefixes are stripped.
    A folder is a timm or Hugging Face model folder (:mod:`landscape.loading.model_folder`).
    """
    path = Path(path)
    if path.is_dir():
        from landscape.loading.model_folder import load_model_folder

        if ema:
            raise UserError(f"--ema was given but model folder {path} holds one set of weights")
        return load_model_folder(path, trust=trust)
    container = sniff_container(path)
    if container == "safetensors":
        return _load_safetensors(path, ema)
    if container == "torchscript":
        if not trust:
            raise UserError(
                f"checkpoint {path} is a TorchScript archive, and loading one runs its code; "
                "nothing was run. If you trust the file, pass --trust-checkpoint"
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # jit.load's deprecation notice
                module = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:  # jit raises RuntimeError subclasses with long messages
            raise UserError(
                f"TorchScript archive {path} could not be loaded: {_first_line(exc)}"
            ) from exc
        return _from_module(path, module, "torchscript", container)
    obj = _torch_load(path, container, trust)
    return _interpret(path, obj, container=container, trust=trust, ema=ema)


def _from_module(
    path: Path, module: nn.Module, fmt: str, container: str, **extra: Any
) -> LoadedCheckpoint:
    state, stripped = strip_prefixes(dict(module.state_dict()))
    return LoadedCheckpoint(
        path=path,
        format=fmt,
        state_dict=state,
        module=module,
        container=container,
        prefixes_stripped=stripped,
        arch=_module_name(module),
        **extra,
    )


def _module_name(module: nn.Module) -> str:
    # Scripted modules are all RecursiveScriptModule; original_name is the user's class.
    return str(getattr(module, "original_name", None) or type(module).__name__)


def _interpret(path: Path, obj: Any, *, container: str, trust: bool, ema: bool) -> LoadedCheckpoint:
    if isinstance(obj, nn.Module):
        return _from_module(path, obj, "pickled-module", container)
    if not isinstance(obj, dict):
        raise UserError(
            f"checkpoint {path} holds a {type(obj).__name__}, "
            "not a state dict or a dict wrapping one"
        )
    top_keys = [str(k) for k in obj]
    if obj.get("format") == FORMAT:
        return _interpret_landscape(path, obj, container, top_keys, ema)

    wrapper_key, inner = _find_wrapped(path, obj, ema)
    if wrapper_key is None:
        if _is_tensor_dict(obj):
            state, dropped = _split_tensors(obj)
            state, stripped = strip_prefixes(state)
            return LoadedCheckpoint(
                path=path,
                format="state_dict",
                state_dict=state,
                container=container,
                prefixes_stripped=stripped,
                dropped_keys=dropped,
            )
        raise UserError(
            f"checkpoint {path} holds a dict without a state dict; found keys "
            f"{', '.join(top_keys[:8]) or '(none)'}; expected one of {', '.join(WRAPPER_KEYS)}"
        )
    extra = {
        "epoch": _as_int(obj.get("epoch")),
        "raw": {k: v for k, v in obj.items() if k != wrapper_key and not _is_tensor_dict(v)},
        "top_level_keys": top_keys,
    }
    if isinstance(inner, nn.Module):
        return _from_module(
            path, inner, "pickled-module", container, wrapper_key=wrapper_key, **extra
        )
    state, dropped = _split_tensors(inner)
    state, stripped = strip_prefixes(state)
    arch = obj.get("arch") if isinstance(obj.get("arch"), str) else None
    return LoadedCheckpoint(
        path=path,
        format="wrapped",
        state_dict=state,
        container=container,
        arch=arch,
        wrapper_key=wrapper_key,
        prefixes_stripped=stripped,
        dropped_keys=dropped,
        **extra,
    )


def _find_wrapped(path: Path, obj: dict, ema: bool) -> tuple[str | None, Any]:
    """The key under which ``obj`` wraps its weights.

    One level, or two: ``{"model": {"state_dict": ...}}``.
    """
    keys = EMA_KEYS if ema else WRAPPER_KEYS
    for key in keys:
        value = obj.get(key)
        if isinstance(value, nn.Module) or _is_tensor_dict(value):
            return key, value
        if isinstance(value, dict):
            inner_key, inner = _find_wrapped(path, value, ema=False)
            if inner_key is not None:
                return f"{key}.{inner_key}", inner
    if ema:
        raise UserError(
            f"--ema was given but checkpoint {path} has no EMA weights under "
            f"{', '.join(EMA_KEYS)}; its keys are {', '.join(map(str, list(obj)[:8]))}"
        )
    return None, None


def _interpret_landscape(
    path: Path, obj: dict, container: str, top_keys: list[str], ema: bool
) -> LoadedCheckpoint:
    key = "model"
    if ema:
        key = next((k for k in EMA_KEYS if _is_tensor_dict(obj.get(k))), "")
        if not key:
            raise UserError(f"--ema was given but landscape checkpoint {path} has no EMA weights")
    model = obj.get(key)
    if not _is_tensor_dict(model):
        raise UserError(f"landscape checkpoint {path} has no model weights under {key!r}")
    state, dropped = _split_tensors(model)
    state, stripped = strip_prefixes(state)
    config = obj.get("config") if isinstance(obj.get("config"), dict) else {}
    history = obj.get("history") if isinstance(obj.get("history"), list) else []
    phase = obj.get("phase") if isinstance(obj.get("phase"), str) else None
    return LoadedCheckpoint(
        path=path,
        format="landscape",
        state_dict=state,
        container=container,
        arch=obj.get("arch") if isinstance(obj.get("arch"), str) else config.get("arch"),
        epoch=_as_int(obj.get("epoch")),
        phase=phase,
        config=dict(config),
        history=list(history),
        raw={k: v for k, v in obj.items() if k not in ("model", "optimizer", "scheduler", "rng")},
        wrapper_key=key,
        prefixes_stripped=stripped,
        top_level_keys=top_keys,
        dropped_keys=dropped,
    )


def _load_safetensors(path: Path, ema: bool) -> LoadedCheckpoint:
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    try:
        state = load_file(str(path), device="cpu")
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise UserError(
            f"safetensors file {path} is truncated or corrupt: {_first_line(exc)}"
        ) from exc
    if not state:
        raise UserError(f"safetensors file {path} holds no tensors")
    if ema:
        raise UserError(f"--ema was given but safetensors file {path} holds one set of weights")
    state, stripped = strip_prefixes(state)
    epoch = _as_int(int(metadata["epoch"])) if str(metadata.get("epoch", "")).isdigit() else None
    return LoadedCheckpoint(
        path=path,
        format="safetensors",
        state_dict=state,
        container="safetensors",
        arch=metadata.get("arch"),
        epoch=epoch,
        phase=metadata.get("phase"),
        prefixes_stripped=stripped,
        metadata=metadata,
    )


def nonfinite_entries(state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Names of floating-point tensors holding NaN or Inf."""
    return [
        name
        for name, t in state_dict.items()
        if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all())
    ]


def check_finite(state_dict: dict[str, torch.Tensor], path: str | Path) -> None:
    bad = nonfinite_entries(state_dict)
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise UserError(
            f"checkpoint {path} has NaN or Inf weights in {', '.join(bad[:3])}{more}; "
            "curvature and losses of such a model are meaningless"
        )
