"""Proxy events and proxy responses, as API Gateway's Lambda proxy integration makes and reads them."""

from __future__ import annotations

import base64
from email.message import Message

import pytest

from async_job_local.api_spec import ApiSpec, RouteSpec, apis_of
from async_job_local.functions import InvokeResult
from async_job_local.proxy import (
    GatewayIdentity,
    IncomingRequest,
    proxy_event,
    proxy_response,
    request_context,
)
from tests.unit.local.conftest import StackFactory
from tests.unit.local.templates import api_template

GATEWAY = GatewayIdentity(account_id="123456789012", host="127.0.0.1", port=3000)
STATUS_ROUTE = RouteSpec("/jobs/{id}", "GET", "AWS_IAM", "Status")


def headers(**fields: str) -> Message:
    message = Message()
    for name, value in fields.items():
        message[name.replace("_", "-")] = value
    return message


def request(
    method: str = "GET", path: str = "/stack-media/jobs/42", query: str = "", **fields: str
) -> IncomingRequest:
    return IncomingRequest(
        method=method, path=path, query=query, headers=headers(**fields), client_ip="127.0.0.9"
    )


@pytest.fixture
def api(make_stack: StackFactory) -> ApiSpec:
    (spec,) = apis_of(make_stack(api_template()), set())
    return spec


def context_for(
    api: ApiSpec, route: RouteSpec | None, principal: str, incoming: IncomingRequest | None = None
) -> dict:  # type: ignore[type-arg]
    return request_context(
        incoming or request(),
        api,
        route,
        gateway=GATEWAY,
        request_id="req-1",
        request_time="01/Dec/2026:10:00:00 +0000",
        request_epoch=1,
        principal=principal,
    )


def test_under_iam_the_principal_is_the_callers_user_arn(api: ApiSpec) -> None:
    # GIVEN an IAM route WHEN alice calls it
    context = context_for(api, STATUS_ROUTE, "alice")

    # THEN the identity is where IAM authorization puts it
    identity = context["identity"]
    assert identity["userArn"] == "arn:aws:iam::123456789012:user/alice"
    assert (identity["caller"], identity["user"], identity["accountId"]) == ("alice", "alice", "123456789012")
    assert (context["stage"], context["resourcePath"], context["path"]) == (
        "stack-media",
        "/jobs/{id}",
        "/stack-media/jobs/42",
    )


def test_an_arn_principal_is_the_user_arn_itself(api: ApiSpec) -> None:
    # GIVEN a principal that is a role session ARN
    arn = "arn:aws:sts::111122223333:assumed-role/ci/session"

    # WHEN it calls an IAM route THEN userArn is the ARN and user its last part
    identity = context_for(api, STATUS_ROUTE, arn)["identity"]
    assert (identity["userArn"], identity["user"]) == (arn, "session")


@pytest.mark.parametrize(
    ("authorization", "where"),
    [("CUSTOM", ("principalId",)), ("COGNITO_USER_POOLS", ("claims", "sub"))],
)
def test_other_authorizers_put_the_principal_in_the_authorizer(
    api: ApiSpec, authorization: str, where: tuple[str, ...]
) -> None:
    # GIVEN a route under another authorization type
    route = RouteSpec("/jobs/{id}", "GET", authorization, "Status")

    # WHEN bob calls it
    context = context_for(api, route, "bob")

    # THEN the authorizer holds bob and the identity has no IAM user
    value = context["authorizer"]
    for key in where:
        value = value[key]
    assert value == "bob"
    assert context["identity"]["userArn"] is None


def test_a_proxy_event_has_the_rest_shape(api: ApiSpec) -> None:
    # GIVEN GET /jobs/42?verbose=1&verbose=2 with a header
    incoming = request(query="verbose=1&verbose=2", X_Trace="t")
    context = context_for(api, STATUS_ROUTE, "alice", incoming)

    # WHEN its proxy event is made
    event = proxy_event(
        incoming,
        api,
        STATUS_ROUTE,
        resource_path="/jobs/42",
        path_parameters={"id": "42"},
        body=b"",
        context=context,
        port=3000,
    )

    # THEN it has REST's fields: resource, path without the stage, parameters, forwarded headers, null body
    assert (event["resource"], event["path"], event["httpMethod"]) == ("/jobs/{id}", "/jobs/42", "GET")
    assert event["pathParameters"] == {"id": "42"}
    assert event["queryStringParameters"] == {"verbose": "2"}
    assert event["multiValueQueryStringParameters"] == {"verbose": ["1", "2"]}
    assert event["headers"]["X-Trace"] == "t"
    assert event["headers"]["X-Forwarded-Proto"] == "http"
    assert event["multiValueHeaders"]["X-Forwarded-For"] == ["127.0.0.9"]
    assert (event["body"], event["isBase64Encoded"], event["stageVariables"]) == (None, False, None)
    assert event["requestContext"]["requestId"] == "req-1"


@pytest.mark.parametrize(
    ("body", "text", "encoded"),
    [(b'{"a": 1}', '{"a": 1}', False), (b"\xff\xfe", base64.b64encode(b"\xff\xfe").decode(), True)],
)
def test_a_body_that_is_not_utf8_is_passed_base64_encoded(
    api: ApiSpec, body: bytes, text: str, encoded: bool
) -> None:
    # GIVEN a POST body WHEN its event is made THEN UTF-8 is text and other bytes are base64, never altered
    incoming = request(method="POST", path="/stack-media/jobs", Content_Type="application/json")
    route = RouteSpec("/jobs", "POST", "AWS_IAM", "Submit")
    event = proxy_event(
        incoming, api, route, resource_path="/jobs", path_parameters={}, body=body, context={}, port=3000
    )
    assert (event["body"], event["isBase64Encoded"], event["pathParameters"]) == (text, encoded, None)


def result(payload: object, error: dict | None = None) -> InvokeResult:  # type: ignore[type-arg]
    return InvokeResult(request_id="r", payload=payload, error=error, duration_ms=1.0)


def test_a_proxy_response_becomes_status_headers_and_body() -> None:
    # GIVEN a proxy result with single- and multi-value headers and a base64 body
    payload = {
        "statusCode": 202,
        "headers": {"Location": "/jobs/1"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": base64.b64encode(b"\x00ok").decode(),
        "isBase64Encoded": True,
    }

    # WHEN it is read THEN the body is decoded and every header kept
    assert proxy_response(result(payload)) == (
        202,
        {"Location": ["/jobs/1"], "Set-Cookie": ["a=1", "b=2"]},
        b"\x00ok",
    )


@pytest.mark.parametrize(
    "payload",
    [
        {"statusCode": 700},
        {"statusCode": True},
        {"body": "{}"},
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": 200, "multiValueHeaders": {"A": "not a list"}},
        "not a mapping",
    ],
)
def test_a_malformed_proxy_response_is_none_for_a_502(payload: object) -> None:
    assert proxy_response(result(payload)) is None


def test_a_function_error_is_none_for_a_502() -> None:
    assert proxy_response(result(None, {"errorType": "Boom", "errorMessage": "x"})) is None
