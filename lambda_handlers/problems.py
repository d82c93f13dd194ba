"""Error responses as RFC 9457 problem details (``application/problem+json``), in API Gateway proxy form."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["PROBLEM_CONTENT_TYPE", "ProblemError", "problem", "problem_type"]

PROBLEM_CONTENT_TYPE: Final = "application/problem+json"
_TYPE_PREFIX: Final = "urn:async-job:problem:"


def problem_type(slug: str) -> str:
    """The problem ``type`` URI of ``slug``.

    Examples
    --------
    >>> problem_type("job-not-found")
    'urn:async-job:problem:job-not-found'
    """
    return f"{_TYPE_PREFIX}{slug}"


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> dict[str, Any]:
    """An API Gateway proxy response carrying one problem.

    The body holds ``type`` (``urn:async-job:problem:<slug>``), ``title``, ``status``, ``detail`` and any
    ``extensions`` (JSON-serialisable members such as ``maxBytes``). Never put a stack trace in ``detail``.

    Parameters
    ----------
    status
        The HTTP status code.
    slug
        Names the problem type, e.g. ``"invalid-job-id"``.
    title
        A short summary that is the same for every occurrence of the type.
    detail
        What went wrong this time, and how to fix it.
    headers
        Extra response headers (``Retry-After``, ``Allow``).

    Examples
    --------
    >>> problem(404, "job-not-found", "Job not found", "No job with this id is visible to you.")["statusCode"]
    404
    """
    body = {"type": problem_type(slug), "title": title, "status": status, "detail": detail, **extensions}
    return {
        "statusCode": status,
        "headers": {"Content-Type": PROBLEM_CONTENT_TYPE, **(headers or {})},
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
    }


class ProblemError(Exception):
    """Stops handling a request that is the caller's mistake; ``response`` is the problem to answer with.

    Parameters are those of ``problem``.

    Examples
    --------
    >>> try:
    ...     raise ProblemError(400, "empty-body", "Empty body", "The request needs a body.")
    ... except ProblemError as error:
    ...     response = error.response
    >>> response["statusCode"]
    400
    """

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(f"{status} {slug}: {detail}")
        self.status = status
        self.slug = slug
        self.response = problem(status, slug, title, detail, headers, **extensions)
