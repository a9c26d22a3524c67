"""Architectures from timm and Hugging Face Transformers (``--arch timm:NAME``, ``--arch hf:NAME``).

Both libraries are optional: they are imported only when a spec names them.

* ``timm:NAME`` -- ``timm.create_model(NAME, pretrained=False, num_classes=..., **kwargs)``, e.g.
  ``--arch timm:vit_tiny_patch16_224 --arch-kwargs '{"img_size": 32, "patch_size": 4}'`` for
  CIFAR-sized inputs. Nothing is downloaded: the checkpoint supplies the weights.
* ``hf:NAME`` -- a Transformers model built from a config, never from the Hub: NAME is a model
  class (``GPT2LMHeadModel``, ``ViTForImageClassification``) or a model type (``gpt2``, ``vit``,
  ``llama``); the keyword arguments are the config's fields (a model folder's ``config.json``).
  Causal language models and image classifiers are supported.

A Transformers model returns an output object; landscape's analyses want a logits tensor, so the
model gets two forward hooks (its class, parameter names and state dict stay the library's own):
the logits are taken from the output, and a language model's token ids, which the analysis
commands cast to the compute dtype with every other input, are turned back into integers
(exact: float32 holds every integer below 2**24, far above any vocabulary).
A language model's logits are ``(blocks, positions, vocabulary)``;
:func:`landscape.losses.make_loss` takes the next-token cross-entropy over every position.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from landscape.errors import UserError

HF_TASKS = ("causal-lm", "image-classification")
# Config fields that describe the saving library, not the model.
_CONFIG_BOOKKEEPING = ("architectures", "transformers_version", "_name_or_path", "model_type")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


@contextmanager
def hub_offline() -> Iterator[None]:
    """The Hugging Face Hub offline while landscape builds or reads a model: no download, no
    kernel lookup, whatever a config says (the project's rule: no network at run time).

    The variables are set before timm, Transformers or huggingface_hub is first imported (they
    read them then); huggingface_hub's flag, which every Hub call consults, is set as well in
    case it was imported already. Both are restored afterwards, for the Python API's callers.
    """
    saved = {name: os.environ.get(name) for name in OFFLINE_VARIABLES}
    os.environ.update(dict.fromkeys(OFFLINE_VARIABLES, "1"))
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - neither timm nor Transformers is installed
        constants = None
    flag = getattr(constants, "HF_HUB_OFFLINE", None)
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        if constants is not None:
            constants.HF_HUB_OFFLINE = flag
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# ------------------------------------------------------------------------------------------ timm


def timm_model(name: str, num_classes: int | None, kwargs: dict[str, Any]) -> nn.Module:
    """A randomly initialised timm model (``pretrained=False``: never a download)."""
    with hub_offline():
        return _timm_model(name, num_classes, kwargs)


def _timm_model(name: str, num_classes: int | None, kwargs: dict[str, Any]) -> nn.Module:
    try:
        import timm
    except ImportError as exc:
        raise UserError("--arch timm:... needs timm; pip install timm") from exc
    if not timm.is_model(name):
        close = timm.list_models(f"*{name[:6]}*")[:6]
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise UserError(f"--arch timm:{name}: no such timm model{hint}")
    kwargs = dict(kwargs)
    kwargs.pop("pretrained", None)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    try:
        return timm.create_model(name, pretrained=False, **kwargs)
    except Exception as exc:  # timm raises TypeError, AssertionError, ValueError ... on bad kwargs
        raise UserError(f"--arch timm:{name}: could not build it: {_first_line(exc)}") from exc


# ---------------------------------------------------------------------------------- transformers


def _transformers():
    try:
        import transformers
    except ImportError as exc:
        raise UserError("--arch hf:... needs transformers; pip install transformers") from exc
    return transformers


def hf_task(model_type: str) -> str | None:
    """``causal-lm`` or ``image-classification`` for a Transformers model type, else None."""
    with hub_offline():  # often the first import of Transformers: it reads the variables then
        from transformers.models.auto import modeling_auto as auto

    if model_type in auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return "causal-lm"
    if model_type in auto.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES:
        return "image-classification"
    return None


def _hf_class(name: str, config: dict[str, Any]):
    """The model class and model type that ``hf:NAME`` with ``config`` means."""
    transformers = _transformers()
    from transformers.models.auto import modeling_auto as auto
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    known = {
        **auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        **auto.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES,
    }
    supported = set(known.values())
    if name not in supported and config.get("model_type") in known:
        # A folder of a head-less or other-task class (GPT2Model): its type's supported class.
        name = str(config["model_type"])
    if name in CONFIG_MAPPING_NAMES:  # a model type: the task's class
        model_type = name
        task = hf_task(model_type)
        if task is None:
            raise UserError(
                f"--arch hf:{name}: model type {name!r} is neither a causal language model nor "
                "an image classifier, the two kinds landscape analyses"
            )
        class_name = known[model_type]
    elif name in supported:
        class_name = name
        model_type = config.get("model_type") or next(t for t, c in known.items() if c == name)
    else:
        raise UserError(
            f"--arch hf:{name}: unknown Transformers model type or class; use a causal language "
            "model or image classifier (e.g. hf:gpt2, hf:llama, hf:vit, hf:convnext, "
            "hf:GPT2LMHeadModel)"
        )
    if isinstance(class_name, (tuple, list)):  # a few mappings list several classes
        class_name = class_name[0]
    return getattr(transformers, class_name), str(model_type)


def hf_model(name: str, num_classes: int | None, kwargs: dict[str, Any]) -> nn.Module:
    """A randomly initialised Transformers model from a config (``kwargs``), with logits hooks."""
    with hub_offline():
        return _hf_model(name, num_classes, kwargs)


def _hf_model(name: str, num_classes: int | None, kwargs: dict[str, Any]) -> nn.Module:
    _transformers()
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    cls, model_type = _hf_class(name, kwargs)
    if model_type not in CONFIG_MAPPING:
        raise UserError(f"--arch hf:{name}: unknown Transformers model type {model_type!r}")
    fields = {k: v for k, v in kwargs.items() if k not in _CONFIG_BOOKKEEPING}
    task = hf_task(model_type)
    if task == "image-classification" and num_classes is not None:
        fields = {
            k: v for k, v in fields.items() if k not in ("id2label", "label2id", "num_classes")
        }
        fields["num_labels"] = num_classes
    fields["use_cache"] = False  # no key/value cache: analyses never generate
    try:
        config = CONFIG_MAPPING[model_type](**fields)
        model = cls(config)
    except Exception as exc:  # a bad config raises many types (ValueError, TypeError, KeyError ...)
        raise UserError(
            f"--arch hf:{name}: could not build it from its config: {_first_line(exc)}"
        ) from exc
    return with_logits(model, task or "image-classification")


def _logits_hook(module: nn.Module, args: tuple, output: Any) -> Any:
    logits = getattr(output, "logits", None)
    return output if logits is None else logits


def _integer_ids_hook(module: nn.Module, args: tuple) -> tuple | None:
    if args and isinstance(args[0], torch.Tensor) and args[0].is_floating_point():
        return (args[0].round().long(), *args[1:])
    return None


def with_logits(model: nn.Module, task: str) -> nn.Module:
    """``model`` returning its logits tensor (taking token ids of any dtype, for ``causal-lm``)."""
    model.register_forward_hook(_logits_hook)
    if task == "causal-lm":
        model.register_forward_pre_hook(_integer_ids_hook)
    model.landscape_task = task
    return model


def hf_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` under ``model``'s own names.

    Transformers 5 renames (and may fuse or split) some models' weights when it loads them:
    ``save_pretrained`` writes ViT's ``vit.encoder.layer.0.attention.attention.query.weight``,
    the module holds ``vit.layers.0.attention.q_proj.weight``. The library's own conversion does
    that, in memory (no file is read). A state dict that fits as it is, or does not fit even
    after conversion, is returned unchanged so that the usual mismatch report names its keys.
    """
    if set(state) <= set(model.state_dict()):
        return state
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with hub_offline():
            converted, info = type(model).from_pretrained(
                None,
                config=model.config,
                state_dict=state,
                output_loading_info=True,
                local_files_only=True,
            )
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        # a state dict the conversion cannot place (shapes, names, a config it rejects): keep
        # the original names, so the usual mismatch report names them; anything else is a bug
        logging.getLogger("landscape.loading").debug("weight-name conversion failed: %s", exc)
        return state
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    if any(info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")):
        return state
    return converted.state_dict()


# ---------------------------------------------------------------------------- language models


def language_model_limits(model: nn.Module) -> tuple[int, int | None] | None:
    """``(vocabulary size, context length or None)`` of a causal language model, else None."""
    if getattr(model, "landscape_task", None) != "causal-lm":
        return None
    config = model.config
    vocab = int(config.vocab_size)
    context = getattr(config, "n_positions", None) or getattr(
        config, "max_position_embeddings", None
    )
    return vocab, (int(context) if context else None)


def config_context_length(config: dict[str, Any]) -> int | None:
    """The context length a Transformers config dict declares (``n_positions`` and the like)."""
    for key in ("n_positions", "max_position_embeddings", "n_ctx", "block_size"):
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None
