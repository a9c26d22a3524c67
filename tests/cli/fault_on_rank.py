"""``landscape`` with one fault injected: rank LANDSCAPE_TEST_FAULT_RANK raises at its
LANDSCAPE_TEST_FAULT_AT-th Hessian-vector product (run under torchrun by the tests)."""

import os
import sys

from landscape.cli import main
from landscape.curvature import operator

_matvec = operator.HessianOperator.matvec


def _faulty(self, v):
    if os.environ["RANK"] == os.environ["LANDSCAPE_TEST_FAULT_RANK"] and self.hvp_count == int(
        os.environ["LANDSCAPE_TEST_FAULT_AT"]
    ):
        raise RuntimeError("injected fault")
    return _matvec(self, v)


operator.HessianOperator.matvec = _faulty
sys.exit(main())
