"""Model folders of timm and Hugging Face Transformers, recognised by their files.

A folder holding ``config.json`` and its weights (``model.safetensors``, a sharded
``model.safetensors.index.json``, or ``pytorch_model.bin``) is what ``save_pretrained`` (either
library) and ``timm.models.save_for_hf`` write. The config says which library:

* ``"architecture"`` (timm): the model is ``timm:<architecture>`` with ``model_args``;
* ``"model_type"`` (Transformers): the model is ``hf:<class in "architectures">`` built from the
  whole config.

:func:`load_model_folder` returns a :class:`~landscape.loading.checkpoint.LoadedCheckpoint` whose
``arch`` and ``config["arch_kwargs"]`` say how to build the model, so the folder goes through
the same architecture resolution and state-dict fitting as any other checkpoint. The weights
are read with the same safety rules (safetensors, or ``torch.load(weights_only=True)``); no code
in the folder is ever run and nothing is downloaded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from landscape.errors import UserError

CONFIG_FILE = "config.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def read_folder_config(folder: Path) -> dict[str, Any]:
    """The folder's ``config.json`` as a dict, or a UserError that says what is wrong."""
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise UserError(
            f"{folder} is a directory without {CONFIG_FILE}; a model folder needs the config.json "
            "and weights that save_pretrained writes (or give a checkpoint file)"
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{config_path} is not readable JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise UserError(f"{config_path} holds a {type(config).__name__}, not a JSON object")
    return config


def folder_arch(folder: Path, config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The architecture spec and its keyword arguments that ``config`` describes."""
    if isinstance(config.get("architecture"), str):  # timm
        model_args = config.get("model_args") if isinstance(config.get("model_args"), dict) else {}
        kwargs = dict(model_args)
        for key in ("num_classes", "global_pool"):
            if key in config and key not in kwargs:
                kwargs[key] = config[key]
        return f"timm:{config['architecture']}", kwargs
    if isinstance(config.get("model_type"), str):  # Transformers
        architectures = config.get("architectures")
        name = (
            architectures[0]
            if isinstance(architectures, list) and architectures
            else config["model_type"]
        )
        return f"hf:{name}", dict(config)
    raise UserError(
        f"{folder / CONFIG_FILE} names neither a timm architecture ('architecture') nor a "
        "Transformers model type ('model_type'); give a checkpoint file and --arch instead"
    )


def folder_weights(folder: Path) -> list[Path]:
    """The weight files of the folder, in load order (one, or the shards of an index)."""
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return [folder / name]
    for name in SHARD_INDEXES:
        index_path = folder / name
        if index_path.is_file():
            try:
                weight_map = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
                shards = sorted(set(weight_map.values()))
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                raise UserError(
                    f"{index_path} is not a shard index with a weight_map: {exc}"
                ) from exc
            paths = [folder / shard for shard in shards]
            if any(Path(s).name != s for s in shards):  # a shard outside the folder
                raise UserError(f"{index_path} names shards outside its folder")
            missing = [p.name for p in paths if not p.is_file()]
            if missing:
                raise UserError(
                    f"{folder}: shards listed in {name} are missing: {', '.join(missing[:3])}"
                )
            return paths
    raise UserError(
        f"model folder {folder} has a config.json but no weights "
        f"({', '.join(WEIGHT_FILES)} or a shard index)"
    )


def load_model_folder(folder: str | Path, read: Callable[[Path], Any]):
    """The folder's weights, architecture and config as one LoadedCheckpoint; ``read`` reads
    one weights file (:func:`landscape.loading.checkpoint.load_checkpoint` with its safety
    rules, passed in so that this module does not import the one that imports it)."""
    folder = Path(folder)
    config = read_folder_config(folder)
    arch, kwargs = folder_arch(folder, config)
    files = folder_weights(folder)
    parts = [read(path) for path in files]
    ckpt = parts[0]
    for part in parts[1:]:
        ckpt.state_dict.update(part.state_dict)
    ckpt.format = f"{arch.split(':', 1)[0]}-folder"
    ckpt.arch = arch
    ckpt.module = None  # a folder is weights plus a config, never a pickled module
    ckpt.config = {"arch_kwargs": kwargs, "model_folder": str(folder)}
    if arch.startswith("timm:") and isinstance(kwargs.get("num_classes"), int):
        ckpt.config["num_classes"] = kwargs["num_classes"]
    elif arch.startswith("hf:"):
        from landscape.loading.external import LABEL_TASKS, hf_task

        labels = config.get("id2label")
        task = hf_task(config["model_type"], arch.split(":", 1)[1])
        if task in LABEL_TASKS and isinstance(labels, dict) and labels:
            ckpt.config["num_classes"] = len(labels)
    return ckpt
