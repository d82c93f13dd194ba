"""lambda_handlers.deadline: the safety margin and the SIGALRM time limit."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from lambda_handlers import JobTimeoutError
from lambda_handlers.deadline import safety_margin_ms, time_limit


@pytest.mark.parametrize(
    ("remaining_ms", "margin_ms"),
    [(900_000, 10_000), (200_000, 10_000), (100_000, 5_000), (60_000, 3_000), (20_000, 1_000), (500, 1_000)],
)
def test_keeps_5_percent_of_the_remaining_time_between_1_and_10_seconds(
    remaining_ms: int, margin_ms: int
) -> None:
    assert safety_margin_ms(remaining_ms) == margin_ms


def test_interrupts_the_block_and_cleans_up() -> None:
    previous = signal.getsignal(signal.SIGALRM)
    started = time.monotonic()

    armed: list[bool] = []

    def sleep_under_a_limit() -> None:
        with time_limit(0.05) as limited:
            armed.append(limited)
            time.sleep(5)

    with pytest.raises(JobTimeoutError, match="ran out of time"):
        sleep_under_a_limit()

    assert armed == [True]

    assert time.monotonic() - started < 1
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) == previous


def test_a_block_that_ends_in_time_is_not_interrupted() -> None:
    with time_limit(0.2):
        time.sleep(0.01)
    time.sleep(0.3)  # the timer was cancelled: nothing fires now

    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_does_not_arm_outside_the_main_thread() -> None:
    seen: list[bool] = []

    def run() -> None:
        with time_limit(0.01) as armed:
            seen.append(armed)
            time.sleep(0.05)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()

    assert seen == [False]
