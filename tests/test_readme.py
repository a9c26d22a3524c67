"""The README's Python code runs as written, on a checkpoint where the quick start puts one."""

import re
import shutil
from pathlib import Path

import pytest

from landscape.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
QUICK_START_FINAL = Path("checkpoints/digits-cnn-bn-sam45-s0/epoch-060-sam.pt")

pytestmark = pytest.mark.usefixtures("one_thread")


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_the_readme_has_python_code_starting_from_a_checkpoint():
    blocks = python_blocks(README.read_text())
    assert blocks and any("landscape.load(" in block for block in blocks)


@pytest.mark.slow
def test_the_readme_python_blocks_run_as_written(tmp_path, monkeypatch, capsys):
    # A short real training run stands in for the quick start's (an untrained network's
    # spread-out spectrum would make the trace ten times as expensive as on a trained one).
    monkeypatch.chdir(tmp_path)
    run = [
        "train",
        "--epochs",
        "3",
        "--sam-start",
        "2",
        "--threads",
        "1",
        "--run",
        QUICK_START_FINAL.parent.name,
    ]
    assert main(run) == 0
    shutil.copy(QUICK_START_FINAL.parent / "epoch-003-sam.pt", QUICK_START_FINAL)
    capsys.readouterr()
    namespace: dict = {"__name__": "__readme__"}
    for block in python_blocks(README.read_text()):
        exec(compile(block, str(README), "exec"), namespace)
    printed = capsys.readouterr().out
    assert "cnn-bn 3 sam digits" in printed and "tr H = " in printed
