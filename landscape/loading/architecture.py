"""Resolving an architecture spec (``--arch``) into a freshly initialised model.

Three kinds of spec:

* a registry name (``resnet20``, ``cnn-bn``, ...) built by :func:`landscape.models.build_model`;
* ``torchvision:NAME`` for any torchvision classification model (``num_classes`` honoured);
* ``timm:NAME`` for any timm model and ``hf:NAME`` for a Hugging Face Transformers causal
  language model or image classifier built from its config (:mod:`landscape.loading.external`), with
  ``--arch-kwargs`` as the model's keyword arguments or config fields;
* ``path/to/file.py:factory`` or ``package.module:factory`` for user code, called with the
  keyword arguments of ``--arch-kwargs`` (and ``num_classes`` when given and accepted).

Importing user code runs it: that is the user's own code, named on the command line,
unlike a checkpoint's pickle which landscape never runs without --trust-checkpoint. A spec
written inside a file is vetted first (:mod:`landscape.loading.recorded`): never code, never a
loading option.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from landscape.errors import UserError


def parse_kwargs(text: str | dict | None) -> dict[str, Any]:
    """``--arch-kwargs`` JSON into a dict (an object is required)."""
    if text is None or text == "":
        return {}
    if isinstance(text, dict):
        return dict(text)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"--arch-kwargs is not valid JSON ({exc.msg}): {text!r}") from exc
    if not isinstance(value, dict):
        raise UserError(
            f"--arch-kwargs must be a JSON object like '{{\"width\": 2}}', not {text!r}"
        )
    return value


LIBRARY_PREFIXES = ("torchvision:", "timm:", "hf:")


def is_factory_spec(spec: str) -> bool:
    """``X:factory`` where X is a .py file or a dotted module (not ``torchvision:`` and such)."""
    if ":" not in spec or spec.startswith(LIBRARY_PREFIXES):
        return False
    left, right = spec.rsplit(":", 1)
    return bool(left) and right.isidentifier()


def load_factory(spec: str, what: str = "--arch") -> Callable[..., Any]:
    """Import ``file.py:name`` or ``package.module:name`` and return the callable."""
    if ":" not in spec:
        raise UserError(
            f"{what} {spec!r} must look like path/to/file.py:factory or package.module:factory"
        )
    source, name = spec.rsplit(":", 1)
    if not name.isidentifier():
        raise UserError(f"{what} {spec!r}: {name!r} is not a Python function name")
    if source.endswith(".py") or "/" in source or "\\" in source:
        module = _import_file(Path(source), what)
    else:
        try:
            module = importlib.import_module(source)
        except ImportError as exc:
            raise UserError(f"{what} {spec!r}: cannot import module {source!r} ({exc})") from exc
        except Exception as exc:
            raise UserError(
                f"{what} {spec!r}: importing {source!r} raised "
                f"{type(exc).__name__}: {_first_line(exc)}"
            ) from exc
    factory = getattr(module, name, None)
    if factory is None:
        raise UserError(f"{what} {spec!r}: {source} has no attribute {name!r}")
    if not callable(factory):
        raise UserError(
            f"{what} {spec!r}: {name!r} is a {type(factory).__name__}, not a function or class"
        )
    return factory


def _import_file(path: Path, what: str) -> Any:
    if not path.is_file():
        raise UserError(f"{what}: file {path} does not exist")
    module_name = f"landscape_user_{path.stem}_{abs(hash(str(path.resolve()))):x}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"{what}: cannot import {path} as Python code")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise UserError(
            f"{what}: importing {path} raised {type(exc).__name__}: {_first_line(exc)}"
        ) from exc
    return module


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _accepts(factory: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def call_factory(
    factory: Callable[..., Any], spec: str, kwargs: dict[str, Any], what: str = "--arch"
) -> Any:
    try:
        return factory(**kwargs)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(
            f"{what} {spec}: the factory raised {type(exc).__name__}: {_first_line(exc)}"
        ) from exc


def build_architecture(
    spec: str,
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    kwargs: dict[str, Any] | None = None,
    explicit_num_classes: bool = False,
    weights: tuple[int, str] | None = None,
) -> nn.Module:
    """A freshly initialised model for ``spec`` (see the module docstring for the forms).

    ``weights``: ``(number count, where)`` of the state dict that must fill every parameter
    (strict loading); a built-in model with more parameters is refused before it is built.
    """
    kwargs = dict(kwargs or {})
    if is_factory_spec(spec) or spec.endswith(".py"):
        factory = load_factory(spec)
        if (
            explicit_num_classes
            and "num_classes" not in kwargs
            and _accepts(factory, "num_classes")
        ):
            kwargs["num_classes"] = num_classes
        model = call_factory(factory, spec, kwargs)
    else:
        # Built-in builders: sized on the meta device first, so that a config asking for a
        # billion-token vocabulary is refused before a byte of it is allocated.
        def build() -> nn.Module:
            return _builtin_model(spec, input_shape, num_classes, kwargs, explicit_num_classes)

        check_model_fits(build, spec, weights)
        model = build()
    if not isinstance(model, nn.Module):
        raise UserError(
            f"--arch {spec}: the factory returned a {type(model).__name__}, not a torch.nn.Module"
        )
    return model


def _builtin_model(
    spec: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    kwargs: dict[str, Any],
    explicit_num_classes: bool,
) -> nn.Module:
    kwargs = dict(kwargs)
    if spec.startswith("torchvision:"):
        return _torchvision_model(spec.split(":", 1)[1], num_classes, kwargs)
    if spec.startswith(("timm:", "hf:")):
        from landscape.loading.external import hf_model, timm_model

        library, name = spec.split(":", 1)
        build = timm_model if library == "timm" else hf_model
        # A class count in the kwargs (a model folder's config) wins unless --num-classes was given.
        own_count = any(k in kwargs for k in ("num_classes", "num_labels", "id2label"))
        return build(name, num_classes if explicit_num_classes or not own_count else None, kwargs)
    from landscape.models import build_model

    try:
        return build_model(spec, tuple(input_shape), num_classes, **kwargs)
    except UserError:
        raise
    except TypeError as exc:
        raise UserError(f"--arch {spec}: bad --arch-kwargs: {_first_line(exc)}") from exc


def module_bytes(model: nn.Module) -> int:
    """Bytes of a module's parameters and buffers (a meta-device module's included)."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


