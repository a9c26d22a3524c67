"""The files of one training run folder: checkpoints, ``metrics.jsonl``, ``config.json``.

::

    checkpoints/<run>/
        config.json              the resolved run config (written once, compared on re-runs)
        epoch-010-sgd.pt         docs/file-format.md "Checkpoint file";
                                 name = epochs completed + phase
        epoch-030-sgd.pt         the SGD solution, saved before the switch to SAM
        epoch-040-sam.pt
        metrics.jsonl            one JSON line per epoch

Every file is replaced atomically (temp file, fsync, ``os.replace``). Random-number
states are stored as tensors, lists and ints so that ``torch.load(weights_only=True)``
reads the whole checkpoint.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landscape.atomic import write_atomic, write_error
from landscape.errors import UserError
from landscape.loading.checkpoint import FORMAT, VERSION, read_torch_object, save_checkpoint

CHECKPOINT_RE = re.compile(r"^epoch-(\d+)-(sgd|sam)\.pt$")
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.json"


def check_run_name(name: str, given: bool = True) -> str:
    """``name`` if it is one folder name, else a UserError: a run folder lies directly under
    ``--out``, so ``../x``, ``/abs`` or ``a/b`` (from ``--run`` or a config file's ``run``)
    would write outside it. ``given=False``: the name was made from the config."""
    where = "--run" if given else "the run name made from the config"
    text = str(name)
    if (
        not text.strip()
        or text in (".", "..")
        or "/" in text
        or "\\" in text
        or "\0" in text
        or Path(text).is_absolute()
    ):
        raise UserError(
            f"{where} {text!r} is not a run name: it names a folder directly under --out, "
            "without '/', '\\' or '..' (e.g. --run trunk); choose the folder with --out"
        )
    return text


def checkpoint_name(epoch: int, phase: str) -> str:
    return f"epoch-{epoch:03d}-{phase}.pt"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """The run's checkpoints, oldest epoch first."""
    if not run_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in run_dir.iterdir() if (m := CHECKPOINT_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def remove_partial_files(run_dir: Path) -> None:
    """Temp files left by a write that a SIGKILL interrupted (the finished files are intact)."""
    if run_dir.is_dir():
        for path in run_dir.glob(".*.partial"):
            path.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, text.encode("utf-8"))


def read_config_file(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(
            f"{path} is not readable JSON ({exc}); remove the run folder or pick another --run"
        ) from exc


def write_config_file(run_dir: Path, config: dict[str, Any]) -> None:
    write_text_atomic(run_dir / CONFIG_FILE, json.dumps(config, indent=2, sort_keys=True) + "\n")


def rewrite_metrics(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """Make ``metrics.jsonl`` hold exactly ``history``: lines a killed run appended after its
    last checkpoint go, so a resumed run never duplicates an epoch."""
    write_text_atomic(run_dir / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in history))


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    """One line more; a line cut short by a full disk is dropped again on resume (the
    checkpoint's history is the truth, see :func:`rewrite_metrics`)."""
    path = run_dir / METRICS_FILE
    line = json.dumps(record) + "\n"
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
    except OSError as exc:
        raise write_error(exc, path, len(line)) from None


# ----------------------------------------------------------------------------- random states


def capture_rng(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """Python, NumPy, torch (CPU and every CUDA device) and the loop's own generators."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [
            name,
            torch.from_numpy(keys.astype(np.int64)),
            int(pos),
            int(has_gauss),
            float(cached),
        ],
        "torch": torch.get_rng_state(),
        "generators": {k: g.get_state() for k, g in generators.items()},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for key, generator in generators.items():
        generator.set_state(state["generators"][key])


# ------------------------------------------------------------------------------- checkpoints


def _to_cpu(obj: Any) -> Any:
    """Tensors inside nested dicts/lists copied to the CPU: checkpoints load on any machine."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def save_run_checkpoint(run_dir: Path, **state: Any) -> Path:
    """Write ``epoch-XXX-<phase>.pt`` in the checkpoint format of docs/file-format.md,
    atomically."""
    payload = run_checkpoint_payload(**state)
    return save_checkpoint(run_dir / checkpoint_name(payload["epoch"], payload["phase"]), payload)


def run_checkpoint_payload(
    *,
    arch: str,
    model: torch.nn.Module,
    epoch: int,
    phase: str,
    config: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    scheduler: dict[str, Any],
    rng: dict[str, Any],
    history: list[dict[str, Any]],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The checkpoint of a training state in the format of docs/file-format.md, everything copied
    to the CPU (the state may go on changing: the loop keeps the last finished epoch's to save it
    when a stop signal comes)."""
    from landscape import __version__

    return {
        "format": FORMAT,
        "version": VERSION,
        "landscape_version": __version__,
        "arch": arch,
        "model": _to_cpu(model.state_dict()),
        "epoch": epoch,
        "phase": phase,
        "config": config,
        "optimizer": _to_cpu(optimizer.state_dict()),
        "scheduler": scheduler,
        "rng": rng,
        "history": [dict(r) for r in history],
        **(extra or {}),
    }


def load_run_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint written by ``landscape train`` (plain tensors only: weights_only=True)."""
    payload = read_torch_object(path)  # format checks and weights_only=True, as for analyses
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(
            f"{path} is not a landscape training checkpoint (no format={FORMAT!r}); "
            "--from and --resume need a checkpoint written by 'landscape train'"
        )
    missing = [
        k for k in ("model", "epoch", "config", "optimizer", "rng", "history") if k not in payload
    ]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}: it cannot be continued")
    return payload
