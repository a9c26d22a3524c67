"""landscape interpolate: loss and accuracy along (1 - alpha) A + alpha B, with barrier heights.

Numbers from :mod:`landscape.surface.interpolate`; loading, resume and HDF5 writing are shared
with ``landscape surface`` (:mod:`landscape.cli.surface`).
"""

from __future__ import annotations

import argparse
import logging

from landscape.cli.common import (
    add_config,
    add_data_source,
    add_device,
    add_dtype,
    add_fast_evaluation,
    add_model_source,
    add_out,
    nonnegative_float,
    parse_grid,
    state_default,
)

log = logging.getLogger("landscape.surface")

HELP = "loss and accuracy along the straight line (or polyline) between checkpoints, with barriers"
DESCRIPTION = """\
Evaluate (1 - alpha) * A + alpha * B for the --alpha grid (alpha = 0 and 1 are always
included) on train and test subsets, and report barrier heights for loss and error:
  frankle   max along the path minus the mean of the end points (Frankle et al. 2020)
  entezari  largest rise above the straight line between the end points (Entezari et al. 2022)
More than two checkpoints give a polyline A -> B -> C ...; alpha in the file is then the
coordinate along it (checkpoint k at alpha = k) and barriers are the largest over segments.

BatchNorm (--bn): recompute running statistics at every point from training examples
(default), or interpolate them like the weights (what most mode-connectivity code does).
Resume: rerunning the same command computes only the missing points; different options
replace the group (said on stderr); a group of other checkpoints is never replaced. Data subsets are fixed (seed 0, no augmentation).
--samples defaults to 2000 examples per split (all of them if the split is smaller).

example:
  landscape interpolate checkpoints/run/epoch-080-sgd.pt checkpoints/run/epoch-100-sam.pt
"""

DEFAULT_ALPHA = "-0.2:1.2:29"
DEFAULT_SAMPLES = 2000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoints", nargs="+", metavar="CKPT", help="two or more checkpoints: A B [C ...]"
    )
    parser.add_argument(
        "--alpha",
        type=parse_grid,
        default=parse_grid(DEFAULT_ALPHA),
        metavar="MIN:MAX:NUM",
        help=f"interpolation coefficients per segment (default {DEFAULT_ALPHA})",
    )
    parser.add_argument(
        "--bn",
        choices=["recompute", "interpolate"],
        default="recompute",
        help="BatchNorm statistics at each point (default: recompute)",
    )
    parser.add_argument("--name", help="result group name (default: <A run>_<A stem>-to-<B stem>)")
    parser.add_argument(
        "--save-every",
        type=nonnegative_float,
        default=5.0,
        metavar="SECONDS",
        help="write finished points to the file this often (default: 5)",
    )
    add_out(parser, "result file (default: analyses/<A run>_<A stem>.h5)")
    add_device(parser)
    add_dtype(parser)
    add_fast_evaluation(parser)
    add_config(parser)
    add_model_source(parser)
    add_data_source(parser, splits="train,test")
    state_default(parser, "--samples", f"{DEFAULT_SAMPLES} per split")
    state_default(parser, "--batch-size", "500, or the subset size if smaller")
    parser.set_defaults(samples=DEFAULT_SAMPLES)


