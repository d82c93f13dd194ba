"""What API Gateway checks before it calls the integration: credentials (a SigV4 signature, when the runtime
verifies them), an API key, required parameters, the body against the method's request model.

A rejection is ``(response type, status, message, extra template variables)``, which
:func:`async_job_local.gateway_responses.render_gateway_response` turns into API Gateway's own answer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from email.message import Message
from typing import Any, Final, NoReturn
from urllib.parse import parse_qsl

from async_job_local.api_spec import RouteSpec
from async_job_local.sigv4 import SignatureRejectedError, SignedRequest, Signer, SigV4Verifier
from lambda_handlers.contract import PRINCIPAL_HEADER

__all__ = [
    "Rejection",
    "authentication_rejection",
    "gateway_rejection",
    "parse_json",
    "schema_errors",
    "signature_check",
]

#: A rejection: the gateway response type, its status, its message and extra ``$context`` variables.
Rejection = tuple[str, int, str, Mapping[str, str] | None]

_JSON_TYPES: Final[Mapping[type, str]] = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}


def schema_errors(schema: Mapping[str, Any], instance: Any) -> list[str]:
    """Check ``instance`` against a JSON schema (draft 4: ``type``, ``required``, ``properties``).

    The messages are those of the validator API Gateway uses, e.g. ``instance type (array) does not match any
    allowed primitive type (allowed: ["object"])``. Other keywords are not checked locally.
    """
    kind = _JSON_TYPES.get(type(instance), "object")
    allowed = schema.get("type")
    if allowed is not None:
        allowed_list = [allowed] if isinstance(allowed, str) else list(allowed)
        if kind not in allowed_list and not (kind == "integer" and "number" in allowed_list):
            names = ",".join(json.dumps(a) for a in sorted(allowed_list))
            return [f"instance type ({kind}) does not match any allowed primitive type (allowed: [{names}])"]
    errors = []
    if isinstance(instance, dict):
        missing = sorted(name for name in schema.get("required", []) if name not in instance)
        if missing:
            errors.append(
                f"object has missing required properties ([{','.join(json.dumps(m) for m in missing)}])"
            )
        for name, subschema in schema.get("properties", {}).items():
            if name in instance and isinstance(subschema, Mapping):
                errors.extend(schema_errors(subschema, instance[name]))
    return errors


def parse_json(body: bytes) -> Any:
    """``body`` as JSON the way API Gateway's validator reads it: UTF-8 strictly (no surrogates either), no
    ``NaN`` or ``Infinity``. Raises ``ValueError`` (``UnicodeDecodeError`` included), or ``RecursionError``.

    Example
    -------
    >>> parse_json(b'{"seconds": 2}')
    {'seconds': 2}
    """
    return json.loads(body.decode("utf-8"), parse_constant=_not_json)


def _not_json(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON value")


def signature_check(
    route: RouteSpec, verifier: SigV4Verifier | None, request: SignedRequest
) -> Signer | Rejection | None:
    """Who signed a request to an IAM route, or API Gateway's rejection of its signature; None when nothing is
    verified (no verifier, or a route without IAM authorization).

    Example
    -------
    >>> signature_check(iam_route, verifier, SignedRequest("GET", "/prod/jobs/1", "", [], b""))[:2]
    ('MISSING_AUTHENTICATION_TOKEN', 403)
    """
    if verifier is None or route.authorization_type != "AWS_IAM":
        return None
    try:
        return verifier.verify(request)
    except SignatureRejectedError as error:
        return error.rejection


def authentication_rejection(
    route: RouteSpec, headers: Message, default_principal: str, *, signed: bool = False
) -> Rejection | None:
    """An empty principal header names nobody: refused as API Gateway refuses missing credentials.

    Under IAM authorization that is ``403 MISSING_AUTHENTICATION_TOKEN`` (a request without a usable
    signature), under Cognito or a custom authorizer ``401 UNAUTHORIZED`` (no usable token). Without
    authorization the header means nothing, as deployed. No header at all is the default caller. With
    ``signed`` (signatures are verified) an IAM route ignores the header: the signer is the caller.
    """
    value = headers.get(PRINCIPAL_HEADER)
    if value is None or value.strip() or (signed and route.authorization_type == "AWS_IAM"):
        return None
    fix = (
        f"the {PRINCIPAL_HEADER} header is empty. Name the caller in it, or send no such header to call as "
        f"the default caller ({default_principal})."
    )
    if route.authorization_type == "AWS_IAM":
        return "MISSING_AUTHENTICATION_TOKEN", 403, f"Missing Authentication Token: {fix}", None
    if route.authorization_type in ("COGNITO_USER_POOLS", "CUSTOM"):
        return "UNAUTHORIZED", 401, f"Unauthorized: {fix}", None
    return None


def gateway_rejection(
    route: RouteSpec,
    headers: Message,
    query: str,
    body: bytes,
    *,
    default_principal: str,
    signed: bool = False,
) -> Rejection | None:
    """What API Gateway rejects before the integration: missing credentials, a missing API key or
    parameters, a body its request model rejects. None when the request goes through. ``signed``: signatures
    are verified (:func:`signature_check`, first), so the principal header is no credential of IAM routes.

    Example
    -------
    >>> gateway_rejection(route, headers, "", b"[]", default_principal="local-user")[:2]
    ('BAD_REQUEST_BODY', 400)
    """
    rejection = authentication_rejection(route, headers, default_principal, signed=signed)
    if rejection is not None:
        return rejection
    if route.api_key_required and not headers.get("x-api-key"):
        return "INVALID_API_KEY", 403, "Forbidden", None
    present_queries = {name for name, _ in parse_qsl(query, keep_blank_values=True)}
    missing = [
        name.partition(".")[2]
        for name in route.required_parameters
        if (name.startswith("header.") and headers.get(name.partition(".")[2]) is None)
        or (name.startswith("querystring.") and name.partition(".")[2] not in present_queries)
    ]
    if missing:
        return (
            "BAD_REQUEST_PARAMETERS",
            400,
            f"Missing required request parameters: [{', '.join(missing)}]",
            None,
        )
    content_type = (headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
    schema = route.body_schemas.get(content_type, route.body_schemas.get("$default"))
    if schema is None:
        return None
    try:
        instance = parse_json(body) if body.strip() else {}  # API Gateway validates no body as {}
    except RecursionError:
        return None  # nested deeper than Python parses: the function decides (its own 400)
    except ValueError as error:
        errors = [f"Invalid JSON: {error}"]
    else:
        errors = schema_errors(schema, instance)
    if not errors:
        return None
    validation = json.dumps("[" + ", ".join(errors) + "]")[1:-1]
    return (
        "BAD_REQUEST_BODY",
        400,
        "Invalid request body",
        {"context.error.validationErrorString": validation},
    )
