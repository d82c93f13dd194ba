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

The caller's identity, which API Gateway takes from the SigV4 signature under IAM authorization, comes by
default from the local-only header ``X-Async-Job-Principal`` (default ``local-user``), and signatures are not
checked. An empty header names nobody: it is refused as API Gateway refuses a request without credentials.
Given a ``verifier`` (``async-job local --sigv4-credentials FILE``, :mod:`async_job_local.sigv4`), every
route with IAM authorization requires a valid signature of one of its credentials, and the caller is the
signer (``identity.userArn`` is the credential's ARN); ``X-Async-Job-Principal`` is then ignored on those
routes, never a way around the signature. Routes without IAM authorization are served as without a verifier.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
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
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, cast
from urllib.parse import urlsplit

from async_job_local.framing import MalformedRequestError, read_body
from async_job_local.functions import InvokeResult, LocalFunction
from async_job_local.gateway_responses import render_gateway_response
from async_job_local.local_problems import MAX_REQUEST_LINE, local_problem, no_such_api_problem
from async_job_local.proxy import (
    GatewayIdentity,
    IncomingRequest,
    proxy_event,
    proxy_response,
    request_context,
)
from async_job_local.request_checks import Rejection, gateway_rejection, schema_errors, signature_check
from async_job_local.routing import LocalApi, LocalRoute
from async_job_local.sigv4 import SignedRequest, Signer, SigV4Verifier
from lambda_handlers.contract import PRINCIPAL_HEADER

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
# LocalApi, LocalRoute, render_gateway_response and schema_errors live in routing, gateway_responses and
# request_checks; they are re-exported here, where they were first.

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
#: RFC 9110 section 5.6.2: a method is a token.
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


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
    verifier
        Default: None, signatures are not checked and ``X-Async-Job-Principal`` names the caller. Given,
        every route with IAM authorization requires a SigV4 signature it verifies, and the signer is the
        caller (the principal header is ignored there).
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
        verifier: SigV4Verifier | None = None,
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
        self.verifier = verifier
        self.idle_timeout = max(IDLE_TIMEOUT, request_timeout)
        self._httpd = _HttpServer((host, port), _Handler)
        self._httpd.gateway = self
        address = self._httpd.server_address
        self.host: str = address[0] if isinstance(address[0], str) else address[0].decode()
        self.port: int = int(address[1])
        self.identity = GatewayIdentity(account_id=account_id, host=self.host, port=self.port)
        display_host = f"[{self.host}]" if ":" in str(self.host) else self.host
        for api in apis:
            api.base_url = f"http://{display_host}:{self.port}/{api.prefix}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="gateway", daemon=True)

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def close(self) -> None:
        """Stop serving and close the listening socket (a server never started is only closed: shutting it
        down would wait for a loop that never ran)."""
        if self._thread.is_alive():
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
        request = IncomingRequest(
            method=self.command,
            path=raw_path,
            query=split.query,
            headers=self.headers,
            client_ip=str(self.client_address[0]),
            protocol=self.request_version,
        )
        resource_path = "/" + rest
        matched = api.match(self.command, resource_path)
        route = matched[0] if matched else None
        principal = (self.headers.get(PRINCIPAL_HEADER) or "").strip() or gateway.default_principal
        verified = (
            None if matched is None or body is None else self._verify(matched[0], raw_path, split.query, body)
        )
        context = request_context(
            request,
            api.spec,
            route.spec if route is not None else None,
            gateway=gateway.identity,
            request_id=request_id,
            request_time=request_time,
            request_epoch=request_epoch,
            principal=principal,
            signer=verified if isinstance(verified, Signer) else None,
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
        if isinstance(verified, tuple):
            self._send_gateway_response(api, context, *verified)
            return
        rejection = gateway_rejection(
            route.spec,
            self.headers,
            split.query,
            body,
            default_principal=gateway.default_principal,
            signed=gateway.verifier is not None,
        )
        if rejection is not None:
            self._send_gateway_response(api, context, *rejection)
            return
        if route.function is None:  # a MOCK integration (a CORS preflight)
            assert route.spec.mock is not None
            self._send(route.spec.mock.status_code, dict(route.spec.mock.headers), b"", request_id)
            return
        event = proxy_event(
            request,
            api.spec,
            route.spec,
            resource_path=resource_path,
            path_parameters=path_parameters,
            body=body,
            context=context,
            port=gateway.port,
        )
        result = self._invoke(route.function, event)
        if result is None:
            self._send_gateway_response(
                api, context, "INTEGRATION_TIMEOUT", 504, "Endpoint request timed out"
            )
            return
        response = proxy_response(result)
        if response is None:
            # A function error is INTEGRATION_FAILURE (so deployed access logs show it); a malformed proxy
            # response ("Execution failed due to configuration error") is left to the 5XX default.
            response_type = "DEFAULT_5XX" if result.ok else "INTEGRATION_FAILURE"
            self._send_gateway_response(api, context, response_type, 502, "Internal server error")
            return
        status, response_headers, response_body = response
        self._send(status, response_headers, response_body, request_id)

    def _verify(self, route: LocalRoute, path: str, query: str, body: bytes) -> Signer | Rejection | None:
        """Who signed the request, if the route takes a signature and the gateway verifies them."""
        signed = SignedRequest(self.command, path, query, self.headers.items(), body)
        return signature_check(route.spec, self.server.gateway.verifier, signed)

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
        problem = local_problem(status, detail)
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
        problem = no_such_api_problem(path, [api.jobs_url for api in gateway.apis.values()])
        self._send(
            404,
            {"Content-Type": "application/problem+json"},
            json.dumps(problem).encode(),
            str(uuid.uuid4()),
        )
