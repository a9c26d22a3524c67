"""The parallel-execution seam: shares of examples and grid points, and the single process."""

import pytest
import torch

from landscape.parallel import SINGLE, Partition


@pytest.mark.parametrize("n", [0, 1, 7, 10, 1001])
@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_example_shares_cover_every_example_once_in_order(n, world):
    shares = [Partition(rank, world).example_range(n) for rank in range(world)]
    assert [i for share in shares for i in share] == list(range(n))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


@pytest.mark.parametrize("world", [1, 2, 3])
def test_grid_points_are_dealt_once_each_and_balanced(world):
    points = list(range(3, 20))  # e.g. what is left of a resumed grid
    owned = [Partition(rank, world).owned(points) for rank in range(world)]
    assert sorted(p for share in owned for p in share) == points
    assert max(map(len, owned)) - min(map(len, owned)) <= 1


def test_only_rank_zero_writes():
    assert SINGLE.is_writer and Partition(0, 4).is_writer
    assert not any(Partition(rank, 4).is_writer for rank in range(1, 4))


def test_a_single_process_combines_by_the_identity():
    t = torch.arange(3.0)
    assert SINGLE.sum_(t) is t and torch.equal(t, torch.arange(3.0))
    assert SINGLE.gather({"a": 1}) == [{"a": 1}]
    assert SINGLE.broadcast(5) == 5
    assert SINGLE.provenance() == {"world_size": 1, "backend": "none"}


@pytest.mark.parametrize("rank, world", [(-1, 2), (2, 2), (0, 0)])
def test_a_rank_outside_the_world_is_refused(rank, world):
    with pytest.raises(ValueError, match="not a process"):
        Partition(rank, world)
