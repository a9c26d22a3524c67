"""Training along SGD -> SAM trajectories with resumable checkpoints.

- :class:`SAM` — Sharpness-Aware Minimization (Foret et al. 2021) / ASAM (Kwon et al. 2021)
  around any base optimizer; :func:`bn_stats_frozen` keeps BatchNorm statistics out of its
  second pass.
- :class:`TrainConfig`, :func:`resolve_config` — the resolved run config.
- :func:`train` — the loop: checkpoints ``epoch-XXX-<phase>.pt`` and ``metrics.jsonl``; under
  torchrun DistributedDataParallel over a :class:`~landscape.parallel.Partition`.
- :mod:`landscape.train.sync_bn` — BatchNorm over the global batch for CPU ranks (``--sync-bn``).
"""

from landscape.train.config import TrainConfig, resolve_config
from landscape.train.sam import SAM, bn_stats_frozen

__all__ = ["SAM", "TrainConfig", "bn_stats_frozen", "resolve_config", "train"]


def train(*args, **kwargs):
    """See :func:`landscape.train.loop.train` (imported lazily: it pulls in data and models)."""
    from landscape.train.loop import train as _train

    return _train(*args, **kwargs)
