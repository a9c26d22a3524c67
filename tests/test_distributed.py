"""torch.distributed behind the Partition seam: what a command's set-up does without a GPU and
without spawning (the multi-process behaviour is in the slow suite:
tests/cli/test_distributed_cli.py)."""

import sys

import pytest
import torch

from landscape import distributed
from landscape.cli import _rank_note
from landscape.parallel import SINGLE

TORCHRUN_RANK_1 = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}


@pytest.fixture
def torchrun_env(monkeypatch):
    for key, value in TORCHRUN_RANK_1.items():
        monkeypatch.setenv(key, value)


@pytest.mark.parametrize(
    "requested, expected", [("cuda", "cuda:1"), ("cuda:0", "cuda:0"), ("cpu", "cpu")]
)
def test_cuda_means_this_ranks_own_gpu_under_torchrun(torchrun_env, requested, expected):
    assert distributed.rank_device(torch.device(requested)) == torch.device(expected)


def test_without_torchrun_nothing_changes(monkeypatch):
    for key in TORCHRUN_RANK_1:
        monkeypatch.delenv(key, raising=False)
    stdout = sys.stdout
    assert distributed.join(torch.device("cuda")) == (SINGLE, torch.device("cuda"))
    assert sys.stdout is stdout and _rank_note() == ""


def test_errors_name_the_rank_under_torchrun(torchrun_env):
    assert _rank_note() == " [rank 1 of 2]"


def test_a_failed_collective_says_a_peer_stopped():
    gloo = RuntimeError(
        "[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:561] Connection closed by peer "
        "[127.0.0.1]:48026. This is typically caused by a remote worker"
    )

    def fails():
        raise gloo

    with pytest.raises(distributed.PeerFailed) as caught:
        distributed._collective("a sum", fails)
    message = str(caught.value)
    assert message.startswith("a sum across processes failed (Connection closed by peer ")
    assert "another rank of this run stopped" in message and "pair.cc" not in message


def test_every_flag_can_be_written_under_torchrun():
    """torchrun's parser stops with 'ambiguous option' at a flag that abbreviates two of its own
    (``--m``, ``--run``), even after ``-m landscape``: such a flag needs a second spelling."""
    from torch.distributed.run import get_args_parser

    from landscape.cli import build_parser

    theirs = [s for a in get_args_parser()._actions for s in a.option_strings]

    def ambiguous(flag: str) -> bool:
        return flag not in theirs and len([s for s in theirs if s.startswith(flag)]) > 1

    _, commands = build_parser()
    stuck = [
        f"{name} {action.option_strings}"
        for name, command in commands.items()
        for action in command._actions
        if action.option_strings and all(ambiguous(s) for s in action.option_strings)
    ]
    assert stuck == []
