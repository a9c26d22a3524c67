"""The progress reporter: phase name, count/total, estimate vs target and ETA, bar or lines."""

import io
import logging
import math

import pytest

from landscape.progress import (
    Reporter,
    Status,
    clock,
    describe,
    geometric_total,
    projected_total,
    report,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def plain(clock_fn, every_s=5.0) -> Reporter:
    return Reporter(True, bar=False, every_s=every_s, clock=clock_fn)


def test_plain_line_names_phase_count_estimate_target_and_eta(caplog):
    fake = FakeClock()
    caplog.set_level(logging.INFO, logger="landscape.progress")
    with plain(fake).phase("trace", unit="products") as phase:
        fake.now = 10.0
        phase(
            Status(
                done=20,
                total=100,
                limit=2000,
                estimate=2310.0,
                name="trace",
                error=0.018,
                error_name="rel. stderr",
                target=0.01,
            )
        )
    line = caplog.messages[0]
    assert line.startswith("trace: 20/100 (limit 2000) products")
    assert "trace 2310" in line and "rel. stderr 0.018 (target 0.01)" in line
    assert "0.5 s/product" in line and "ETA 0:40" in line  # 80 more at 0.5 s each


def test_plain_lines_are_throttled_to_every_s(caplog):
    fake = FakeClock()
    caplog.set_level(logging.INFO, logger="landscape.progress")
    phase = plain(fake, every_s=5.0).phase("surface", total=100, unit="points")
    for i in range(100):
        fake.now = 0.1 * (i + 1)  # 10 s in all
        phase.advance()
    assert len(caplog.messages) == 2  # at 5 s and at 10 s
    phase.close()
    assert caplog.messages[-1].startswith("surface: 100 points in 10.0 s")


def test_disabled_reporter_says_nothing(caplog):
    fake = FakeClock()
    caplog.set_level(logging.INFO, logger="landscape.progress")
    with Reporter(False, clock=fake).phase("x", total=3) as phase:
        fake.now = 100.0
        phase.advance()
    assert caplog.messages == []


def test_bar_shows_count_total_and_estimate():
    stream = io.StringIO()
    reporter = Reporter(True, bar=True, stream=stream)
    with reporter.phase("top-1 eigenvalues", unit="products") as phase:
        phase(
            Status(
                done=3,
                total=40,
                estimate=12.5,
                name="lambda1",
                error=1e-2,
                error_name="rel. residual",
                target=1e-4,
            )
        )
        assert phase.bar.n == 3 and phase.bar.total == 40
        assert "lambda1 12.5" in phase.bar.postfix and "(target 0.0001)" in phase.bar.postfix
        phase(Status(done=4, total=30))  # a revised projection shrinks the bar
        assert phase.bar.total == 30
    assert "top-1 eigenvalues" in stream.getvalue()


def test_advance_keeps_the_other_fields():
    phase = plain(FakeClock()).phase("escape", total=10, unit="steps")
    phase.advance(estimate=0.5, name="distance")
    phase.advance()
    assert phase.status.done == 2 and phase.status.estimate == 0.5 and phase.status.total == 10


def test_report_is_a_no_op_without_callback():
    report(None, done=1)
    seen = []
    report(seen.append, done=3, total=4)
    assert seen == [Status(done=3, total=4)]


@pytest.mark.parametrize(
    "done, error, target, limit, expected",
    [
        (10, 0.02, 0.01, None, 40),
        (10, 0.02, 0.01, 25, 25),
        (10, 0.005, 0.01, None, 10),
        (10, math.inf, 0.01, 99, 99),
    ],
)
def test_projected_total_of_a_standard_error(done, error, target, limit, expected):
    assert projected_total(done, error, target, 2.0, limit) == expected


def test_geometric_total_extrapolates_a_decaying_error():
    history = [10.0**-i for i in range(1, 6)]  # one decade per unit, at 1e-5 after 5
    assert geometric_total(history, 1e-8, limit=500) == 8
    assert geometric_total([1.0, 1.0, 1.0], 1e-8, limit=500) == 500


@pytest.mark.parametrize(
    "seconds, text", [(5, "0:05"), (125, "2:05"), (3725, "1:02:05"), (math.nan, "?")]
)
def test_clock(seconds, text):
    assert clock(seconds) == text


@pytest.mark.parametrize("level, enabled", [(logging.INFO, True), (logging.WARNING, False)])
def test_the_cli_reporter_follows_the_progress_logger_level(level, enabled):
    from landscape.progress import cli_reporter, log

    old = log.level
    log.setLevel(level)
    try:
        assert cli_reporter(bar=False).enabled is enabled
    finally:
        log.setLevel(old)


def test_with_only_a_budget_the_line_shows_it_but_makes_no_eta(caplog):
    fake = FakeClock()
    caplog.set_level(logging.INFO, logger="landscape.progress")
    phase = plain(fake, every_s=1.0).phase("trace", unit="products")
    fake.now = 2.0
    phase(Status(done=8, limit=2000, estimate=3.0, name="trace", note="pilot 8 samples"))
    assert caplog.messages[0].startswith("trace: 8 (limit 2000) products, trace 3")
    assert "ETA" not in caplog.messages[0]


@pytest.mark.parametrize("error, shown", [(7e-9, "7.0e-09"), (0.02, "0.020"), (0.018, "0.018")])
def test_the_error_is_shown_to_two_significant_digits(error, shown):
    status = Status(done=1, error=error, error_name="rel. eigenvalue error bound", target=1e-4)
    assert f"rel. eigenvalue error bound {shown} (target" in describe(status)
