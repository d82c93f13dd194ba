"""The sample app's long job: "archive a month of reports", a durable run longer than one invocation's limit.

Deployed as the ``archive`` type's code (``handler="archive.build"``, ``timeout`` 2 hours, ``invocation_timeout``
10 seconds: shortened for the demo; a real archive would take hours in invocations of up to 15 minutes). Each
part is a checkpointed ``job.step``: a part that finished is never done again, even when the job goes on in a
new invocation. Halfway it pauses with ``job.wait`` (a durable wait: no invocation runs meanwhile).

Payload (a JSON object, every field optional):

- ``parts``: how many parts to archive, a whole number from 1 to 100 (default 4);
- ``part_seconds``: how long each part takes, a number from 0 to 8 (default 4: inside the 10 s invocation
  limit);
- ``pause``: seconds to wait halfway, a number from 0 to 3600 (default 5).

With the defaults it runs about 25 s in all, through several invocations of at most 10 s each. Other fields
are ignored (so ``scripts/run --type archive`` submits the report's demo body and archives with the defaults).
"""

from __future__ import annotations

import math
import time
from typing import Any, Final

from lambda_handlers import JobContext, JobFailedError

__all__ = ["build"]

MAX_PARTS: Final = 100
MAX_PART_SECONDS: Final = 8
MAX_PAUSE_SECONDS: Final = 3600


def _number(payload: dict[str, Any], name: str, default: float, highest: float) -> float:
    value = payload.get(name, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 <= value <= highest
    ):
        raise JobFailedError(f"payload.{name} must be a number from 0 to {highest} (given {value!r})")
    return float(value)


def _archive_part(index: int, seconds: float) -> dict[str, Any]:
    """One part's work (a stand-in: it sleeps); its result is checkpointed."""
    time.sleep(seconds)
    return {"part": index, "objects": 100 * index}


def build(payload: dict[str, Any], job: JobContext) -> dict[str, Any]:
    """Archive ``parts`` parts of ``part_seconds`` each, pausing ``pause`` s halfway; return a summary.

    Raises
    ------
    JobFailedError
        A payload field is invalid (the job fails at once, without a retry).

    Examples
    --------
    >>> build({"parts": 2, "part_seconds": 0, "pause": 0}, JobContext("4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21"))
    {'archive': 'archive of job 4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21: 2 parts, 100 objects', 'parts': 2}
    """
    parts = payload.get("parts", 4)
    if isinstance(parts, bool) or not isinstance(parts, int) or not 1 <= parts <= MAX_PARTS:
        raise JobFailedError(f"payload.parts must be a whole number from 1 to {MAX_PARTS} (given {parts!r})")
    seconds = _number(payload, "part_seconds", 4, MAX_PART_SECONDS)
    pause = _number(payload, "pause", 5, MAX_PAUSE_SECONDS)

    objects = archive_parts(job, parts, seconds, pause)
    return {"archive": f"archive of job {job.job_id}: {parts} parts, {objects} objects", "parts": parts}


def archive_parts(job: JobContext, parts: int, seconds: float, pause: float) -> int:
    """Archive the parts, one checkpointed step each, with a durable wait halfway; the objects archived."""
    objects = 0
    for index in range(parts):
        done = job.step(f"part-{index + 1}", _archive_part, index, seconds)  # never runs twice
        objects += done["objects"]
        job.report_progress(100 * (index + 1) / parts, f"part {index + 1}/{parts} archived")
        if pause and index + 1 == parts // 2:
            job.wait(pause)  # no invocation runs (nor is billed) meanwhile
    return objects
