"""What a job's change of status is as an EventBridge event: pure functions of the status table's stream images.

Every event has ``source`` ``async-job``, a ``detail-type`` naming the new status (``Job Succeeded``, ``Job Failed``,
``Job Cancelled``; ``Job Status Changed`` for ``QUEUED`` and ``RUNNING`` when every change is published) and a
``detail`` (``docs/events.md`` has the schema)::

    {"version": 1, "api": "Shop-Jobs", "jobId": "...", "type": "reports", "status": "SUCCEEDED",
     "previousStatus": "RUNNING", "owner": "arn:aws:iam::123456789012:user/alice", "createdAt": "...",
     "updatedAt": "...", "attempts": 1, "durationMs": 48231, "error": null}

A record whose status did not change (a progress write, a webhook delivery update) is no event.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final

from lambda_handlers.models import Job, JobStatus

__all__ = ["DETAIL_TYPES", "EVENT_SOURCE", "EVENT_VERSION", "changed_job", "detail_of"]

#: The ``source`` of every event.
EVENT_SOURCE: Final = "async-job"
#: The ``detail.version`` of this schema (a new one only for a change that breaks readers).
EVENT_VERSION: Final = 1
#: The ``detail-type`` of each status.
DETAIL_TYPES: Final = {
    JobStatus.SUCCEEDED: "Job Succeeded",
    JobStatus.FAILED: "Job Failed",
    JobStatus.CANCELLED: "Job Cancelled",
    JobStatus.QUEUED: "Job Status Changed",
    JobStatus.RUNNING: "Job Status Changed",
}


def changed_job(record: Mapping[str, Any]) -> tuple[Job, JobStatus | None] | None:
    """The job a stream record shows, and its status before, when the record changed its status; else None.

    A record of an item that is no job (an idempotency key), a removal (TTL) or a write that left the status as
    it was is None.

    Examples
    --------
    >>> job, before = changed_job(stream_record)
    >>> job.status, before
    (<JobStatus.SUCCEEDED: 'SUCCEEDED'>, <JobStatus.RUNNING: 'RUNNING'>)
    """
    if record.get("eventName") not in ("INSERT", "MODIFY"):
        return None
    images = record.get("dynamodb") or {}
    new = images.get("NewImage") or {}
    if "status" not in new or "owner" not in new:
        return None
    job = Job.from_item(new)
    old = images.get("OldImage") or {}
    before = JobStatus(old["status"]["S"]) if "status" in old else None
    if before is job.status:
        return None
    return job, before


def detail_of(job: Job, before: JobStatus | None, api: str) -> dict[str, Any]:
    """The event's ``detail``: who, what, when, and why it failed.

    ``durationMs`` is from submission to the terminal write (None until then).

    Examples
    --------
    >>> detail_of(job, JobStatus.RUNNING, "Shop-Jobs")["durationMs"]
    48231
    """
    terminal = job.status.is_terminal
    return {
        "version": EVENT_VERSION,
        "api": api,
        "jobId": job.job_id,
        "type": job.job_type,
        "status": job.status.value,
        "previousStatus": None if before is None else before.value,
        "owner": job.owner,
        "createdAt": job.created_at,
        "updatedAt": job.updated_at,
        "attempts": job.attempts,
        "durationMs": _millis_between(job.created_at, job.updated_at) if terminal else None,
        "error": (
            {"type": job.error_type, "message": job.error_message or ""}
            if job.status is JobStatus.FAILED and job.error_type
            else None
        ),
    }


def _millis_between(start: str, end: str) -> int | None:
    try:
        first = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
        last = dt.datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0, round((last - first).total_seconds() * 1000))
