"""The job as the API returns it (``GET /jobs/{id}``, the ``202`` of a submit, ``GET /jobs``), typed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["TERMINAL_STATUSES", "Job", "JobFile", "JobPage", "Progress"]

#: The statuses a job never leaves.
TERMINAL_STATUSES: Final = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})


@dataclass(frozen=True)
class Progress:
    """What the handler last reported: ``percent`` (0-100) and an optional ``message``."""

    percent: float
    message: str | None = None


@dataclass(frozen=True)
class JobFile:
    """A file the job's handler saved: its ``name``, ``size``, ``content_type``, and a presigned ``url`` that works
    until ``url_expires_at`` (read the job again for a fresh one; ``JobClient.download`` fetches it)."""

    name: str
    size: int
    content_type: str
    url: str
    url_expires_at: str | None = None


@dataclass(frozen=True)
class Job:
    """A job as the API described it in one answer.

    Attributes
    ----------
    id, type, status
        The job's id (a UUID), its job type and ``QUEUED``, ``RUNNING``, ``SUCCEEDED``, ``FAILED`` or
        ``CANCELLED``.
    progress
        The last progress report (while ``RUNNING``, and kept once ``SUCCEEDED``), else ``None``.
    result
        What the handler returned (``SUCCEEDED`` only).
    error
        ``{type, message}``: why it ``FAILED`` (for a job still running, ``last_error`` holds the last attempt's).
    created_at, updated_at
        ISO 8601 timestamps, as the API gives them.
    location
        The job's URL (the ``Location`` header, else ``links.self``).
    retry_after
        Seconds the API advised to wait before the next read (``Retry-After``), ``None`` once finished.
    replayed
        ``True`` when a submit was answered from its idempotency key (``Idempotent-Replayed: true``).
    result_url
        Where the result is read (``GET /jobs/{id}/result``; ``SUCCEEDED`` only). A result too large for the
        job's status item is only there (``result`` is then ``None``): ``JobClient.result`` reads it.
    files
        The files the handler saved.
    updates_url
        The API's WebSocket for live updates (``Link: <...>; rel="updates"``), when it has one.

    Examples
    --------
    >>> job = client.submit({"seconds": 2})
    >>> job.status, job.done
    ('QUEUED', False)
    """

    id: str
    status: str
    type: str | None = None
    progress: Progress | None = None
    message: str | None = None
    result: Any = None
    error: dict[str, Any] | None = None
    last_error: dict[str, Any] | None = None
    cancel_requested: bool = False
    cancellation: dict[str, Any] | None = None
    attempts: int | None = None
    created_at: str | None = None
    updated_at: str | None = None
    location: str | None = None
    retry_after: float | None = None
    replayed: bool = False
    raw: Mapping[str, Any] | None = None
    result_url: str | None = None
    files: tuple[JobFile, ...] = ()
    updates_url: str | None = None

    @property
    def done(self) -> bool:
        """Whether the job is ``SUCCEEDED``, ``FAILED`` or ``CANCELLED``."""
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_resource(
        cls,
        resource: Mapping[str, Any],
        *,
        location: str | None = None,
        retry_after: float | None = None,
        replayed: bool = False,
        updates_url: str | None = None,
    ) -> Job:
        """The job of an API answer's body (and headers)."""
        progress = resource.get("progress")
        links = resource.get("links")
        self_link = links.get("self") if isinstance(links, Mapping) else None
        return cls(
            id=str(resource["id"]),
            status=str(resource["status"]),
            type=resource.get("type"),
            progress=(
                Progress(float(progress.get("percent", 0)), progress.get("message"))
                if isinstance(progress, Mapping)
                else None
            ),
            message=progress.get("message") if isinstance(progress, Mapping) else None,
            result=resource.get("result"),
            error=_mapping(resource.get("error")),
            last_error=_mapping(resource.get("lastError")),
            cancel_requested=bool(resource.get("cancelRequested", False)),
            cancellation=_mapping(resource.get("cancellation")),
            attempts=resource.get("attempts"),
            created_at=resource.get("createdAt"),
            updated_at=resource.get("updatedAt"),
            location=location or (self_link if isinstance(self_link, str) else None),
            retry_after=retry_after,
            replayed=replayed,
            raw=dict(resource),
            result_url=links.get("result") if isinstance(links, Mapping) else None,
            files=tuple(
                JobFile(
                    str(entry["name"]),
                    int(entry.get("size", 0)),
                    str(entry.get("contentType", "application/octet-stream")),
                    str(entry["url"]),
                    entry.get("urlExpiresAt"),
                )
                for entry in resource.get("files") or ()
                if isinstance(entry, Mapping) and "name" in entry and "url" in entry
            ),
            updates_url=updates_url,
        )

    def is_newer_than(self, other: Job) -> bool:
        """Whether this state of the job comes after ``other`` (so a client shows it): a terminal state after
        any other, then the later ``updatedAt``, then the further status and progress. The same state is not
        newer: a push and a read that agree show once.

        Examples
        --------
        >>> Job("j", "SUCCEEDED", updated_at="2026-12-01T10:00:01Z").is_newer_than(Job("j", "RUNNING"))
        True
        """
        return _order(self) > _order(other)

    @property
    def result_inline(self) -> bool:
        """Whether the answer carried the result itself (else, once ``SUCCEEDED``, read it at ``result_url``)."""
        return self.raw is not None and "result" in self.raw

    def to_dict(self) -> dict[str, Any]:
        """The job as the API gave it (its JSON body), for ``--output json``."""
        return dict(self.raw) if self.raw is not None else {"id": self.id, "status": self.status}


_STATUS_ORDER: Final = {"QUEUED": 0, "RUNNING": 1}


def _order(job: Job) -> tuple[bool, str, int, float]:
    percent = job.progress.percent if job.progress is not None else -1.0
    return job.done, job.updated_at or "", _STATUS_ORDER.get(job.status, 2), percent


def _mapping(value: Any) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, Mapping) else None


@dataclass(frozen=True)
class JobPage:
    """One page of ``GET /jobs``: jobs newest first (summaries: ``result`` is not listed, ``get`` it), and the
    cursor of the next page (``None``: this is the last).

    A page may hold fewer jobs than asked for, even none, and still have a next one: the API reads a bounded
    number of jobs per request when filters match few of them.

    Examples
    --------
    >>> page = client.list_page(status="FAILED", limit=10)
    >>> [job.id for job in page.jobs], page.next_cursor is None
    """

    jobs: tuple[Job, ...]
    next_cursor: str | None = None
