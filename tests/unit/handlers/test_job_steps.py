"""``job.step`` and ``job.wait`` of a short job type: a plain call, and a sleep within the time left."""

from __future__ import annotations

import datetime as dt

import pytest

from lambda_handlers import JobContext, JobTimeoutError
from lambda_handlers.job import STEP_NAME_MAX_CHARS, wait_seconds

JOB_ID = "4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21"


def test_a_step_calls_its_function_with_its_arguments_and_returns_its_result() -> None:
    job = JobContext(JOB_ID)
    calls: list[tuple[int, int]] = []

    def add(a: int, b: int) -> int:
        calls.append((a, b))
        return a + b

    assert job.step("add", add, 2, 3) == 5
    assert calls == [(2, 3)]


def test_a_step_lets_its_function_s_error_through() -> None:
    job = JobContext(JOB_ID)

    def boom() -> None:
        raise RuntimeError("the report service answered 502")

    with pytest.raises(RuntimeError, match="502"):
        job.step("fetch", boom)


@pytest.mark.parametrize("name", ["", "   ", "x" * (STEP_NAME_MAX_CHARS + 1), None, "état", "load\n"])
def test_fails_if_a_step_has_no_usable_name(name: object) -> None:
    job = JobContext(JOB_ID)

    with pytest.raises(ValueError, match="a step's name must be"):
        job.step(name, lambda: None)  # type: ignore[arg-type]


def test_a_wait_sleeps_for_its_duration() -> None:
    job = JobContext(JOB_ID, time_limit=dt.timedelta(seconds=10))

    started = dt.datetime.now()
    job.wait(dt.timedelta(milliseconds=200))
    elapsed = (dt.datetime.now() - started).total_seconds()

    assert 0.19 <= elapsed < 2


def test_a_wait_longer_than_the_time_left_fails_at_once_without_sleeping() -> None:
    job = JobContext(JOB_ID, time_limit=dt.timedelta(seconds=1))

    started = dt.datetime.now()
    with pytest.raises(JobTimeoutError, match=r"job.wait\(30 s\) would outlast"):
        job.wait(30)

    assert (dt.datetime.now() - started).total_seconds() < 0.5


@pytest.mark.parametrize(
    ("duration", "error"),
    [
        (-1, ValueError),
        (float("inf"), ValueError),
        (float("nan"), ValueError),
        ("5", TypeError),
        (True, TypeError),
    ],
)
def test_fails_if_a_wait_is_not_a_duration(duration: object, error: type[Exception]) -> None:
    with pytest.raises(error, match=r"job\.wait takes"):
        wait_seconds(duration)  # type: ignore[arg-type]


def test_a_wait_takes_seconds_or_a_timedelta() -> None:
    assert wait_seconds(90) == 90.0
    assert wait_seconds(dt.timedelta(minutes=2)) == 120.0
