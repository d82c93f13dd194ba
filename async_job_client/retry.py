"""When to try a request again, and how long to wait first: pure arithmetic, no I/O."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Final

__all__ = ["RETRYABLE_STATUSES", "RetryPolicy", "parse_retry_after"]

#: Throttled, and every server error except 501 Not Implemented (which no retry mends).
RETRYABLE_STATUSES: Final = frozenset({429, 500, 502, 503, 504} | set(range(505, 600)))


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter (AWS's "Exponential Backoff And Jitter").

    Attempt ``n`` (1-based) that failed waits ``uniform(0, min(max_delay, base_delay * 2 ** (n - 1)))``; an
    answer's ``Retry-After`` (429, 503) replaces that, capped at ``max_retry_after``.

    Parameters
    ----------
    max_attempts
        Default: 5 (the first try and 4 retries).
    base_delay
        Default: 0.5 s.
    max_delay
        Default: 20 s.
    max_retry_after
        Default: 60 s: the longest ``Retry-After`` obeyed (a longer one is cut to this).
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_retry_after: float = 60.0
    random: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1 (given {self.max_attempts})")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError(f"delays must not be negative (given {self.base_delay}, {self.max_delay})")

    def retryable(self, status: int) -> bool:
        """Whether an answer with ``status`` is worth another attempt."""
        return status in RETRYABLE_STATUSES

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return self.random.uniform(0, ceiling)


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds; an HTTP date is read too), else None.

    Examples
    --------
    >>> parse_retry_after("5")
    5.0
    """
    if value is None:
        return None
    text = value.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    from datetime import UTC, datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)
