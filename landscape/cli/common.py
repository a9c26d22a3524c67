"""Flags shared by several commands, so every command spells them the same way.

Nothing here imports torch: these run while the parser is built.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from landscape.loading.context import FIXED_BATCH, AnalysisRequest
from landscape.registry import CURVATURE_KINDS  # torch-free: --help imports no torch

# The names of landscape.losses (not imported here: it imports torch).
LOSS_NAMES = ("cross-entropy", "mse", "half-sse")
LOSS_HELP = (
    "loss, a mean over the N examples (default: cross-entropy); mse = torch.nn.MSELoss(): "
    "(1/(N C)) sum_n ||f(x_n) - y_n||^2 over all N x C outputs; half-sse = (1/N) sum_n "
    "0.5 ||f(x_n) - y_n||^2, the convention of Cohen et al. 2021 (C/2 times mse); integer "
    "labels become one-hot targets"
)

# The one BatchNorm vocabulary of every command (docs/architecture.md, "Vocabulary"). A command
# accepts the modes that mean something for it; the names and their meaning never change.
BN_MODES = {
    "eval": "running statistics of the checkpoint (the deployed network)",
    "train": "statistics of each evaluation batch (as in training; the batch defines the result)",
    "recalibrate": "running statistics recomputed at every point from training examples",
    "interpolate": "running statistics interpolated along with the weights",
}
# Old spellings still accepted, with a warning: option names and values.
BN_OPTION_ALIASES = ("--bn-mode",)
BN_VALUE_ALIASES = {"recompute": "recalibrate"}
# The analysis subset is drawn by --subset-seed in every command; --seed seeds everything else
# (directions, probes, sampled labels), so changing it never changes the examples.
DEFAULT_SUBSET_SEED = 0

GRID_RE = re.compile(r"^\s*([^:]+):([^:]+):([^:]+)\s*$")


@dataclass(frozen=True)
class GridSpec:
    """``min:max:num`` as loss-landscape users write it; any bounds, 0 included."""

    start: float
    stop: float
    num: int

    def values(self):
        import numpy as np

        return np.linspace(self.start, self.stop, self.num)

    def __str__(self) -> str:
        return f"{self.start:g}:{self.stop:g}:{self.num}"


def parse_grid(text: str) -> GridSpec:
    match = GRID_RE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a grid spec MIN:MAX:NUM (e.g. -1:1:51)")
    try:
        start, stop = float(match.group(1)), float(match.group(2))
        num = int(match.group(3))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a grid spec MIN:MAX:NUM with numbers (e.g. -1:1:51)"
        ) from exc
    if num < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: NUM must be at least 1")
    if (
        not (start == start and stop == stop)
        or abs(start) == float("inf")
        or abs(stop) == float("inf")
    ):
        raise argparse.ArgumentTypeError(f"{text!r}: bounds must be finite numbers")
    if num > 1 and start >= stop:
        raise argparse.ArgumentTypeError(f"{text!r}: MIN must be smaller than MAX")
    return GridSpec(start, stop, num)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from exc
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = nonnegative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def add_result_paths(parser: argparse.ArgumentParser) -> None:
    """The inputs of ``plot`` and ``report``: result files and folders of them."""
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="result files (.h5), run folders, folders of runs, experiment folders",
    )


def add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="FILE.toml", help="read defaults from a TOML file; flags override it"
    )


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        help="auto|cpu|cuda|cuda:N (default: auto; mps is refused: it has no float64)",
    )


def add_fast_evaluation(parser: argparse.ArgumentParser) -> None:
    """Speed options of the evaluation-heavy commands (surface, interpolate)."""
    parser.add_argument(
        "--channels-last",
        action="store_true",
        help="channels-last memory format for the model and 4-D inputs (often faster on GPUs)",
    )
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="forward passes under bfloat16 autocast: faster on recent GPUs; mean losses differed "
        "from float32 by under 1e-3 relative in our benchmarks (README); recorded in the config",
    )


def warn(message: str) -> None:
    """One line on stderr, in the CLI's voice, for something the user should change."""
    print(f"landscape: warning: {message}", file=sys.stderr)


