"""landscape interpolate: loss and accuracy along (1 - alpha) A + alpha B, with barrier heights.

Parses flags, loads the checkpoints (:mod:`landscape.analysis.setup`) and calls
:func:`landscape.analysis.interpolation.compute_interpolation`, which computes, saves and
resumes ``interpolation/<name>/`` (:mod:`landscape.results.interpolation`).
"""

from __future__ import annotations

import argparse
import logging

from landscape.cli.common import (
    FIXED_BATCH,
    GRID_SAMPLES,
    add_bn,
    add_grid_run_options,
    parse_grid,
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

BatchNorm (--bn): recalibrate running statistics at every point from training examples
(default; the old name recompute still works), or interpolate them like the weights (what
most mode-connectivity code does).
Resume: rerunning the same command computes only the missing points; different options
replace the group (said on stderr); a group of other checkpoints is never replaced.
The data subsets are drawn by --subset-seed (default 0, no augmentation).
--samples defaults to 2000 examples per split (all of them if the split is smaller).

example:
  landscape interpolate checkpoints/run/epoch-080-sgd.pt checkpoints/run/epoch-100-sam.pt
"""

DEFAULT_ALPHA = "-0.2:1.2:29"
DEFAULT_SAMPLES = GRID_SAMPLES


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
    add_bn(parser, ("recalibrate", "interpolate"), "recalibrate")
    parser.add_argument("--name", help="result group name (default: <A run>_<A stem>-to-<B stem>)")
    add_grid_run_options(
        parser,
        "result file (default: analyses/<A run>_<A stem>.h5)",
        splits="train,test",
        batch=f"measured; {FIXED_BATCH} (or the subset size if smaller) for BatchNorm "
        "recalibration",
        seed=False,
    )


def run(args: argparse.Namespace) -> int:
    from landscape import store
    from landscape.analysis.interpolation import (
        InterpolationOptions,
        compute_interpolation,
        interpolation_group,
    )
    from landscape.analysis.setup import check_same_parameters
    from landscape.cli.common import (
        grid_config,
        load_setup_from_args,
        output_path,
        parse_splits,
        short_label,
    )
    from landscape.errors import UserError

    if len(args.checkpoints) < 2:
        raise UserError("interpolate needs at least two checkpoints: A B [C ...]")
    splits = parse_splits(args.split)
    first = args.checkpoints[0]
    out = output_path(args.out, store.checkpoint_label(first))
    base_name = args.name or "-to-".join(
        [store.checkpoint_label(first), *(short_label(p, first) for p in args.checkpoints[1:])]
    )

    setup = load_setup_from_args(args, args.checkpoints, splits)
    targets = setup.targets
    group_path = interpolation_group(out, setup, base_name)  # torchrun: claimed by rank 0
    for target in targets[1:]:
        check_same_parameters(targets[0], target)
    config = {
        "alpha": str(args.alpha),
        "bn": args.bn,
        **grid_config(args, setup, splits),
        "checkpoints": [{"path": str(t.path), "sha256": t.sha256} for t in targets],
    }
    options = InterpolationOptions(
        alphas=args.alpha.values(),
        bn=args.bn,
        dtype=args.dtype,
        save_every=args.save_every,
        config=config,
    )
    result = compute_interpolation(options, setup, out, group_path, partition=setup.partition)

    done, size = int(result.done.sum()), result.done.size
    print(f"{out}:{group_path}  {done}/{size} points, {result.provenance.seconds:.1f} s")
    barriers = result.barriers
    for split in splits:
        # error barriers in percentage points, as the figures and the report show them
        print(
            f"  {split}: loss barrier {barriers[f'{split}_loss_frankle']:.4g} (Frankle) "
            f"{barriers[f'{split}_loss_entezari']:.4g} (Entezari); error barrier "
            f"{100 * barriers[f'{split}_error_frankle']:.3g}% / "
            f"{100 * barriers[f'{split}_error_entezari']:.3g}%"
        )
    if not result.done.all():
        raise UserError(f"{size - done} points were not computed; rerun the command to resume")
    return 0
