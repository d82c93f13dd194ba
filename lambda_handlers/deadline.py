"""Stopping a job handler before the Lambda deadline, so that the attempt's failure can still be recorded.

Lambda ends a timed-out invocation without warning; a handler stopped a little earlier with ``JobTimeoutError``
leaves the worker time to write the failure. The stop is a ``SIGALRM`` from ``setitimer``, which Python turns
into an exception in the main thread between two bytecodes (a handler blocked in C code is not interrupted;
then the message is dead-lettered and the dead-letter consumer fails the job).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Final

from lambda_handlers.job import JobTimeoutError

__all__ = ["safety_margin_ms", "time_limit"]

MIN_MARGIN_MS: Final = 1_000
MAX_MARGIN_MS: Final = 10_000


def safety_margin_ms(remaining_ms: int) -> int:
    """How long before the Lambda deadline to stop the handler: 5 % of the time left, from 1 s to 10 s.

    Examples
    --------
    >>> safety_margin_ms(900_000), safety_margin_ms(60_000), safety_margin_ms(5_000)
    (10000, 3000, 1000)
    """
    return min(max(remaining_ms // 20, MIN_MARGIN_MS), MAX_MARGIN_MS)


@contextmanager
def time_limit(seconds: float) -> Iterator[bool]:
    """Raise ``JobTimeoutError`` in the block once ``seconds`` have passed.

    Works in the main thread only (Python delivers signals there); elsewhere the block runs without a limit.
    The timer is always cancelled and the previous ``SIGALRM`` handler restored on the way out.

    Yields
    ------
    bool
        Whether the limit is armed.

    Examples
    --------
    >>> with time_limit(5.0):
    ...     result = handler(payload, job)
    """
    armed = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    if not armed:
        yield False
        return

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise JobTimeoutError(
            f"the job ran out of time: stopped after {seconds:.3f} s, shortly before the Lambda timeout"
        )

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
