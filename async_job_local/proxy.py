"""API Gateway's Lambda proxy integration (REST): the event a request becomes, and the HTTP response a
function's proxy result becomes.

Pure functions of the request: the server (:mod:`async_job_local.server`) reads the bytes and sends the answer.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import parse_qsl

from async_job_local.api_spec import ApiSpec, RouteSpec
from async_job_local.functions import InvokeResult
from async_job_local.sigv4 import Signer

__all__ = ["GatewayIdentity", "IncomingRequest", "proxy_event", "proxy_response", "request_context"]


@dataclass(frozen=True)
class IncomingRequest:
    """A request as it reached the server.

    Attributes
    ----------
    method, path, query
        ``POST``, the path with the API's prefix (``/asyncjobsample-reports/jobs``), the query string.
    headers
        The request's header fields (case-insensitive ``get``).
    client_ip, protocol
        The peer's address and the request's HTTP version (``HTTP/1.1``).
    """

    method: str
    path: str
    query: str
    headers: Message
    client_ip: str
    protocol: str = "HTTP/1.1"


@dataclass(frozen=True)
class GatewayIdentity:
    """Where the local API Gateway is: its account (in ARNs) and the address it serves on."""

    account_id: str
    host: str
    port: int


def request_context(
    request: IncomingRequest,
    api: ApiSpec,
    route: RouteSpec | None,
    *,
    gateway: GatewayIdentity,
    request_id: str,
    request_time: str,
    request_epoch: int,
    principal: str,
    signer: Signer | None = None,
) -> dict[str, Any]:
    """The event's ``requestContext``, with the caller ``principal`` where the route's authorization puts it.

    Under IAM authorization: ``identity.userArn`` (``arn:aws:iam::<account>:user/<name>``, or ``principal``
    itself when it is an ARN), ``caller`` and ``user``; a custom authorizer: ``authorizer.principalId``;
    Cognito: ``authorizer.claims.sub``; no authorization: an anonymous caller. A ``signer`` (a verified SigV4
    signature) replaces ``principal`` under IAM authorization: ``userArn``, ``accessKey``, ``accountId`` are
    its credential's, ``caller`` and ``user`` its unique id (:attr:`async_job_local.sigv4.Signer.caller`).

    Example
    -------
    >>> context = request_context(request, api, route, gateway=GatewayIdentity("123456789012", "127.0.0.1", 3000),
    ...                           request_id="r-1", request_time="...", request_epoch=0, principal="alice")
    >>> context["identity"]["userArn"]
    'arn:aws:iam::123456789012:user/alice'
    """
    authorization = route.authorization_type if route is not None else "NONE"
    user = principal.rsplit("/", 1)[-1] if principal.startswith("arn:") else principal
    user_arn = principal if principal.startswith("arn:") else f"arn:aws:iam::{gateway.account_id}:user/{user}"
    iam = authorization == "AWS_IAM"
    headers = request.headers
    identity: dict[str, Any] = {
        "cognitoIdentityPoolId": None,
        "accountId": gateway.account_id if iam else None,
        "cognitoIdentityId": None,
        "caller": user if iam else None,
        "sourceIp": request.client_ip,
        "principalOrgId": None,
        "accessKey": "ASIALOCALACCESSKEY00" if iam else None,
        "cognitoAuthenticationType": None,
        "cognitoAuthenticationProvider": None,
        "userArn": user_arn if iam else None,
        "userAgent": headers.get("User-Agent"),
        "user": user if iam else None,
    }
    if iam and signer is not None:
        identity.update(_signer_identity(signer))
    api_key = headers.get("x-api-key")
    if route is not None and route.api_key_required and api_key:
        identity["apiKey"] = api_key
        identity["apiKeyId"] = "local" + uuid.uuid5(uuid.NAMESPACE_OID, api_key).hex[:10]
    context: dict[str, Any] = {
        "resourceId": uuid.uuid5(uuid.NAMESPACE_URL, route.resource_path).hex[:6] if route else "",
        "resourcePath": route.resource_path if route else request.path,
        "httpMethod": request.method,
        "extendedRequestId": base64.b64encode(secrets.token_bytes(12)).decode()[:16],
        "requestTime": request_time,
        "path": request.path,
        "accountId": gateway.account_id,
        "protocol": request.protocol,
        "stage": api.slug,
        "domainPrefix": "127",
        "requestTimeEpoch": request_epoch,
        "requestId": request_id,
        "identity": identity,
        "domainName": headers.get("Host") or f"{gateway.host}:{gateway.port}",
        "apiId": api.rest_api.lower()[:10],
    }
    if authorization == "CUSTOM":
        context["authorizer"] = {"principalId": principal, "integrationLatency": 0}
    elif authorization == "COGNITO_USER_POOLS":
        context["authorizer"] = {"claims": {"sub": principal, "cognito:username": principal}}
    return context


def _signer_identity(signer: Signer) -> dict[str, str]:
    """The ``identity`` fields API Gateway fills from a verified signature."""
    return {
        "accountId": signer.account_id,
        "caller": signer.caller,
        "accessKey": signer.access_key_id,
        "userArn": signer.arn,
        "user": signer.caller,
    }


def proxy_event(
    request: IncomingRequest,
    api: ApiSpec,
    route: RouteSpec,
    *,
    resource_path: str,
    path_parameters: Mapping[str, str],
    body: bytes,
    context: Mapping[str, Any],
    port: int,
) -> dict[str, Any]:
    """The REST proxy event of ``request`` for ``route``.

    ``resource_path`` is the request's path without the API's prefix (``/jobs/42``). A body that is not UTF-8,
    or of one of the API's binary media types, is passed base64-encoded (``isBase64Encoded``), never altered;
    no body is ``null``. ``X-Forwarded-*`` headers are added as API Gateway adds them (``Proto: http``, so that
    ``Location`` URLs point back at the local server).

    Example
    -------
    >>> event = proxy_event(request, api, route, resource_path="/jobs/42", path_parameters={"id": "42"},
    ...                     body=b"", context=context, port=3000)
    >>> event["resource"], event["pathParameters"], event["body"]
    ('/jobs/{id}', {'id': '42'}, None)
    """
    multi_headers: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        multi_headers.setdefault(name, []).append(value)
    multi_headers["X-Forwarded-For"] = [request.client_ip]
    multi_headers["X-Forwarded-Port"] = [str(port)]
    multi_headers["X-Forwarded-Proto"] = ["http"]
    multi_headers["X-Amzn-Trace-Id"] = [f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}"]
    headers = {name: values[-1] for name, values in multi_headers.items()}
    multi_query: dict[str, list[str]] = {}
    for name, value in parse_qsl(request.query, keep_blank_values=True):
        multi_query.setdefault(name, []).append(value)
    content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
    binary = any(fnmatch.fnmatch(content_type, pattern) for pattern in api.binary_media_types)
    text: str | None = None  # API Gateway passes no body as null
    encoded = False
    if body:
        # Bytes that are not UTF-8 are passed base64-encoded, never altered (a replacement character would).
        with contextlib.suppress(UnicodeDecodeError):
            text = None if binary else body.decode("utf-8")
        if text is None:
            text, encoded = base64.b64encode(body).decode(), True
    return {
        "resource": route.resource_path,
        "path": resource_path,
        "httpMethod": request.method,
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": dict(path_parameters) or None,
        "stageVariables": None,
        "requestContext": dict(context),
        "body": text,
        "isBase64Encoded": encoded,
    }


def proxy_response(result: InvokeResult) -> tuple[int, dict[str, list[str]], bytes] | None:
    """The HTTP response (status, headers, body) of a Lambda proxy result, or None where API Gateway answers
    502: a function error, or a result that is not a proxy response (no integer ``statusCode`` in 100-599, a
    ``body`` that is not a string, ``multiValueHeaders`` values that are not lists, bad base64).

    Example
    -------
    >>> proxy_response(InvokeResult("r-1", {"statusCode": 202, "body": "{}"}, None, 1.0))
    (202, {}, b'{}')
    """
    if not result.ok or not isinstance(result.payload, Mapping):
        return None
    payload = result.payload
    status = payload.get("statusCode")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        return None
    body = payload.get("body")
    if body is not None and not isinstance(body, str):
        return None
    headers: dict[str, list[str]] = {}
    for name, value in (payload.get("headers") or {}).items():
        headers[name] = [str(value)]
    for name, values in (payload.get("multiValueHeaders") or {}).items():
        if not isinstance(values, list):
            return None
        headers.setdefault(name, [])
        headers[name] = [*headers[name], *(str(v) for v in values if str(v) not in headers[name])]
    try:
        data = base64.b64decode(body) if payload.get("isBase64Encoded") and body else (body or "").encode()
    except ValueError:
        return None
    return status, headers, data
