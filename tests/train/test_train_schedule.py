"""Learning rate and SGD/SAM phase per epoch; which epochs are checkpointed."""

import math

import pytest

from landscape.train.schedule import (
    default_milestones,
    is_save_epoch,
    learning_rate,
    phase,
    switch_epochs,
)


def test_step_schedule_drops_tenfold_at_each_milestone():
    lrs = [
        learning_rate(e, lr=0.1, schedule="step", epochs=160, milestones=[80, 120])
        for e in (0, 79, 80, 119, 120)
    ]
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])


def test_default_milestone_is_half_the_epochs_as_in_the_paper():
    assert default_milestones(160) == [80]
    assert default_milestones(1) == []


def test_cosine_schedule_starts_at_lr_and_decays_to_near_zero():
    lrs = [learning_rate(e, lr=0.1, schedule="cosine", epochs=10) for e in range(10)]
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[5] == pytest.approx(0.05)
    assert lrs[-1] == pytest.approx(0.05 * (1 + math.cos(math.pi * 0.9)))
    assert all(a > b for a, b in zip(lrs, lrs[1:]))


@pytest.mark.parametrize(
    ("sam_start", "sam_end", "phases"),
    [
        (None, None, "ggggg"),
        (3, None, "gggss"),
        (0, None, "sssss"),
        (1, 3, "gssgg"),
        (5, None, "ggggg"),
    ],
)
def test_phase_of_each_epoch(sam_start, sam_end, phases):
    names = {"g": "sgd", "s": "sam"}
    assert [phase(e, sam_start, sam_end) for e in range(5)] == [names[c] for c in phases]


def test_switch_epochs_are_the_last_epoch_of_each_phase():
    assert switch_epochs(10, 6, None) == [6]
    assert switch_epochs(10, 4, 8) == [4, 8]
    assert switch_epochs(10, None, None) == []
    assert switch_epochs(10, 0, None) == []


def test_checkpoints_every_n_epochs_before_each_switch_and_at_the_end():
    saved = [
        e for e in range(1, 11) if is_save_epoch(e, epochs=10, save_every=4, sam_start=6, sam_end=9)
    ]
    assert saved == [4, 6, 8, 9, 10]


def test_save_every_zero_keeps_only_switches_and_end():
    saved = [
        e
        for e in range(1, 11)
        if is_save_epoch(e, epochs=10, save_every=0, sam_start=7, sam_end=None)
    ]
    assert saved == [7, 10]
