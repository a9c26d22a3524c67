"""Sharpness tracked inside a training loop: :class:`Tracker` (``landscape.Tracker``).

:mod:`~landscape.track.tracker` schedules and records the measurements,
:mod:`~landscape.track.measures` computes one (with the engines of ``landscape hessian`` and
``landscape sharpness``) and :mod:`~landscape.track.preserve` makes sure the training never
notices. The callbacks of Lightning and Hugging Face's Trainer are in
:mod:`landscape.integrations`.
"""

from landscape.track.measures import MEASURES, TrackSettings
from landscape.track.tracker import Tracker

__all__ = ["MEASURES", "TrackSettings", "Tracker"]
