"""What the API functions (``submit``, ``status``) share: reading REST proxy events, building responses.

Events are API Gateway REST API proxy events (payload format 1.0). Header names are matched
case-insensitively, as HTTP requires.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Final

from lambda_handlers.contract import DEFAULT_JOB_TYPE, JOBS_PATH
from lambda_handlers.models import is_job_id
from lambda_handlers.problems import problem

__all__ = [
    "JSON_CONTENT_TYPE",
    "caller_identity",
    "header",
    "header_values",
    "internal_error",
    "invalid_job_id",
    "is_operator",
    "jobs_url",
    "json_response",
    "method_not_allowed",
    "path_job_id",
    "request_job_type",
    "request_url",
    "retry_after",
    "service_unavailable",
]

JSON_CONTENT_TYPE: Final = "application/json"
ANONYMOUS: Final = "anonymous"

# Where the caller's identity is, first present wins (docs/design.md, "Caller identity").
_IDENTITY_PATHS: Final = (
    ("authorizer", "principalId"),
    ("authorizer", "claims", "sub"),
    ("identity", "userArn"),
    ("identity", "cognitoIdentityId"),
    ("identity", "caller"),
    ("identity", "apiKeyId"),
)
_SESSION_RE: Final = re.compile(
    r"arn:(?P<partition>[\w-]+):sts::(?P<account>\d{12}):assumed-role/(?P<role>[^/]+)/.+"
)
_ROLE_RE: Final = re.compile(
    r"arn:(?P<partition>[\w-]+):iam::(?P<account>\d{12}):role/(?:.*/)?(?P<role>[^/]+)"
)


def header(event: Mapping[str, Any], name: str) -> str | None:
    """The value of request header ``name`` (any case), or None.

    Reads ``headers``, then the last value in ``multiValueHeaders``.

    Examples
    --------
    >>> header({"headers": {"content-type": "application/json"}}, "Content-Type")
    'application/json'
    """
    wanted = name.lower()
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == wanted and isinstance(value, str):
            return value
    for key, values in (event.get("multiValueHeaders") or {}).items():
        if key.lower() == wanted and values:
            last = values[-1]
            return last if isinstance(last, str) else None
    return None


def header_values(event: Mapping[str, Any], name: str) -> list[str]:
    """Every value of request header ``name`` (any case), in order; empty when it is absent.

    Reads ``multiValueHeaders`` (a repeated header gives several values), else ``headers``.

    Examples
    --------
    >>> header_values({"multiValueHeaders": {"idempotency-key": ["a", "b"]}}, "Idempotency-Key")
    ['a', 'b']
    """
    wanted = name.lower()
    found: list[str] = []
    for key, values in (event.get("multiValueHeaders") or {}).items():
        if key.lower() == wanted and isinstance(values, list):
            found.extend(value for value in values if isinstance(value, str))
    if found:
        return found
    value = header(event, name)
    return [] if value is None else [value]


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    """An API Gateway proxy response with a JSON body.

    Examples
    --------
    >>> json_response(200, {"id": job_id}, {"Cache-Control": "no-store"})["headers"]["Content-Type"]
    'application/json'
    """
    return {
        "statusCode": status,
        "headers": {"Content-Type": JSON_CONTENT_TYPE, **(headers or {})},
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
    }


def caller_identity(event: Mapping[str, Any]) -> str:
    """Who is calling, as recorded in a job's ``owner``: the first identity the request context carries.

    In order: ``authorizer.principalId``, ``authorizer.claims.sub``, ``identity.userArn``,
    ``identity.cognitoIdentityId``, ``identity.caller``, ``identity.apiKeyId``; else ``"anonymous"``.

    Examples
    --------
    >>> caller_identity({"requestContext": {"identity": {"userArn": "arn:aws:iam::123456789012:user/alice"}}})
    'arn:aws:iam::123456789012:user/alice'
    """
    context = event.get("requestContext") or {}
    for path in _IDENTITY_PATHS:
        value: Any = context
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        if isinstance(value, str) and value.strip():
            return value
    return ANONYMOUS


def is_operator(identity: str, operators: Collection[str]) -> bool:
    """Whether ``identity`` may read every job: it is listed, or is a session of a listed role.

    An assumed-role session ARN (``arn:aws:sts::123456789012:assumed-role/Ops/alice``) matches the role's ARN
    (``arn:aws:iam::123456789012:role/Ops``, with any path) as well as itself.

    Examples
    --------
    >>> is_operator("arn:aws:sts::123456789012:assumed-role/Ops/alice", {"arn:aws:iam::123456789012:role/ops/Ops"})
    True
    """
    if identity in operators:
        return True
    session = _SESSION_RE.fullmatch(identity)
    if session is None:
        return False
    wanted = (session["partition"], session["account"], session["role"])
    return any((role["partition"], role["account"], role["role"]) == wanted for role in _roles(operators))


def _roles(operators: Iterable[str]) -> Iterable[re.Match[str]]:
    return (match for match in map(_ROLE_RE.fullmatch, operators) if match is not None)


def request_url(event: Mapping[str, Any]) -> str:
    """The URL the caller requested, as the caller sees it (stage or base path included).

    Scheme from ``X-Forwarded-Proto`` (default ``https``), host from ``requestContext.domainName``, path from
    ``requestContext.path``, which carries the stage prefix (``/prod/jobs``) or a custom domain's base path.

    Examples
    --------
    >>> request_url({"headers": {}, "requestContext": {"domainName": "api.example.com", "path": "/prod/jobs"}})
    'https://api.example.com/prod/jobs'
    """
    context = event.get("requestContext") or {}
    forwarded = (header(event, "X-Forwarded-Proto") or "").split(",")[0].strip().lower()
    scheme = forwarded if forwarded in ("http", "https") else "https"
    host = context.get("domainName") or header(event, "Host") or "localhost"
    path = context.get("path") or event.get("path") or "/"
    return f"{scheme}://{host}{path.rstrip('/')}"


def jobs_url(event: Mapping[str, Any]) -> str:
    """The URL of the jobs collection beside the requested resource: where every job is read (``/jobs/{id}``).

    ``POST /{type}`` and ``/jobs`` are siblings, so the request URL's last segment is replaced by ``jobs``: a job
    posted at ``.../prod/reports`` is at ``.../prod/jobs/{id}``, one posted at ``.../prod/jobs`` too.

    Examples
    --------
    >>> jobs_url({"headers": {}, "requestContext": {"domainName": "api.example.com", "path": "/prod/reports"}})
    'https://api.example.com/prod/jobs'
    """
    parent, _, _ = request_url(event).rpartition("/")
    return f"{parent}/{JOBS_PATH}"


def request_job_type(event: Mapping[str, Any]) -> str:
    """The job type a ``POST`` names: the last segment of its resource (``/reports`` -> ``reports``).

    A resource that is a path parameter (``/{type}``) names the type by that parameter's value. An event without
    a resource (a hand-made one) names the default type, ``jobs``. The name is not checked here.

    Examples
    --------
    >>> request_job_type({"resource": "/reports"})
    'reports'
    >>> request_job_type({"resource": "/{type}", "pathParameters": {"type": "thumbnails"}})
    'thumbnails'
    """
    resource = event.get("resource")
    if not isinstance(resource, str) or not resource.strip("/"):
        return DEFAULT_JOB_TYPE
    segment = resource.rstrip("/").rpartition("/")[2]
    if segment.startswith("{") and segment.endswith("}"):
        value = (event.get("pathParameters") or {}).get(segment[1:-1].rstrip("+"))
        return value if isinstance(value, str) else ""
    return segment


def path_job_id(event: Mapping[str, Any]) -> str | None:
    """The job id in the path (``pathParameters.id``) when it is a canonical job id, else None.

    Examples
    --------
    >>> path_job_id({"pathParameters": {"id": "4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21"}})
    '4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21'
    """
    value = (event.get("pathParameters") or {}).get("id")
    return value if is_job_id(value) else None


def retry_after(seconds: int) -> dict[str, str]:
    """The ``Retry-After`` header.

    Examples
    --------
    >>> retry_after(5)
    {'Retry-After': '5'}
    """
    return {"Retry-After": str(seconds)}


def invalid_job_id() -> dict[str, Any]:
    """``400 invalid-job-id``: the path does not hold a job id.

    Examples
    --------
    >>> invalid_job_id()["statusCode"]
    400
    """
    return problem(
        400,
        "invalid-job-id",
        "Invalid job id",
        "A job id is a lowercase UUID, as in the Location header of the POST response.",
    )


def method_not_allowed(method: object, allowed: Iterable[str]) -> dict[str, Any]:
    """``405 method-not-allowed`` with the ``Allow`` header.

    Examples
    --------
    >>> method_not_allowed("PUT", ["GET"])["headers"]["Allow"]
    'GET'
    """
    allow = ", ".join(allowed)
    return problem(
        405,
        "method-not-allowed",
        "Method not allowed",
        f"This resource does not support {method!s:.20} requests; it supports {allow}.",
        {"Allow": allow},
    )


def service_unavailable(detail: str, retry_after_seconds: int) -> dict[str, Any]:
    """``503 service-unavailable`` with ``Retry-After``: a dependency failed; nothing was changed.

    Examples
    --------
    >>> service_unavailable("The job could not be recorded. Retry later.", 5)["headers"]["Retry-After"]
    '5'
    """
    return problem(
        503, "service-unavailable", "Service unavailable", detail, retry_after(retry_after_seconds)
    )


def internal_error() -> dict[str, Any]:
    """``500 internal-error``, with a generic detail (the cause goes to the log, never to the caller).

    Examples
    --------
    >>> internal_error()["statusCode"]
    500
    """
    return problem(
        500,
        "internal-error",
        "Internal error",
        "The request failed unexpectedly. It was logged; retry later.",
    )
