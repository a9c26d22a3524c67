"""Figures from landscape result files and training runs.

One module per figure family (surface1d, surface2d, interpolation, hessian, training, compare,
sharpness, escape); ``results`` reads result files into plain arrays, ``discover`` lists the
figures a file gives, ``report`` writes the HTML page, ``style`` holds the one shared look.
Figure functions return :class:`matplotlib.figure.Figure` objects built without pyplot.
"""

from landscape.registry import RESULT_KINDS

# The figure kinds of `landscape plot --only` and `report --only`: the registered result kinds
# with figures (landscape.registry, which imports nothing heavy: the command line lists them
# while it builds its parser), a run's training curves and the comparisons across runs.
FIGURE_KINDS = (
    *(name for name, kind in RESULT_KINDS.items() if kind.figures is not None),
    "training",
    "compare",
)
