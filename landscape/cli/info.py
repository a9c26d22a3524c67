"""landscape info: describe a checkpoint (any format) or a result file, on stdout."""

from __future__ import annotations

import argparse
import math

from landscape.cli.common import add_config, add_data_source, add_model_source

HELP = "describe a checkpoint (any format) or a result file"
DESCRIPTION = """Describe a checkpoint or a result file, without running code from it.

Checkpoints: detected format, wrapper keys, prefixes stripped, tensor and parameter counts,
architecture, epoch and phase when known, non-finite weights. With --arch (or for landscape
checkpoints) the model is also built and the weights loaded, exactly as the analysis commands do.
Result files (HDF5): every result group with its provenance and numbers: eigenvalues with
residuals, trace with its standard error, surface extent and loss/accuracy min and max,
barriers (error barriers in percentage points), sharpness values, escape growth rates; and
for hessian, surface and sharpness results the options that made them, spelt as the flags
(options: --curvature ggn --top-k 5 --tol 0.0001 ...; each sharpness measure its own).
--json gives all of it unrounded, in the file's units (accuracies and error barriers as
fractions), with null for numbers not computed.

examples:
  landscape info checkpoints/run/epoch-160-sam.pt
  landscape info resnet18_dp.pt --arch torchvision:resnet18 --num-classes 10 --dataset cifar10
  landscape info analyses/run.h5 --json
"""

# the provenance shown: every attribute but the checksum and the config (which has its own line)
PROVENANCE_HIDDEN = ("checkpoint_sha256", "config")
# shown where a result has them: how a surface was evaluated (speed only, not in its config)
EVALUATION_KEYS = ("evaluation_batch", "points_per_pass")
CONTAINERS = {
    "torch-zip": "torch.save zip archive",
    "torch-legacy": "legacy torch.save pickle",
    "safetensors": "safetensors",
    "torchscript": "TorchScript archive",
}
BN_STATS = ("running_mean", "running_var", "num_batches_tracked")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="checkpoint or result file(s)")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object per file instead of text"
    )
    parser.add_argument(
        "--load",
        action="store_true",
        help="also build the model and load the weights (implied by --arch)",
    )
    add_model_source(parser)
    add_data_source(parser, subset=False)
    add_config(parser)


