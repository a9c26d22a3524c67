"""``SharpnessCallback`` for a Lightning ``Trainer``: :class:`landscape.Tracker` called after
every optimizer step with ``trainer.global_step``.

::

    from landscape.integrations.lightning import SharpnessCallback

    callback = SharpnessCallback(x, y, loss_fn=torch.nn.functional.cross_entropy, every=50,
                                 measures="lambda1,trace", out="track.h5", name="run1")
    lightning.Trainer(callbacks=[callback], ...).fit(module, loader)

The LightningModule's ``forward`` is what is measured (``loss_fn(module(x), y)``). Under
several processes every rank measures its share and rank 0 writes. A run resumed from a
Lightning checkpoint continues the track from its global step.
"""

from __future__ import annotations

from typing import Any

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:  # the older package name
    try:
        from pytorch_lightning.callbacks import Callback
    except ImportError as exc:
        raise ImportError(
            "landscape.integrations.lightning needs Lightning: pip install lightning"
        ) from exc


class SharpnessCallback(Callback):
    """Track sharpness during ``Trainer.fit``. ``x, y`` (or a DataLoader as ``x``), ``loss_fn``
    and every keyword of :class:`landscape.Tracker` (``every``, ``measures``, ``out``,
    ``name``, ``samples``, ``budget``, ...) are the tracker's; the optimizer (for the 2/lr line)
    is the trainer's first. ``tensorboard=True`` mirrors the values to the trainer's
    TensorBoard logger, when it has one."""

    def __init__(
        self, x: Any, y: Any = None, *, loss_fn, tensorboard: bool = False, **options: Any
    ) -> None:
        super().__init__()
        self.x, self.y, self.loss_fn = x, y, loss_fn
        self.tensorboard = tensorboard
        self.options = options
        self.tracker = None

    def on_train_start(self, trainer, pl_module) -> None:
        from landscape.track import Tracker

        writer = None
        if self.tensorboard:
            experiment = getattr(trainer.logger, "experiment", None)
            writer = experiment if hasattr(experiment, "add_scalar") else None
        optimizers = trainer.optimizers
        options = {"name": type(pl_module).__name__, **self.options}
        self.tracker = Tracker(
            pl_module,
            self.loss_fn,
            self.x,
            self.y,
            optimizer=optimizers[0] if optimizers else None,
            tensorboard=writer,
            **options,
        )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.tracker is not None and trainer.global_step > 0:
            self.tracker.step(trainer.global_step)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.tracker is not None:
            self.tracker.close()
