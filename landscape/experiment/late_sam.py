"""The late-SAM experiment of Zhou et al. (ICLR 2025) end to end.

1. Train every run of :func:`~landscape.experiment.plan.plan_runs` with landscape.train
   (late-SAM and SAM->SGD arms branch from a checkpoint of their parent, ``train --from``).
2. For every final model: test loss/accuracy, top Hessian eigenvalue and trace
   (landscape.curvature), worst-case sharpness (landscape.sharpness).
3. Linear interpolation from each seed's SGD solution to its late-SAM and full-SAM solutions
   (landscape.surface).
4. The escape curve: real SAM steps (landscape.escape) from the SGD trunk at the latest
   switch epoch, with the learning rate of that epoch.
5. Mean +- std over seeds per arm and, within each seed, the share of the SGD -> full-SAM
   gap each arm closes (mean and 95 % t-interval over seeds), then one verdict per claim of
   the paper by the rules of landscape.experiment.rules; printed and stored in
   ``experiment/<name>/`` (landscape.experiment.summary, landscape.experiment.verdicts).

While it runs it says one line per run (landscape.experiment.progress); the per-epoch lines
and the analyses' progress lines show with ``-v``.

Everything goes into ``<root>/result.h5`` (docs/file-format.md), one transaction per finished
piece, so a killed experiment loses at most the piece in progress. Re-running skips trained
runs and every analysis whose inputs (checkpoint hash, options) are unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from landscape import store
from landscape.bn import has_batchnorm
from landscape.data import Data, fixed_subset, load_dataset, with_label_noise
from landscape.evaluate import evaluate
from landscape.experiment.config import LateSamConfig
from landscape.experiment.plan import Run, checkpoint_path, plan_runs, run_dir, save_every_for
from landscape.experiment.progress import ExperimentProgress
from landscape.experiment.summary import (
    PAIRED,
    ArmSummary,
    format_summary,
    metrics_of,
    paired_columns,
    radius_metric,
    summarise,
)
from landscape.experiment.verdicts import Verdict, fit_advantage, format_verdicts, judge
from landscape.losses import make_loss
from landscape.results import Provenance
from landscape.results.escape import EscapeCurve
from landscape.results.experiment import ExperimentResult, read_table, write_table
from landscape.results.sharpness import MeasureValue, SharpnessResult, write_merged

log = logging.getLogger("landscape.experiment")

RESULT_FILE = "result.h5"
ANALYSIS_SEED = 0  # the same analysis examples and random vectors for every run
FIXED_BATCH = 512  # analysis batch where batches define BatchNorm statistics (bn_mode="train")


@dataclass
class Outcome:
    result_path: Path
    table: str
    rows: list[dict]


def run_late_sam(
    config: LateSamConfig,
    root: str | Path,
    *,
    device: torch.device | str = "cpu",
    progress: bool | None = None,
    command: list[str] | None = None,
) -> Outcome:
    """Run (or complete) the experiment in folder ``root``; returns the summary table."""
    config.validate()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    result_path = store.check_output_path(root / RESULT_FILE)
    device = torch.device(device)
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    data = load_dataset(config.dataset, config.data_dir)
    runs = plan_runs(config)
    started = time.monotonic()
    tracker = ExperimentProgress(runs, config.epochs)

    for i, run in enumerate(runs, 1):
        _train(run, runs, config, root, data, device, progress, tracker, i)
    tracker.close()
    log.info("training done (%.0f s)", time.monotonic() - started)

    with _quiet_unless_verbose():
        return _analyse_all(config, root, result_path, data, device, dtype, command, runs, tracker)


def _analyse_all(config, root, result_path, data, device, dtype, command, runs, tracker) -> Outcome:
    """Steps 2-5 of the module docstring: every analysis, the summary and the verdicts."""
    started = time.monotonic()
    steps_per_epoch = config.steps_per_epoch(data.train_x.shape[0])
    ctx = _Context(config, root, result_path, data, device, dtype, command)
    previous = ctx.previous_rows()
    rows = []
    for i, run in enumerate(runs, 1):
        tracker.analyse(i, run)
        row = ctx.analyse(run, previous.get(run.label))
        row["sam_steps"] = float(sam_epochs(run, config.epochs) * steps_per_epoch)
        rows.append(row)
        ctx.write_rows(rows)
    tracker.close()
    escapes = []
    by_label = {row["label"]: row for row in rows}
    for seed in config.seeds:
        for run in runs:
            if run.seed == seed and run.arm in ("late-sam", "full-sam"):
                sgd = next(r for r in runs if r.arm == "sgd" and r.seed == seed)
                barriers = ctx.interpolate(sgd, run)
                by_label[run.label]["barrier_train_error"] = barriers.get(
                    "train_error_frankle", math.nan
                )
                by_label[run.label]["barrier_train_loss"] = barriers.get(
                    "train_loss_frankle", math.nan
                )
        if config.escape:
            escapes.append(ctx.escape(next(r for r in runs if r.arm == "sgd" and r.seed == seed)))
    for row, paired in zip(rows, paired_columns(rows)):
        row.update(paired)
    summaries, verdicts, table = render(rows, escapes, config.epochs)
    ctx.write_summary(rows, summaries, table, verdicts)
    log.info("analyses done (%.0f s)", time.monotonic() - started)
    return Outcome(result_path, table, rows)


def render(
    rows: list[dict], escapes: list[dict], epochs: int
) -> tuple[list[ArmSummary], list[Verdict], str]:
    """The per-arm summaries, the verdicts and the text the command prints, from the per-run
    rows (as stored in ``experiment/<name>/runs``) and the escape summaries."""
    summaries = summarise(rows)
    verdicts = judge(summaries, rows, escapes, epochs)
    text = format_summary(summaries)
    if escapes:
        text += "\n\n" + format_escapes(escapes)
    return summaries, verdicts, text + "\n\n" + format_verdicts(verdicts)


def sam_epochs(run: Run, epochs: int) -> int:
    """Epochs an arm trains with SAM: late SAM from t0 to the end, SAM->SGD up to t1."""
    if run.sam_start is None:
        return 0
    return (epochs if run.sam_end is None else run.sam_end) - run.sam_start


def escape_settings(config: LateSamConfig, sgd: Run, model: torch.nn.Module) -> dict:
    """lr, rho, momentum, weight decay and BatchNorm mode of the escape curve from the SGD
    trunk at the latest switch epoch: those of its training there unless the config names
    others (``escape_*``). Training normalises with each batch's statistics, so ``auto``
    BatchNorm is ``train``; running statistics with no weight decay make SAM at the
    training lr blow up from the SGD solution (issue 11)."""
    from landscape.train.schedule import learning_rate

    t0 = max(config.switch_epochs)
    tc = train_config(sgd, plan_runs(config), config)
    lr = config.escape_lr or learning_rate(
        t0,
        lr=tc.lr,
        schedule=tc.schedule,
        epochs=tc.epochs,
        milestones=tc.milestones,
        gamma=tc.gamma,
    )
    bn_mode = config.escape_bn_mode
    if bn_mode == "auto":
        bn_mode = "train" if has_batchnorm(model) else "eval"
    return {
        "lr": lr,
        "rho": config.rho if config.escape_rho is None else config.escape_rho,
        "momentum": config.momentum if config.escape_momentum is None else config.escape_momentum,
        "weight_decay": tc.weight_decay
        if config.escape_weight_decay is None
        else config.escape_weight_decay,
        "bn_mode": bn_mode,
        "divergence_factor": config.escape_divergence_factor,
    }


def format_escapes(escapes: list[dict]) -> str:
    """One line per escape curve: where it started, how it ended, divergence first."""
    lines = []
    for e in escapes:
        head = (
            f"escape {e['name']} ({e['steps']} SAM steps, lr {e['lr']:.3g}, "
            f"BatchNorm {e['bn_mode']}, "
            f"weight decay {e['weight_decay']:.3g}):"
        )
        if math.isfinite(e["diverged_at"]):
            lines.append(
                f"{head} DIVERGED at step {int(e['diverged_at'])} (train loss "
                f"{e['loss_start']:.3g} -> {e['loss_end']:.3g}); no growth rate fitted"
            )
        else:
            lines.append(
                f"{head} train loss {e['loss_start']:.3g} -> {e['loss_end']:.3g}, distance "
                f"{e['distance']:.3g}, λ1 {e['eig_start']:.3g} -> {e['eig_end']:.3g}, "
                f"growth rate {e['growth_rate']:.3g} per step"
            )
    return "\n".join(lines)


# ------------------------------------------------------------------------------- training


def train_config(run: Run, runs: list[Run], config: LateSamConfig):
    from landscape.train import resolve_config

    overrides = {k: v for k, v in config.train_overrides().items() if v is not None}
    overrides.update(
        seed=run.seed,
        sam_start="never" if run.sam_start is None else run.sam_start,
        sam_end=run.sam_end,
        save_every=save_every_for(run, runs),
    )
    return resolve_config(overrides)


def _train(
    run: Run,
    runs: list[Run],
    config: LateSamConfig,
    root: Path,
    data: Data,
    device: torch.device,
    progress: bool | None,
    tracker: ExperimentProgress,
    index: int,
) -> None:
    from landscape.train import train

    final = checkpoint_path(root, run, config.epochs, run.final_phase)
    tracker.train(index, run, done=final.exists())
    if final.exists():
        return
    source = None
    if run.parent is not None:
        parent = next(r for r in runs if r.label == run.parent)
        source = checkpoint_path(root, parent, run.branch_epoch, run.branch_phase)
    with _quiet_unless_verbose():
        train(
            train_config(run, runs, config),
            run_dir(root, run),
            device=device,
            from_checkpoint=source,
            data=data,
            progress=progress if _verbose() else False,
        )


def _verbose() -> bool:
    """``-v``: the experiment shows every epoch and every analysis' progress lines."""
    return log.isEnabledFor(logging.DEBUG)


