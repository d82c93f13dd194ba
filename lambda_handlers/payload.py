"""The body of ``POST /{type}``: checked to be a JSON object in UTF-8 within the type's limit, or a problem.

Standard library only (and ``lambda_handlers.problems``): the checks are pure, tested without a function.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Any, Final, NoReturn

from lambda_handlers.api_common import header
from lambda_handlers.problems import ProblemError

__all__ = ["read_payload"]

# A JSON escape of a UTF-16 surrogate: only then can the parsed text hold an unpaired one.
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def read_payload(event: dict[str, Any], max_bytes: int) -> str:
    """The request's body as JSON text, checked to be a JSON object of at most ``max_bytes`` UTF-8 bytes.

    Checks in order: the media type (``application/json`` or ``application/*+json``, UTF-8 only), a body is
    present, its size, UTF-8, JSON (``NaN`` and ``Infinity`` are not JSON, nor is an escaped unpaired UTF-16
    surrogate such as ``"\\ud800"``: RFC 8259 section 8.2), an object.

    Raises
    ------
    ProblemError
        With the ``415``, ``400`` or ``413`` problem to answer.

    Examples
    --------
    >>> read_payload({"headers": {"content-type": "application/json"}, "body": '{"n": 1}'}, 1024)
    '{"n": 1}'
    """
    _check_media_type(header(event, "Content-Type"))
    body = event.get("body")
    if body is None or body == "":
        _reject(400, "empty-body", "Empty body", "The request needs a body: the job's input, a JSON object.")
    if not isinstance(body, str):
        _reject(400, "invalid-json", "Invalid JSON", "The body is not text.")
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            _reject(
                400, "invalid-json", "Invalid JSON", "The body is marked base64-encoded but is not base64."
            )
    else:
        raw = body.encode("utf-8", "surrogatepass")
    if len(raw) > max_bytes:
        raise ProblemError(
            413,
            "payload-too-large",
            "Payload too large",
            f"The body is {len(raw)} bytes; the limit is {max_bytes} bytes. Send a smaller payload, e.g. a "
            "reference to data in S3 instead of the data.",
            maxBytes=max_bytes,
        )
    if not raw.strip():
        _reject(400, "empty-body", "Empty body", "The request needs a body: the job's input, a JSON object.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        _reject(400, "invalid-json", "Invalid JSON", f"The body is not valid UTF-8 (at byte {error.start}).")
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as error:
        _reject(
            400,
            "invalid-json",
            "Invalid JSON",
            f"The body is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno}).",
        )
    except (ValueError, RecursionError) as error:
        _reject(400, "invalid-json", "Invalid JSON", f"The body is not acceptable JSON: {_short(error)}.")
    if _SURROGATE_ESCAPE.search(text) and _holds_a_surrogate(value):
        _reject(
            400,
            "invalid-json",
            "Invalid JSON",
            "The body escapes an unpaired UTF-16 surrogate (such as \\ud800), which is no Unicode character.",
        )
    if not isinstance(value, dict):
        kind = "an array" if isinstance(value, list) else "a JSON scalar"
        _reject(
            400, "body-not-object", "Body is not a JSON object", f"The body is {kind}; send a JSON object."
        )
    return text


def _check_media_type(content_type: str | None) -> None:
    if content_type is None:
        _unsupported("The request has no Content-Type; send application/json.")
    media, *parameters = content_type.split(";")
    media = media.strip().lower()
    maintype, _, subtype = media.partition("/")
    if not (maintype == "application" and (subtype == "json" or subtype.endswith("+json"))):
        _unsupported(f"The body must be JSON (Content-Type: application/json), not {media[:100]!r}.")
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        charset = value.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            _unsupported(f"JSON is UTF-8; charset {charset[:40]!r} is not supported.")


def _holds_a_surrogate(value: Any) -> bool:
    """Whether a parsed JSON value holds an unpaired surrogate in a string or a member name (no recursion)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    """A JSON number with a fraction or exponent; one too large for a double (``1e400``) is refused, not
    turned into infinity (which no JSON encoder can write back)."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text[:40]} is too large")
    return value


def _short(error: BaseException) -> str:
    return "it is nested too deeply" if isinstance(error, RecursionError) else str(error)[:200]


def _reject(status: int, slug: str, title: str, detail: str) -> NoReturn:
    raise ProblemError(status, slug, title, detail)


def _unsupported(detail: str) -> NoReturn:
    _reject(415, "unsupported-media-type", "Unsupported media type", detail)
