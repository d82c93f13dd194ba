"""lambda_handlers.job: what a team's handler is given; progress validation and throttling."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from lambda_handlers import JobCancelledError, JobContext, JobLeaseLostError
from lambda_handlers.job import ProgressAck


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Writer:
    def __init__(self, holds: bool | ProgressAck = True) -> None:
        self.writes: list[tuple[float, str | None]] = []
        self.holds = holds

    def __call__(self, percent: float, message: str | None) -> bool | ProgressAck:
        self.writes.append((percent, message))
        return self.holds


def context(writer: Writer, clock: Clock, **kwargs: object) -> JobContext:
    return JobContext("4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21", progress_writer=writer, clock=clock, **kwargs)  # type: ignore[arg-type]


def test_writes_the_first_report_then_at_most_once_a_second_and_always_100() -> None:
    writer, clock = Writer(), Clock()
    job = context(writer, clock)

    job.report_progress(1, "first")
    clock.now += 0.5
    job.report_progress(2, "skipped")
    clock.now += 0.5
    job.report_progress(3, "a second later")
    clock.now += 0.1
    job.report_progress(100, "done")

    assert writer.writes == [(1.0, "first"), (3.0, "a second later"), (100.0, "done")]


def test_rounds_percent_and_cuts_long_messages() -> None:
    writer = Writer()

    context(writer, Clock()).report_progress(100 / 3, "m" * 1_500)

    assert writer.writes == [(33.33, "m" * 1_000)]


@pytest.mark.parametrize("percent", [-0.01, 100.01, float("nan"), float("inf")])
def test_refuses_percent_outside_0_to_100(percent: float) -> None:
    writer = Writer()

    with pytest.raises(ValueError, match="percent must be a number from 0 to 100"):
        context(writer, Clock()).report_progress(percent)
    assert writer.writes == []


@pytest.mark.parametrize(("percent", "message"), [("50", None), (True, None), (None, None), (50, 7)])
def test_refuses_wrong_types(percent: object, message: object) -> None:
    with pytest.raises(TypeError):
        context(Writer(), Clock()).report_progress(percent, message)  # type: ignore[arg-type]


def test_raises_lease_lost_when_the_run_no_longer_holds_the_job() -> None:
    job = context(Writer(holds=False), Clock())

    with pytest.raises(JobLeaseLostError, match="no longer held"):
        job.report_progress(10)


def test_counts_down_the_remaining_time() -> None:
    clock = Clock()
    job = context(Writer(), clock, time_limit=dt.timedelta(seconds=30), attempt=3, max_attempts=3)

    clock.now += 12.5

    assert job.remaining_time_ms() == 17_500
    assert job.remaining_time == dt.timedelta(milliseconds=17_500)
    assert job.is_last_attempt
    clock.now += 60
    assert job.remaining_time == dt.timedelta(0)


def test_works_without_aws_for_a_teams_own_tests(caplog: pytest.LogCaptureFixture) -> None:
    job = JobContext("4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21")

    with caplog.at_level(logging.INFO):
        job.report_progress(50, "half")

    assert "progress 50.0% half" in caplog.text
    assert job.attempt == 1
    assert not job.is_last_attempt or job.max_attempts == 1
    assert job.remaining_time > dt.timedelta(minutes=14)


@pytest.mark.parametrize("lost", [False, ProgressAck.LOST])
def test_raises_lease_lost_whichever_way_the_writer_says_it(lost: bool | ProgressAck) -> None:
    with pytest.raises(JobLeaseLostError):
        context(Writer(holds=lost), Clock()).report_progress(10)


def test_learns_of_a_cancel_request_with_a_progress_write() -> None:
    writer, clock = Writer(), Clock()
    job = context(writer, clock)

    job.report_progress(10)
    assert job.cancel_requested is False

    writer.holds = ProgressAck.CANCEL_REQUESTED
    clock.now += 0.5
    job.report_progress(20)  # not written (within a second): nothing learnt
    assert job.cancel_requested is False
    clock.now += 0.5
    job.report_progress(30)

    assert job.cancel_requested is True
    assert "cancel_requested=True" in repr(job)
    # AND it stays requested; the handler decides where to stop
    writer.holds = ProgressAck.HELD
    clock.now += 1
    job.report_progress(40)
    assert job.cancel_requested is True


def test_a_teams_test_can_start_with_a_cancel_request() -> None:
    job = JobContext("4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21", cancel_requested=True)

    assert job.cancel_requested is True
    assert JobContext("4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21").cancel_requested is False
    assert issubclass(JobCancelledError, Exception)
