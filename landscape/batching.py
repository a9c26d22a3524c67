"""Batch sizes chosen by measurement, cached on disk.

The fastest batch size for repeated passes over a fixed set of ``n`` examples depends on the
model, the input shape, the device, the dtype and the thread count: on a 2-core CPU a CIFAR
ResNet-20 forward over 512 inputs took 0.31 s in batches of 128 and 0.77 s in one batch of 512
(issue 18), on a GPU the largest batch that fits usually wins. So instead of a constant we time
a few candidates on the real model and tensors before a long job, and remember the answer.

Candidates are *balanced* sizes ``ceil(n / k)``: ``k`` equal batches cost ``k * t(ceil(n / k))``
for one pass, which we predict from one timed batch per candidate (the fastest of two rounds
after a warm-up; calls of a few milliseconds are repeated within a round). All are tried,
from small to large (time is not a smooth function of the batch: on a busy 2-core CPU some
small sizes were 20x slower than their neighbours), until one runs out of memory; one whose
warm-up alone is 5x slower than the best so far is not timed further, and the three fastest
are timed again (load only ever adds time), so the probe costs a few passes over the data.
Every timing is wall-clock time, what the user waits for: the fastest of repeated blocks, so
that other load (which only ever adds time) does not decide it. (The process CPU clock used
before issue 29 adds up both threads' work, so a batch that leaves a thread idle looked cheap:
on a 2-core CPU it chose a ResNet-20 batch of 40 at 0.31 s of CPU per pass over 128, 0.49 s of
CPU but 0.28 s of wall time.)

The choice is stored in ``$XDG_CACHE_HOME/landscape/batch-sizes.json`` (``~/.cache`` by
default) under a key made of the work kind, the model's structure (module types, parameter
and buffer shapes), the input shape, ``n``, the device, dtype, thread count, OpenMP wait
policy and torch version, with the load at the time of the probe: a rerun of the same job
does not probe. A job checks its first points against the cached estimate
(:class:`PaceCheck`) and measures again, once, when they are more than 25% off.

Numerical code never calls this with a batch size that defines the result (BatchNorm with batch
statistics): there the caller's batch is part of the operator and is not tuned.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger("landscape.batching")

SMALLEST = 16  # below this, per-call overhead dominates on every device we know
PRODUCT_CPU_LARGEST = 1024  # largest Hessian-product batch tried on a CPU
HOPELESS = 5.0  # a candidate whose warm-up alone is this much slower than the best is not timed
FINALISTS = (
    2.0  # the (up to three) fastest candidates within this factor of the best are timed again
)
ROUNDS = 2  # timed rounds per candidate; the fastest counts (other load only ever adds time)
MIN_TIMED = 0.005  # seconds per round: short calls are repeated up to this
MAX_REPEATS = 20


@dataclass(frozen=True)
class BatchChoice:
    """The measured choice: ``batch_size``, and ``points`` weight vectors per pass where the
    caller asked to tune that too (:mod:`landscape.surface.stacked`)."""

    batch_size: int
    points: int = 1
    seconds: float = math.nan  # predicted seconds per point (one pass over the n examples)
    probe_seconds: float = 0.0  # what the probe cost here (0 when the choice came from the cache)
    cached: bool = False
    timings: dict[str, float] = field(default_factory=dict)  # "batch[xpoints]" -> seconds per point
    load: float = math.nan  # other processes' load (cores) when it was measured

    def describe(self) -> str:
        """e.g. ``batch 240, 1 point per pass (measured: 12 batch sizes, 2 stacked, in 3.5 s)``."""
        stacked = sum("x" in k for k in self.timings)
        what = f"{len(self.timings) - stacked} batch sizes" + (
            f", {stacked} stacked" if stacked else ""
        )
        how = (
            "cached measurement"
            if self.cached
            else f"measured: {what}, in {self.probe_seconds:.2f} s"
        )
        per_pass = (
            f", {self.points} point{'s' if self.points > 1 else ''} per pass" if stacked else ""
        )
        return f"batch {self.batch_size}{per_pass} ({how})"

    @classmethod
    def from_cache(cls, entry: Mapping[str, object]) -> BatchChoice:
        """The choice a cache entry (:func:`read_cache`) recorded; nothing was probed for it."""
        return cls(
            entry["batch_size"],
            int(entry.get("points", 1)),
            float(entry.get("seconds", math.nan)),
            0.0,
            True,
            dict(entry.get("timings", {})),
            float(entry.get("load", math.nan)),
        )


def candidate_sizes(
    n: int, smallest: int = SMALLEST, largest: int | None = None, step: float = 1.5
) -> list[int]:
    """Balanced batch sizes ``ceil(n / k)``, ascending, between ``smallest`` and ``largest``,
    with ``k`` growing by about ``step`` (``n`` itself is a candidate unless above ``largest``)."""
    if n < 1:
        raise ValueError(f"need at least one example, not {n}")
    largest = n if largest is None else max(1, min(largest, n))
    sizes = set()
    k = 1
    while True:
        size = math.ceil(n / k)
        if size < min(smallest, n):
            break
        if size <= largest:
            sizes.add(size)
        if size == 1:
            break
        k = max(k + 1, int(k * step))  # geometric: O(log n) candidates
    return sorted(sizes) or [largest]


def probe(
    run: Callable[[int], None],
    n: int,
    candidates: Sequence[int],
    *,
    device: torch.device | None = None,
    rounds: int = ROUNDS,
    give_up: float = math.inf,
    retime: bool = True,
) -> dict[int, float]:
    """Predicted seconds of one pass over ``n`` examples for each candidate tried.

    ``run(b)`` does the unit of work on ``b`` examples (a forward, a Hessian-vector product).
    Candidates are tried in ascending order; see the module docstring for when it stops. A
    candidate whose warm-up predicts more than ``give_up`` seconds per pass is not timed further.
    """
    timings: dict[int, float] = {}
    best, hopeless_sizes = math.inf, set()
    for size in sorted(candidates):
        try:
            first = _timed(run, size, device)  # includes warm-up (allocator, kernel selection)
            # a warm-up far slower than the best needs no second look: the timed runs are skipped
            hopeless = first * math.ceil(n / size) > min(HOPELESS * best, give_up)
            if hopeless:
                hopeless_sizes.add(size)
            # calls far below a timer tick's worth of noise are repeated to about MIN_TIMED seconds
            repeats = max(1, min(MAX_REPEATS, round(MIN_TIMED / max(first, 1e-9))))
            once = (
                first
                if hopeless
                else min(_timed(run, size, device, repeats) for _ in range(rounds))
            )
        except torch.OutOfMemoryError:
            if device is not None and device.type == "cuda":
                torch.cuda.empty_cache()
            break
        timings[size] = once * math.ceil(n / size)
        best = min(best, timings[size])
    if not timings:
        raise torch.OutOfMemoryError(f"not even a batch of {min(candidates)} fits on {device}")
    # Other load only ever adds time, so the minimum over more rounds is the better estimate:
    # the contenders (within FINALISTS x of the best) get a second set of rounds, in another
    # order, so that one busy moment does not decide the choice.
    for size in sorted(set(timings) - hopeless_sizes, key=timings.__getitem__)[
        : 3 if retime else 0
    ]:
        if timings[size] <= FINALISTS * best:
            once = timings[size] / math.ceil(n / size)
            repeats = max(1, min(MAX_REPEATS, round(MIN_TIMED / max(once, 1e-9))))
            again = min(_timed(run, size, device, repeats) for _ in range(rounds))
            timings[size] = min(timings[size], again * math.ceil(n / size))
    return timings


def _timed(
    run: Callable[[int], None], size: int, device: torch.device | None, repeats: int = 1
) -> float:
    """Seconds of one ``run(size)``, averaged over ``repeats`` back-to-back calls."""
    synchronize(device)
    start = clock(device)
    for _ in range(repeats):
        run(size)
    synchronize(device)
    return (clock(device) - start) / repeats


def clock(device: torch.device | None) -> float:
    """The probe's clock: wall time (after synchronising an accelerator). Other load only
    adds to it, which the fastest of repeated blocks (:func:`probe`) filters out."""
    return time.perf_counter()


def synchronize(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------------ cache


def cache_file() -> Path:
    """``$XDG_CACHE_HOME/landscape/batch-sizes.json`` (``~/.cache/...`` when unset)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "landscape" / "batch-sizes.json"


