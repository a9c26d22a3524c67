"""Figures from landscape result files and training runs.

One module per figure family (surface1d, surface2d, interpolation, hessian, training, compare,
sharpness, escape); ``results`` reads result files into plain arrays, ``discover`` lists the
figures a file gives, ``report`` writes the HTML page, ``style`` holds the one shared look.
Figure functions return :class:`matplotlib.figure.Figure` objects built without pyplot.
"""

# The figure kinds of `landscape plot --only` and `report --only`, in drawing order (no imports
# here: the command line lists them while it builds its parser).
FIGURE_KINDS = (
    "surface",
    "interpolation",
    "hessian",
    "sharpness",
    "escape",
    "track",
    "experiment",
    "training",
    "compare",
)
