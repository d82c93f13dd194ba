"""What API Gateway answers itself, rendered from the API's gateway responses."""

from __future__ import annotations

import json

from async_job_local.api_spec import GatewayResponseSpec
from async_job_local.gateway_responses import render_gateway_response

CONTEXT = {"requestId": "req-1", "resourcePath": "/jobs", "identity": {"sourceIp": "127.0.0.1"}}


def spec(
    response_type: str, template: str | None = None, status: str | None = None, **parameters: str
) -> GatewayResponseSpec:
    return GatewayResponseSpec(
        response_type=response_type,
        status_code=status,
        templates={} if template is None else {"application/json": template},
        parameters=parameters,
    )


def test_without_gateway_responses_the_answer_is_api_gateways_builtin_message() -> None:
    # GIVEN an API with no gateway responses WHEN no route matches
    status, headers, body = render_gateway_response(
        {}, "MISSING_AUTHENTICATION_TOKEN", 403, "Missing Authentication Token", CONTEXT, {}
    )

    # THEN it is API Gateway's own answer, with its error type header
    assert status == 403
    assert json.loads(body) == {"message": "Missing Authentication Token"}
    assert headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_the_default_4xx_template_renders_context_variables() -> None:
    # GIVEN a DEFAULT_4XX whose template uses $context variables
    responses = {
        "DEFAULT_4XX": spec(
            "DEFAULT_4XX",
            '{"type": "$context.error.responseType", "title": $context.error.messageString, '
            '"instance": "$context.requestId", "detail": "$context.error.validationErrorString"}',
        )
    }

    # WHEN a body is rejected
    status, _, body = render_gateway_response(
        responses,
        "BAD_REQUEST_BODY",
        400,
        "Invalid request body",
        CONTEXT,
        {},
        {"context.error.validationErrorString": "bad"},
    )

    # THEN the template is rendered with the request's values
    assert status == 400
    assert json.loads(body) == {
        "type": "BAD_REQUEST_BODY",
        "title": "Invalid request body",
        "instance": "req-1",
        "detail": "bad",
    }


def test_a_response_of_the_type_wins_over_the_default_and_sets_its_status_and_headers() -> None:
    # GIVEN a DEFAULT_4XX and an INVALID_API_KEY response with a status, a static and an echoed header
    responses = {
        "DEFAULT_4XX": spec("DEFAULT_4XX", '{"from": "default"}'),
        "INVALID_API_KEY": spec(
            "INVALID_API_KEY",
            '{"from": "own"}',
            status="401",
            **{
                "gatewayresponse.header.X-Static": "'yes'",
                "gatewayresponse.header.X-Echo": "method.request.header.x-request",
            },
        ),
    }

    # WHEN the API key is missing
    status, headers, body = render_gateway_response(
        responses, "INVALID_API_KEY", 403, "Forbidden", CONTEXT, {"X-Request": "abc"}
    )

    # THEN the type's own response applies
    assert (status, json.loads(body)) == (401, {"from": "own"})
    assert (headers["X-Static"], headers["X-Echo"]) == ("yes", "abc")


def test_a_status_set_on_the_default_applies_to_every_type_it_covers() -> None:
    # GIVEN a DEFAULT_5XX with status 503
    responses = {"DEFAULT_5XX": spec("DEFAULT_5XX", '{"m": "$context.error.message"}', status="503")}

    # WHEN a function fails
    status, headers, body = render_gateway_response(
        responses, "INTEGRATION_FAILURE", 502, "Internal server error", CONTEXT, {}
    )

    # THEN the default's status and template apply
    assert (status, json.loads(body)) == (503, {"m": "Internal server error"})
    assert headers["x-amzn-ErrorType"] == "InternalServerErrorException"
