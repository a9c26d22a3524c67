"""landscape info: describe a checkpoint (any format) or a result file, on stdout."""

from __future__ import annotations

import argparse

from landscape.cli.common import add_config, add_data_source, add_model_source

HELP = "describe a checkpoint (any format) or a result file"
DESCRIPTION = """Describe a checkpoint or a result file, without running code from it.

Checkpoints: detected format, wrapper keys, prefixes stripped, tensor and parameter counts,
architecture, epoch and phase when known, non-finite weights. With --arch (or for landscape
checkpoints) the model is also built and the weights loaded, exactly as the analysis commands do.
Result files (HDF5): the result groups, their datasets' shapes and provenance.

examples:
  landscape info checkpoints/run/epoch-160-sam.pt
  landscape info resnet18_dp.pt --arch torchvision:resnet18 --num-classes 10 --dataset cifar10
  landscape info analyses/run.h5 --json
"""

PROVENANCE_SHOWN = ("checkpoint", "arch", "epoch", "phase", "split", "samples", "bn_mode", "dtype", "seed", "seconds")
CONTAINERS = {
    "torch-zip": "torch.save zip archive",
    "torch-legacy": "legacy torch.save pickle",
    "safetensors": "safetensors",
    "torchscript": "TorchScript archive",
}
BN_STATS = ("running_mean", "running_var", "num_batches_tracked")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="checkpoint or result file(s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per file instead of text")
    parser.add_argument(
        "--load", action="store_true",
        help="also build the model and load the weights (implied by --arch)",
    )
    add_model_source(parser)
    add_data_source(parser)
    add_config(parser)


def run(args: argparse.Namespace) -> int:
    import json

    from landscape.store import HDF5_SIGNATURE

    descriptions = []
    for path in args.paths:  # describe everything first: no partial output on a bad file
        if _head(path).startswith(HDF5_SIGNATURE):
            descriptions.append(describe_result_file(path))
        else:
            descriptions.append(describe_checkpoint(path, args))
    for description in descriptions:
        if args.json:
            print(json.dumps(description, default=str))
        else:
            print(render(description))
    return 0


def _head(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(8)
    except OSError:
        return b""  # the checkpoint path reports the reason


def describe_checkpoint(path: str, args: argparse.Namespace) -> dict:
    from landscape.checkpoint import file_sha256, load_checkpoint, nonfinite_entries

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
    from landscape.target import load_targets

    targets, data = load_targets([path], model_source_from_args(args), data_source_from_args(args))
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
    import h5py

    from landscape.store import list_results, open_result_file, read_attrs

    with open_result_file(path) as f:
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
                    "datasets": shapes,
                    "provenance": {k: attrs[k] for k in PROVENANCE_SHOWN if k in attrs},
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


def render(info: dict) -> str:
    if info["kind"] == "result":
        return _render_result(info)
    lines = [f"checkpoint {info['path']}"]
    container = CONTAINERS.get(info["container"], info["container"])
    fmt = info["format"] + (f" ({container})" if container else "")
    lines.append(f"  format:            {fmt}")
    if info["top_level_keys"]:
        keys = info["top_level_keys"]
        lines.append(f"  top-level keys:    {', '.join(keys[:12])}{' ...' if len(keys) > 12 else ''}")
    else:
        lines.append(f"  first keys:        {', '.join(info['first_keys'])}")
    if info["weights_under"]:
        lines.append(f"  weights under:     {info['weights_under']}")
    lines.append(f"  prefixes stripped: {', '.join(info['prefixes_stripped']) or 'none'}")
    if info["shared_prefix"]:
        lines.append(
            f"  shared prefix:     {info['shared_prefix']} (stripped when that makes the keys fit --arch)"
        )
    lines.append(f"  tensors:           {info['tensors']} ({', '.join(info['dtypes']) or 'no floats'})")
    lines.append(f"  parameters:        {info['parameters']:,} (BatchNorm statistics excluded)")
    lines.append(f"  architecture:      {info['architecture'] or 'not recorded (give --arch to analyse it)'}")
    if info["epoch"] is not None or info["phase"]:
        lines.append(f"  epoch / phase:     {_dash(info['epoch'])} / {_dash(info['phase'])}")
    if info["dataset"]:
        lines.append(f"  dataset:           {info['dataset']}")
    bad = info["nonfinite"]
    lines.append(f"  non-finite:        {', '.join(bad[:5]) if bad else 'none'}")
    if info["ignored_entries"]:
        lines.append(f"  non-tensor entries ignored: {', '.join(map(str, info['ignored_entries'][:5]))}")
    lines.append(f"  sha256:            {info['sha256']}")
    if "model" in info:
        m = info["model"]
        fix = f", {m['prefix_fix']}" if m["prefix_fix"] else ""
        lines.append(
            f"  model:             {m['arch']}, {m['parameters']:,} parameters, loads on {m['data']} "
            f"{m['input_shape']}{fix}"
        )
        if m["missing"] or m["unexpected"] or m["shape_mismatches"]:
            lines.append(
                f"                     (--non-strict: {m['missing']} missing, {m['unexpected']} unexpected, "
                f"{m['shape_mismatches']} shape mismatches)"
            )
    return "\n".join(lines)


def _render_result(info: dict) -> str:
    lines = [
        f"result file {info['path']}",
        f"  schema {info['schema_version']}, landscape {info['landscape_version']}, created {info['created']}",
    ]
    if not info["results"]:
        lines.append("  no results")
    for result in info["results"]:
        prov = result["provenance"]
        where = ", ".join(f"{k}={v}" for k, v in prov.items() if v not in ("", None))
        lines.append(f"  {result['group']}" + (f"  [{where}]" if where else ""))
        for name, shape in list(result["datasets"].items())[:15]:
            lines.append(f"    {name}: {tuple(shape)}")
        if len(result["datasets"]) > 15:
            lines.append(f"    ... {len(result['datasets']) - 15} more datasets")
    return "\n".join(lines)


def _dash(value) -> str:
    return "-" if value is None or value == "" else str(value)
