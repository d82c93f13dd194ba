"""The local WebSocket endpoint (``async_job_local.websocket``) with a tiny route function of its own: the
template's routes run in child processes with API Gateway's WebSocket events, ``$connect`` authorizes and can
refuse, the ``@connections`` API (called by boto3 from a function, through the rewritten endpoint variable)
sends, describes and closes, and every way a connection ends invokes ``$disconnect``."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from async_job_local.api_spec import apis_of
from async_job_local.assembly import CloudAssembly
from async_job_local.functions import FunctionLogs
from async_job_local.runtime import LocalRuntime
from async_job_local.sigv4 import LocalCredential
from async_job_local.template import StackSpec
from async_job_local.websocket import LocalWebSocketApi
from lambda_handlers.contract import PRINCIPAL_HEADER, Role
from tests.unit.local.templates import CODE_ASSET, api_template, function, make_assets, mark

STACK = "SocketStack"
ALICE = LocalCredential("AKIDALICE", "alice-secret", "arn:aws:iam::123456789012:user/alice")

#: The route function: records every event (a line of JSON in EVENTS_FILE), answers ``echo`` (a two-way route)
#: and, on ``push``, posts to its own connection through @connections at ASYNC_JOB_WEBSOCKET_ENDPOINT.
SOCKET = """
import json
import os

import boto3


def handler(event, context):
    with open(os.environ["EVENTS_FILE"], "a", encoding="utf-8") as out:
        out.write(json.dumps(event) + "\\n")
    context_ = event["requestContext"]
    route = context_["routeKey"]
    if route == "$connect":
        refuse = (event.get("queryStringParameters") or {}).get("refuse")
        return {"statusCode": int(refuse) if refuse else 200}
    if route == "echo":
        return {"statusCode": 200, "body": json.dumps({"echo": json.loads(event["body"])})}
    if route == "push":
        api = boto3.client("apigatewaymanagementapi", endpoint_url=os.environ["ASYNC_JOB_WEBSOCKET_ENDPOINT"])
        me = context_["connectionId"]
        api.post_to_connection(ConnectionId=me, Data=b'{"pushed": 1}')
        described = api.get_connection(ConnectionId=me)
        try:
            api.post_to_connection(ConnectionId="bm9uZS1zdWNoLWlk", Data=b"x")
            gone = False
        except api.exceptions.GoneException:
            gone = True
        api.post_to_connection(
            ConnectionId=me, Data=json.dumps({"gone": gone, "ip": described["Identity"]["SourceIp"]}).encode()
        )
        if json.loads(event["body"]).get("close"):
            api.delete_connection(ConnectionId=me)
    return {"statusCode": 200}
