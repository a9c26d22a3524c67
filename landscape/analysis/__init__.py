"""The analyses, between the command line and the numerical engines.

One module per analysis (``hessian``, ``surface``, ``interpolation``, ``sharpness``,
``escape``). Each has an options dataclass (typed; the CLI fills it from argv, the experiment and
API users build it directly) and one function that takes the options, loaded checkpoints and
data, a :class:`~landscape.parallel.Partition` and a progress callback, and returns the result
objects of :mod:`landscape.results` -- saving them, periodically and on resume, through one
place. Nothing here parses argv or prints; ``landscape/cli/<command>.py`` parses, calls one
function and prints.
"""
