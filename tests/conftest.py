"""Suite-wide setup: OpenMP threads must not busy-wait on a shared 2-core machine.

Set before any test module imports torch (conftest files are imported first).
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
