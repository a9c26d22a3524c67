"""What every point of a surface or an interpolation needs: the loaded checkpoints, the data
subsets on the device, the loss and the batch sizes (:class:`Setup`, :func:`load_setup`),
from the :class:`~landscape.loading.context.AnalysisContext` every analysis starts from.

The subsets are drawn by ``subset_seed`` (``--subset-seed``; the same rule in every command) and
stay on the device for the whole job. Where batches define BatchNorm statistics (``--bn train``,
recalibration) the batch is part of the result and fixed (``--batch-size``, else
:data:`landscape.loading.context.FIXED_BATCH`); otherwise it is measured
(:mod:`landscape.batching`), and several grid points go through one batched call
(:mod:`landscape.surface.stacked`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from landscape.parallel import SINGLE

if TYPE_CHECKING:
    from landscape.loading.context import AnalysisContext


class Setup:
    """What every point needs: targets, data subsets on the device, loss, and the batch sizes.

    ``batch_size`` is the evaluation batch (measured unless --batch-size or --bn train fixes
    it), ``bn_batch_size`` the batch that defines BatchNorm statistics (recalibration, --bn
    train), ``points_per_pass`` grid points per batched call (measured,
    :mod:`landscape.surface.stacked`).
    """

    def __init__(
        self,
        targets,
        data,
        splits,
        loss_fn,
        batch_size,
        samples,
        bn_inputs,
        *,
        bn_batch_size=None,
        points_per_pass=1,
        autocast=None,
        partition=None,
        given_batch=None,
        batch_choice=None,
    ):
        self.targets, self.data, self.splits, self.loss_fn = targets, data, splits, loss_fn
        self.batch_size, self.samples, self.bn_inputs = batch_size, samples, bn_inputs
        self.bn_batch_size = bn_batch_size or batch_size
        self.points_per_pass, self.autocast = points_per_pass, autocast
        self.partition = partition or SINGLE  # this process's share (torchrun), else SINGLE
        self.given_batch = given_batch  # the batch size asked for (--batch-size), else None
        self.batch_choice = batch_choice  # the measured BatchChoice, None for a fixed batch

    def measure(self, bn_mode: str):
        """The :class:`landscape.surface.PointEvaluator` of these subsets and batches."""
        from landscape.surface import PointEvaluator

        measure = PointEvaluator(
            self.loss_fn,
            self.splits,
            batch_size=self.batch_size,
            bn_mode=bn_mode,
            bn_inputs=self.bn_inputs,
            bn_batch_size=self.bn_batch_size,
            points_per_pass=self.points_per_pass if bn_mode == "eval" else 1,
            autocast=self.autocast,
        )
        self._check_pace(measure)
        return measure

    def _check_pace(self, measure) -> None:
        """Time the first points against the probe's estimate and measure again, once, when
        they are off (:class:`landscape.batching.PaceCheck`): only where a measured batch is
        all that a point costs (one point per pass, stored statistics, one process)."""
        choice = self.batch_choice
        if (
            choice is None
            or measure.points_per_pass > 1
            or measure.bn_mode != "eval"
            or self.partition.is_distributed
        ):
            return
        from landscape.batching import PaceCheck
        from landscape.surface.stacked import choose_evaluation

        sizes = [x.shape[0] for x, _ in self.splits.values()]
        estimate = choice.seconds * sum(sizes) / max(sizes)  # the probe timed the largest split

        def reprobe():
            new = choose_evaluation(
                self.targets[0].model,
                self.loss_fn,
                self.splits,
                stack=False,
                autocast=self.autocast,
                refresh=True,
            )
            measure.batch_size = self.batch_size = new.batch_size
            self.batch_choice = new
            return new

        measure.after_point = PaceCheck(estimate, reprobe)


def batch_config(setup: Setup, bn: str = "eval") -> dict:
    """The batch entries of a result's config: only batches that change the numbers (BatchNorm
    statistics) are pinned; a measured evaluation batch is "auto", so that a rerun whose probe
    picks another size still resumes. bf16 autocast changes the numbers and is recorded."""
    config = {"batch_size": setup.batch_size if bn == "train" else (setup.given_batch or "auto")}
    if bn in ("recalibrate", "recompute"):
        config["bn_batch_size"] = setup.bn_batch_size
    if setup.autocast is not None:
        config["autocast"] = str(setup.autocast).removeprefix("torch.")
    return config


def load_setup(
    context: AnalysisContext,
    subsets: dict[str, int | None],
    *,
    subset_seed: int,
    recalibrate: bool,
    bn_train: bool = False,
    stack: bool = False,
    channels_last: bool = False,
    bf16: bool = False,
    recalibration_samples: int | None = None,
) -> Setup:
    """The subsets (``split -> samples``, None: the whole split) on the context's device, the
    loss and the batch sizes of ``context.batch``: the given batch, else (unless ``bn_train``:
    batches define the statistics) measured on the centre model and cached
    (:mod:`landscape.batching`); ``stack`` also measures several grid points per pass.
    ``recalibrate``: training inputs for BatchNorm recalibration (the train subset, else
    ``recalibration_samples`` drawn from the train split); ``channels_last`` and ``bf16``:
    the fast-evaluation options (``--channels-last``, ``--bf16``)."""
    import torch

    from landscape.data import fixed_subset
    from landscape.losses import make_loss

    targets, data, partition = context.targets, context.data, context.partition
    device, dtype = context.device, context.dtype
    autocast = torch.bfloat16 if bf16 else None

    def resident(x):  # inputs stay on the device for the whole job
        x = x.to(device=device, dtype=dtype)
        return (
            x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x
        )

    if channels_last:
        for target in targets:
            target.model.to(memory_format=torch.channels_last)
    splits = {}
    for split, samples in subsets.items():
        x, y = fixed_subset(*data.split(split), samples, subset_seed)
        splits[split] = (resident(x), y.to(device))
    bn_inputs = None
    if recalibrate:
        if "train" in splits:
            bn_inputs = splits["train"][0]
        else:
            x, y = fixed_subset(*data.split("train"), recalibration_samples, subset_seed)
            bn_inputs = resident(x)
    samples = next(iter(splits.values()))[0].shape[0]
    loss_fn = make_loss(context.loss)
    given = context.batch.batch_size
    # Where batches define BatchNorm statistics (--bn train, recalibration) the batch is part of
    # the result: the given batch, else FIXED_BATCH (the subset if smaller).
    fixed = context.batch.fixed(max(v[0].shape[0] for v in splits.values()))
    if given or bn_train:
        return Setup(
            targets,
            data,
            splits,
            loss_fn,
            fixed,
            samples,
            bn_inputs,
            autocast=autocast,
            partition=partition,
            given_batch=given,
        )
    from landscape.surface.stacked import choose_evaluation

    # measured by the writer alone (no rank competing for the CPU) and taken by every rank, so
    # that all evaluate in the same steps
    choice = partition.broadcast(
        choose_evaluation(targets[0].model, loss_fn, splits, stack=stack, autocast=autocast)
        if partition.is_writer
        else None
    )
    return Setup(
        targets,
        data,
        splits,
        loss_fn,
        choice.batch_size,
        samples,
        bn_inputs,
        bn_batch_size=fixed,
        points_per_pass=choice.points,
        autocast=autocast,
        partition=partition,
        batch_choice=choice,
    )


def check_same_parameters(reference, target) -> None:
    """Refuse a checkpoint whose parameters (names and shapes) differ from the reference's."""
    from landscape.errors import UserError

    a = {n: tuple(p.shape) for n, p in reference.model.named_parameters()}
    b = {n: tuple(p.shape) for n, p in target.model.named_parameters()}
    if a == b:
        return
    missing = [n for n in a if n not in b]
    extra = [n for n in b if n not in a]
    shapes = [n for n in a if n in b and a[n] != b[n]]
    parts = []
    if missing:
        parts.append(f"lacks {', '.join(missing[:3])}")
    if extra:
        parts.append(f"has extra {', '.join(extra[:3])}")
    if shapes:
        parts.append(
            f"differs in shape at {', '.join(f'{n} {b[n]} vs {a[n]}' for n in shapes[:3])}"
        )
    raise UserError(
        f"{target.path} ({target.arch}) has a different architecture from {reference.path} "
        f"({reference.arch}): it {'; '.join(parts)}"
    )