def model_signature(model: nn.Module) -> str:
    """A digest of what determines a model's speed: module types, parameter and buffer
    names, shapes, dtypes and memory formats (not the values)."""
    parts = [[name, type(m).__qualname__] for name, m in model.named_modules()]
    for kind, named in (("p", model.named_parameters()), ("b", model.named_buffers())):
        parts += [[kind, n, list(t.shape), str(t.dtype), t.is_contiguous()] for n, t in named]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"{device.type}:{platform.machine()}:{platform.processor() or os.cpu_count()}"


def cache_key(
    kind: str, model: nn.Module, inputs: torch.Tensor, extra: Mapping[str, object] | None = None
) -> str:
    fields = {
        "kind": kind,
        "model": model_signature(model),
        "input": [list(inputs.shape[1:]), str(inputs.dtype), inputs.is_contiguous()],
        "n": int(inputs.shape[0]),
        "device": device_name(inputs.device),
        "threads": torch.get_num_threads() if inputs.device.type == "cpu" else None,
        "openmp": openmp_policy() if inputs.device.type == "cpu" else None,
        "torch": torch.__version__,
        **dict(extra or {}),
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:24]


def openmp_policy() -> str:
    """The OpenMP wait policy this process runs under (its environment, read by libgomp when
    torch loaded): part of the cache key, since it changes which batch is fastest."""
    from landscape import OPENMP_VARIABLES

    return " ".join(f"{k}={os.environ[k]}" for k in OPENMP_VARIABLES if k in os.environ)


