"""API Gateway WebSocket APIs on loopback ports: the client endpoint and the ``@connections`` management API.

Each WebSocket API of the template (``AWS::ApiGatewayV2::Api`` with ``ProtocolType: WEBSOCKET``) is served on
a port of its own, ``ws://127.0.0.1:<port>/<stage>`` (the ``websockets`` package's threaded server), with its
route functions run in their execution environments (:class:`async_job_local.functions.LocalFunction`) and
fed API Gateway's WebSocket events: ``requestContext`` with ``routeKey``, ``eventType`` (``CONNECT``,
``MESSAGE``, ``DISCONNECT``), ``connectionId``, ``connectedAt``, ``domainName``, ``stage``, ``apiId``,
``requestId``, ``messageId`` and ``identity``; the handshake's ``headers`` and ``queryStringParameters`` on
``$connect`` (and ``$disconnect``); ``body`` on messages.

- ``$connect``: its route's authorization names the caller, as the REST server does: under ``AWS_IAM`` the
  ``X-Async-Job-Principal`` header (default ``local-user``), or, with a verifier (``--sigv4-credentials``), a
  SigV4 signature presigned in the query string (botocore's ``SigV4QueryAuth``), whose signer is the caller; a
  missing or bad one is refused ``403``. A ``$connect`` function that answers other than ``2xx`` (or fails)
  refuses the connection with that status (``500`` for a failure), as API Gateway does.
- Messages: the route is the field ``$request.body.<field>`` of a JSON message names (the API's route
  selection expression), else ``$default``; without one API Gateway's ``{"message": "Forbidden", ...}`` frame
  is sent back. A route with a route response (two-way) sends its function's ``body`` back.
- ``$disconnect``: invoked once the connection is gone, however it ended (client, server, idle or 2 h limit, a
  ``DELETE @connections``, a dropped socket), with ``disconnectStatusCode`` and ``disconnectReason``.

The management API (``POST``, ``GET``, ``DELETE`` of ``/<stage>/@connections/{connectionId}``, what boto3's
``apigatewaymanagementapi`` client calls) is served over HTTP on a second port. The functions' environment
variables that name the API (``wss://{apiId}.execute-api.{region}.amazonaws.com/...``, ``https://...`` for
the management endpoint, as ``WebSocketStage.url`` and ``callback_url`` synthesize them) are rewritten to the
local ports (``rewrite``), so a push function posts here. An unknown (or gone) connection is answered ``410``
``GoneException``.

Not emulated: Lambda REQUEST authorizers are not run (a ``CUSTOM`` route's caller is the principal header, as
on the REST server), IAM policies on ``@connections`` (requests are not verified), API keys, the 32 KB frame
limit (messages up to 128 KB are accepted), subprotocol negotiation by the ``$connect`` function.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

from async_job_local.api_spec import WebSocketApiSpec, WebSocketRouteSpec
from async_job_local.functions import InvokeResult, LocalFunction
from async_job_local.sigv4 import SignatureRejectedError, SignedRequest, Signer, SigV4Verifier
from lambda_handlers.contract import PRINCIPAL_HEADER

__all__ = [
    "IDLE_TIMEOUT",
    "MAX_CONNECTION_SECONDS",
    "MAX_MESSAGE_BYTES",
    "LocalWebSocketApi",
    "local_api_id",
    "websocket_event",
]

#: API Gateway's limits: a connection closes after 10 minutes idle or 2 hours in all; a message is 128 KB.
IDLE_TIMEOUT: Final = 600.0
MAX_CONNECTION_SECONDS: Final = 7200.0
MAX_MESSAGE_BYTES: Final = 128 * 1024
#: The integration timeout of a WebSocket route (API Gateway's 29 s).
INTEGRATION_TIMEOUT: Final = 29.0
#: How often a connection's handler wakes to check its idle and total limits.
_CHECK_SECONDS: Final = 1.0


def local_api_id(stack_name: str, logical_id: str) -> str:
    """A stable API id (10 lowercase letters and digits, like API Gateway's) for a WebSocket API of a stack.

    Example
    -------
    >>> len(local_api_id("Stack", "Updates")), local_api_id("Stack", "Updates") == local_api_id("Stack", "Updates")
    (10, True)
    """
    digest = int.from_bytes(hashlib.sha256(f"{stack_name}/{logical_id}".encode()).digest()[:8], "big")
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    for _ in range(10):
        digest, index = divmod(digest, 36)
        text += alphabet[index]
    return text


def _connection_id() -> str:
    """An id in API Gateway's form (16 characters of base64, ``=``-padded), URL-safe."""
    return base64.urlsafe_b64encode(secrets.token_bytes(11)).decode()


def _request_time() -> tuple[str, int]:
    now = dt.datetime.now(dt.UTC)
    return now.strftime("%d/%b/%Y:%H:%M:%S +0000"), int(now.timestamp() * 1000)


@dataclass
class _Connection:
    """One open connection: its id, what its ``$connect`` knew, and when it was last active."""

    connection_id: str
    socket: ServerConnection | None
    connected_at: int
    source_ip: str
    user_agent: str | None
    identity: dict[str, Any]
    authorizer: dict[str, Any] | None
    headers: dict[str, str]
    multi_headers: dict[str, list[str]]
    query: dict[str, list[str]]
    last_active: float = field(default_factory=time.monotonic)
    closing_reason: str | None = None
    open: bool = False


def websocket_event(
    connection: _Connection,
    *,
    route_key: str,
    event_type: str,
    api_id: str,
    stage: str,
    domain_name: str,
    body: bytes | str | None = None,
    disconnect: tuple[int, str] | None = None,
) -> dict[str, Any]:
    """API Gateway's Lambda proxy event of a WebSocket route (``CONNECT``, ``MESSAGE`` or ``DISCONNECT``).

    ``identity`` holds the caller's fields on ``$connect`` only (``userArn`` ... under IAM); other events
    carry ``sourceIp`` and ``userAgent`` (a connection's owner is what its ``$connect`` function recorded).
    A ``CUSTOM`` authorizer's ``authorizer`` context is on every event.

    Example
    -------
    >>> event = websocket_event(connection, route_key="subscribe", event_type="MESSAGE", api_id="abc",
    ...                         stage="prod", domain_name="127.0.0.1:3001", body='{"action": "subscribe"}')
    >>> event["requestContext"]["connectionId"] == connection.connection_id
    True
    """
    request_time, epoch = _request_time()
    identity: dict[str, Any] = {"sourceIp": connection.source_ip, "userAgent": connection.user_agent}
    if event_type == "CONNECT":
        identity = {**connection.identity, **identity}
    context: dict[str, Any] = {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": base64.b64encode(secrets.token_bytes(12)).decode()[:16],
        "requestTime": request_time,
        "messageDirection": "IN",
        "stage": stage,
        "connectedAt": connection.connected_at,
        "requestTimeEpoch": epoch,
        "identity": identity,
        "requestId": base64.b64encode(secrets.token_bytes(12)).decode()[:16],
        "domainName": domain_name,
        "connectionId": connection.connection_id,
        "apiId": api_id,
    }
    if connection.authorizer is not None:
        context["authorizer"] = dict(connection.authorizer)
    event: dict[str, Any] = {"requestContext": context, "isBase64Encoded": False}
    if event_type == "MESSAGE":
        context["messageId"] = base64.b64encode(secrets.token_bytes(12)).decode()[:16]
        if isinstance(body, bytes):
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
        else:
            event["body"] = body
    else:
        event["headers"] = dict(connection.headers)
        event["multiValueHeaders"] = {name: list(values) for name, values in connection.multi_headers.items()}
        if event_type == "CONNECT" and connection.query:
            event["queryStringParameters"] = {name: values[-1] for name, values in connection.query.items()}
            event["multiValueQueryStringParameters"] = {k: list(v) for k, v in connection.query.items()}
    if disconnect is not None:
        context["disconnectStatusCode"], context["disconnectReason"] = disconnect
    return event


class LocalWebSocketApi:
    """One WebSocket API served locally: its client endpoint and its ``@connections`` management API.

    Both ports are bound when it is made (so their URLs can go into the functions' environments); they serve
    once ``start`` is called, after ``attach`` gave the route functions.

    Parameters
    ----------
    spec
        The API as the template defines it (routes, stage, route selection expression).
    api_id
        Its local id (``local_api_id``): the ``{apiId}`` of the URLs ``rewrite`` replaces.
    host, port, management_port
        Where the client endpoint and the management API listen (0: a free port).
    account_id, region
        Put in the callers' ARNs, and the ``execute-api`` host names ``rewrite`` recognises.
    default_principal
        The caller of a ``$connect`` without the ``X-Async-Job-Principal`` header.
    verifier
        Default: None. Given, an ``AWS_IAM`` ``$connect`` needs a presigned SigV4 signature it verifies.

    Example
    -------
    >>> websocket = LocalWebSocketApi(spec, api_id="abc123defg", host="127.0.0.1", port=0, management_port=0,
    ...                               account_id="123456789012", region="us-east-1")
    >>> websocket.attach(functions); websocket.start()
    >>> websocket.url
    'ws://127.0.0.1:41234/prod'
    """

    def __init__(
        self,
        spec: WebSocketApiSpec,
        *,
        api_id: str,
        host: str,
        port: int,
        management_port: int,
        account_id: str,
        region: str,
        default_principal: str = "local-user",
        verifier: SigV4Verifier | None = None,
        idle_timeout: float = IDLE_TIMEOUT,
        max_connection_seconds: float = MAX_CONNECTION_SECONDS,
    ) -> None:
        self.spec = spec
        self.api_id = api_id
        self.account_id = account_id
        self.region = region
        self.default_principal = default_principal
        self.verifier = verifier
        self.idle_timeout = idle_timeout
        self.max_connection_seconds = max_connection_seconds
        self._functions: dict[str, LocalFunction] = {}
        self._connections: dict[str, _Connection] = {}
        self._by_socket: dict[int, _Connection] = {}
        self._lock = threading.Lock()
        self._server: Server = serve(
            self._handle,
            host,
            port,
            process_request=self._connect,
            compression=None,
            server_header=None,
            open_timeout=INTEGRATION_TIMEOUT + 5,
            ping_interval=None,  # API Gateway pings no client; a client may ping (it answers pongs)
            max_size=MAX_MESSAGE_BYTES,
        )
        self._server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._management = _ManagementServer((host, management_port), _ManagementHandler)
        self._management.api = self
        bound_host, bound_port = self._server.socket.getsockname()[:2]
        self.host = str(bound_host)
        self.port = int(bound_port)
        self.management_port = int(self._management.server_address[1])
        display = f"[{self.host}]" if ":" in self.host else self.host
        self.domain_name = f"{display}:{self.port}"
        self.url = f"ws://{display}:{self.port}/{spec.stage_name}"
        self.management_url = f"http://{display}:{self.management_port}/{spec.stage_name}"
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------------------------------ lifecycle

    def attach(self, functions: Mapping[str, LocalFunction]) -> None:
        """Give the functions of the routes, by logical id."""
        for route in self.spec.routes.values():
            if route.function is not None:
                self._functions[route.function] = functions[route.function]

    def start(self) -> None:
        """Serve both ports in background threads."""
        for name, target in (
            ("websocket", self._server.serve_forever),
            ("connections", self._management.serve_forever),
        ):
            thread = threading.Thread(target=target, name=f"{name}-{self.api_id}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        """Stop serving: open connections are closed (``1001``) and their ``$disconnect`` invoked."""
        if not self._threads:  # never served: shutting the servers down would wait for their loops for ever
            self._management.server_close()
            self._server.socket.close()
            return
        self._management.shutdown()
        self._management.server_close()
        with contextlib.suppress(OSError):
            self._server.shutdown()
        self._threads = []

    def rewrite(self, value: str) -> str:
        """``value`` with this API's deployed URLs replaced by the local ones (``wss://{id}.execute-api...``
        by ``ws://127.0.0.1:<port>``, ``https://{id}.execute-api...`` by ``http://127.0.0.1:<management port>``).

        Example
        -------
        >>> websocket.rewrite("https://abc123defg.execute-api.us-east-1.amazonaws.com/prod")
        'http://127.0.0.1:3002/prod'
        """
        host = f"{self.api_id}.execute-api.{self.region}.amazonaws.com"
        display = self.domain_name.rsplit(":", 1)[0]
        value = value.replace(f"wss://{host}", f"ws://{display}:{self.port}")
        return value.replace(f"https://{host}", f"http://{display}:{self.management_port}")

    @property
    def connection_ids(self) -> list[str]:
        """The ids of the open connections."""
        with self._lock:
            return [c.connection_id for c in self._connections.values() if c.open]

    def drop(self, connection_id: str) -> bool:
        """Cut a connection's socket without a close frame, as a network failure would (its client sees
        ``1006``); its ``$disconnect`` is invoked. False when no such connection is open."""
        with self._lock:
            connection = self._connections.get(connection_id)
        if connection is None or connection.socket is None:
            return False
        connection.closing_reason = "Connection dropped"
        with contextlib.suppress(OSError):
            connection.socket.socket.shutdown(socket.SHUT_RDWR)
        return True

    # --------------------------------------------------------------------------------------------- connect

    def _connect(self, websocket: ServerConnection, request: Request) -> Response | None:
        """The opening handshake: the stage's path, the caller, then the ``$connect`` route's answer."""
        split = urlsplit(request.path)
        if split.path.rstrip("/") != f"/{self.spec.stage_name}":
            return _refusal(403, "Forbidden")
        headers: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        for name, value in request.headers.raw_items():
            headers[name] = value
            multi.setdefault(name, []).append(value)
        query: dict[str, list[str]] = {}
        for name, value in parse_qsl(split.query, keep_blank_values=True):
            query.setdefault(name, []).append(value)
        peer = websocket.remote_address
        route = self.spec.routes.get("$connect")
        authorization = route.authorization_type if route is not None else "NONE"
        caller = self._caller(authorization, request, split.path, split.query)
        if isinstance(caller, Response):
            return caller
        identity, authorizer = caller
        connection = _Connection(
            connection_id=_connection_id(),
            socket=websocket,
            connected_at=int(time.time() * 1000),
            source_ip=str(peer[0]) if peer else "127.0.0.1",
            user_agent=request.headers.get("User-Agent"),
            identity=identity,
            authorizer=authorizer,
            headers=headers,
            multi_headers=multi,
            query=query,
        )
        if route is not None and route.function is not None:
            result = self._invoke(route, connection, "CONNECT")
            status = _status_of(result)
            if not 200 <= status < 300:
                return _refusal(status, "Internal server error" if status >= 500 else "Forbidden")
        with self._lock:
            self._connections[connection.connection_id] = connection
            self._by_socket[id(websocket)] = connection
        return None

    def _caller(
        self, authorization: str, request: Request, path: str, query: str
    ) -> tuple[dict[str, Any], dict[str, Any] | None] | Response:
        """The ``identity`` and ``authorizer`` of a ``$connect``, or the refusal (``401``, ``403``)."""
        principal = (request.headers.get(PRINCIPAL_HEADER) or "").strip()
        header_given = PRINCIPAL_HEADER in request.headers
        if authorization == "AWS_IAM":
            if self.verifier is not None:
                signed = SignedRequest("GET", path, query, list(request.headers.raw_items()), b"")
                try:
                    signer = self.verifier.verify_presigned(signed)
                except SignatureRejectedError as error:
                    return _refusal(error.status, error.message)
                return _signer_identity(signer), None
            if header_given and not principal:
                return _refusal(403, "Forbidden")
            return self._iam_identity(principal or self.default_principal), None
        if authorization == "CUSTOM":
            if header_given and not principal:
                return _refusal(401, "Unauthorized")
            return {}, {"principalId": principal or self.default_principal, "integrationLatency": 0}
        return {}, None

    def _iam_identity(self, principal: str) -> dict[str, Any]:
        user = principal.rsplit("/", 1)[-1] if principal.startswith("arn:") else principal
        arn = principal if principal.startswith("arn:") else f"arn:aws:iam::{self.account_id}:user/{user}"
        return {
            "accountId": self.account_id,
            "caller": user,
            "accessKey": "ASIALOCALACCESSKEY00",
            "userArn": arn,
            "user": user,
            "cognitoIdentityPoolId": None,
            "cognitoIdentityId": None,
            "cognitoAuthenticationType": None,
            "cognitoAuthenticationProvider": None,
            "principalOrgId": None,
        }

    # -------------------------------------------------------------------------------------------- messages

    def _handle(self, websocket: ServerConnection) -> None:
        """A connection's life: its messages, its limits, then its ``$disconnect``."""
        with self._lock:
            connection = self._by_socket.pop(id(websocket), None)
        if connection is None:  # accepted without our handshake (cannot happen): nothing known of it
            websocket.close(1011, "Internal server error")
            return
        connection.open = True
        started = time.monotonic()
        try:
            while True:
                try:
                    message = websocket.recv(timeout=_CHECK_SECONDS)
                except TimeoutError:
                    now = time.monotonic()
                    if now - connection.last_active >= self.idle_timeout:
                        connection.closing_reason = "Going away (idle timeout)"
                        websocket.close(1001, "Going away")
                    elif now - started >= self.max_connection_seconds:
                        connection.closing_reason = "Going away (connection duration limit)"
                        websocket.close(1001, "Going away")
                    continue
                connection.last_active = time.monotonic()
                self._message(connection, message)
        except ConnectionClosed:
            pass
        finally:
            connection.open = False
            with self._lock:
                self._connections.pop(connection.connection_id, None)
            code = websocket.close_code if websocket.close_code is not None else 1006
            reason = connection.closing_reason or websocket.close_reason or _close_reason(code)
            route = self.spec.routes.get("$disconnect")
            if route is not None and route.function is not None:
                self._invoke(route, connection, "DISCONNECT", disconnect=(code, reason))

    def _message(self, connection: _Connection, message: str | bytes) -> None:
        route = self._route_of(message)
        if route is None or route.function is None:
            self._send_error(connection, "Forbidden")
            return
        result = self._invoke(route, connection, "MESSAGE", body=message)
        if result is None or not result.ok:
            self._send_error(connection, "Internal server error")
            return
        if route.returns_response and isinstance(result.payload, Mapping):
            body = result.payload.get("body")
            if isinstance(body, str) and body:
                self._send(connection, body)

    def _route_of(self, message: str | bytes) -> WebSocketRouteSpec | None:
        """The route a message selects: the value at ``$request.body.<path>`` if a route has it as its key."""
        expression = self.spec.route_selection_expression
        key: Any = None
        if expression.startswith("$request.body."):
            try:
                key = json.loads(message)
            except (ValueError, UnicodeDecodeError):
                key = None
            for part in expression.removeprefix("$request.body.").split("."):
                key = key.get(part) if isinstance(key, Mapping) else None
        if isinstance(key, str) and key in self.spec.routes and not key.startswith("$"):
            return self.spec.routes[key]
        return self.spec.routes.get("$default")

    def _send_error(self, connection: _Connection, message: str) -> None:
        self._send(
            connection,
            json.dumps(
                {
                    "message": message,
                    "connectionId": connection.connection_id,
                    "requestId": base64.b64encode(secrets.token_bytes(12)).decode()[:16],
                }
            ),
        )

    def _send(self, connection: _Connection, data: str | bytes) -> bool:
        if connection.socket is None:
            return False
        try:
            connection.socket.send(data)
        except (ConnectionClosed, OSError):
            return False
        return True

    def _invoke(
        self,
        route: WebSocketRouteSpec,
        connection: _Connection,
        event_type: str,
        *,
        body: str | bytes | None = None,
        disconnect: tuple[int, str] | None = None,
    ) -> InvokeResult | None:
        """Invoke the route's function; None past the 29 s integration timeout (it keeps running)."""
        assert route.function is not None
        function = self._functions[route.function]
        event = websocket_event(
            connection,
            route_key=route.route_key,
            event_type=event_type,
            api_id=self.api_id,
            stage=self.spec.stage_name,
            domain_name=self.domain_name,
            body=body,
            disconnect=disconnect,
        )
        if function.timeout <= INTEGRATION_TIMEOUT:
            return function.invoke(event)
        outcome: list[InvokeResult] = []
        worker = threading.Thread(target=lambda: outcome.append(function.invoke(event)), daemon=True)
        worker.start()
        worker.join(INTEGRATION_TIMEOUT)
        return outcome[0] if outcome else None

    # ------------------------------------------------------------------------------------ @connections

    def post_to_connection(self, connection_id: str, data: bytes) -> int:
        """``POST @connections/{id}``: send ``data`` (a text frame when it is UTF-8); 200, 410 or 413."""
        if len(data) > MAX_MESSAGE_BYTES:
            return 413
        with self._lock:
            connection = self._connections.get(connection_id)
        if connection is None or not connection.open:
            return 410
        try:
            frame: str | bytes = data.decode("utf-8")
        except UnicodeDecodeError:
            frame = data
        return 200 if self._send(connection, frame) else 410

    def describe_connection(self, connection_id: str) -> dict[str, Any] | None:
        """``GET @connections/{id}``: when it connected, its caller's address and agent, its last activity."""
        with self._lock:
            connection = self._connections.get(connection_id)
        if connection is None or not connection.open:
            return None
        idle = time.monotonic() - connection.last_active
        return {
            "connectedAt": _iso(connection.connected_at / 1000),
            "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent},
            "lastActiveAt": _iso(time.time() - idle),
        }

    def delete_connection(self, connection_id: str) -> bool:
        """``DELETE @connections/{id}``: close it (``1000``); False when it is not open."""
        with self._lock:
            connection = self._connections.get(connection_id)
        if connection is None or not connection.open or connection.socket is None:
            return False
        connection.closing_reason = "Connection closed by the backend (DeleteConnection)"
        threading.Thread(target=connection.socket.close, args=(1000, ""), daemon=True).start()
        return True


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _close_reason(code: int) -> str:
    return {1000: "Client closed the connection", 1001: "Going away", 1006: "Connection lost"}.get(
        code, f"Closed with code {code}"
    )


def _status_of(result: InvokeResult | None) -> int:
    """The status a ``$connect`` function's answer gives the handshake: its ``statusCode`` (200 when it
    returns none, as API Gateway reads a non-proxy answer), 500 for an error or a timeout."""
    if result is None or not result.ok:
        return 500
    payload = result.payload
    if isinstance(payload, Mapping) and "statusCode" in payload:
        status = payload["statusCode"]
        if isinstance(status, str) and status.isdigit():
            status = int(status)
        return status if isinstance(status, int) and 100 <= status <= 599 else 500
    return 200


def _refusal(status: int, message: str) -> Response:
    """A handshake refused with API Gateway's JSON ``{"message": ...}``."""
    body = json.dumps({"message": message}).encode()
    headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return Response(status, phrase, headers, body)


def _signer_identity(signer: Signer) -> dict[str, Any]:
    return {
        "accountId": signer.account_id,
        "caller": signer.caller,
        "accessKey": signer.access_key_id,
        "userArn": signer.arn,
        "user": signer.caller,
        "cognitoIdentityPoolId": None,
        "cognitoIdentityId": None,
        "cognitoAuthenticationType": None,
        "cognitoAuthenticationProvider": None,
        "principalOrgId": None,
    }


class _ManagementServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    api: LocalWebSocketApi

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().server_bind()


class _ManagementHandler(BaseHTTPRequestHandler):
    """``/<stage>/@connections/{connectionId}``: ``POST`` (send), ``GET`` (describe), ``DELETE`` (close)."""

    protocol_version = "HTTP/1.1"
    server: _ManagementServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _connection_id(self) -> str | None:
        api = self.server.api
        prefix = f"/{api.spec.stage_name}/@connections/"
        path = urlsplit(self.path).path
        if not path.startswith(prefix) or "/" in path[len(prefix) :] or len(path) == len(prefix):
            return None
        return unquote(path[len(prefix) :])

    def _answer(self, status: int, body: Mapping[str, Any] | None = None, error: str | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if error is not None:
            self.send_header("x-amzn-ErrorType", error)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _gone(self) -> None:
        self._answer(410, {"message": None}, "GoneException")

    def _not_found(self) -> None:
        self._answer(403, {"message": "Forbidden"}, "ForbiddenException")

    def do_POST(self) -> None:
        data = self._body()
        connection_id = self._connection_id()
        if connection_id is None:
            self._not_found()
            return
        status = self.server.api.post_to_connection(connection_id, data)
        if status == 200:
            self._answer(200)
        elif status == 413:
            self._answer(413, {"message": "Payload too large"}, "PayloadTooLargeException")
        else:
            self._gone()

    def do_GET(self) -> None:
        connection_id = self._connection_id()
        if connection_id is None:
            self._not_found()
            return
        described = self.server.api.describe_connection(connection_id)
        if described is None:
            self._gone()
        else:
            self._answer(200, described)

    def do_DELETE(self) -> None:
        self._body()
        connection_id = self._connection_id()
        if connection_id is None:
            self._not_found()
            return
        if self.server.api.delete_connection(connection_id):
            self._answer(204)
        else:
            self._gone()