# A model this many parameters larger than the weights that must fill it is refused unbuilt
# (256 MiB of float32 that could never be loaded); smaller mismatches are left to the
# state-dict report, which names the keys and suggests the fix.
EXCESS_PARAMETERS = 1 << 26


def check_model_fits(
    build: Callable[[], nn.Module], spec: str, weights: tuple[int, str] | None = None
) -> None:
    """Refuse, with one line, a model that the available memory cannot hold, or (``weights``)
    one with far more parameters (:data:`EXCESS_PARAMETERS`) than the state dict that must fill
    them all has numbers: a config whose ``vocab_size`` was edited would otherwise be built in
    full before the mismatch shows.
    Sized by ``build()`` on the meta device (shapes only, no storage). A builder that cannot
    run on the meta device is not sized: the real build then reports its own errors."""
    from landscape.memory import check_fits

    try:
        with torch.device("meta"):
            shell = build()
    except UserError:
        raise
    except Exception:  # noqa: BLE001 - e.g. .item() on a meta tensor in a library's init
        return
    if not isinstance(shell, nn.Module):
        return
    count = sum(p.numel() for p in shell.parameters())
    check_fits(
        module_bytes(shell),
        f"model {spec} ({count:,} parameters)",
        hint="check the sizes in its config (vocab_size, hidden sizes, layers)",
    )
    if weights is not None and count - weights[0] > EXCESS_PARAMETERS:
        raise UserError(
            f"model {spec} has {count:,} parameters, more than the {weights[0]:,} numbers of "
            f"the weights in {weights[1]}, which must fill them all; nothing was built: check "
            "the sizes in its config (vocab_size, hidden sizes, layers) or --arch, or pass "
            "--non-strict"
        )


def _torchvision_model(name: str, num_classes: int, kwargs: dict[str, Any]) -> nn.Module:
    try:
        import torchvision.models as tvm
    except ImportError as exc:
        raise UserError(
            "--arch torchvision:... needs torchvision; pip install torchvision"
        ) from exc
    available = set(tvm.list_models(module=tvm))
    if name not in available:
        close = sorted(n for n in available if n.startswith(name[:4]))[:6]
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise UserError(
            f"--arch torchvision:{name}: no such torchvision classification model{hint}"
        )
    kwargs.setdefault("num_classes", num_classes)
    # weights=None: never download; the checkpoint supplies the weights.
    try:
        return tvm.get_model(name, weights=None, **kwargs)
    except Exception as exc:
        raise UserError(
            f"--arch torchvision:{name}: could not build it: {_first_line(exc)}"
        ) from exc
