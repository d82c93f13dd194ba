"""The sample app's job: "generate a report" that takes longer than API Gateway's 29 s, reporting progress.

Deployed as the worker's code (``handler="report.generate"``); it needs only the standard library and the
``lambda_handlers`` types the runtime layer provides.

Payload (a JSON object, every field optional):

- ``seconds``: how long the report takes, a number from 0 to 840 (default 60);
- ``steps``: how many progress reports along the way, a whole number from 1 to 1000 (default 10);
- ``fail``: when true, fail after the work (a retryable error, to watch the retries and the dead-letter path).

It honours cancellation: after each step's progress report it checks ``job.cancel_requested`` and stops with
``JobCancelledError`` (try ``DELETE /jobs/{id}`` on a running report).
"""

from __future__ import annotations

import math
import time
from typing import Any, Final

from lambda_handlers import JobCancelledError, JobContext, JobFailedError

__all__ = ["generate"]

MAX_SECONDS: Final = 840
MAX_STEPS: Final = 1_000


def generate(payload: dict[str, Any], job: JobContext) -> dict[str, Any]:
    """Sleep ``seconds`` in ``steps`` steps, reporting progress after each; return a small report.

    Raises
    ------
    JobFailedError
        ``seconds`` or ``steps`` is invalid (the job fails at once, without a retry).
    JobCancelledError
        The job's owner asked to cancel it: it stops after the step it is in (the job ends CANCELLED).
    RuntimeError
        ``fail`` is true (the attempt fails and is retried).

    Examples
    --------
    >>> generate({"seconds": 0, "steps": 2}, JobContext("4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21"))
    {'report': 'Report of job 4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21: 2 steps in 0 s', 'seconds': 0, 'steps': 2}
    """
    seconds = payload.get("seconds", 60)
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or not 0 <= seconds <= MAX_SECONDS
    ):
        raise JobFailedError(f"payload.seconds must be a number from 0 to {MAX_SECONDS} (given {seconds!r})")
    steps = payload.get("steps", 10)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise JobFailedError(f"payload.steps must be a whole number from 1 to {MAX_STEPS} (given {steps!r})")

    job.logger.info("generating a report: %s steps in %s s (attempt %s)", steps, seconds, job.attempt)
    for i in range(1, steps + 1):
        time.sleep(seconds / steps)
        job.report_progress(100 * i / steps, f"step {i}/{steps}")
        if job.cancel_requested and i < steps:
            raise JobCancelledError(f"cancelled by its owner after step {i}/{steps}")
    if payload.get("fail"):
        raise RuntimeError(f"the report failed on purpose (payload.fail is {payload['fail']!r})")
    return {
        "report": f"Report of job {job.job_id}: {steps} steps in {seconds} s",
        "seconds": seconds,
        "steps": steps,
    }
