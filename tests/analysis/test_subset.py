"""The analysis subset: asking for more examples than a split has is said, once."""

import logging

import pytest

from landscape.analysis.subset import say_short_splits


def test_more_samples_than_the_split_has_is_one_line_naming_the_count_used(caplog):
    with caplog.at_level(logging.WARNING):
        say_short_splits(100_000, "digits", {"train": 1437, "test": 360})
    assert [r.getMessage() for r in caplog.records] == [
        "--samples 100,000 is more than digits has (the train split 1,437, the test split 360); "
        "using all of them (recorded: samples=1437)"
    ]


@pytest.mark.parametrize("samples", [None, 1437, 64])
def test_samples_that_fit_or_were_not_given_say_nothing(caplog, samples):
    with caplog.at_level(logging.WARNING):
        say_short_splits(samples, "digits", {"train": 1437})
    assert caplog.records == []
