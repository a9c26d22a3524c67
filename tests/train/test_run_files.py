"""Reading a run's checkpoint for --from and --resume: the same safe checks as every analysis."""

import pytest
import torch

from landscape.errors import UserError
from landscape.train.run_files import load_run_checkpoint


@pytest.mark.parametrize(
    "write, message",
    [
        (lambda p: p.write_text("epoch,loss\n1,0.5\n"), "is a text file"),
        (lambda p: p.write_bytes(b""), "is empty"),
        (lambda p: torch.save({"model": {}}, p), "not a landscape training checkpoint"),
        (lambda p: None, "does not exist"),
    ],
)
def test_files_that_cannot_be_continued_are_one_line_user_errors(tmp_path, write, message):
    path = tmp_path / "epoch-010-sgd.pt"
    write(path)
    with pytest.raises(UserError, match=message):
        load_run_checkpoint(path)
