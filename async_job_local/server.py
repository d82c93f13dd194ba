"""API Gateway (REST, Lambda proxy integrations) on a loopback port.

Each API is served under its own path prefix, which plays the stage: ``http://127.0.0.1:3000/<slug>/jobs``.
A request that matches a method of the template becomes a REST proxy event (``resource``, ``path``,
``httpMethod``, single- and multi-value headers and query parameters, ``pathParameters``, ``requestContext``
with the caller's identity, ``body``, ``isBase64Encoded``) for the method's function, and the function's
proxy response becomes the HTTP response. What API Gateway answers itself (no such route or method: ``403
Missing Authentication Token``; a body its request model rejects: ``400``; a function error: ``502``; more than
29 s: ``504``) is rendered from the API's own gateway responses in the template, as API Gateway renders them.

What this server answers itself, before any API is involved, is an RFC 9457 problem too (``local-*`` types,
never an HTML page): a malformed request line (``400``), a request line over 64 KiB (``414``), header fields
over 64 KiB or more than 100 of them (``431``), a body whose framing is wrong (``400``, see
:mod:`async_job_local.framing`), a request that stops arriving for ``request_timeout`` seconds (``408``).

The caller's identity, which API Gateway takes from the SigV4 signature under IAM authorization, comes from
the local-only header ``X-Async-Job-Principal`` (default ``local-user``); signatures are not checked. An empty
header names nobody: it is refused as API Gateway refuses a request without credentials.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fnmatch
import io
import json
import re
import secrets
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, NoReturn, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from async_job_local.assembly import ApiSpec, GatewayResponseSpec, RouteSpec
from async_job_local.framing import MalformedRequestError, read_body
from async_job_local.functions import InvokeResult, LocalFunction

__all__ = [
    "DEFAULT_PRINCIPAL",
    "DEFAULT_REQUEST_TIMEOUT",
    "PRINCIPAL_HEADER",
    "GatewayServer",
    "LocalApi",
    "LocalRoute",
    "render_gateway_response",
    "schema_errors",
]

PRINCIPAL_HEADER: Final = "X-Async-Job-Principal"
DEFAULT_PRINCIPAL: Final = "local-user"
#: API Gateway's limits: the integration timeout and the largest request payload.
INTEGRATION_TIMEOUT: Final = 29.0
MAX_REQUEST_BYTES: Final = 10 * 1024 * 1024
#: Seconds a request may stop arriving (request line, headers or body) before it is answered ``408``.
DEFAULT_REQUEST_TIMEOUT: Final = 5.0
#: Seconds a kept-alive connection may wait for its next request before it is closed (without an answer).
IDLE_TIMEOUT: Final = 60.0
#: After an error answer that closes the connection, what the client still sends is read and dropped for up
#: to this long (and this much), so that closing does not reset the connection before the answer is read.
LINGER_SECONDS: Final = 2.0
LINGER_MAX_BYTES: Final = 16 * 1024 * 1024
#: http.server's limits: the request line, and each header line.
MAX_REQUEST_LINE: Final = 65536
#: RFC 9110 section 5.6.2: a method is a token.
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: The problems this server answers itself, by status: (type slug, title, how to send the request instead).
_SERVER_PROBLEMS: Final[Mapping[int, tuple[str, str, str]]] = {
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
_ERROR_TYPES: Final[Mapping[str, str]] = {
    "MISSING_AUTHENTICATION_TOKEN": "MissingAuthenticationTokenException",
    "UNAUTHORIZED": "UnauthorizedException",
    "INVALID_API_KEY": "ForbiddenException",
    "BAD_REQUEST_BODY": "BadRequestException",
    "BAD_REQUEST_PARAMETERS": "BadRequestException",
    "INTEGRATION_FAILURE": "InternalServerErrorException",
    "DEFAULT_5XX": "InternalServerErrorException",
}


@dataclass(frozen=True)
class LocalRoute:
    """A method of an API (``spec``), served by ``function`` (None for a ``MOCK`` integration)."""

    spec: RouteSpec
    function: LocalFunction | None
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)
    literal_segments: int = field(init=False, repr=False, compare=False)

    @property
    def resource_path(self) -> str:
        """Its resource, like ``/jobs/{id}``."""
        return self.spec.resource_path

    @property
    def http_method(self) -> str:
        """Its method (or ``ANY``)."""
        return self.spec.http_method

    def __post_init__(self) -> None:
        parts = []
        literal = 0
        for segment in self.resource_path.strip("/").split("/") if self.resource_path != "/" else []:
            greedy = re.fullmatch(r"\{(\w+)\+\}", segment)
            param = re.fullmatch(r"\{(\w+)\}", segment)
            if greedy:
                parts.append(f"(?P<{greedy.group(1)}>.+)")
            elif param:
                parts.append(f"(?P<{param.group(1)}>[^/]+)")
            else:
                parts.append(re.escape(segment))
                literal += 1
        object.__setattr__(self, "pattern", re.compile("^/" + "/".join(parts) + "$"))
        object.__setattr__(self, "literal_segments", literal)


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


@dataclass
class LocalApi:
    """One API as served locally: its routes and gateway responses, under ``/<prefix>``."""

    spec: ApiSpec
    routes: list[LocalRoute]
    base_url: str = ""

    @property
    def prefix(self) -> str:
        """The path prefix (the local stage)."""
        return self.spec.slug

    @property
    def jobs_url(self) -> str:
        """``POST`` here to submit a job."""
        return f"{self.base_url}/jobs"

    def match(self, method: str, path: str) -> tuple[LocalRoute, dict[str, str]] | None:
        """The route for ``method`` and ``path`` (API Gateway's precedence: literal segments, then ``ANY``)."""
        candidates = []
        for route in self.routes:
            found = route.pattern.match(path)
            if found and route.http_method in (method, "ANY"):
                candidates.append((route.literal_segments, route.http_method == method, route, found))
        if not candidates:
            return None
        _, _, route, found = max(candidates, key=lambda c: (c[0], c[1]))
        return route, {name: unquote(value) for name, value in found.groupdict().items()}


def _context_variables(context: Mapping[str, Any], response_type: str, message: str) -> dict[str, str]:
    identity = context.get("identity", {})
    return {
        "context.error.responseType": response_type,
        "context.error.message": message,
        "context.error.messageString": json.dumps(message),
        "context.requestId": context.get("requestId", ""),
        "context.extendedRequestId": context.get("extendedRequestId", ""),
        "context.stage": context.get("stage", ""),
        "context.path": context.get("path", ""),
        "context.resourcePath": context.get("resourcePath", ""),
        "context.httpMethod": context.get("httpMethod", ""),
        "context.domainName": context.get("domainName", ""),
        "context.accountId": context.get("accountId", ""),
        "context.apiId": context.get("apiId", ""),
        "context.identity.sourceIp": identity.get("sourceIp") or "",
        "context.identity.userArn": identity.get("userArn") or "",
        "context.identity.caller": identity.get("caller") or "",
        "context.identity.userAgent": identity.get("userAgent") or "",
    }


def _render_template(template: str, variables: Mapping[str, str]) -> str:
    """Substitute ``$context...`` references (the VTL a gateway response template may use)."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("plain")
        trailing = ""
        while name not in variables and name.endswith("."):
            name, trailing = name[:-1], "." + trailing
        if name not in variables:
            return match.group(0)
        return variables[name] + trailing

    return re.sub(r"\$!?(?:\{(?P<braced>context[\w.]*)\}|(?P<plain>context[\w.]*))", substitute, template)


def render_gateway_response(
    responses: Mapping[str, GatewayResponseSpec],
    response_type: str,
    status: int,
    message: str,
    request_context: Mapping[str, Any],
    request_headers: Mapping[str, str],
    variables: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """What API Gateway answers itself for ``response_type`` (status, headers, body).

    The API's ``GatewayResponse`` of that type applies, else its ``DEFAULT_4XX``/``DEFAULT_5XX`` one, else
    API Gateway's built-in ``{"message": ...}``. A status code set on the default response applies to every
    type it covers.

    Example
    -------
    >>> render_gateway_response(api.gateway_responses, "MISSING_AUTHENTICATION_TOKEN", 403,
    ...                         "Missing Authentication Token", context, {})[0]
    403
    """
    default = responses.get(f"DEFAULT_{status // 100}XX")
    spec = responses.get(response_type, default)
    if spec is not None and spec.status_code is not None:
        status = int(spec.status_code)
    elif default is not None and default.status_code is not None:
        status = int(default.status_code)
    headers = {"Content-Type": "application/json"}
    body = json.dumps({"message": message}).encode()
    if spec is not None:
        variables = {**_context_variables(request_context, response_type, message), **(variables or {})}
        template = spec.templates.get("application/json") or next(iter(spec.templates.values()), None)
        if template is not None:
            body = _render_template(template, variables).encode()
        lowered = {k.lower(): v for k, v in request_headers.items()}
        for key, value in spec.parameters.items():
            if not key.startswith("gatewayresponse.header."):
                continue
            name = key.removeprefix("gatewayresponse.header.")
            if value.startswith("'") and value.endswith("'"):
                headers[name] = value[1:-1]
            elif value.startswith("method.request.header."):
                headers[name] = lowered.get(value.removeprefix("method.request.header.").lower(), "")
    if response_type in _ERROR_TYPES:
        headers["x-amzn-ErrorType"] = _ERROR_TYPES[response_type]
    return status, headers, body


class GatewayServer:
    """The HTTP server for every API of the app.

    Parameters
    ----------
    apis
        The APIs to serve, each under ``/<its prefix>``.
    host, port
        Where to listen (``port=0``: a free port).
    account_id, region
        Put in ``requestContext`` and in the principals' ARNs.
    default_principal
        The caller when a request has no ``X-Async-Job-Principal`` header.
    request_timeout
        Seconds a request may stop arriving (its request line, headers or body) before it is answered ``408``
        and its connection closed. Default: 5. A kept-alive connection may wait 60 s for its next request.
    """

    def __init__(
        self,
        apis: list[LocalApi],
        *,
        host: str,
        port: int,
        account_id: str,
        region: str,
        default_principal: str = DEFAULT_PRINCIPAL,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        if not request_timeout > 0:
            raise ValueError(
                f"request_timeout must be a positive number of seconds (given {request_timeout})"
            )
        self.apis = {api.prefix: api for api in apis}
        self.account_id = account_id
        self.region = region
        self.default_principal = default_principal
        self.request_timeout = request_timeout
        self.idle_timeout = max(IDLE_TIMEOUT, request_timeout)
        self._httpd = _HttpServer((host, port), _Handler)
        self._httpd.gateway = self
        address = self._httpd.server_address
        self.host: str = address[0] if isinstance(address[0], str) else address[0].decode()
        self.port: int = int(address[1])
        display_host = f"[{self.host}]" if ":" in str(self.host) else self.host
        for api in apis:
            api.base_url = f"http://{display_host}:{self.port}/{api.prefix}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="gateway", daemon=True)

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def close(self) -> None:
        """Stop serving and close the listening socket."""
        self._httpd.shutdown()
        self._httpd.server_close()


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256
    gateway: GatewayServer

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().server_bind()


def _now_request_time() -> tuple[str, int]:
    now = dt.datetime.now(dt.UTC)
    return now.strftime("%d/%b/%Y:%H:%M:%S +0000"), int(now.timestamp() * 1000)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HttpServer

    def setup(self) -> None:
        super().setup()
        # Without it each keep-alive response waits for the client's delayed ACK (~40 ms).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._responded = False
        self._linger = False

    def log_message(self, format: str, *args: Any) -> None:
        return None

    # ----------------------------------------------------------------------------------------- the wire

    def handle_one_request(self) -> None:
        """Wait for a request (``idle_timeout``), read it (``request_timeout``) and answer it.

        Replaces http.server's: every method name goes through the gateway (a ``403`` problem for one that no
        route has, never a ``501`` page), and a request that stalls is answered ``408``, not dropped.
        """
        gateway = self.server.gateway
        self._responded = False
        self.command, self.requestline, self.request_version = "", "", self.protocol_version
        self.connection.settimeout(gateway.idle_timeout)
        if not self._next_request_arrives():
            self.close_connection = True
            return
        self.connection.settimeout(gateway.request_timeout)
        try:
            self.raw_requestline = self.rfile.readline(MAX_REQUEST_LINE + 1)
            if len(self.raw_requestline) > MAX_REQUEST_LINE:
                self.send_error(
                    HTTPStatus.REQUEST_URI_TOO_LONG, f"The request line is over {MAX_REQUEST_LINE} bytes"
                )
                return
            if (
                len(self.raw_requestline.split()) == 2
            ):  # "GET /path": HTTP/0.9, which API Gateway does not speak
                self.send_error(HTTPStatus.BAD_REQUEST, "The request line has no HTTP version (HTTP/0.9)")
                return
            if not self.parse_request():
                return  # answered by send_error
            if not _TOKEN.fullmatch(self.command):
                self.send_error(
                    HTTPStatus.BAD_REQUEST, f"The method {self.command[:40]!r} is not an HTTP token"
                )
                return
            self._handle()
            self.wfile.flush()
        except TimeoutError:
            self._answer_stalled(gateway.request_timeout)
        except ConnectionError:  # the client went away: nobody to answer
            self.close_connection = True
        except Exception:
            traceback.print_exc()
            self.close_connection = True
            if not self._responded:
                with contextlib.suppress(OSError):
                    self._send_local_problem(HTTPStatus.INTERNAL_SERVER_ERROR, "The local runtime failed")

    def _next_request_arrives(self) -> bool:
        """Wait for the first byte of a request; skip the empty lines a client may send before one (RFC 9112
        section 2.2). False when the client closed the connection or stayed idle too long."""
        reader = cast(io.BufferedReader, self.rfile)
        try:
            while True:
                first = reader.peek(1)[:1]
                if first not in (b"\r", b"\n"):
                    return first != b""
                reader.read(1)
        except OSError:  # TimeoutError included: an idle kept-alive connection is closed without an answer
            return False

    def _answer_stalled(self, timeout: float) -> None:
        self.close_connection = True
        if self._responded:  # the answer itself stalled (the client stopped reading): nothing more to say
            return
        if self.request_version == "HTTP/0.9":  # the request line was not parsed: answer with a status line
            self.request_version = self.protocol_version
        with contextlib.suppress(OSError):
            self._send_local_problem(
                HTTPStatus.REQUEST_TIMEOUT,
                f"No byte of the request arrived for {timeout:g} s, before it was complete. Send the whole "
                "request without pausing: its headers, then its Content-Length bytes (or every chunk, and the "
                "last, empty one).",
            )

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer an error of http.server's own request parsing as a problem (it would send an HTML page)."""
        status = HTTPStatus(code)
        if self.request_version == "HTTP/0.9":  # not parsed yet: answer with a status line all the same
            self.request_version = self.protocol_version
        reason = message or status.phrase
        if explain and explain != reason:
            reason = f"{reason} ({explain})"
        self.close_connection = True
        self._send_local_problem(status, reason)

    def finish(self) -> None:
        super().finish()
        if self._linger:
            self._drain()

    def _drain(self) -> None:
        """Read and drop what the client still sends (briefly) so that closing does not reset the connection
        before the client has read the error answer; then the client sees the end of the stream."""
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(LINGER_SECONDS)
            deadline = time.monotonic() + LINGER_SECONDS
            drained = 0
            while drained < LINGER_MAX_BYTES and time.monotonic() < deadline:
                data = self.connection.recv(65536)
                if not data:
                    break
                drained += len(data)

    # ----------------------------------------------------------------------------------------------- request

    def _handle(self) -> None:
        gateway = self.server.gateway
        try:
            body = read_body(self.rfile, self.headers, MAX_REQUEST_BYTES)
        except MalformedRequestError as error:
            self.close_connection = True
            self._send_local_problem(HTTPStatus.BAD_REQUEST, str(error))
            return
        if body is None:  # over 10 MB: left unread, so the connection cannot go on
            self.close_connection = True
            self._linger = True
        split = urlsplit(self.path)
        raw_path = split.path or "/"
        prefix, _, rest = raw_path.lstrip("/").partition("/")
        api = gateway.apis.get(prefix)
        request_id = str(uuid.uuid4())
        request_time, request_epoch = _now_request_time()
        if api is None:
            self._send_not_an_api(raw_path)
            return
        resource_path = "/" + rest
        matched = api.match(self.command, resource_path)
        route = matched[0] if matched else None
        principal = (self.headers.get(PRINCIPAL_HEADER) or "").strip() or gateway.default_principal
        context = self._request_context(
            api, route, raw_path, request_id, request_time, request_epoch, principal
        )
        if body is None:
            self._send_gateway_response(api, context, "REQUEST_TOO_LARGE", 413, "Request Too Long")
            return
        if matched is None:
            self._send_gateway_response(
                api, context, "MISSING_AUTHENTICATION_TOKEN", 403, "Missing Authentication Token"
            )
            return
        route, path_parameters = matched
        rejection = self._gateway_checks(route, split.query, body)
        if rejection is not None:
            self._send_gateway_response(api, context, *rejection)
            return
        if route.function is None:  # a MOCK integration (a CORS preflight)
            assert route.spec.mock is not None
            self._send(route.spec.mock.status_code, dict(route.spec.mock.headers), b"", request_id)
            return
        event = self._proxy_event(api, route, resource_path, split.query, path_parameters, body, context)
        result = self._invoke(route.function, event)
        if result is None:
            self._send_gateway_response(
                api, context, "INTEGRATION_TIMEOUT", 504, "Endpoint request timed out"
            )
            return
        response = _proxy_response(result)
        if response is None:
            # A function error is INTEGRATION_FAILURE (so deployed access logs show it); a malformed proxy
            # response ("Execution failed due to configuration error") is left to the 5XX default.
            response_type = "DEFAULT_5XX" if result.ok else "INTEGRATION_FAILURE"
            self._send_gateway_response(api, context, response_type, 502, "Internal server error")
            return
        status, response_headers, response_body = response
        self._send(status, response_headers, response_body, request_id)

    def _authentication_rejection(
        self, route: LocalRoute
    ) -> tuple[str, int, str, Mapping[str, str] | None] | None:
        """An empty principal header names nobody: refused as API Gateway refuses missing credentials.

        Under IAM authorization that is ``403 MISSING_AUTHENTICATION_TOKEN`` (a request without a usable
        signature), under Cognito or a custom authorizer ``401 UNAUTHORIZED`` (no usable token). Without
        authorization the header means nothing, as deployed. No header at all is the default caller.
        """
        value = self.headers.get(PRINCIPAL_HEADER)
        if value is None or value.strip():
            return None
        fix = (
            f"the {PRINCIPAL_HEADER} header is empty. Name the caller in it, or send no such header to call as "
            f"the default caller ({self.server.gateway.default_principal})."
        )
        if route.spec.authorization_type == "AWS_IAM":
            return "MISSING_AUTHENTICATION_TOKEN", 403, f"Missing Authentication Token: {fix}", None
        if route.spec.authorization_type in ("COGNITO_USER_POOLS", "CUSTOM"):
            return "UNAUTHORIZED", 401, f"Unauthorized: {fix}", None
        return None

    def _gateway_checks(
        self, route: LocalRoute, query: str, body: bytes
    ) -> tuple[str, int, str, Mapping[str, str] | None] | None:
        """What API Gateway rejects before the integration: missing credentials, a missing API key or
        parameters, a body its request model rejects."""
        rejection = self._authentication_rejection(route)
        if rejection is not None:
            return rejection
        if route.spec.api_key_required and not self.headers.get("x-api-key"):
            return "INVALID_API_KEY", 403, "Forbidden", None
        present_queries = {name for name, _ in parse_qsl(query, keep_blank_values=True)}
        missing = [
            name.partition(".")[2]
            for name in route.spec.required_parameters
            if (name.startswith("header.") and self.headers.get(name.partition(".")[2]) is None)
            or (name.startswith("querystring.") and name.partition(".")[2] not in present_queries)
        ]
        if missing:
            return (
                "BAD_REQUEST_PARAMETERS",
                400,
                f"Missing required request parameters: [{', '.join(missing)}]",
                None,
            )
        content_type = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
        schema = route.spec.body_schemas.get(content_type, route.spec.body_schemas.get("$default"))
        if schema is None:
            return None
        try:
            instance = _parse_json(body) if body.strip() else {}  # API Gateway validates no body as {}
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

    def _request_context(
        self,
        api: LocalApi,
        route: LocalRoute | None,
        raw_path: str,
        request_id: str,
        request_time: str,
        request_epoch: int,
        principal: str,
    ) -> dict[str, Any]:
        gateway = self.server.gateway
        authorization = route.spec.authorization_type if route is not None else "NONE"
        user = principal.rsplit("/", 1)[-1] if principal.startswith("arn:") else principal
        user_arn = (
            principal if principal.startswith("arn:") else f"arn:aws:iam::{gateway.account_id}:user/{user}"
        )
        iam = authorization == "AWS_IAM"
        identity = {
            "cognitoIdentityPoolId": None,
            "accountId": gateway.account_id if iam else None,
            "cognitoIdentityId": None,
            "caller": user if iam else None,
            "sourceIp": self.client_address[0],
            "principalOrgId": None,
            "accessKey": "ASIALOCALACCESSKEY00" if iam else None,
            "cognitoAuthenticationType": None,
            "cognitoAuthenticationProvider": None,
            "userArn": user_arn if iam else None,
            "userAgent": self.headers.get("User-Agent"),
            "user": user if iam else None,
        }
        api_key = self.headers.get("x-api-key")
        if route is not None and route.spec.api_key_required and api_key:
            identity["apiKey"] = api_key
            identity["apiKeyId"] = "local" + uuid.uuid5(uuid.NAMESPACE_OID, api_key).hex[:10]
        context: dict[str, Any] = {
            "resourceId": uuid.uuid5(uuid.NAMESPACE_URL, route.resource_path).hex[:6] if route else "",
            "resourcePath": route.resource_path if route else raw_path,
            "httpMethod": self.command,
            "extendedRequestId": base64.b64encode(secrets.token_bytes(12)).decode()[:16],
            "requestTime": request_time,
            "path": raw_path,
            "accountId": gateway.account_id,
            "protocol": self.request_version,
            "stage": api.prefix,
            "domainPrefix": "127",
            "requestTimeEpoch": request_epoch,
            "requestId": request_id,
            "identity": identity,
            "domainName": self.headers.get("Host") or f"{gateway.host}:{gateway.port}",
            "apiId": api.spec.rest_api.lower()[:10],
        }
        if authorization == "CUSTOM":
            context["authorizer"] = {"principalId": principal, "integrationLatency": 0}
        elif authorization == "COGNITO_USER_POOLS":
            context["authorizer"] = {"claims": {"sub": principal, "cognito:username": principal}}
        return context

    def _proxy_event(
        self,
        api: LocalApi,
        route: LocalRoute,
        path: str,
        query: str,
        path_parameters: dict[str, str],
        body: bytes,
        context: dict[str, Any],
    ) -> dict[str, Any]:
        gateway = self.server.gateway
        multi_headers: dict[str, list[str]] = {}
        for name, value in self.headers.items():
            multi_headers.setdefault(name, []).append(value)
        client_ip = self.client_address[0]
        multi_headers["X-Forwarded-For"] = [client_ip]
        multi_headers["X-Forwarded-Port"] = [str(gateway.port)]
        multi_headers["X-Forwarded-Proto"] = ["http"]
        multi_headers["X-Amzn-Trace-Id"] = [f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}"]
        headers = {name: values[-1] for name, values in multi_headers.items()}
        multi_query: dict[str, list[str]] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            multi_query.setdefault(name, []).append(value)
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip()
        binary = any(fnmatch.fnmatch(content_type, pattern) for pattern in api.spec.binary_media_types)
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
            "path": path,
            "httpMethod": self.command,
            "headers": headers,
            "multiValueHeaders": multi_headers,
            "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": path_parameters or None,
            "stageVariables": None,
            "requestContext": context,
            "body": text,
            "isBase64Encoded": encoded,
        }

    def _invoke(self, function: LocalFunction, event: dict[str, Any]) -> InvokeResult | None:
        """Invoke the function; None when it runs past API Gateway's 29 s (it keeps running, as in AWS)."""
        if function.timeout <= INTEGRATION_TIMEOUT:
            return function.invoke(event)
        outcome: list[InvokeResult] = []
        worker = threading.Thread(target=lambda: outcome.append(function.invoke(event)), daemon=True)
        worker.start()
        worker.join(INTEGRATION_TIMEOUT)
        return outcome[0] if outcome else None

    # ---------------------------------------------------------------------------------------------- response

    def _send(
        self, status: int, headers: Mapping[str, str | list[str]], body: bytes, request_id: str
    ) -> None:
        self.send_response_only(status)
        self.send_header("Date", self.date_time_string())
        names = {name.lower() for name in headers}
        if "content-type" not in names:
            self.send_header("Content-Type", "application/json")
        for name, value in headers.items():
            if name.lower() in ("content-length", "connection", "transfer-encoding", "date"):
                continue
            for item in value if isinstance(value, list) else [value]:
                self.send_header(name, item)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close" if self.close_connection else "keep-alive")
        self.send_header("x-amzn-RequestId", request_id)
        self.send_header("x-amz-apigw-id", base64.b64encode(secrets.token_bytes(6)).decode())
        self._responded = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_gateway_response(
        self,
        api: LocalApi,
        context: Mapping[str, Any],
        response_type: str,
        status: int,
        message: str,
        variables: Mapping[str, str] | None = None,
    ) -> None:
        status, response_headers, body = render_gateway_response(
            api.spec.gateway_responses,
            response_type,
            status,
            message,
            context,
            dict(self.headers.items()),
            variables,
        )
        self._send(status, response_headers, body, str(context["requestId"]))

    def _send_local_problem(self, status: HTTPStatus, detail: str) -> None:
        """A problem this server answers itself (``local-*``), closing the connection after it."""
        slug, title, fix = _SERVER_PROBLEMS.get(status, (f"local-http-{status.value}", status.phrase, ""))
        problem = {
            "type": f"urn:async-job:problem:{slug}",
            "title": title,
            "status": status.value,
            "detail": f"{detail.rstrip('.')}. {fix}".strip(),
        }
        self.close_connection = True
        self._linger = True
        self._send(
            status.value,
            {"Content-Type": "application/problem+json"},
            json.dumps(problem).encode(),
            str(uuid.uuid4()),
        )

    def _send_not_an_api(self, path: str) -> None:
        gateway = self.server.gateway
        urls = [api.jobs_url for api in gateway.apis.values()]
        problem = {
            "type": "urn:async-job:problem:local-no-such-api",
            "title": "No API is served at this path",
            "status": 404,
            "detail": f"{path} is not under an API prefix of this local runtime; its APIs: {', '.join(urls)}",
        }
        self._send(
            404,
            {"Content-Type": "application/problem+json"},
            json.dumps(problem).encode(),
            str(uuid.uuid4()),
        )


def _parse_json(body: bytes) -> Any:
    """``body`` as JSON the way API Gateway's validator reads it: UTF-8 strictly (no surrogates either), no
    ``NaN`` or ``Infinity``. Raises ``ValueError`` (``UnicodeDecodeError`` included), or ``RecursionError``."""
    return json.loads(body.decode("utf-8"), parse_constant=_not_json)


def _not_json(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON value")


def _proxy_response(result: InvokeResult) -> tuple[int, dict[str, list[str]], bytes] | None:
    """The HTTP response of a Lambda proxy result, or None where API Gateway answers 502."""
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
