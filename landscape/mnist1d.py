"""MNIST-1D generated here, offline: ten 1-D digit templates under random transformations.

Greydanus, "Scaling down deep learning" (2020; arXiv:2011.14439) proposes MNIST-1D: each
example is one of ten short 1-D templates, padded with zeros, stretched, rescaled, shifted
in time, put on a background of correlated noise, given i.i.d. noise and a linear trend
(shear), and sampled at 40 points. Small models then separate clearly (a linear model and an
MLP reach far lower test accuracy than a CNN), and an epoch takes milliseconds on a CPU,
while there can be as many test examples as one wants.

This is our own implementation of that recipe (the ``mnist1d`` package is neither needed
nor used, and nothing is downloaded). The templates are our own digit-like shapes with 12
points each, normalised as in the paper (zero mean, unit variance, starting at 0, /6); the
transformation parameters follow the paper's defaults (:class:`Recipe`). The generator is
deterministic in its seed, so the train and test splits are fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Ten templates of 12 points: shapes that differ in the order, sign and width of their bumps
# and ramps, so that no single point, and no linear feature of a shifted copy, separates them.
_TEMPLATES = np.array(
    [
        [0.0, 1.0, 1.6, 1.9, 2.0, 2.0, 2.0, 1.9, 1.6, 1.0, 0.4, 0.0],  # 0: one wide bump
        [0.0, -1.8, -1.8, -1.4, -1.0, -0.6, -0.2, 0.2, 0.6, 1.0, 0.0, 0.0],  # 1: dip, long rise
        [0.0, 1.0, 1.5, 1.4, 0.9, 0.2, -0.3, -0.9, -1.4, -1.4, -0.9, 0.0],  # 2: bump, fall
        [0.0, 1.1, 1.5, 1.4, 0.8, 0.0, 0.1, 0.9, 1.5, 1.4, 0.9, 0.0],  # 3: two bumps
        [0.0, -0.5, -1.1, -1.6, -2.2, -2.2, 0.1, 0.1, 0.1, 0.0, 0.0, 0.0],  # 4: ramp down, jump
        [0.0, -1.7, -1.8, -1.7, -1.6, 0.1, 1.0, 1.5, 1.5, 1.0, -0.4, 0.0],  # 5: low step, bump
        [0.0, -0.9, -1.4, -1.7, -1.9, -2.0, -2.0, -1.9, -1.7, -1.4, -0.9, 0.0],  # 6: wide trough
        [0.0, 2.0, 2.0, 1.6, 1.2, 0.8, 0.4, 0.0, -0.4, -0.8, 0.0, 0.0],  # 7: jump, long fall
        [0.0, -1.0, -1.5, -1.4, -0.9, 0.0, -0.1, -0.9, -1.5, -1.4, -0.9, 0.0],  # 8: two troughs
        [0.0, -1.0, -1.5, -1.5, -1.0, 0.0, 0.0, 0.0, 0.1, -0.3, -0.7, 0.0],  # 9: trough, flat
    ]
)


def templates() -> np.ndarray:
    """The ten templates (10, 12), standardised per template, starting at 0, divided by 6."""
    x = _TEMPLATES - _TEMPLATES.mean(axis=1, keepdims=True)
    x = x / x.std(axis=1, keepdims=True)
    return (x - x[:, :1]) / 6.0


@dataclass(frozen=True)
class Recipe:
    """The transformations and their sizes (the paper's defaults)."""

    padding: tuple[int, int] = (36, 60)  # zeros appended to a template: uniform in this range
    scale: float = 0.4  # amplitude factor uniform in 1 +- scale / 2
    max_shift: int = 48  # circular shift uniform in 0 .. max_shift - 1 samples
    correlated_noise: float = 0.25  # std of the background noise before smoothing
    smoothing: float = 2.0  # std (samples) of the Gaussian filter that correlates it
    iid_noise: float = 0.02  # std of the noise added everywhere
    shear: float = 0.75  # slope of the linear trend uniform in +- shear / 2
    length: int = 40  # samples per example


def _resample(x: np.ndarray, length: int) -> np.ndarray:
    """Linear interpolation of each row of ``x`` onto ``length`` equally spaced points."""
    old = np.linspace(0.0, 1.0, x.shape[-1])
    new = np.linspace(0.0, 1.0, length)
    right = np.clip(np.searchsorted(old, new, side="right"), 1, len(old) - 1)
    left = right - 1
    w = (new - old[left]) / (old[right] - old[left])
    return x[..., left] * (1 - w) + x[..., right] * w


def generate(n: int, seed: int, recipe: Recipe = Recipe()) -> tuple[np.ndarray, np.ndarray]:
    """``n`` examples (float64, (n, length)) and labels (int64), classes balanced and shuffled."""
    from scipy.ndimage import gaussian_filter1d

    rng = np.random.default_rng(seed)
    shapes = templates()
    labels = rng.permutation(np.arange(n) % len(shapes))
    low, high = recipe.padding
    span = shapes.shape[1] + high  # every padded template is stretched onto this many samples
    signal = np.zeros((n, span))
    support = np.zeros((n, span), dtype=bool)
    pads = rng.integers(low, high + 1, size=n)
    for pad in np.unique(pads):
        rows = np.flatnonzero(pads == pad)
        padded = np.concatenate([shapes[labels[rows]], np.zeros((rows.size, pad))], axis=1)
        signal[rows] = _resample(padded, span)  # shorter padding: a wider digit
        inside = np.concatenate([np.ones(shapes.shape[1]), np.zeros(pad)])
        support[rows] = _resample(inside[None], span)[0] > 0
    signal *= 1 + recipe.scale * (rng.random((n, 1)) - 0.5)
    shifts = rng.integers(0, recipe.max_shift, size=n)
    index = (np.arange(span)[None, :] - shifts[:, None]) % span
    signal = np.take_along_axis(signal, index, axis=1)
    support = np.take_along_axis(support, index, axis=1)
    background = gaussian_filter1d(
        rng.normal(0.0, recipe.correlated_noise, (n, span)), recipe.smoothing, axis=1
    )
    x = np.where(support, signal, background)
    x = x + rng.normal(0.0, recipe.iid_noise, (n, span))
    x = x - recipe.shear * (rng.random((n, 1)) - 0.5) * np.linspace(-0.5, 0.5, span)[None]
    return _resample(x, recipe.length), labels.astype(np.int64)
