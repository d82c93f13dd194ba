"""Team handlers for the worker tests (``ASYNC_JOB_HANDLER=tests.unit.handlers.jobs.<name>``).

``CALLS`` records every call; ``DURING`` is a hook a test sets to look at the world while a job runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from lambda_handlers import JobCancelledError, JobContext, JobFailedError

CALLS: list[tuple[dict[str, Any], JobContext]] = []
DURING: Callable[[JobContext], None] | None = None


class SimulatedLambdaCrash(BaseException):
    """Stands for the process dying mid-job (out of memory, a segfault): nothing after it runs."""


def reset() -> None:
    global DURING
    CALLS.clear()
    DURING = None


def succeed(payload: dict[str, Any], job: JobContext) -> dict[str, Any]:
    CALLS.append((payload, job))
    return {
        "echo": payload,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "remaining_ms": job.remaining_time_ms(),
    }


def during(payload: dict[str, Any], job: JobContext) -> dict[str, Any]:
    """Report 50 %, let the test look (``DURING``), then succeed."""
    CALLS.append((payload, job))
    job.report_progress(50, "half way")
    if DURING is not None:
        DURING(job)
    return {"done": True}


def crash(payload: dict[str, Any], job: JobContext) -> Any:
    CALLS.append((payload, job))
    raise RuntimeError("the report service answered 502")


def give_up(payload: dict[str, Any], job: JobContext) -> Any:
    CALLS.append((payload, job))
    raise JobFailedError("payload.account is required")


def long_message(payload: dict[str, Any], job: JobContext) -> Any:
    CALLS.append((payload, job))
    raise ValueError("x" * 5_000)


def sleep(payload: dict[str, Any], job: JobContext) -> Any:
    CALLS.append((payload, job))
    time.sleep(float(payload.get("seconds", 5)))
    return {"slept": True}


def unserialisable(payload: dict[str, Any], job: JobContext) -> Any:
    CALLS.append((payload, job))
    return {"when": object()}


def not_a_number(payload: dict[str, Any], job: JobContext) -> Any:
    CALLS.append((payload, job))
    return {"ratio": float("nan")}


def too_large(payload: dict[str, Any], job: JobContext) -> Any:
    CALLS.append((payload, job))
    return "x" * 409_600  # more JSON than a whole DynamoDB item holds


def sized(payload: dict[str, Any], job: JobContext) -> Any:
    """Report ``payload["progress"]`` as the progress message, then return a JSON string of
    ``payload["result_bytes"]`` bytes (with its quotes)."""
    CALLS.append((payload, job))
    job.report_progress(100, payload.get("progress"))
    return "x" * (payload["result_bytes"] - 2)


def die(payload: dict[str, Any], job: JobContext) -> Any:
    CALLS.append((payload, job))
    raise SimulatedLambdaCrash


not_callable = "a string, not a function"


def cooperative(payload: dict[str, Any], job: JobContext) -> Any:
    """Work in steps, reporting progress after each and stopping when cancellation is requested."""
    CALLS.append((payload, job))
    for step in range(1, int(payload.get("steps", 3)) + 1):
        if DURING is not None:
            DURING(job)
        job.report_progress(min(100, 10 * step), f"step {step}")
        if job.cancel_requested:
            raise JobCancelledError(f"stopped after step {step}")
    return {"steps": payload.get("steps", 3)}


def cancel_self(payload: dict[str, Any], job: JobContext) -> Any:
    CALLS.append((payload, job))
    raise JobCancelledError("nothing left to do")


def during_then_crash(payload: dict[str, Any], job: JobContext) -> Any:
    """Let the test look (``DURING``), then fail with a retryable error."""
    CALLS.append((payload, job))
    if DURING is not None:
        DURING(job)
    raise RuntimeError("the report service answered 502")


def sized_then_give_up(payload: dict[str, Any], job: JobContext) -> Any:
    """Report 100 %, then fail the job for good."""
    CALLS.append((payload, job))
    job.report_progress(100, "all done, or so it seemed")
    raise JobFailedError("the report was empty")


def save_files(payload: dict[str, Any], job: JobContext) -> Any:
    """Save ``payload["files"]`` (name -> text), then return ``payload["result_bytes"]`` bytes of JSON string."""
    CALLS.append((payload, job))
    for name, text in payload.get("files", {}).items():
        job.save_file(name, text, "text/csv")
    return "x" * (payload.get("result_bytes", 10) - 2)