def run(args: argparse.Namespace) -> int:
    from landscape import store
    from landscape.cli.surface import (
        PeriodicSaver,
        batch_config,
        check_same_parameters,
        load_setup,
        output_path,
        parse_splits,
        read_previous,
        short_label,
    )
    from landscape.errors import UserError
    from landscape.progress import cli_reporter
    from landscape.surface import InterpolationResult, interpolate, path_points

    if len(args.checkpoints) < 2:
        raise UserError("interpolate needs at least two checkpoints: A B [C ...]")
    splits = parse_splits(args.split)
    first = args.checkpoints[0]
    out = output_path(args.out, store.checkpoint_label(first))
    base_name = args.name or "-to-".join(
        [store.checkpoint_label(first), *(short_label(p, first) for p in args.checkpoints[1:])]
    )

    setup = load_setup(args, args.checkpoints, splits, recalibrate=args.bn == "recompute")
    targets = setup.targets
    partition = setup.partition  # torchrun: points dealt to ranks, rank 0 writes
    name = partition.broadcast(
        store.claim_group_name_in(out, "interpolation", base_name, [t.sha256 for t in targets])[0]
        if partition.is_writer
        else None
    )
    group_path = f"interpolation/{name}"
    for target in targets[1:]:
        check_same_parameters(targets[0], target)
    model = targets[0].model
    states = [dict(t.model.state_dict()) for t in targets]
    alphas = args.alpha.values()
    config = {
        "alpha": str(args.alpha),
        "bn": args.bn,
        "splits": splits,
        "samples": setup.samples,
        "subset_seed": 0,
        **batch_config(args, setup),
        "loss": args.loss,
        "dataset": setup.data.name,
        "dtype": args.dtype,
        "checkpoints": [{"path": str(t.path), "sha256": t.sha256} for t in targets],
    }
    measure = setup.measure("recalibrate" if args.bn == "recompute" else "eval")
    previous = partition.broadcast(
        read_previous(out, group_path, targets[0].sha256, config) if partition.is_writer else None
    )
    segment, alpha = path_points(alphas, len(states))
    if previous is not None and previous["done"].shape != alpha.shape:
        log.warning("%s:%s holds other points than this grid; recomputing it", out, group_path)
        previous = None
    if previous is not None:
        result = InterpolationResult(
            segment, alpha, previous["metrics"], previous["done"], previous["seconds"]
        )
        log.info(
            "resuming %s:%s: %d of %d points done",
            out,
            group_path,
            int(result.done.sum()),
            result.done.size,
        )
    else:
        result = InterpolationResult.empty(segment, alpha, measure.names)
        if partition.is_writer:
            with store.transaction(out) as f:
                write_interpolation_group(f, group_path, result, targets, args, config, setup)
                store.claim_group(f, group_path)

    saver = PeriodicSaver(
        out,
        args.save_every,
        group_path,
        lambda: int(result.done.sum()),
        result.done.size,
        writer=partition.is_writer,
    )
    if previous is not None:
        saver.claim()
    else:
        saver._note_saved()

    def update(f) -> None:
        write_results(f[group_path], result)

    try:
        with cli_reporter().phase(
            f"interpolation {len(targets)} checkpoints",
            result.done.size,
            unit="points",
            initial=int(result.done.sum()),
        ) as phase:
            interpolate(
                model,
                states,
                measure,
                alphas,
                bn=args.bn,
                result=result,
                on_save=lambda _: saver.save(update),
                save_every=args.save_every,
                progress=phase,
                partition=partition,
            )
    finally:
        if saver.pending:  # also after Ctrl-C: keep what is done
            saver.flush(update)

    print(
        f"{out}:{group_path}  {int(result.done.sum())}/{result.done.size} points, {result.seconds:.1f} s"
    )
    barriers = result.barriers()
    for split in splits:
        # error barriers in percentage points, as the figures and the report show them
        print(
            f"  {split}: loss barrier {barriers[f'{split}_loss_frankle']:.4g} (Frankle) "
            f"{barriers[f'{split}_loss_entezari']:.4g} (Entezari); error barrier "
            f"{100 * barriers[f'{split}_error_frankle']:.3g}% / {100 * barriers[f'{split}_error_entezari']:.3g}%"
        )
    if not result.done.all():
        raise UserError(
            f"{int((~result.done).sum())} points were not computed; rerun the command to resume"
        )
    return 0


def write_interpolation_group(f, group_path, result, targets, args, config, setup) -> None:
    import numpy as np

    from landscape import store
    from landscape.target import provenance

    g = store.replace_group(f, group_path)
    store.set_provenance(
        g,
        provenance(
            targets[0],
            split=",".join(setup.splits),
            samples=setup.samples,
            bn_mode=args.bn,
            dtype=args.dtype,
            seed=0,
            seconds=result.seconds,
            config=config,
        )
        | setup.partition.provenance(),
    )
    store.set_attrs(
        g,
        a=str(targets[0].path),
        b=str(targets[-1].path),
        checkpoints=[str(t.path) for t in targets],
        checkpoint_sha256s=[t.sha256 for t in targets],
        epochs=[t.epoch for t in targets],
        phases=[t.phase for t in targets],
    )
    alpha = store.write_dataset(
        g, "alpha", result.t, label="α (checkpoint k at α = k)" if len(targets) > 2 else "α"
    )
    alpha.make_scale("alpha")
    for name, values in [
        *result.metrics.items(),
        ("done", result.done),
        ("segment", result.segment),
        ("segment_alpha", result.alpha),
    ]:
        ds = store.write_dataset(g, name, np.asarray(values))
        ds.dims[0].attach_scale(alpha)
    write_results(g, result)


def write_results(g, result) -> None:
    """Metrics, done mask, seconds and barrier attrs (``barrier_<split>_<loss|error>_<def>``,
    the largest over segments; ``segment_barriers`` as JSON for polylines)."""
    import json

    import numpy as np

    for name, values in result.metrics.items():
        g[name][...] = values
    g["done"][...] = result.done
    g.attrs["seconds"] = float(result.seconds)
    for key, value in result.barriers().items():
        g.attrs[f"barrier_{key}"] = float(value)
    if int(np.max(result.segment)) > 0:
        g.attrs["segment_barriers"] = json.dumps(result.segment_barriers())