class _BatchNormMode(argparse.Action):
    """``--bn MODE``; the old ``--bn-mode`` and old values are accepted with a warning."""

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string in BN_OPTION_ALIASES:
            warn(f"{option_string} is deprecated; use --bn {values}")
        if values in BN_VALUE_ALIASES:
            new = BN_VALUE_ALIASES[values]
            warn(f"--bn {values} is deprecated; use --bn {new}")
            values = new
        if values not in self.modes:
            parser.error(
                f"argument --bn: invalid choice: '{values}' (choose from "
                + ", ".join(f"'{m}'" for m in self.modes)
                + ")"
            )
        setattr(namespace, self.dest, values)


def add_bn(
    parser: argparse.ArgumentParser, modes: tuple[str, ...], default: str, *, dest: str = "bn"
) -> None:
    """The BatchNorm option: ``--bn`` with the subset ``modes`` of :data:`BN_MODES`."""
    unknown = set(modes) - set(BN_MODES)
    if unknown or default not in modes:
        raise ValueError(f"BatchNorm modes {sorted(unknown)} / default {default!r} not known")
    meaning = "; ".join(f"{m}: {BN_MODES[m]}" for m in modes)
    parser.add_argument(
        "--bn",
        *BN_OPTION_ALIASES,
        dest=dest,
        default=default,
        metavar="|".join(modes),
        action=_BatchNormMode,
        help=f"BatchNorm statistics ({meaning}; default: {default})",
    ).modes = modes


CURVATURE_HELP = (
    "the matrix analysed: the Hessian (default), the generalised Gauss-Newton "
    "J^T H_out J (ggn), the empirical Fisher mean g_i g_i^T (fisher), or the Fisher "
    "with labels sampled from the model (fisher-mc, seeded by --seed)"
)


def add_curvature(parser: argparse.ArgumentParser) -> None:
    """``--curvature`` and ``--fisher-samples``, the same in every command that takes them;
    both default to None (given or not), :func:`resolve_curvature` fills them in."""
    parser.add_argument("--curvature", choices=list(CURVATURE_KINDS), help=CURVATURE_HELP)
    parser.add_argument(
        "--fisher-samples",
        type=positive_int,
        metavar="S",
        help="labels sampled per example for --curvature fisher-mc (default: 1)",
    )


def resolve_curvature(args: argparse.Namespace, *, applies: str | None = None) -> None:
    """Fill in the flags of :func:`add_curvature` in place (``hessian``, one sample), after
    checking them; ``applies``: the flag the curvature needs when it is not in effect (e.g.
    ``"--directions hessian"``), so that giving it then is an error, not a silent no-op."""
    from landscape.errors import UserError

    given = [f for f in ("curvature", "fisher_samples") if getattr(args, f) is not None]
    if given and applies is not None:
        raise UserError(f"--{given[0].replace('_', '-')} needs {applies}")
    args.curvature = args.curvature or "hessian"
    if args.fisher_samples is not None and args.curvature != "fisher-mc":
        raise UserError("--fisher-samples is an option of --curvature fisher-mc")
    args.fisher_samples = args.fisher_samples or 1


def add_seed(parser: argparse.ArgumentParser, default: int = 0) -> None:
    parser.add_argument(
        "--seed", type=int, default=default, help=f"random seed (default: {default})"
    )


def add_dtype(parser: argparse.ArgumentParser, default: str = "float32") -> None:
    parser.add_argument(
        "--dtype",
        default=default,
        choices=["float32", "float64"],
        help=f"compute dtype (default: {default})",
    )