def current_load() -> float:
    """Other processes' load now, in cores (:func:`landscape.other_load`)."""
    import landscape

    average = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return landscape.other_load(average, landscape._runnable_now(3))


def entry_of(choice: BatchChoice, kind: str) -> dict:
    """The cache entry of a measured choice."""
    return {
        "batch_size": choice.batch_size,
        "points": choice.points,
        "seconds": choice.seconds,
        "timings": choice.timings,
        "probe_seconds": choice.probe_seconds,
        "load": choice.load,
        "kind": kind,
        "created": time.time(),
    }


def read_cache(key: str) -> dict | None:
    try:
        entry = json.loads(cache_file().read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None  # no cache yet, or an unreadable one: probe again
    return entry if isinstance(entry, dict) and isinstance(entry.get("batch_size"), int) else None


def write_cache(key: str, entry: dict) -> None:
    """Add one entry; written to a temporary file and renamed, so readers never see half a file.
    A cache that cannot be written only costs a probe next time."""
    path = cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            table = json.loads(path.read_text())
            table = table if isinstance(table, dict) else {}
        except (OSError, ValueError):
            table = {}
        table[key] = entry
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".batch-sizes-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(table, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError as exc:
        log.debug("could not write the batch-size cache %s: %s", path, exc)


# --------------------------------------------------------------------------------- choosing


def choose(
    kind: str,
    model: nn.Module,
    inputs: torch.Tensor,
    run: Callable[[int], None],
    *,
    extra: Mapping[str, object] | None = None,
    largest: int | None = None,
    step: float = 1.5,
    rounds: int = ROUNDS,
    retime: bool = True,
    cache: bool = True,
    refresh: bool = False,
    announce: bool = True,
) -> BatchChoice:
    """The fastest balanced batch size for ``run`` over all of ``inputs`` (probed or cached);
    ``refresh`` measures again and replaces the cached entry; ``announce`` logs the choice at
    INFO (else DEBUG)."""
    level = logging.INFO if announce else logging.DEBUG
    n = int(inputs.shape[0])
    key = cache_key(kind, model, inputs, {**dict(extra or {}), "largest": largest, "step": step})
    if cache and not refresh and (entry := read_cache(key)) is not None:
        choice = BatchChoice.from_cache(entry)
        log.log(level, "%s: %s", kind, choice.describe())
        return choice
    load = current_load()
    started = time.perf_counter()
    timings = probe(
        run,
        n,
        candidate_sizes(n, largest=largest, step=step),
        device=inputs.device,
        rounds=rounds,
        retime=retime,
    )
    size = min(timings, key=timings.__getitem__)
    choice = BatchChoice(
        size,
        1,
        timings[size],
        time.perf_counter() - started,
        False,
        {str(b): t for b, t in timings.items()},
        load,
    )
    if cache:
        write_cache(key, entry_of(choice, kind))
    log.log(level, "%s: %s", kind, choice.describe())
    return choice


def forward_batch_size(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    autocast: torch.dtype | None = None,
    cache: bool = True,
    refresh: bool = False,
    announce: bool = True,
) -> BatchChoice:
    """Fastest batch for inference passes of ``model`` over ``inputs`` (eval mode, no grad)."""
    from landscape.bn import analysis_mode

    def run(size: int) -> None:
        with (
            torch.inference_mode(),
            analysis_mode(model, "eval"),
            autocast_context(inputs.device, autocast),
        ):
            model(inputs[:size])

    return choose(
        "forward",
        model,
        inputs,
        run,
        extra={"autocast": str(autocast)},
        cache=cache,
        refresh=refresh,
        announce=announce,
    )


def gradient_batch_size(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    cache: bool = True,
) -> BatchChoice:
    """Fastest batch for loss gradients (a forward and a backward per batch, eval mode)."""
    from landscape.bn import analysis_mode

    params = [p for p in model.parameters() if p.requires_grad]

    def run(size: int) -> None:
        with analysis_mode(model, "eval"):
            torch.autograd.grad(loss_fn(model(inputs[:size]), targets[:size]), params)

    return choose(
        "gradient",
        model,
        inputs,
        run,
        extra={"loss": getattr(loss_fn, "__name__", "")},
        cache=cache,
    )


def product_batch_size(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    engine: str = "auto",
    cache: bool = True,
) -> BatchChoice:
    """Fastest batch for Hessian-vector products (:class:`landscape.curvature.HessianOperator`):
    each candidate times a product on that many examples with the real engine (eval mode)."""
    from landscape.curvature.operator import HessianOperator

    operators: dict[int, tuple[HessianOperator, torch.Tensor]] = {}

    def run(size: int) -> None:
        if size not in operators:
            release()  # keep one operator's graphs alive at a time
            op = HessianOperator(
                model, loss_fn, inputs[:size], targets[:size], batch_size=size, engine=engine
            )
            v = torch.randn(op.dim, generator=torch.Generator().manual_seed(0), dtype=op.dtype).to(
                op.device
            )
            operators[size] = (op, v)
        op, v = operators[size]
        op.matvec(v)

    def release() -> None:
        for op, _ in operators.values():
            op.release()
        operators.clear()

    try:
        # A product costs several forwards and a job needs tens of them, not thousands: coarser
        # candidates (step 2), one timed product each (no second look: an operator rebuilt
        # for it would time its graph construction), and on CPUs at most PRODUCT_CPU_LARGEST
        # examples per batch (throughput there saturates far below; GPUs try up to n).
        return choose(
            "hvp",
            model,
            inputs,
            run,
            extra={"engine": engine, "loss": getattr(loss_fn, "__name__", "")},
            largest=PRODUCT_CPU_LARGEST if inputs.device.type == "cpu" else None,
            step=2.0,
            rounds=1,
            retime=False,
            cache=cache,
        )
    finally:
        release()


def autocast_context(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` to ``dtype`` on ``device``, or a no-op context for ``None``."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


# ------------------------------------------------------------------------- checking the pace

PACE_TOLERANCE = 0.25  # observed seconds per point this far off the estimate: measure again
PACE_POINTS = 3  # evaluations timed (after the first, a warm-up) before the pace is judged
PACE_SECONDS = 0.25  # ... and at least this long in all, so that a timer tick does not decide,
PACE_MOST_POINTS = 20  # ... unless this many were timed (tiny models: milliseconds each)


class PaceCheck:
    """Checks a job's first evaluations against the probe's estimate, and measures again once.

    A cached choice was measured under another load, perhaps with another wait policy in
    effect; a probe taken while the machine was busy (or idle) would otherwise decide every
    later run. Call the object with the wall-clock seconds of each evaluation (the forward
    passes the probe predicts; writing the weights of a point is not in them): once
    :data:`PACE_POINTS` after the first have taken :data:`PACE_SECONDS` (or
    :data:`PACE_MOST_POINTS` were timed), their median is compared with ``estimate``; more than
    :data:`PACE_TOLERANCE` off, ``reprobe()`` is called (it measures, replaces the cache entry
    and returns the new choice) and one line goes to ``say``. Nothing is checked after that.
    """

    def __init__(
        self,
        estimate: float,
        reprobe: Callable[[], BatchChoice],
        *,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.estimate, self.reprobe = estimate, reprobe
        self.say = say or _stderr_line
        self.seconds: list[float] = []
        self.warmed_up = False
        self.done = not (estimate > 0 and math.isfinite(estimate))
        self.observed: float | None = None
        self.choice: BatchChoice | None = None  # the new choice, when one was measured

    def __call__(self, seconds: float) -> None:
        if self.done:
            return
        if not self.warmed_up:  # the first evaluation pays for allocations and kernel choice
            self.warmed_up = True
            return
        self.seconds.append(seconds)
        enough = sum(self.seconds) >= PACE_SECONDS or len(self.seconds) >= PACE_MOST_POINTS
        if len(self.seconds) < PACE_POINTS or not enough:
            return
        self.done = True
        self.observed = sorted(self.seconds)[len(self.seconds) // 2]
        off = self.observed / self.estimate - 1
        if abs(off) <= PACE_TOLERANCE:
            return
        self.choice = self.reprobe()
        self.say(
            f"the first points took {self.observed:.3g} s each to evaluate, "
            f"{abs(off):.0%} {'slower' if off > 0 else 'faster'} than the {self.estimate:.3g} s "
            f"the batch probe predicted; measured again: {self.choice.describe()}"
        )


def _stderr_line(line: str) -> None:
    # A progress note like the probe's own "evaluation: ..." line (-q silences it), not a
    # "landscape: ..." line: those are kept for errors and stops, one per run.
    import logging

    logging.getLogger("landscape.batching").info(line)