# Loggers whose lines come per epoch or per measurement: shown with -v only (training's per-epoch
# lines stay in each run's metrics.jsonl).
CHATTY = ("landscape.train", "landscape.progress", "landscape.batching")


@contextlib.contextmanager
def _quiet_unless_verbose():
    """The :data:`CHATTY` loggers at WARNING for the block, unless ``-v``."""
    if _verbose():
        yield
        return
    loggers = [logging.getLogger(name) for name in CHATTY]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


# ------------------------------------------------------------------------------- analyses


def _reporter():
    """The analyses' progress lines: shown with ``-v`` only (one line per run otherwise)."""
    from landscape.progress import cli_reporter

    return cli_reporter() if _verbose() else cli_reporter(False)


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class _Context:
    """What every analysis shares: data on the device, loss, result file, options."""

    def __init__(
        self,
        config: LateSamConfig,
        root: Path,
        result_path: Path,
        data: Data,
        device: torch.device,
        dtype: torch.dtype,
        command: list[str] | None,
    ):
        self.config, self.root, self.result_path = config, root, result_path
        self.data, self.device, self.dtype, self.command = data, device, dtype, command
        self.loss_fn = make_loss("cross-entropy")
        # the training objective: with label noise, the labels the runs were trained on
        noisy = with_label_noise(data, config.label_noise, config.label_noise_seed)
        x, y = fixed_subset(noisy.train_x, noisy.train_y, config.samples, ANALYSIS_SEED)
        self.x, self.y = x.to(device=device, dtype=dtype), y.to(device)
        self.test_x = data.test_x.to(device=device, dtype=dtype)
        self.test_y = data.test_y.to(device)
        self.options = config.analysis_options()
        self._targets: dict[Path, object] = {}

    # -- loading
    def target(self, path: Path):
        """The checkpoint as a landscape.loading.loader.LoadedModel (model on the device, eval
        mode)."""
        from landscape.loading.checkpoint import file_sha256, load_checkpoint
        from landscape.loading.loader import LoadedModel, ModelSource, build_model_for

        if path not in self._targets:
            ckpt = load_checkpoint(path)
            model, arch, _ = build_model_for(ckpt, ModelSource(), self.data)
            model = model.to(device=self.device, dtype=self.dtype).eval()
            self._targets[path] = LoadedModel(
                path, file_sha256(path), model, arch, ckpt.epoch, ckpt.phase, ckpt.config, ckpt
            )
            while len(self._targets) > 4:  # keep a few models only
                self._targets.pop(next(iter(self._targets)))
        return self._targets[path]

    def final(self, run: Run) -> Path:
        return checkpoint_path(self.root, run, self.config.epochs, run.final_phase)

    def provenance(self, target, seconds: float, config: dict, samples: int | None = None) -> dict:
        from landscape.loading.loader import provenance

        return provenance(
            target,
            split="train",
            samples=samples or self.x.shape[0],
            bn_mode=self.config.bn_mode,
            dtype=self.config.dtype,
            seed=ANALYSIS_SEED,
            seconds=seconds,
            config=config,
        )

    def _attr(self, name: str, key: str = "experiment_key"):
        if not self.result_path.exists():
            return None
        with store.open_result_file(self.result_path) as f:
            return f[name].attrs.get(key) if name in f else None

    # -- per-run measures
    def previous_rows(self) -> dict[str, dict]:
        name = f"experiment/{self.config.name}/runs"
        if not self.result_path.exists():
            return {}
        with store.open_result_file(self.result_path) as f:
            if name not in f or "key" not in f[name]:
                return {}
            rows = read_table(f[name])
        return {str(row["label"]): row for row in rows}

    def batch(self, kind: str, model) -> int:
        """``analysis_batch_size`` if set; else FIXED_BATCH where batches define BatchNorm
        statistics (``bn_mode="train"``), else the fastest for ``kind`` of work ("forward",
        "gradient", "hvp"), measured once per model shape and cached (:mod:`landscape.batching`)."""
        from landscape import batching

        cfg = self.config
        if cfg.analysis_batch_size:
            return cfg.analysis_batch_size
        if cfg.bn_mode == "train" and kind != "forward":
            return FIXED_BATCH
        if kind == "forward":
            return batching.forward_batch_size(model, self.x).batch_size
        if kind == "hvp":
            return batching.product_batch_size(model, self.loss_fn, self.x, self.y).batch_size
        return batching.gradient_batch_size(model, self.loss_fn, self.x, self.y).batch_size

    def analyse(self, run: Run, previous: dict | None) -> dict:
        path = self.final(run)
        target = self.target(path)
        key = _key(target.sha256, self.options)
        if previous is not None and previous.get("key") == key and previous.get("done"):
            log.debug("%s: analysed", run.label)
            return previous
        cfg, t = self.config, time.monotonic()
        model = target.model
        forward = self.batch("forward", model)
        test_loss, test_acc = evaluate(model, self.test_x, self.test_y, self.loss_fn, forward)
        train_loss, train_acc = evaluate(model, self.x, self.y, self.loss_fn, forward)
        from landscape.analysis.hessian import HessianOptions, hessian_of
        from landscape.analysis.sharpness import SharpnessOptions, measure_sharpness

        reporter, prefix = _reporter(), f"{run.label}: "
        hessian_batch = self.batch("hvp", model)
        t_h = time.monotonic()
        hessian, _ = hessian_of(
            model,
            self.loss_fn,
            self.x,
            self.y,
            HessianOptions(
                top_k=1,
                tol=cfg.eig_tol,
                trace=True,
                trace_rel_stderr=cfg.trace_rel_stderr,
                trace_max_hvps=cfg.trace_max_hvps,
                bn_mode=cfg.bn_mode,
                batch_size=hessian_batch,
                seed=ANALYSIS_SEED,
            ),
            reporter=reporter,
            prefix=prefix,
        )
        hessian_seconds = time.monotonic() - t_h
        t_s = time.monotonic()
        radii = cfg.sharpness_radii
        sharpness_options = SharpnessOptions(
            measures=["worst-case"],
            radii=radii,
            steps=cfg.sharpness_steps,
            m=cfg.sharpness_m,
            bn_mode=cfg.bn_mode,
            batch_size=self.batch("gradient", model),
            seed=ANALYSIS_SEED,
        )
        found = measure_sharpness(
            model, self.loss_fn, self.x, self.y, sharpness_options, reporter, prefix
        )
        sharps = [result for result, _ in found]
        sharp = dataclasses.replace(sharps[radii.index(cfg.sharpness_radius)], measure="worst_case")
        sharp_seconds = time.monotonic() - t_s
        row = {
            "label": run.label,
            "arm": run.arm,
            "arm_label": run.arm_label,
            "seed": run.seed,
            "t0": run.t0,
            "t1": run.t1,
            "checkpoint": str(path),
            "key": key,
            "done": True,
            "test_acc": test_acc,
            "test_loss": test_loss,
            "train_acc": train_acc,
            "train_loss": train_loss,
            "lambda1": float(hessian.top.values[0]),
            "trace": float(hessian.trace.value),
            "worst_case": sharp.value,
            **{radius_metric(r.params["rho"]): r.value for r in sharps},
        }
        hessian.provenance = Provenance(
            **self.provenance(
                target,
                hessian_seconds,
                {
                    "k": 1,
                    "tol": cfg.eig_tol,
                    "trace_rel_stderr": cfg.trace_rel_stderr,
                    "trace_max_hvps": cfg.trace_max_hvps,
                    "batch_size": hessian_batch,
                },
            )
        )
        for r in sharps:
            r.measure = radius_metric(r.params["rho"])
        sharpness = SharpnessResult(
            Provenance(**self.provenance(target, sharp_seconds, {**sharp.params, "rho": radii})),
            {
                r.measure: MeasureValue.from_measure(r, sharp_seconds)
                for r in [sharp] + list(sharps)
            },
        )
        with store.transaction(self.result_path, self.command) as f:
            group = store.replace_group(f, f"hessian/{run.label}")
            hessian.write(group)
            store.set_attrs(group, experiment_key=key)
            write_merged(f, run.label, sharpness)
        log.debug(
            "%s: test acc %.2f%%, lambda1 %.4g, trace %.4g, worst-case %.4g (%.0f s)",
            run.label,
            100 * test_acc,
            row["lambda1"],
            row["trace"],
            row["worst_case"],
            time.monotonic() - t,
        )
        return row

    def write_rows(self, rows: list[dict]) -> None:
        with store.transaction(self.result_path, self.command) as f:
            write_table(store.replace_group(f, f"experiment/{self.config.name}/runs"), rows)

    # -- interpolation
    def interpolate(self, sgd: Run, other: Run) -> dict[str, float]:
        """The straight line from ``sgd``'s solution to ``other``'s, through the same analysis
        and result kind as ``landscape interpolate`` (dimension scale, barriers, checkpoints);
        returns its barriers (``train_error_frankle``, ...)."""
        from landscape.analysis.interpolation import InterpolationOptions, compute_interpolation
        from landscape.analysis.setup import Setup

        cfg = self.config
        a, b = self.target(self.final(sgd)), self.target(self.final(other))
        name = f"interpolation/{sgd.label}_to_{other.label}"
        key = _key(a.sha256, b.sha256, cfg.interpolation_points, self.options)
        if self._attr(name) == key:
            log.info("%s: done", name)
            from landscape.results.interpolation import Interpolation

            with store.open_result_file(self.result_path) as f:
                return dict(Interpolation.read(f[name]).barriers)
        t = time.monotonic()
        bn = "recalibrate" if has_batchnorm(a.model) else "eval"
        setup = Setup(
            [a, b],
            self.data,
            {"train": (self.x, self.y), "test": (self.test_x, self.test_y)},
            self.loss_fn,
            self.batch("forward", a.model),
            self.x.shape[0],
            self.x,
            bn_batch_size=cfg.analysis_batch_size or FIXED_BATCH,
        )
        options = InterpolationOptions(
            alphas=np.linspace(0.0, 1.0, cfg.interpolation_points),
            bn=bn,
            dtype=cfg.dtype,
            seed=ANALYSIS_SEED,
            experiment_key=key,
            config={"points": cfg.interpolation_points, "bn": bn},
        )
        result = compute_interpolation(
            options, setup, self.result_path, name, reporter=_reporter(), resume=False, label=name
        )
        log.info(
            "%s: train-loss barrier %.4g (%.0f s)",
            name,
            result.barriers.get("train_loss_frankle", math.nan),
            time.monotonic() - t,
        )
        return dict(result.barriers)

    # -- escape
    def escape(self, sgd: Run) -> dict:
        """Run (or read back) the escape curve from the SGD trunk at the latest switch epoch;
        returns its summary for the experiment's table."""
        from landscape.analysis.escape import EscapeOptions, escape_curve

        cfg = self.config
        t0 = max(cfg.switch_epochs)
        path = checkpoint_path(self.root, sgd, t0, "sgd")
        target = self.target(path)
        settings = escape_settings(cfg, sgd, target.model)
        name = f"escape/{sgd.label}-epoch{t0:03d}"
        key = _key(target.sha256, settings, cfg.escape_steps, cfg.escape_eig_every, self.options)
        if self._attr(name) == key:
            log.info("%s: done", name)
        else:
            t = time.monotonic()
            import copy

            model = copy.deepcopy(target.model)  # escape moves the weights
            # With batch statistics the batch defines the operator: fixed, not measured.
            batch = (
                cfg.analysis_batch_size or FIXED_BATCH
                if settings["bn_mode"] == "train"
                else self.batch("gradient", model)
            )
            options = EscapeOptions(
                steps=cfg.escape_steps, eig_every=cfg.escape_eig_every, batch_size=batch, **settings
            )
            result = escape_curve(
                model, self.loss_fn, self.x, self.y, options, _reporter(), f"{name}: SAM escape"
            )
            provenance = self.provenance(target, time.monotonic() - t, result.params)
            provenance["bn_mode"] = settings["bn_mode"]
            curve = EscapeCurve.from_escape(result, Provenance(**provenance))
            with store.transaction(self.result_path, self.command) as f:
                curve.write(store.replace_group(f, name))
                store.set_attrs(f[name], experiment_key=key)
            log.info(
                "%s: %s, final distance %.4g (%.0f s)",
                name,
                f"DIVERGED at step {int(result.diverged_at)}"
                if result.diverged
                else f"growth rate {result.growth_rate:.4g} per step",
                result.distance[-1],
                time.monotonic() - t,
            )
        with store.open_result_file(self.result_path) as f:
            curve = EscapeCurve.read(f[name])
        loss, distance, eig = curve.train_loss, curve.distance, curve.eigenvalue
        diverged_at, growth_rate = curve.diverged_at, curve.growth_rate
        finite = np.isfinite(loss)
        eig_finite = eig[np.isfinite(eig)]
        return {
            "name": name.split("/", 1)[1],
            "steps": cfg.escape_steps,
            **settings,
            "diverged_at": diverged_at,
            "growth_rate": growth_rate,
            "fit_advantage": fit_advantage(distance, (curve.fit_start, curve.fit_stop)),
            "loss_start": float(loss[0]),
            "loss_end": float(loss[finite][-1]),
            "distance": float(distance[np.isfinite(distance)][-1]),
            "eig_start": float(eig_finite[0]) if eig_finite.size else math.nan,
            "eig_end": float(eig_finite[-1]) if eig_finite.size else math.nan,
        }

    # -- summary
    def write_summary(
        self, rows: list[dict], summaries, table: str, verdicts: list[Verdict]
    ) -> None:
        cfg = self.config
        result = ExperimentResult(
            kind="late-sam",
            config=cfg.to_dict(),
            dataset=cfg.dataset,
            arch=cfg.arch,
            epochs=cfg.epochs,
            rho=cfg.rho,
            seeds=list(cfg.seeds),
            summary_text=table,
            runs=rows,
            summary=[_summary_row(s, metrics_of(rows)) for s in summaries],
            verdicts=[dataclasses.asdict(v) for v in verdicts],
        )
        with store.transaction(self.result_path, self.command) as f:
            result.write(f.require_group(f"experiment/{cfg.name}"))


def _summary_row(s, metrics: list[str]) -> dict:
    """One arm of the summary table: mean and std per metric; for the paired metrics the gap
    closed (fraction) and arm - SGD, each with its 95 % t-interval."""
    row = {k: getattr(s, k) for k in ("arm_label", "arm", "t0", "t1", "n_seeds", "sam_steps")}
    for metric in metrics:
        row[f"{metric}_mean"], row[f"{metric}_std"] = s.mean[metric], s.std[metric]
    for metric in PAIRED:
        for kind, interval in (("gap", s.gap[metric]), ("diff", s.diff[metric])):
            row[f"{metric}_{kind}_mean"] = interval.mean
            row[f"{metric}_{kind}_low"] = interval.low
            row[f"{metric}_{kind}_high"] = interval.high
    return row
