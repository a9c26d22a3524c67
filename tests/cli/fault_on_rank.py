"""``landscape`` with one fault injected, run under torchrun by the tests.

On rank ``LANDSCAPE_TEST_FAULT_RANK`` the ``LANDSCAPE_TEST_FAULT_AT``-th call (from 0) of
``LANDSCAPE_TEST_FAULT_IN`` (``hvp``: a Hessian-vector product; ``point``: a grid point)
raises (``LANDSCAPE_TEST_FAULT_KIND=raise``) or kills the process (``kill``: SIGKILL).
"""

import os
import signal
import sys

from landscape.cli import main
from landscape.curvature.operator import HessianOperator
from landscape.surface.grid import PointEvaluator

_calls = 0


def _faulty(original):
    def call(self, *args):
        global _calls
        if os.environ["RANK"] == os.environ["LANDSCAPE_TEST_FAULT_RANK"]:
            if _calls == int(os.environ["LANDSCAPE_TEST_FAULT_AT"]):
                if os.environ.get("LANDSCAPE_TEST_FAULT_KIND", "raise") == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                raise RuntimeError("injected fault")
            _calls += 1
        return original(self, *args)

    return call


if os.environ.get("LANDSCAPE_TEST_FAULT_IN", "hvp") == "hvp":
    HessianOperator.matvec = _faulty(HessianOperator.matvec)
else:
    PointEvaluator.__call__ = _faulty(PointEvaluator.__call__)
sys.exit(main())
