"""The security props: authorization, API keys, operators, throttling, CORS, encryption, WAF, logging."""

from __future__ import annotations

import json
import re
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Annotations, Match, Template

from async_job_construct import AsyncJobApi, JobApiAuth, PropValueError
from tests.unit.construct.helpers import TEAM_CODE, env, policy_actions, props, refers_to, resource


def _children(body: dict[str, Any], api_path: str, resource_type: str) -> list[dict[str, Any]]:
    """Resources of ``resource_type`` that belong to the API of ``api_path``."""
    api_id, _ = resource(body, api_path, "api")
    return [
        r["Properties"]
        for r in body["Resources"].values()
        if r["Type"] == resource_type and refers_to(r["Properties"].get("RestApiId"), api_id)
    ]


class Synthesized:
    def __init__(self) -> None:
        app = cdk.App()
        stack = cdk.Stack(app, "Stack")
        self.key = kms.Key(stack, "Key", enable_key_rotation=True)
        self.pool = cognito.UserPool(stack, "Pool")
        self.cognito = AsyncJobApi(
            stack,
            "Cognito",
            handler="m.f",
            code=TEAM_CODE,
            auth=JobApiAuth.cognito([self.pool], scopes=["jobs/submit"]),
            api_key_required=True,
            operators=["arn:aws:iam::111111111111:role/Operators", "sub-123"],
            throttling_rate_limit=7,
            throttling_burst_limit=9,
            cors=apigateway.CorsOptions(allow_origins=["https://app.example.com"]),
            encryption_key=self.key,
            web_acl_arn="arn:aws:wafv2:us-east-1:111111111111:regional/webacl/jobs/abc",
            cloud_watch_role=True,
        )
        authorizer_fn = lambda_.Function(
            stack,
            "AuthorizerFn",
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler="index.handler",
            code=lambda_.Code.from_inline("def handler(e, c): return {}"),
        )
        self.custom = AsyncJobApi(
            stack,
            "Custom",
            handler="m.f",
            code=TEAM_CODE,
            auth=JobApiAuth.custom(
                apigateway.TokenAuthorizer(stack, "TokenAuthorizer", handler=authorizer_fn)
            ),
        )
        self.open = AsyncJobApi(stack, "Open", handler="m.f", code=TEAM_CODE, auth=JobApiAuth.none())
        self.iam = AsyncJobApi(stack, "Iam", handler="m.f", code=TEAM_CODE)
        self.stack = stack
        self.template = Template.from_stack(stack)
        self.body: dict[str, Any] = self.template.to_json()


@pytest.fixture(scope="module")
def synth() -> Synthesized:
    return Synthesized()


def _job_methods(body: dict[str, Any], api_path: str) -> list[dict[str, Any]]:
    return [m for m in _children(body, api_path, "AWS::ApiGateway::Method") if m["HttpMethod"] != "OPTIONS"]


def test_cognito_auth_uses_a_user_pool_authorizer_with_scopes(synth: Synthesized) -> None:
    methods = _job_methods(synth.body, "Stack/Cognito")
    assert sorted(m["HttpMethod"] for m in methods) == ["DELETE", "GET", "GET", "GET", "POST"]
    assert all(m["AuthorizationType"] == "COGNITO_USER_POOLS" for m in methods)
    assert all(m["AuthorizationScopes"] == ["jobs/submit"] for m in methods)
    (authorizer,) = _children(synth.body, "Stack/Cognito", "AWS::ApiGateway::Authorizer")
    assert authorizer["Type"] == "COGNITO_USER_POOLS"


def test_custom_auth_uses_the_given_authorizer(synth: Synthesized) -> None:
    methods = _job_methods(synth.body, "Stack/Custom")
    assert all(m["AuthorizationType"] == "CUSTOM" for m in methods)
    assert all("AuthorizerId" in m for m in methods)


def test_no_auth_is_explicit_and_warns(synth: Synthesized) -> None:
    assert all(m["AuthorizationType"] == "NONE" for m in _job_methods(synth.body, "Stack/Open"))
    annotations = Annotations.from_stack(synth.stack)
    annotations.has_warning("/Stack/Open", Match.string_like_regexp("auth is JobApiAuth.none\\(\\): anyone"))
    annotations.has_no_warning("/Stack/Iam", Match.string_like_regexp("auth is"))


def test_api_key_requires_a_key_and_gets_a_throttled_usage_plan(synth: Synthesized) -> None:
    assert all(m["ApiKeyRequired"] is True for m in _job_methods(synth.body, "Stack/Cognito"))
    assert synth.cognito.usage_plan is not None
    assert synth.iam.usage_plan is None
    plans = [
        r["Properties"] for r in synth.body["Resources"].values() if r["Type"] == "AWS::ApiGateway::UsagePlan"
    ]
    assert len(plans) == 1
    assert plans[0]["Throttle"] == {"RateLimit": 7, "BurstLimit": 9}