def add_out(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--out", metavar="PATH", help=help_text)


def add_model_source(parser: argparse.ArgumentParser) -> None:
    """How to turn a checkpoint into a model: architecture and loading policy (issue 6)."""
    group = parser.add_argument_group("model")
    group.add_argument(
        "--arch",
        help="architecture: a registry name (e.g. resnet20), torchvision:NAME, timm:NAME, "
        "hf:NAME (a Transformers class or model type, --arch-kwargs its config), "
        "path/to/file.py:factory or package.module:factory; not needed for landscape checkpoints "
        "and timm or Hugging Face model folders",
    )
    group.add_argument(
        "--arch-kwargs", metavar="JSON", help="keyword arguments for the architecture factory"
    )
    group.add_argument(
        "--num-classes", type=positive_int, help="class count for --arch (default: the dataset's)"
    )
    group.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow arbitrary unpickling (TorchScript, pickled modules) and the code and loading "
        "options a file names for its own model (docs/security.md): only for files you trust",
    )
    group.add_argument(
        "--non-strict", action="store_true", help="load the weights that fit and report the rest"
    )
    group.add_argument(
        "--ema", action="store_true", help="use the EMA weights of a checkpoint that has them"
    )


def add_data_source(
    parser: argparse.ArgumentParser, splits: str = "train", *, subset: bool = True
) -> None:
    """The data flags; ``subset=False`` leaves out the analysis ones (loss, split, samples,
    batch size) for commands that only load the data."""
    group = parser.add_argument_group("data")
    group.add_argument(
        "--dataset",
        choices=["digits", "mnist1d", "cifar10", "cifar100"],
        help="dataset (default: the checkpoint's, else digits)",
    )
    group.add_argument(
        "--data",
        metavar="FILE.py:factory",
        help="user data factory returning a Dataset or (inputs, targets); tokens:FILE for a "
        "language model (nanoGPT .bin, .npy, or text with the model folder's tokenizer); "
        "imagefolder:DIR for images in class subfolders (torchvision's ImageFolder; DIR/train "
        "and DIR/test as splits), preprocessed as the model's weights were; hf-dataset:DIR "
        "for a Hugging Face datasets folder (save_to_disk)",
    )
    group.add_argument(
        "--image-size",
        type=positive_int,
        metavar="PX",
        help="crop size of the images of --data imagefolder:DIR or hf-dataset:DIR "
        "(default: the model's, else 224)",
    )
    group.add_argument(
        "--columns",
        metavar="INPUT[,LABEL]",
        help="input and label columns of --data hf-dataset:DIR (default: found by name: "
        "image, img, pixel_values, input_ids, text, sentence; label, labels)",
    )
    group.add_argument(
        "--block-size",
        type=positive_int,
        metavar="T",
        help="tokens per block of --data tokens:FILE (default: the model's context, at most 256); "
        "--samples counts blocks",
    )
    group.add_argument(
        "--data-dir", metavar="DIR", help="folder holding the CIFAR files (default: ./data)"
    )
    if subset:
        group.add_argument("--loss", choices=LOSS_NAMES, default="cross-entropy", help=LOSS_HELP)
        group.add_argument(
            "--split", default=splits, help=f"data split(s) to evaluate on (default: {splits})"
        )
        group.add_argument(
            "--samples", type=positive_int, help="number of examples in the fixed analysis subset"
        )
        group.add_argument(
            "--subset-seed",
            type=int,
            default=DEFAULT_SUBSET_SEED,
            help="seed of the analysis subset, the same rule in every command; --seed never "
            f"changes the examples (default: {DEFAULT_SUBSET_SEED})",
        )
        group.add_argument(
            "--batch-size",
            type=positive_int,
            # The command states its default (state_default); "measured" is explained once here.
            help="evaluation batch size; 'measured' is the fastest, found by a short probe and "
            "cached in $XDG_CACHE_HOME/landscape",
        )
    group.add_argument(
        "--mean",
        type=float_list,
        metavar="M[,M...]",
        help="input normalisation mean per channel (default: the checkpoint's, else the dataset's)",
    )
    group.add_argument(
        "--std",
        type=float_list,
        metavar="S[,S...]",
        help="input normalisation std per channel (default: the checkpoint's, else the dataset's)",
    )
    group.add_argument("--download", action="store_true", help="download a missing CIFAR dataset")


MEASURED_BATCH = f"{FIXED_BATCH} with --bn train, else the fastest, measured"


