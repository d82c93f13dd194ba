"""The exceptions of the job client: what the API refused, what the job ended as, what the wait ran out of."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from async_job_client.models import Job

__all__ = ["ApiError", "ClientError", "JobCancelled", "JobFailed", "TransportError", "WaitTimeout"]


class ClientError(Exception):
    """The base of every exception this package raises."""


class ApiError(ClientError):
    """The API answered with an error status; ``problem`` is its RFC 9457 problem document (empty if none).

    Attributes
    ----------
    status
        The HTTP status of the answer (API Gateway's fallback problems carry no ``status`` member: this is the
        status line's).
    type, title, detail
        The problem document's members (``None`` when absent).
    problem
        The whole problem document, extension members too.
    headers
        The answer's headers, lowercase names.

    Examples
    --------
    >>> try:
    ...     client.get("not-a-job-id")
    ... except ApiError as error:
    ...     error.status, error.type
    (400, 'urn:async-job:problem:invalid-job-id')
    """

    def __init__(
        self, status: int, problem: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        self.status = status
        self.problem: dict[str, Any] = dict(problem)
        self.headers: dict[str, str] = dict(headers or {})
        self.type: str | None = _text(problem.get("type"))
        self.title: str | None = _text(problem.get("title"))
        self.detail: str | None = _text(problem.get("detail"))
        summary = self.title or "error"
        super().__init__(f"HTTP {status} {summary}" + (f": {self.detail}" if self.detail else ""))


class TransportError(ClientError):
    """No answer: the connection failed, was reset, or timed out on every attempt."""


class JobFailed(ClientError):
    """The job ended ``FAILED``; ``job.error`` holds its ``{type, message}``."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.error: dict[str, Any] = dict(job.error or {})
        super().__init__(
            f"job {job.id} FAILED: {self.error.get('type', 'error')}: {self.error.get('message', '')}"
        )


class JobCancelled(ClientError):
    """The job ended ``CANCELLED``."""

    def __init__(self, job: Job) -> None:
        self.job = job
        super().__init__(f"job {job.id} was CANCELLED")


class WaitTimeout(ClientError):
    """The job was still not finished when the wait's timeout ran out; ``job`` is its last state read."""

    def __init__(self, job: Job, timeout: float) -> None:
        self.job = job
        self.timeout = timeout
        super().__init__(f"job {job.id} is still {job.status} after {timeout:g} s")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