def run(args: argparse.Namespace) -> int:
    import json
    import os
    import sys

    from landscape.store import HDF5_SIGNATURE

    descriptions = []
    for path in args.paths:  # describe everything first: no partial output on a bad file
        if _head(path).startswith(HDF5_SIGNATURE):
            descriptions.append(describe_result_file(path))
        else:
            descriptions.append(describe_checkpoint(path, args))
    try:
        for description in descriptions:
            if args.json:
                print(json.dumps(_json_safe(description), default=str))
            else:
                print(render(description))
        sys.stdout.flush()
    except BrokenPipeError:
        # `landscape info ... | head`: the reader has what it wanted. Point stdout at devnull so
        # that the interpreter's final flush does not print a BrokenPipeError either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _json_safe(value):
    """NaN and infinities become null: what JSON readers accept; numpy scalars plain numbers."""
    if hasattr(value, "item") and not hasattr(value, "__len__"):  # a numpy scalar
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _head(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(8)
    except OSError:
        return b""  # the checkpoint path reports the reason


def describe_checkpoint(path: str, args: argparse.Namespace) -> dict:
    from landscape.loading.checkpoint import file_sha256, load_checkpoint, nonfinite_entries

    ckpt = load_checkpoint(path, trust=args.trust_checkpoint, ema=args.ema)
    state = ckpt.state_dict
    floats = {k: v for k, v in state.items() if v.is_floating_point()}
    params = sum(v.numel() for k, v in floats.items() if not k.endswith(BN_STATS))
    info: dict = {
        "kind": "checkpoint",
        "path": str(path),
        "sha256": file_sha256(ckpt.path),  # a model folder: its weights file
        "format": ckpt.format,
        "container": ckpt.container,
        "top_level_keys": ckpt.top_level_keys,
        "weights_under": ckpt.wrapper_key,
        "prefixes_stripped": ckpt.prefixes_stripped,
        "tensors": len(state),
        "parameters": params,
        "dtypes": sorted({str(v.dtype).replace("torch.", "") for v in floats.values()}),
        "architecture": ckpt.arch,
        "epoch": ckpt.epoch,
        "phase": ckpt.phase,
        "dataset": ckpt.config.get("dataset"),
        "nonfinite": nonfinite_entries(state),
        "ignored_entries": ckpt.dropped_keys,
        "first_keys": list(state)[:5],
        "shared_prefix": _shared_prefix(list(state)),
    }
    if ckpt.metadata:
        info["metadata"] = ckpt.metadata
    if ckpt.history:
        info["history_epochs"] = len(ckpt.history)
    if args.arch or args.load:
        info["model"] = _load_model(path, args)
    return info


def _shared_prefix(keys: list[str]) -> str | None:
    """A first name component every key has (Lightning's ``model.``), if any."""
    firsts = {k.split(".", 1)[0] for k in keys if "." in k}
    if len(firsts) == 1 and all("." in k for k in keys) and len(keys) > 1:
        return firsts.pop() + "."
    return None


def _load_model(path: str, args: argparse.Namespace) -> dict:
    from landscape.cli.common import data_source_from_args, model_source_from_args
    from landscape.loading.loader import load_models

    targets, data = load_models([path], model_source_from_args(args), data_source_from_args(args))
    target = targets[0]
    report = target.load_report
    return {
        "arch": target.arch,
        "parameters": sum(p.numel() for p in target.model.parameters()),
        "data": data.name,
        "input_shape": list(data.input_shape),
        "prefix_fix": report.get("prefix"),
        "loaded_tensors": report.get("loaded"),
        "missing": len(report.get("missing", [])),
        "unexpected": len(report.get("unexpected", [])),
        "shape_mismatches": len(report.get("shape_mismatches", [])),
    }


def describe_result_file(path: str) -> dict:
    from landscape.errors import UserError
    from landscape.store import corrupt_message, open_result_file

    with open_result_file(path) as f:  # every group's digest is verified here
        try:
            return _describe_open_result_file(path, f)
        except OSError as exc:  # a chunk whose Fletcher-32 checksum fails, say: name the file
            raise UserError(corrupt_message(path, exc)) from exc


def _describe_open_result_file(path: str, f) -> dict:
    import h5py

    from landscape.results.integrity import stored_digest
    from landscape.store import PROVENANCE_KEYS, list_results, read_attrs

    root = read_attrs(f)
    results = []
    for kind, name in list_results(f):
        group = f[kind][name]
        shapes: dict[str, list[int]] = {}

        def visit(key: str, obj, shapes=shapes) -> None:
            if isinstance(obj, h5py.Dataset):
                shapes[key] = list(obj.shape)

        group.visititems(visit)
        attrs = read_attrs(group)
        results.append(
            {
                "group": f"{kind}/{name}",
                "values": result_values(kind, group),
                "options": result_options(kind, group),
                "datasets": shapes,
                "verified": stored_digest(group) is not None,
                "provenance": {
                    k: attrs[k]
                    for k in PROVENANCE_KEYS + EVALUATION_KEYS
                    if k in attrs and k not in PROVENANCE_HIDDEN
                },
            }
        )
    return {
        "kind": "result",
        "path": str(path),
        "schema_version": root.get("schema_version"),
        "landscape_version": root.get("landscape_version"),
        "created": root.get("created"),
        "command": root.get("command"),
        "results": results,
    }


def result_values(kind: str, group) -> dict:
    """The numbers of one result group that a user asks for, as plain Python values (the
    kind's ``values``, :data:`landscape.registry.RESULT_KINDS`; ``{}`` for kinds without)."""
    from landscape.registry import RESULT_KINDS, resolve

    spec = RESULT_KINDS.get(kind)
    return dict(resolve(spec.values)(group)) if spec and spec.values else {}


def result_options(kind: str, group) -> dict:
    """The options that made one result group, by flag name, as its results module reads them
    (``{}`` for kinds that do not record them as flags)."""
    from landscape.registry import RESULT_KINDS, resolve

    spec = RESULT_KINDS.get(kind)
    return resolve(spec.options)(group) if spec and spec.options else {}


def number(value) -> str:
    """:func:`landscape.results.summary.number`: floats to 4 significant digits."""
    from landscape.results.summary import number

    return number(value)


def _value_lines(kind: str, values: dict) -> list[str]:
    """One line per number a user looks for, in words: the kind's own wording
    (:class:`landscape.registry.ResultKind` ``lines``), else one line per value."""
    from landscape.registry import RESULT_KINDS, resolve

    spec = RESULT_KINDS.get(kind)
    if spec is not None and spec.lines is not None:
        return resolve(spec.lines)(values)
    lines = []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, dict) and {"min", "max", "num"} <= set(value):
            lines.append(
                f"{key}: {number(value['min'])} to {number(value['max'])}, {value['num']} points"
            )
        elif isinstance(value, dict) and {"min", "max"} == set(value):
            lines.append(f"{key}: min {number(value['min'])}, max {number(value['max'])}")
        elif isinstance(value, dict) and "value" in value:
            err = f" ± {number(value['stderr'])}" if "stderr" in value else ""
            flags = f"  ({' '.join(_flags(value['options']))})" if value.get("options") else ""
            lines.append(f"{key}: {number(value['value'])}{err}{flags}")
        elif (
            key == "barriers"
        ):  # error barriers in percentage points, as plots and report show them
            parts = [
                f"{k} {100 * v:.4g}%" if "error" in k else f"{k} {number(v)}"
                for k, v in value.items()
            ]
            lines.append(f"barriers: {', '.join(parts)}")
        elif isinstance(value, dict):
            lines.append(f"{key}: {number(value)}")
        else:
            lines.append(f"{key}: {number(value)}")
    return lines


