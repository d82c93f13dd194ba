"""The frames of the WebSocket protocol (``docs/websockets.md``): what a client sends, and what it is sent.

Client to server (JSON text frames; API Gateway routes on ``action``)::

    {"action": "subscribe", "jobId": "<uuid>"}      {"action": "subscribe", "jobs": "mine"}
    {"action": "unsubscribe", "jobId": "<uuid>"}    {"action": "unsubscribe", "jobs": "mine"}

Server to client::

    {"type": "subscribed", "jobId": "<uuid>", "job": {<GET /jobs/{id} JSON>}}   {"type": "subscribed", "jobs": "mine"}
    {"type": "unsubscribed", "jobId": "<uuid>"}                                  {"type": "unsubscribed", "jobs": "mine"}
    {"type": "job", "job": {<GET /jobs/{id} JSON>}}       (every change, in order; the last one is terminal)
    {"type": "error", "status": 404, "title": "Job not found", "detail": "...", "jobId": "<uuid>"}

A frame over API Gateway's 128 KB message limit drops the job's inline ``result`` (read it at ``links.result``,
as for a result kept in the bucket), then its ``files``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from lambda_handlers.job_resource import job_resource
from lambda_handlers.models import Job, is_job_id

__all__ = [
    "MAX_FRAME_BYTES",
    "MINE",
    "BadFrameError",
    "Request",
    "encode",
    "error_frame",
    "job_frame",
    "not_found_frame",
    "parse_request",
    "subscribed_frame",
    "unsubscribed_frame",
]

#: API Gateway's largest WebSocket message (128 KB), less room for the frame's envelope.
MAX_FRAME_BYTES: Final = 128 * 1024 - 1024
#: The ``jobs`` value of a subscription to all of the caller's jobs.
MINE: Final = "mine"
_ACTIONS: Final = ("subscribe", "unsubscribe")


class BadFrameError(ValueError):
    """A client frame the protocol does not allow (answered with a ``400`` error frame)."""


@dataclass(frozen=True, slots=True)
class Request:
    """A client's ``subscribe`` or ``unsubscribe``: of one job (``job_id``), or of all its jobs (``job_id`` None)."""

    action: str
    job_id: str | None


def parse_request(body: object) -> Request:
    """The request a client frame makes.

    Raises
    ------
    BadFrameError
        Not JSON, not an object, an unknown ``action``, or neither a job id nor ``"jobs": "mine"``.

    Examples
    --------
    >>> parse_request('{"action": "subscribe", "jobs": "mine"}')
    Request(action='subscribe', job_id=None)
    """
    try:
        frame = json.loads(body) if isinstance(body, str | bytes) else None
    except ValueError:
        frame = None
    if not isinstance(frame, Mapping):
        raise BadFrameError('A frame is a JSON object, e.g. {"action": "subscribe", "jobId": "<job id>"}.')
    action = frame.get("action")
    if action not in _ACTIONS:
        raise BadFrameError(f"Unknown action {str(action)[:40]!r}: send 'subscribe' or 'unsubscribe'.")
    job_id, jobs = frame.get("jobId"), frame.get("jobs")
    if (job_id is None) == (jobs is None):
        raise BadFrameError(
            f'A {action} names one job ("jobId": "<job id>") or all of yours ("jobs": "mine").'
        )
    if jobs is not None:
        if jobs != MINE:
            raise BadFrameError(f'"jobs" must be "mine" (given {str(jobs)[:40]!r}).')
        return Request(action, None)
    if not is_job_id(job_id):
        raise BadFrameError(
            f"Invalid job id {str(job_id)[:40]!r}: a job id is a lowercase UUID, as in the Location header of POST."
        )
    return Request(action, job_id)


def job_view(job: Job, jobs_url: str, bucket_name: str | None) -> dict[str, Any]:
    """The job as ``GET /jobs/{id}`` shows it (``links.self`` on the REST API)."""
    return job_resource(job, f"{jobs_url}/{job.job_id}", bucket_name)


def job_frame(job: Job, jobs_url: str, bucket_name: str | None) -> dict[str, Any]:
    """``{"type": "job", "job": {...}}``: a change of the job."""
    return {"type": "job", "job": job_view(job, jobs_url, bucket_name)}


def subscribed_frame(job: Job | None, jobs_url: str, bucket_name: str | None) -> dict[str, Any]:
    """``subscribed`` to one job (with its snapshot), or to all the caller's jobs (``job`` None)."""
    if job is None:
        return {"type": "subscribed", "jobs": MINE}
    return {"type": "subscribed", "jobId": job.job_id, "job": job_view(job, jobs_url, bucket_name)}


def unsubscribed_frame(job_id: str | None) -> dict[str, Any]:
    """``unsubscribed`` from one job, or from all the caller's jobs (``job_id`` None)."""
    return (
        {"type": "unsubscribed", "jobs": MINE}
        if job_id is None
        else {"type": "unsubscribed", "jobId": job_id}
    )


def error_frame(status: int, title: str, detail: str, job_id: str | None = None) -> dict[str, Any]:
    """``{"type": "error", ...}`` with the status a REST request would have had."""
    frame: dict[str, Any] = {"type": "error", "status": status, "title": title, "detail": detail}
    if job_id is not None:
        frame["jobId"] = job_id
    return frame


def not_found_frame(job_id: str) -> dict[str, Any]:
    """The ``404`` of ``GET /jobs/{id}``: an unknown, expired or someone else's job look the same."""
    return error_frame(
        404,
        "Job not found",
        "No job with this id is visible to you: it does not exist, it expired, or it is not yours.",
        job_id,
    )


def encode(frame: Mapping[str, Any]) -> bytes:
    """The frame as compact JSON, within ``MAX_FRAME_BYTES`` (dropping the job's ``result``, then ``files``).

    Examples
    --------
    >>> encode({"type": "subscribed", "jobs": "mine"})
    b'{"type":"subscribed","jobs":"mine"}'
    """
    data = _dumps(frame)
    job = frame.get("job")
    for field in ("result", "files"):
        if len(data) <= MAX_FRAME_BYTES or not isinstance(job, Mapping) or field not in job:
            break
        job = {name: value for name, value in job.items() if name != field}
        frame = {**frame, "job": job}
        data = _dumps(frame)
    return data


def _dumps(frame: Mapping[str, Any]) -> bytes:
    return json.dumps(frame, separators=(",", ":")).encode("utf-8")
