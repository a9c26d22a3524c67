"""Sharpness tracked by the training frameworks' own callback systems.

* :mod:`landscape.integrations.lightning`: ``SharpnessCallback`` for a Lightning ``Trainer``
  (package ``lightning`` or ``pytorch_lightning``);
* :mod:`landscape.integrations.transformers`: ``SharpnessCallback`` for Hugging Face's
  ``Trainer``.

Each is importable only where its framework is installed (an ImportError saying what to
install otherwise) and is a thin adapter around :class:`landscape.Tracker`: the measures, the
file and the guarantee that the training is unchanged are the tracker's.
"""
