"""sample_jobs/report.py, the sample app's job, run with a JobContext and no AWS."""

from __future__ import annotations

import datetime as dt

import pytest

from lambda_handlers import JobCancelledError, JobContext, JobFailedError
from lambda_handlers.job import ProgressAck
from sample_jobs.report import generate

JOB_ID = "4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21"


def context(writes: list[tuple[float, str | None]], cancel_after: int | None = None) -> JobContext:
    def write(percent: float, message: str | None) -> ProgressAck:
        writes.append((percent, message))
        if cancel_after is not None and len(writes) >= cancel_after:
            return ProgressAck.CANCEL_REQUESTED
        return ProgressAck.HELD

    # A clock that moves 1 s per reading, so every report is written.
    ticks = iter(range(10_000))
    return JobContext(
        JOB_ID, progress_writer=write, clock=lambda: float(next(ticks)), time_limit=dt.timedelta(minutes=1)
    )


def test_reports_progress_after_each_step_and_returns_a_report() -> None:
    writes: list[tuple[float, str | None]] = []

    result = generate({"seconds": 0.03, "steps": 3}, context(writes))

    assert writes == [(33.33, "step 1/3"), (66.67, "step 2/3"), (100.0, "step 3/3")]
    assert result == {"report": f"Report of job {JOB_ID}: 3 steps in 0.03 s", "seconds": 0.03, "steps": 3}


def test_defaults_to_ten_steps() -> None:
    writes: list[tuple[float, str | None]] = []

    assert generate({"seconds": 0}, context(writes))["steps"] == 10
    assert len(writes) == 10


@pytest.mark.parametrize("seconds", [-1, 841, "60", True, None, float("nan"), float("inf")])
def test_fails_at_once_on_invalid_seconds(seconds: object) -> None:
    with pytest.raises(JobFailedError, match=r"payload.seconds must be a number from 0 to 840"):
        generate({"seconds": seconds}, context([]))


@pytest.mark.parametrize("steps", [0, 1_001, 2.5, "3", False])
def test_fails_at_once_on_invalid_steps(steps: object) -> None:
    with pytest.raises(JobFailedError, match=r"payload.steps must be a whole number"):
        generate({"seconds": 0, "steps": steps}, context([]))


def test_fails_on_purpose_after_the_work_when_asked() -> None:
    writes: list[tuple[float, str | None]] = []

    with pytest.raises(RuntimeError, match="on purpose"):
        generate({"seconds": 0, "steps": 2, "fail": True}, context(writes))
    assert len(writes) == 2


def test_stops_after_the_step_in_which_cancellation_was_requested() -> None:
    writes: list[tuple[float, str | None]] = []

    with pytest.raises(JobCancelledError, match="after step 2/5"):
        generate({"seconds": 0, "steps": 5}, context(writes, cancel_after=2))

    assert [message for _, message in writes] == ["step 1/5", "step 2/5"]


def test_finishes_when_cancellation_comes_with_the_last_step() -> None:
    writes: list[tuple[float, str | None]] = []

    result = generate({"seconds": 0, "steps": 3}, context(writes, cancel_after=3))

    assert result["steps"] == 3


def test_honours_a_cancel_request_it_starts_with() -> None:
    job = JobContext(JOB_ID, cancel_requested=True)

    with pytest.raises(JobCancelledError, match="after step 1/4"):
        generate({"seconds": 0, "steps": 4}, job)
