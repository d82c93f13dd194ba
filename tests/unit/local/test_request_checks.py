"""What API Gateway rejects before the integration."""

from __future__ import annotations

from email.message import Message

import pytest

from async_job_local.api_spec import RouteSpec
from async_job_local.request_checks import gateway_rejection, parse_json, schema_errors

SCHEMA = {"type": "object", "required": ["seconds"], "properties": {"seconds": {"type": "integer"}}}


def route(authorization: str = "AWS_IAM", **overrides: object) -> RouteSpec:
    return RouteSpec(
        resource_path="/jobs",
        http_method="POST",
        authorization_type=authorization,
        function="Submit",
        **overrides,  # type: ignore[arg-type]
    )


def headers(**fields: str) -> Message:
    message = Message()
    for name, value in fields.items():
        message[name.replace("_", "-")] = value
    return message


def reject(spec: RouteSpec, message: Message, body: bytes = b"", query: str = "") -> object:
    return gateway_rejection(spec, message, query, body, default_principal="local-user")


@pytest.mark.parametrize(
    ("instance", "errors"),
    [
        ({"seconds": 2}, []),
        (
            {"seconds": 2.5},
            ['instance type (number) does not match any allowed primitive type (allowed: ["integer"])'],
        ),
        ([], ['instance type (array) does not match any allowed primitive type (allowed: ["object"])']),
        ({}, ['object has missing required properties (["seconds"])']),
    ],
)
def test_schema_errors_are_the_validators_messages(instance: object, errors: list[str]) -> None:
    assert schema_errors(SCHEMA, instance) == errors


@pytest.mark.parametrize("body", [b"NaN", b'{"a": Infinity}', b"\xff", b"{"])
def test_parse_json_refuses_what_api_gateways_validator_refuses(body: bytes) -> None:
    with pytest.raises(ValueError, match=r"JSON|utf-8|Expecting"):
        parse_json(body)


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [("AWS_IAM", ("MISSING_AUTHENTICATION_TOKEN", 403)), ("CUSTOM", ("UNAUTHORIZED", 401)), ("NONE", None)],
)
def test_an_empty_principal_header_is_refused_under_authorization(
    authorization: str, expected: tuple[str, int] | None
) -> None:
    # GIVEN an empty X-Async-Job-Principal WHEN the request is checked
    rejection = reject(route(authorization), headers(X_Async_Job_Principal="  "))

    # THEN it is refused as missing credentials, or ignored without authorization
    if expected is None:
        assert rejection is None
    else:
        assert rejection is not None
        assert rejection[:2] == expected
        assert "X-Async-Job-Principal header is empty" in rejection[2]  # type: ignore[index]


def test_a_missing_api_key_is_refused() -> None:
    rejection = reject(route(api_key_required=True), headers())
    assert rejection == ("INVALID_API_KEY", 403, "Forbidden", None)


def test_missing_required_parameters_are_named() -> None:
    # GIVEN a route requiring a header and a query parameter WHEN neither is sent
    spec = route(required_parameters=("header.Idempotency-Key", "querystring.mode"))
    rejection = reject(spec, headers())

    # THEN both are named
    assert rejection == (
        "BAD_REQUEST_PARAMETERS",
        400,
        "Missing required request parameters: [Idempotency-Key, mode]",
        None,
    )


def test_a_body_the_model_rejects_is_a_bad_request_body_with_the_validation_string() -> None:
    # GIVEN a route whose model requires seconds WHEN the body lacks it
    spec = route(body_schemas={"application/json": SCHEMA})
    rejection = reject(spec, headers(Content_Type="application/json"), b"{}")

    # THEN it is BAD_REQUEST_BODY with the validator's messages
    assert rejection == (
        "BAD_REQUEST_BODY",
        400,
        "Invalid request body",
        {"context.error.validationErrorString": '[object has missing required properties ([\\"seconds\\"])]'},
    )


def test_a_valid_body_and_no_body_pass_when_no_field_is_required() -> None:
    spec = route(body_schemas={"application/json": {"type": "object"}})
    assert reject(spec, headers(), b'{"seconds": 1}') is None
    assert reject(spec, headers(), b"") is None