def add_analysis_inputs(
    parser: argparse.ArgumentParser, *, splits: str, samples: str, batch: str = MEASURED_BATCH
) -> None:
    """The model and data flags of an analysis command, with the defaults it states for
    ``--samples`` and ``--batch-size``."""
    add_model_source(parser)
    add_data_source(parser, splits=splits)
    state_default(parser, "--samples", samples)
    state_default(parser, "--batch-size", batch)


def add_run_options(
    parser: argparse.ArgumentParser, out_help: str, *, seed: bool = True, fast: bool = False
) -> None:
    """Where and how an analysis runs: --device, --dtype, --seed, the fast-evaluation options of
    the evaluation-heavy commands (``fast``), --out and --config."""
    add_device(parser)
    add_dtype(parser)
    if seed:
        add_seed(parser)
    if fast:
        add_fast_evaluation(parser)
    add_out(parser, out_help)
    add_config(parser)


def state_default(parser: argparse.ArgumentParser, option: str, text: str) -> None:
    """Append ``(default: TEXT)`` to the help of a shared flag whose default the command sets."""
    for action in parser._actions:
        if option in action.option_strings:
            action.help = f"{action.help} (default: {text})"
            return
    raise ValueError(f"no option {option}")


def float_list(text: str) -> tuple[float, ...]:
    """``0.49,0.48,0.45`` -> a tuple of finite floats."""
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of numbers"
        ) from exc
    if not values or any(v != v or abs(v) == float("inf") for v in values):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of finite numbers"
        )
    return values


def model_source_from_args(args: argparse.Namespace):
    """The model flags of :func:`add_model_source` as a
    :class:`landscape.loading.loader.ModelSource`."""
    from landscape.loading.architecture import parse_kwargs
    from landscape.loading.loader import ModelSource

    return ModelSource(
        arch=getattr(args, "arch", None),
        arch_kwargs=parse_kwargs(getattr(args, "arch_kwargs", None)),
        num_classes=getattr(args, "num_classes", None),
        trust=bool(getattr(args, "trust_checkpoint", False)),
        strict=not getattr(args, "non_strict", False),
        ema=bool(getattr(args, "ema", False)),
    )


def data_source_from_args(args: argparse.Namespace):
    """The data flags of :func:`add_data_source` as a
    :class:`landscape.loading.loader.DataSource`."""
    from landscape.loading.loader import DataSource

    return DataSource(
        dataset=getattr(args, "dataset", None),
        data=getattr(args, "data", None),
        block_size=getattr(args, "block_size", None),
        image_size=getattr(args, "image_size", None),
        columns=getattr(args, "columns", None),
        data_dir=getattr(args, "data_dir", None),
        loss=getattr(args, "loss", None) or "cross-entropy",
        mean=getattr(args, "mean", None),
        std=getattr(args, "std", None),
        download=bool(getattr(args, "download", False)),
    )


@contextmanager
def library_advice_as_flags() -> Iterator[None]:
    """Library errors say what to change in library terms; on the command line, name the flag."""
    from landscape.curvature.operator import NonFiniteProduct
    from landscape.errors import UserError

    try:
        yield
    except NonFiniteProduct as exc:
        raise UserError(f"{exc}: --dtype float64") from exc


def analysis_request(
    args: argparse.Namespace, checkpoints: list[str], *, seed: bool = True
) -> AnalysisRequest:
    """The model, data and run flags as the typed request of
    :func:`landscape.loading.context.build_context`; ``seed``: seed everything by ``--seed``
    (the commands that draw from the global generators)."""
    return AnalysisRequest(
        checkpoints=tuple(checkpoints),
        model=model_source_from_args(args),
        data=data_source_from_args(args),
        device=args.device,
        dtype=args.dtype,
        seed=args.seed if seed else None,
        batch_size=getattr(args, "batch_size", None),
    )


def load_for_analysis(
    args: argparse.Namespace, checkpoints: list[str], split: str, default_samples: int
) -> tuple:
    """What every one-model analysis command sets up: the context of its flags
    (:func:`landscape.loading.context.build_context`: models on the device, the data, under
    torchrun the process group joined and this rank's device) and the analysis subset drawn by
    --subset-seed. Returns ``(context, x, y)``."""
    from landscape.loading.context import build_context, say_short_splits

    context = build_context(analysis_request(args, checkpoints))
    x, y = context.subset(split, args.samples or default_samples, args.subset_seed)
    say_short_splits(args.samples, context.data.name, {split: x.shape[0]})
    return context, x, y