"""


def _join(*parts: Any) -> dict[str, Any]:
    return {"Fn::Join": ["", list(parts)]}


def _template(events_file: Path) -> dict[str, Any]:
    template = api_template()
    resources = template["Resources"]
    resources["Updates"] = {
        "Type": "AWS::ApiGatewayV2::Api",
        "Metadata": mark("websocket-api"),
        "Properties": {
            "Name": "updates",
            "ProtocolType": "WEBSOCKET",
            "RouteSelectionExpression": "$request.body.action",
        },
    }
    resources["UpdatesStage"] = {
        "Type": "AWS::ApiGatewayV2::Stage",
        "Properties": {"ApiId": {"Ref": "Updates"}, "StageName": "live", "AutoDeploy": True},
    }
    endpoint = _join(
        "https://",
        {"Ref": "Updates"},
        ".execute-api.",
        {"Ref": "AWS::Region"},
        ".",
        {"Ref": "AWS::URLSuffix"},
        "/",
        {"Ref": "UpdatesStage"},
    )
    resources["Socket"] = function(
        "socket_routes.handler",
        Role.CONNECTIONS,
        environment={"EVENTS_FILE": str(events_file), "ASYNC_JOB_WEBSOCKET_ENDPOINT": endpoint},
    )
    resources["Status"]["Properties"]["Environment"]["Variables"]["ASYNC_JOB_WEBSOCKET_URL"] = _join(
        {"Fn::GetAtt": ["Updates", "ApiEndpoint"]}, "/live"
    )
    resources["SocketIntegration"] = {
        "Type": "AWS::ApiGatewayV2::Integration",
        "Properties": {
            "ApiId": {"Ref": "Updates"},
            "IntegrationType": "AWS_PROXY",
            "IntegrationUri": _join(
                "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/",
                {"Fn::GetAtt": ["Socket", "Arn"]},
                "/invocations",
            ),
        },
    }
    for key, authorization in (
        ("$connect", "AWS_IAM"),
        ("$disconnect", None),
        ("echo", None),
        ("push", None),
    ):
        name = {"$connect": "Connect", "$disconnect": "Disconnect"}.get(key, key.capitalize())
        properties: dict[str, Any] = {
            "ApiId": {"Ref": "Updates"},
            "RouteKey": key,
            "AuthorizationType": authorization or "NONE",
            "Target": _join("integrations/", {"Ref": "SocketIntegration"}),
        }
        if key == "echo":
            properties["RouteResponseSelectionExpression"] = "$default"
        resources[f"{name}Route"] = {"Type": "AWS::ApiGatewayV2::Route", "Properties": properties}
    return template


class Started:
    def __init__(self, runtime: LocalRuntime, events_file: Path) -> None:
        self.runtime = runtime
        self.events_file = events_file
        self.websocket: LocalWebSocketApi = runtime.websocket(runtime.api())

    def events(
        self, route: str, connection_id: str | None = None, timeout: float = 10
    ) -> list[dict[str, Any]]:
        """The events of ``route`` (of one connection) the function has recorded, once there is one."""
        deadline = time.monotonic() + timeout
        while True:
            found = []
            if self.events_file.exists():
                for line in self.events_file.read_text(encoding="utf-8").splitlines():
                    event = json.loads(line)
                    context = event["requestContext"]
                    if context["routeKey"] == route and connection_id in (None, context["connectionId"]):
                        found.append(event)
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


def _runtime(directory: Path, **kwargs: Any) -> LocalRuntime:
    make_assets(directory)
    (directory / CODE_ASSET / "socket_routes.py").write_text(SOCKET, encoding="utf-8")
    events_file = directory / "events.jsonl"
    stack = StackSpec(
        artifact_id=STACK, stack_name=STACK, template=_template(events_file), directory=directory
    )
    assembly = CloudAssembly(
        directory=directory, stacks=(stack,), apis=tuple(apis_of(stack, set())), warnings=()
    )
    return LocalRuntime(
        assembly,
        port=0,
        logs=FunctionLogs(io.StringIO()),
        check_handlers=False,
        warn=lambda _: None,
        **kwargs,
    )


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Started]:
    directory = tmp_path_factory.mktemp("socket")
    with _runtime(directory) as runtime:
        yield Started(runtime, directory / "events.jsonl")


def _connection_id(started: Started, before: set[str]) -> str:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        new = set(started.websocket.connection_ids) - before
        if new:
            (found,) = new
            return found
        time.sleep(0.02)
    raise AssertionError("no new connection")


def test_connect_runs_the_connect_route_with_the_callers_identity(started: Started) -> None:
    # GIVEN the API's WebSocket URL
    url = started.runtime.websocket_url(started.runtime.api())
    before = set(started.websocket.connection_ids)

    # WHEN alice connects, with a query parameter
    with connect(url + "?client=test", additional_headers={PRINCIPAL_HEADER: "alice"}) as socket:
        connection_id = _connection_id(started, before)
        (event,) = started.events("$connect", connection_id)

    # THEN the $connect event has API Gateway's shape, IAM identity included
    context = event["requestContext"]
    assert url.startswith("ws://127.0.0.1:")
    assert url.endswith("/live")
    assert context["eventType"] == "CONNECT"
    assert context["stage"] == "live"
    assert context["apiId"] == started.websocket.api_id
    assert context["identity"]["userArn"] == "arn:aws:iam::123456789012:user/alice"
    assert context["domainName"] == urlsplit(url).netloc
    assert isinstance(context["connectedAt"], int)
    assert event["queryStringParameters"] == {"client": "test"}
    assert event["headers"][PRINCIPAL_HEADER] == "alice"
    assert socket.close_code is None or socket.close_code == 1000


def test_a_connect_answer_other_than_2xx_refuses_the_connection(started: Started) -> None:
    url = started.runtime.websocket_url(started.runtime.api())
    with pytest.raises(InvalidStatus) as refused:
        connect(url + "?refuse=401")
    assert refused.value.response.status_code == 401


def test_a_wrong_stage_is_refused(started: Started) -> None:
    url = started.runtime.websocket_url(started.runtime.api())
    with pytest.raises(InvalidStatus) as refused:
        connect(url.replace("/live", "/other"))
    assert refused.value.response.status_code == 403


def test_a_two_way_route_answers_and_an_unknown_one_is_forbidden(started: Started) -> None:
    url = started.runtime.websocket_url(started.runtime.api())
    with connect(url) as socket:
        socket.send(json.dumps({"action": "echo", "n": 1}))
        assert json.loads(socket.recv(timeout=10)) == {"echo": {"action": "echo", "n": 1}}
        socket.send(json.dumps({"action": "nothing"}))
        forbidden = json.loads(socket.recv(timeout=10))
    assert forbidden["message"] == "Forbidden"
    assert set(forbidden) == {"message", "connectionId", "requestId"}


def test_a_message_event_has_the_message_shape_without_the_callers_identity(started: Started) -> None:
    url = started.runtime.websocket_url(started.runtime.api())
    before = set(started.websocket.connection_ids)
    with connect(url, additional_headers={PRINCIPAL_HEADER: "alice"}) as socket:
        connection_id = _connection_id(started, before)
        socket.send(json.dumps({"action": "echo"}))
        socket.recv(timeout=10)
    (event,) = started.events("echo", connection_id)
    context = event["requestContext"]
    assert context["eventType"] == "MESSAGE"
    assert context["messageId"]
    assert "userArn" not in context["identity"]
    assert event["body"] == '{"action": "echo"}'


def test_connections_api_sends_describes_and_answers_gone_from_a_function(started: Started) -> None:
    # GIVEN the function's endpoint variable, rewritten to the local management API
    socket_function = started.runtime.functions[(STACK, "Socket")]
    assert socket_function.environment["ASYNC_JOB_WEBSOCKET_ENDPOINT"] == started.websocket.management_url
    status = started.runtime.functions[(STACK, "Status")]
    assert status.environment["ASYNC_JOB_WEBSOCKET_URL"] == started.websocket.url

    # WHEN a client asks the function to push to it
    with connect(started.websocket.url) as socket:
        socket.send(json.dumps({"action": "push"}))
        first = json.loads(socket.recv(timeout=10))
        second = json.loads(socket.recv(timeout=10))

    # THEN it gets the posted frames; an unknown connection was 410 Gone (GoneException in boto3)
    assert first == {"pushed": 1}
    assert second == {"gone": True, "ip": "127.0.0.1"}


def test_delete_connection_closes_it_and_disconnect_runs(started: Started) -> None:
    before = set(started.websocket.connection_ids)
    with connect(started.websocket.url) as socket:
        connection_id = _connection_id(started, before)
        socket.send(json.dumps({"action": "push", "close": True}))
        socket.recv(timeout=10)
        socket.recv(timeout=10)
        with pytest.raises(ConnectionClosed):
            socket.recv(timeout=10)
    assert socket.close_code == 1000
    (event,) = started.events("$disconnect", connection_id)
    assert event["requestContext"]["eventType"] == "DISCONNECT"
    assert event["requestContext"]["disconnectStatusCode"] == 1000


def test_a_dropped_socket_runs_disconnect_and_the_client_sees_1006(started: Started) -> None:
    before = set(started.websocket.connection_ids)
    with connect(started.websocket.url) as socket:
        connection_id = _connection_id(started, before)
        assert started.websocket.drop(connection_id)
        with pytest.raises(ConnectionClosed):
            socket.recv(timeout=10)
    assert socket.close_code in (None, 1006)
    (event,) = started.events("$disconnect", connection_id)
    assert event["requestContext"]["disconnectStatusCode"] == 1006
    assert connection_id not in started.websocket.connection_ids
    management = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=started.websocket.management_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with pytest.raises(management.exceptions.GoneException):
        management.post_to_connection(ConnectionId=connection_id, Data=b"late")


def _presigned(url: str, credentials: Credentials, region: str = "us-east-1", expires: int = 60) -> str:
    request = AWSRequest(method="GET", url=url.replace("ws://", "http://", 1))
    SigV4QueryAuth(credentials, "execute-api", region, expires=expires).add_auth(request)
    return request.url.replace("http://", "ws://", 1)


def test_with_sigv4_credentials_connect_needs_a_presigned_signature(tmp_path: Path) -> None:
    # GIVEN a runtime that verifies signatures
    with _runtime(tmp_path, sigv4_credentials=[ALICE]) as runtime:
        websocket = runtime.websocket(runtime.api())
        events = Started(runtime, tmp_path / "events.jsonl")

        # WHEN a client connects unsigned, with a wrong key, and presigned by alice
        with pytest.raises(InvalidStatus) as unsigned:
            connect(websocket.url, additional_headers={PRINCIPAL_HEADER: "alice"})
        with pytest.raises(InvalidStatus) as wrong:
            connect(_presigned(websocket.url, Credentials("AKIDALICE", "not-her-secret")))
        before = set(websocket.connection_ids)
        with connect(_presigned(websocket.url, Credentials("AKIDALICE", "alice-secret"))):
            connection_id = _connection_id(events, before)
            (event,) = events.events("$connect", connection_id)

    # THEN only the signed one is let in, as alice
    assert unsigned.value.response.status_code == 403
    assert wrong.value.response.status_code == 403
    assert json.loads(wrong.value.response.body)["message"].startswith("The request signature we calculated")
    assert event["requestContext"]["identity"]["userArn"] == ALICE.arn