def test_operators_reach_the_status_function_only(synth: Synthesized) -> None:
    operators = env(synth.body, "Stack/Cognito", "status")["ASYNC_JOB_OPERATORS"]
    assert json.loads(operators) == ["arn:aws:iam::111111111111:role/Operators", "sub-123"]
    assert "ASYNC_JOB_OPERATORS" not in env(synth.body, "Stack/Cognito", "submit")
    assert "ASYNC_JOB_OPERATORS" not in env(synth.body, "Stack/Iam", "status")


def test_stage_throttling_logging_and_access_log_format(synth: Synthesized) -> None:
    (stage,) = _children(synth.body, "Stack/Cognito", "AWS::ApiGateway::Stage")
    settings = stage["MethodSettings"][0]
    assert (settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"]) == (7, 9)
    assert settings["LoggingLevel"] == "ERROR"
    assert settings["DataTraceEnabled"] is False
    access_log = json.loads(stage["AccessLogSetting"]["Format"])
    assert access_log["integrationLatency"] == "$context.integrationLatency"
    assert access_log["status"] == "$context.status"
    (default_stage,) = _children(synth.body, "Stack/Iam", "AWS::ApiGateway::Stage")
    default_settings = default_stage["MethodSettings"][0]
    assert (default_settings["ThrottlingRateLimit"], default_settings["ThrottlingBurstLimit"]) == (100, 200)


def test_body_must_be_json_before_a_lambda_runs(synth: Synthesized) -> None:
    (validator,) = _children(synth.body, "Stack/Iam", "AWS::ApiGateway::RequestValidator")
    assert validator["ValidateRequestBody"] is True
    (model,) = _children(synth.body, "Stack/Iam", "AWS::ApiGateway::Model")
    assert model["ContentType"] == "application/json"
    # Any JSON value: API Gateway rejects what is not JSON; the submit function, JSON that is not an object.
    assert "type" not in model["Schema"]
    post = next(m for m in _job_methods(synth.body, "Stack/Iam") if m["HttpMethod"] == "POST")
    assert "application/json" in post["RequestModels"]
    responses = {
        r["ResponseType"]: r for r in _children(synth.body, "Stack/Iam", "AWS::ApiGateway::GatewayResponse")
    }
    bad_body = responses["BAD_REQUEST_BODY"]
    assert bad_body["StatusCode"] == "400"
    assert (
        bad_body["ResponseParameters"]["gatewayresponse.header.Content-Type"] == "'application/problem+json'"
    )
    problem = json.loads(bad_body["ResponseTemplates"]["application/json"])
    assert (problem["type"], problem["status"]) == ("urn:async-job:problem:invalid-json", 400)


#: AWS's "Gateway response types for API Gateway": the status API Gateway answers each type with.
_DOCUMENTED_STATUS = {
    "ACCESS_DENIED": 403,
    "AUTHORIZER_CONFIGURATION_ERROR": 500,
    "AUTHORIZER_FAILURE": 500,
    "BAD_REQUEST_BODY": 400,
    "EXPIRED_TOKEN": 403,
    "INVALID_API_KEY": 403,
    "INVALID_SIGNATURE": 403,
    "MISSING_AUTHENTICATION_TOKEN": 403,
    "REQUEST_TOO_LARGE": 413,
    "THROTTLED": 429,
    "UNAUTHORIZED": 401,
    "WAF_FILTERED": 403,
}
_EVERY_API = {"BAD_REQUEST_BODY", "MISSING_AUTHENTICATION_TOKEN", "THROTTLED", "REQUEST_TOO_LARGE"}
_FALLBACKS = {"DEFAULT_4XX", "DEFAULT_5XX"}


@pytest.mark.parametrize(
    ("api", "specific"),
    [
        pytest.param("Stack/Iam", {"ACCESS_DENIED", "INVALID_SIGNATURE", "EXPIRED_TOKEN"}, id="iam"),
        pytest.param(
            "Stack/Cognito",
            {"ACCESS_DENIED", "UNAUTHORIZED", "INVALID_API_KEY", "WAF_FILTERED"},
            id="cognito",
        ),
        pytest.param(
            "Stack/Custom",
            {"ACCESS_DENIED", "UNAUTHORIZED", "AUTHORIZER_FAILURE", "AUTHORIZER_CONFIGURATION_ERROR"},
            id="custom",
        ),
        pytest.param("Stack/Open", set(), id="no-auth"),
    ],
)
def test_each_gateway_answer_the_api_can_give_is_a_problem_with_its_status(
    synth: Synthesized, api: str, specific: set[str]
) -> None:
    responses = {r["ResponseType"]: r for r in _children(synth.body, api, "AWS::ApiGateway::GatewayResponse")}

    assert (
        set(responses) == _EVERY_API | specific | _FALLBACKS
    )  # one resource per type it can answer, no more
    for response_type, response in responses.items():
        assert response["ResponseParameters"] == {
            "gatewayresponse.header.Content-Type": "'application/problem+json'"
        }
        problem = json.loads(
            response["ResponseTemplates"]["application/json"]
            .replace("$context.error.messageString", '"message"')
            .replace("$context.error.responseType", response_type)
        )
        if response_type in _FALLBACKS:
            # The status of what falls back varies (e.g. INTEGRATION_FAILURE: 500 or 502): neither pinned nor said.
            assert "StatusCode" not in response
            assert "status" not in problem
        else:
            assert response["StatusCode"] == str(_DOCUMENTED_STATUS[response_type])
            assert problem["status"] == _DOCUMENTED_STATUS[response_type]
        if response_type != "BAD_REQUEST_BODY":
            assert problem["type"] == f"urn:async-job:problem:gateway-{response_type}"


def test_cors_adds_unauthenticated_preflight_only(synth: Synthesized) -> None:
    options = [
        m
        for m in _children(synth.body, "Stack/Cognito", "AWS::ApiGateway::Method")
        if m["HttpMethod"] == "OPTIONS"
    ]
    assert len(options) >= 2
    assert all(m["AuthorizationType"] == "NONE" for m in options)
    assert not [
        m
        for m in _children(synth.body, "Stack/Iam", "AWS::ApiGateway::Method")
        if m["HttpMethod"] == "OPTIONS"
    ]


def test_customer_managed_key_encrypts_queues_table_and_logs(synth: Synthesized) -> None:
    key_id = synth.stack.resolve(synth.key.key_arn)
    for role in ("queue", "dead-letter-queue"):
        assert props(synth.body, "Stack/Cognito", role)["KmsMasterKeyId"] == key_id
    table = props(synth.body, "Stack/Cognito", "table")
    assert table["SSESpecification"]["SSEType"] == "KMS"
    assert table["SSESpecification"]["KMSMasterKeyId"] == key_id
    worker_logs = props(synth.body, "Stack/Cognito", "worker")["LoggingConfig"]["LogGroup"]["Ref"]
    assert synth.body["Resources"][worker_logs]["Properties"]["KmsKeyId"] == key_id
    table_user_kms = {"kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt", "kms:DescribeKey"}
    for role in ("submit", "status", "worker", "dead-letter"):
        function_id, function = resource(synth.body, "Stack/Cognito", role)
        kms_actions = {a for a in policy_actions(synth.body, function_id, function) if a.startswith("kms:")}
        assert kms_actions == table_user_kms, role  # exact: no ReEncrypt*, no GenerateDataKey* wildcards
    iam_id, iam_status = resource(synth.body, "Stack/Iam", "status")
    assert not {a for a in policy_actions(synth.body, iam_id, iam_status) if a.startswith("kms:")}


def test_web_acl_is_associated_with_the_stage(synth: Synthesized) -> None:
    associations = [
        r["Properties"]
        for r in synth.body["Resources"].values()
        if r["Type"] == "AWS::WAFv2::WebACLAssociation"
    ]
    assert len(associations) == 1
    assert associations[0]["WebACLArn"] == "arn:aws:wafv2:us-east-1:111111111111:regional/webacl/jobs/abc"


def test_cloud_watch_role_is_opt_in(synth: Synthesized) -> None:
    synth.template.resource_count_is("AWS::ApiGateway::Account", 1)


def test_fails_if_cognito_has_no_user_pool() -> None:
    with pytest.raises(ValueError, match=r"^auth: JobApiAuth.cognito needs at least one user pool"):
        JobApiAuth.cognito([])


@pytest.mark.parametrize("operator", ["", " padded"])
def test_fails_if_an_operator_is_blank_or_padded(operator: str) -> None:
    stack = cdk.Stack(cdk.App(), "Stack")
    with pytest.raises(PropValueError, match=r"^operators must hold caller identities"):
        AsyncJobApi(stack, "Jobs", handler="m.f", code=TEAM_CODE, operators=[operator])


def test_fails_if_throttling_is_out_of_range() -> None:
    stack = cdk.Stack(cdk.App(), "Stack")
    with pytest.raises(
        PropValueError, match=r"^throttling_rate_limit must be a whole number between 1 and 10000"
    ):
        AsyncJobApi(stack, "Jobs", handler="m.f", code=TEAM_CODE, throttling_rate_limit=0)


def test_gateway_problems_stay_valid_json_whatever_the_gateway_substitutes(synth: Synthesized) -> None:
    # API Gateway substitutes $context variables verbatim: messageString arrives as a quoted JSON string,
    # responseType as an enum name, any other variable as raw text, which may hold double quotes (validation
    # messages do: 'allowed: ["object"]').
    def substitute(template: str) -> str:
        template = template.replace(
            "$context.error.messageString", json.dumps('Missing "Authentication" Token')
        )
        template = template.replace("$context.error.responseType", "MISSING_AUTHENTICATION_TOKEN")
        return re.sub(r"\$context\.[A-Za-z.]+", 'RAW_WITH_"QUOTES"', template)

    responses = [
        response
        for api in ("Stack/Iam", "Stack/Cognito", "Stack/Custom", "Stack/Open")
        for response in _children(synth.body, api, "AWS::ApiGateway::GatewayResponse")
    ]
    assert len(responses) > 4 * 3
    for response in responses:
        problem = json.loads(substitute(response["ResponseTemplates"]["application/json"]))
        assert problem["type"].startswith("urn:async-job:problem:")
        assert problem["title"]
        assert problem["detail"]