def grid_config(args: argparse.Namespace, setup, splits: list[str]) -> dict:
    """The entries of a grid's config (its resume identity) that surface and interpolate share:
    the examples, the batches that change the numbers, the loss, the data and the dtype."""
    from landscape.analysis.setup import batch_config

    return {
        "splits": splits,
        "samples": setup.samples,
        "subset_seed": args.subset_seed,
        **batch_config(setup, args.bn),
        "loss": args.loss,
        "dataset": setup.data.name,
        "dtype": args.dtype,
    }


def load_setup_from_args(
    args: argparse.Namespace,
    checkpoints: list[str],
    splits: list[str],
    *,
    bn_train: bool = False,
    stack: bool = False,
):
    """What the grid commands (surface, interpolate) set up: the context of their flags, and the
    subsets of ``splits`` with their batches (:func:`landscape.analysis.setup.load_setup`);
    ``--seed`` seeds the directions, not the global generators."""
    from landscape.analysis.setup import load_setup
    from landscape.loading.context import build_context, say_short_splits

    context = build_context(analysis_request(args, checkpoints, seed=False))
    setup = load_setup(
        context,
        dict.fromkeys(splits, args.samples),
        subset_seed=args.subset_seed,
        recalibrate=args.bn == "recalibrate",
        bn_train=bn_train,
        stack=stack,
        channels_last=bool(getattr(args, "channels_last", False)),
        bf16=bool(getattr(args, "bf16", False)),
        recalibration_samples=args.samples,
    )
    # The default (GRID_SAMPLES per split, "all of them if the split is smaller") is no request
    # to tell about; a --samples the user chose that a split cannot meet is.
    asked = None if args.samples == GRID_SAMPLES else args.samples
    sizes = {split: x.shape[0] for split, (x, _) in setup.splits.items()}
    say_short_splits(asked, context.data.name, sizes)
    return setup


# --------------------------------------------------------- the grid commands (surface, interpolate)

GRID_SAMPLES = 2000  # examples per split of surface and interpolate


def add_grid_run_options(
    parser: argparse.ArgumentParser, out_help: str, *, splits: str, batch: str, seed: bool
) -> None:
    """The options the grid commands share, after their own: --save-every, the run options
    (with --channels-last and --bf16) and the model and data flags, --samples defaulting to
    :data:`GRID_SAMPLES` per split and --batch-size as ``batch`` says."""
    parser.add_argument(
        "--save-every",
        type=nonnegative_float,
        default=5.0,
        metavar="SECONDS",
        help="write finished points to the file this often (default: 5)",
    )
    add_run_options(parser, out_help, seed=seed, fast=True)
    add_analysis_inputs(parser, splits=splits, samples=f"{GRID_SAMPLES} per split", batch=batch)
    parser.set_defaults(samples=GRID_SAMPLES)


def parse_splits(text: str) -> list[str]:
    from landscape.errors import UserError

    splits = [s.strip() for s in str(text).split(",") if s.strip()]
    bad = [s for s in splits if s not in ("train", "test")]
    if not splits or bad or len(set(splits)) != len(splits):
        raise UserError(f"--split {text!r}: give train, test or train,test")
    return splits


def output_path(out: str | None, stem: str) -> Path:
    """``--out`` checked before any work; default analyses/<label>.h5 (the folder is created)."""
    from landscape import store

    return store.resolve_output(out, Path("analyses") / f"{stem}.h5")


def short_label(path, first) -> str:
    """A second checkpoint's part of a name: its stem when it lies in the first one's run folder
    (``run_epoch-045-sgd-to-epoch-060-sam``), else its full ``<run>_<stem>`` label."""
    import os

    from landscape import store

    same_run = os.path.dirname(os.path.abspath(path)) == os.path.dirname(os.path.abspath(first))
    return Path(path).stem if same_run else store.checkpoint_label(path)
