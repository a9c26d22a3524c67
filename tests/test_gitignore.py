"""What the quick start writes into the clone stays out of git (issue 12, item 8)."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(
    shutil.which("git") is None or not (REPO / ".git").exists(), reason="not a git checkout"
)
@pytest.mark.parametrize(
    "path",
    [
        "checkpoints/digits-cnn-bn-sam45-s0/epoch-060-sam.pt",
        "analyses/run.h5",
        "analyses/hessian.h5",
        "figures/pca-contour.png",
        "report/report.html",
    ],
)
def test_quick_start_outputs_are_ignored(path):
    assert subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO).returncode == 0
