"""Team handlers for the durable worker tests (``ASYNC_JOB_HANDLER=tests.unit.handlers.durable_jobs.<name>``).

``ENTRIES`` counts the handler's runs (one per invocation: replays included), ``STEP_CALLS`` each step
function's calls by step name; ``DURING`` is a hook a test sets to look at the world inside step ``look``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from lambda_handlers import JobCancelledError, JobContext, JobFailedError

ENTRIES: list[JobContext] = []
STEP_CALLS: dict[str, int] = {}
DURING: Callable[[JobContext], None] | None = None


def reset() -> None:
    global DURING
    ENTRIES.clear()
    STEP_CALLS.clear()
    DURING = None


def _counted(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        STEP_CALLS[name] = STEP_CALLS.get(name, 0) + 1
        return fn(*args)

    return call


def steps(payload: dict[str, Any], job: JobContext) -> dict[str, Any]:
    """Two steps around a progress report and a wait; ``look`` lets the test see the job in the second run."""
    ENTRIES.append(job)
    rows = job.step("load", _counted("load", lambda account: [account, 1, 2]), payload.get("account", "acme"))
    job.report_progress(50, f"loaded, in run {len(ENTRIES)}")
    job.wait(dt.timedelta(minutes=10))

    def look() -> int:
        if DURING is not None:
            DURING(job)
        return len(rows)

    counted = job.step("look", _counted("look", look))
    return {"rows": rows, "counted": counted, "attempt_outside": job.attempt}


def flaky(payload: dict[str, Any], job: JobContext) -> Any:
    ENTRIES.append(job)

    def fetch() -> Any:
        raise RuntimeError(f"the report service answered 502 (attempt {job.attempt})")

    return job.step("fetch", _counted("fetch", fetch))


def give_up(payload: dict[str, Any], job: JobContext) -> Any:
    ENTRIES.append(job)

    def check() -> Any:
        raise JobFailedError("payload.account is required")

    return job.step("check", _counted("check", check))


def stop(payload: dict[str, Any], job: JobContext) -> Any:
    ENTRIES.append(job)
    job.step("first", _counted("first", lambda: 1))
    raise JobCancelledError("stopped after the first step")


def too_large(payload: dict[str, Any], job: JobContext) -> Any:
    ENTRIES.append(job)
    job.step("make", _counted("make", lambda: 1))
    return "x" * 409_600  # more JSON than a whole DynamoDB item holds


def slow_steps(payload: dict[str, Any], job: JobContext) -> Any:
    ENTRIES.append(job)
    job.step("slow", _counted("slow", lambda: time.sleep(float(payload.get("seconds", 0.6)))))
    job.step("after", _counted("after", lambda: 2))
    return {"done": True}


def flaky_once(payload: dict[str, Any], job: JobContext) -> Any:
    """A step that fails its first attempt, then succeeds; the attempt it saw comes back."""
    ENTRIES.append(job)

    def fetch() -> int:
        if job.attempt == 1:
            raise RuntimeError("the report service answered 502")
        return job.attempt

    return {"attempt": job.step("fetch", _counted("fetch", fetch))}


def wait_past_the_deadline(payload: dict[str, Any], job: JobContext) -> Any:
    ENTRIES.append(job)
    job.wait(job.remaining_time + dt.timedelta(hours=1))
    return "never"