def _flags(options: dict) -> list[str]:
    """``{"top-k": 5, "warm-start": False}`` -> ``["--top-k 5", "--no-warm-start"]``: each
    option as it is typed, floats in full (``0.0001``, ``1e-05``), ``--x=-1:1:51`` where a
    value starts with a dash."""
    out = []
    for name, value in options.items():
        if isinstance(value, bool):
            out.append(f"--{name}" if value else f"--no-{name}")
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        text = " ".join(repr(float(v)) if isinstance(v, float) else str(v) for v in values)
        out.append(f"--{name}={text}" if text.startswith("-") else f"--{name} {text}")
    return out


def _wrapped(label: str, pieces: list[str], indent: int, width: int = 100) -> list[str]:
    """``label`` then ``pieces`` joined by spaces, broken between pieces to fit ``width``."""
    lines, line = [], " " * indent + label
    for piece in pieces:
        if len(line) + 1 + len(piece) > width and line.strip() != label.strip():
            lines.append(line)
            line = " " * (indent + len(label))
            line += piece
        else:
            line += ("" if line.endswith(" ") else " ") + piece
    lines.append(line)
    return lines


def render(info: dict) -> str:
    if info["kind"] == "result":
        return _render_result(info)
    lines = [f"checkpoint {info['path']}"]
    container = CONTAINERS.get(info["container"], info["container"])
    fmt = info["format"] + (f" ({container})" if container else "")
    lines.append(f"  format:            {fmt}")
    if info["top_level_keys"]:
        keys = info["top_level_keys"]
        lines.append(
            f"  top-level keys:    {', '.join(keys[:12])}{' ...' if len(keys) > 12 else ''}"
        )
    else:
        lines.append(f"  first keys:        {', '.join(info['first_keys'])}")
    if info["weights_under"]:
        lines.append(f"  weights under:     {info['weights_under']}")
    lines.append(f"  prefixes stripped: {', '.join(info['prefixes_stripped']) or 'none'}")
    if info["shared_prefix"]:
        lines.append(
            f"  shared prefix:     {info['shared_prefix']} "
            "(stripped when that makes the keys fit --arch)"
        )
    lines.append(
        f"  tensors:           {info['tensors']} ({', '.join(info['dtypes']) or 'no floats'})"
    )
    lines.append(f"  parameters:        {info['parameters']:,} (BatchNorm statistics excluded)")
    lines.append(
        f"  architecture:      {info['architecture'] or 'not recorded (give --arch to analyse it)'}"
    )
    if info["epoch"] is not None or info["phase"]:
        lines.append(f"  epoch / phase:     {_dash(info['epoch'])} / {_dash(info['phase'])}")
    if info["dataset"]:
        lines.append(f"  dataset:           {info['dataset']}")
    bad = info["nonfinite"]
    lines.append(f"  non-finite:        {', '.join(bad[:5]) if bad else 'none'}")
    if info["ignored_entries"]:
        lines.append(
            f"  non-tensor entries ignored: {', '.join(map(str, info['ignored_entries'][:5]))}"
        )
    lines.append(f"  sha256:            {info['sha256']}")
    if "model" in info:
        m = info["model"]
        fix = f", {m['prefix_fix']}" if m["prefix_fix"] else ""
        lines.append(
            f"  model:             {m['arch']}, {m['parameters']:,} parameters, "
            f"loads on {m['data']} {m['input_shape']}{fix}"
        )
        if m["missing"] or m["unexpected"] or m["shape_mismatches"]:
            lines.append(
                f"                     (--non-strict: {m['missing']} missing, "
                f"{m['unexpected']} unexpected, {m['shape_mismatches']} shape mismatches)"
            )
    return "\n".join(lines)


def _render_result(info: dict) -> str:
    lines = [
        f"result file {info['path']}",
        f"  schema {info['schema_version']}, landscape {info['landscape_version']}, "
        f"created {info['created']}",
    ]
    if not info["results"]:
        lines.append("  no results")
    for result in info["results"]:
        prov = result["provenance"]
        where = ", ".join(f"{k}={number(v)}" for k, v in prov.items() if v not in ("", None))
        lines.append(f"  {result['group']}" + (f"  [{where}]" if where else ""))
        if not result.get("verified", True):
            lines.append("    unverified: written before result digests (docs/reliability.md)")
        if result.get("options"):
            lines.extend(_wrapped("options: ", _flags(result["options"]), indent=4))
        kind = result["group"].split("/", 1)[0]
        value_lines = _value_lines(kind, result.get("values", {}))
        for line in value_lines:
            lines.append(f"    {line}")
        if not value_lines:  # a kind without headline numbers (experiment tables): what it holds
            for name, shape in list(result["datasets"].items())[:15]:
                lines.append(f"    {name}: {tuple(shape)}")
            if len(result["datasets"]) > 15:
                lines.append(f"    ... {len(result['datasets']) - 15} more datasets")
    return "\n".join(lines)


def _dash(value) -> str:
    return "-" if value is None or value == "" else str(value)
