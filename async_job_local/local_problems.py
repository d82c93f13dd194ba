"""The problems the local server answers itself, before any API is involved (RFC 9457, ``local-*`` types).

A malformed request line (``400``), one over 64 KiB (``414``), header fields over 64 KiB or more than 100 of
them (``431``), a request that stops arriving (``408``), a path under no API's prefix (``404``). Deployed, API
Gateway's front end answers these before the API, in its own format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, Final

__all__ = ["MAX_REQUEST_LINE", "PROBLEM_TYPE_PREFIX", "local_problem", "no_such_api_problem"]

#: http.server's limits: the request line, and each header line.
MAX_REQUEST_LINE: Final = 65536
PROBLEM_TYPE_PREFIX: Final = "urn:async-job:problem:"
#: The problems this server answers itself, by status: (type slug, title, how to send the request instead).
SERVER_PROBLEMS: Final[Mapping[int, tuple[str, str, str]]] = {
    400: (
        "local-malformed-request",
        "Malformed HTTP request",
        "Send HTTP/1.1: a request line (METHOD /path HTTP/1.1), header lines, an empty line, then the body.",
    ),
    408: ("local-request-timeout", "Request timed out", ""),
    414: (
        "local-request-line-too-long",
        "Request line too long",
        f"Keep the request line (method, path and query) under {MAX_REQUEST_LINE} bytes.",
    ),
    431: (
        "local-header-fields-too-large",
        "Request header fields too large",
        f"Send at most 100 header fields, each line under {MAX_REQUEST_LINE} bytes.",
    ),
    500: (
        "local-internal-error",
        "Local runtime error",
        "This is a bug of the local runtime; its log has the trace.",
    ),
    505: ("local-http-version-not-supported", "HTTP version not supported", "Send HTTP/1.1 (or HTTP/1.0)."),
}


def local_problem(status: HTTPStatus, detail: str) -> dict[str, Any]:
    """The problem document of ``status``: its ``local-*`` type and title, ``detail`` and how to fix it.

    Example
    -------
    >>> local_problem(HTTPStatus.REQUEST_TIMEOUT, "No byte arrived for 5 s")["type"]
    'urn:async-job:problem:local-request-timeout'
    """
    slug, title, fix = SERVER_PROBLEMS.get(status, (f"local-http-{status.value}", status.phrase, ""))
    return {
        "type": f"{PROBLEM_TYPE_PREFIX}{slug}",
        "title": title,
        "status": status.value,
        "detail": f"{detail.rstrip('.')}. {fix}".strip(),
    }


def no_such_api_problem(path: str, api_urls: Sequence[str]) -> dict[str, Any]:
    """The ``404`` problem of a path under no API's prefix, listing the APIs that are served.

    Example
    -------
    >>> no_such_api_problem("/nope", ["http://127.0.0.1:3000/app-jobs/jobs"])["status"]
    404
    """
    return {
        "type": f"{PROBLEM_TYPE_PREFIX}local-no-such-api",
        "title": "No API is served at this path",
        "status": 404,
        "detail": f"{path} is not under an API prefix of this local runtime; its APIs: {', '.join(api_urls)}",
    }
