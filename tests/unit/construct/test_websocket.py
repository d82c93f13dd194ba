"""``AsyncJobApi(websocket=...)``: the WebSocket API, its routes and authorization, the stage, the connections
table, the push on the stream (its filter, checked with the local runtime's matcher) and the grants."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Annotations, Match, Template

from async_job_construct import AsyncJobApi, JobApiAuth, JobWebSocket, JobWebSocketOptions, PropValueError
from async_job_construct.websocket import WEBSOCKET_ROUTES, push_filter
from async_job_local.event_filter import matches
from lambda_handlers.models import Job, utc_now
from tests.unit.construct.helpers import TEAM_CODE, env, props, refers_to, resource

IAM_PATH = "Stack/Iam"
CUSTOM_PATH = "Stack/Custom"


def _of_type(template: dict[str, Any], resource_type: str, api_logical_id: str) -> list[dict[str, Any]]:
    return [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == resource_type and refers_to(r["Properties"].get("ApiId"), api_logical_id)
    ]


def _statements(template: dict[str, Any], role_logical_id: str) -> list[dict[str, Any]]:
    return [
        statement
        for r in template["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy" and refers_to(r["Properties"]["Roles"], role_logical_id)
        for statement in r["Properties"]["PolicyDocument"]["Statement"]
    ]


def _actions(statement: dict[str, Any]) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


class Synthesized:
    def __init__(self) -> None:
        app = cdk.App()
        stack = cdk.Stack(app, "Stack")
        self.key = kms.Key(stack, "Key", enable_key_rotation=True)
        self.client_role = iam.Role(stack, "Client", assumed_by=iam.AccountRootPrincipal())
        self.iam = AsyncJobApi(
            stack, "Iam", handler="m.f", code=TEAM_CODE, websocket=True, encryption_key=self.key
        )
        self.iam.grant_invoke(self.client_role)
        self.authorizer_fn = lambda_.Function(
            stack,
            "Verifier",
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler="index.handler",
            code=lambda_.Code.from_inline("def handler(e, c): return {}"),
        )
        self.custom = AsyncJobApi(
            stack,
            "Custom",
            handler="m.f",
            code=TEAM_CODE,
            auth=JobApiAuth.custom(_token_authorizer(stack, self.authorizer_fn)),
            removal_policy=cdk.RemovalPolicy.DESTROY,
            websocket=JobWebSocketOptions(
                authorizer_function=self.authorizer_fn,
                identity_source=["route.request.querystring.token"],
                stage_name="live",
                throttling_rate_limit=7,
                throttling_burst_limit=9,
                point_in_time_recovery=True,
            ),
        )
        self.off = AsyncJobApi(stack, "Off", handler="m.f", code=TEAM_CODE)
        self.stack = stack
        self.template = Template.from_stack(stack)
        self.json: dict[str, Any] = dict(self.template.to_json())


def _token_authorizer(stack: cdk.Stack, function: lambda_.IFunction) -> Any:
    from aws_cdk import aws_apigateway as apigateway

    return apigateway.TokenAuthorizer(stack, "Tokens", handler=function)


@pytest.fixture(scope="module")
def synthesized() -> Synthesized:
    return Synthesized()


def test_websocket_is_off_by_default_and_then_nothing_is_created(synthesized: Synthesized) -> None:
    assert synthesized.off.websocket is None
    off_resources = [
        logical_id for logical_id in synthesized.json["Resources"] if logical_id.startswith("OffWebSocket")
    ]
    assert off_resources == []
    assert "ASYNC_JOB_WEBSOCKET_URL" not in env(synthesized.json, "Stack/Off", "submit")
    assert len(synthesized.template.find_resources("AWS::ApiGatewayV2::Api")) == 2  # Iam's and Custom's


def test_the_websocket_api_routes_on_action_to_one_function(synthesized: Synthesized) -> None:
    websocket = synthesized.iam.websocket
    assert isinstance(websocket, JobWebSocket)
    api_id, api = resource(synthesized.json, IAM_PATH, "websocket-api")
    assert api["Properties"]["ProtocolType"] == "WEBSOCKET"
    assert api["Properties"]["RouteSelectionExpression"] == "$request.body.action"
    routes = {r["RouteKey"]: r for r in _of_type(synthesized.json, "AWS::ApiGatewayV2::Route", api_id)}
    assert set(routes) == set(WEBSOCKET_ROUTES)
    (integration,) = _of_type(synthesized.json, "AWS::ApiGatewayV2::Integration", api_id)
    function_id, _ = resource(synthesized.json, IAM_PATH, "connections")
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert refers_to(integration["IntegrationUri"], function_id)
    # The answers of subscribe, unsubscribe and $default are the function's return value.
    assert {r["RouteKey"] for r in routes.values() if r.get("RouteResponseSelectionExpression")} == {
        "subscribe",
        "unsubscribe",
        "$default",
    }
    assert len(_of_type(synthesized.json, "AWS::ApiGatewayV2::RouteResponse", api_id)) == 3


def test_connect_is_authorised_by_iam_by_default_and_only_connect(synthesized: Synthesized) -> None:
    api_id, _ = resource(synthesized.json, IAM_PATH, "websocket-api")
    routes = {r["RouteKey"]: r for r in _of_type(synthesized.json, "AWS::ApiGatewayV2::Route", api_id)}
    assert routes["$connect"]["AuthorizationType"] == "AWS_IAM"
    assert all(r.get("AuthorizationType", "NONE") == "NONE" for key, r in routes.items() if key != "$connect")


def test_grant_invoke_lets_the_caller_connect(synthesized: Synthesized) -> None:
    role_id = synthesized.stack.get_logical_id(synthesized.client_role.node.default_child)  # type: ignore[arg-type]
    api_id, _ = resource(synthesized.json, IAM_PATH, "websocket-api")
    connects = [s for s in _statements(synthesized.json, role_id) if "$connect" in json.dumps(s["Resource"])]
    assert len(connects) == 1
    assert connects[0]["Action"] == "execute-api:Invoke"
    assert refers_to(connects[0]["Resource"], api_id)
    assert "/prod/$connect" in json.dumps(connects[0]["Resource"])


def test_custom_auth_takes_the_lambda_request_authorizer_on_connect(synthesized: Synthesized) -> None:
    api_id, _ = resource(synthesized.json, CUSTOM_PATH, "websocket-api")
    (authorizer,) = _of_type(synthesized.json, "AWS::ApiGatewayV2::Authorizer", api_id)
    assert authorizer["AuthorizerType"] == "REQUEST"
    assert authorizer["IdentitySource"] == ["route.request.querystring.token"]
    routes = {r["RouteKey"]: r for r in _of_type(synthesized.json, "AWS::ApiGatewayV2::Route", api_id)}
    assert routes["$connect"]["AuthorizationType"] == "CUSTOM"
    assert "AuthorizerId" in routes["$connect"]


def test_the_stage_logs_each_event_throttles_and_auto_deploys(synthesized: Synthesized) -> None:
    for path, name, rate, burst in ((IAM_PATH, "prod", 100, 200), (CUSTOM_PATH, "live", 7, 9)):
        api_id, _ = resource(synthesized.json, path, "websocket-api")
        (stage,) = _of_type(synthesized.json, "AWS::ApiGatewayV2::Stage", api_id)
        assert stage["StageName"] == name
        assert stage["AutoDeploy"] is True
        assert stage["DefaultRouteSettings"] == {
            "ThrottlingRateLimit": rate,
            "ThrottlingBurstLimit": burst,
            "LoggingLevel": "ERROR",
            "DataTraceEnabled": False,
        }
        access_log = json.loads(stage["AccessLogSettings"]["Format"])
        assert access_log["requestId"] == "$context.requestId"
        assert {"connectionId", "routeKey", "eventType", "status"} <= set(access_log)


def test_the_connections_table_expires_items_is_encrypted_with_the_apis_key_and_follows_its_removal_policy(
    synthesized: Synthesized,
) -> None:
    table_id, table = resource(synthesized.json, IAM_PATH, "connections-table")
    properties = table["Properties"]
    assert properties["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["SSESpecification"]["SSEType"] == "KMS"
    key_id = synthesized.stack.get_logical_id(synthesized.key.node.default_child)  # type: ignore[arg-type]
    assert refers_to(properties["SSESpecification"]["KMSMasterKeyId"], key_id)
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": False}
    assert table["DeletionPolicy"] == "Retain"
    _, custom = resource(synthesized.json, CUSTOM_PATH, "connections-table")
    assert custom["DeletionPolicy"] == "Delete"
    assert custom["Properties"]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert custom["Properties"]["SSESpecification"] == {"SSEEnabled": True}
    assert table_id in json.dumps(env(synthesized.json, IAM_PATH, "websocket-push"))


def test_the_push_reads_the_stream_in_order_through_the_watch_filter(synthesized: Synthesized) -> None:
    push_id, _ = resource(synthesized.json, IAM_PATH, "websocket-push")
    table_id, _ = resource(synthesized.json, IAM_PATH, "table")
    mappings = [
        r["Properties"]
        for r in synthesized.json["Resources"].values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
        and refers_to(r["Properties"]["FunctionName"], push_id)
    ]
    assert len(mappings) == 1
    (mapping,) = mappings
    assert refers_to(mapping["EventSourceArn"], table_id)
    assert mapping["ParallelizationFactor"] == 1
    assert mapping["StartingPosition"] == "LATEST"
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]] == [push_filter()]


def _record(event_name: str, watched: bool) -> dict[str, Any]:
    job = Job.new(
        "4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21",
        owner="alice",
        payload_sha256="0" * 64,
        now=utc_now(),
        ttl_seconds=60,
    )
    if watched:
        job = Job.from_item({**job.to_item(), "watchedUntil": {"N": "1893456000"}})
    image = job.to_item()
    images: dict[str, Any] = {"Keys": {"pk": image["pk"]}, "SequenceNumber": "1"}
    images["OldImage" if event_name == "REMOVE" else "NewImage"] = image
    return {"eventName": event_name, "eventSource": "aws:dynamodb", "dynamodb": images}


@pytest.mark.parametrize(
    ("event_name", "watched", "delivered"),
    [
        ("INSERT", True, True),
        ("MODIFY", True, True),
        ("MODIFY", False, False),
        ("INSERT", False, False),
        ("REMOVE", True, False),
    ],
)
def test_the_filter_lets_through_only_writes_of_watched_jobs(
    event_name: str, watched: bool, delivered: bool
) -> None:
    assert matches(push_filter(), _record(event_name, watched)) is delivered


def test_nobody_listening_no_push_a_key_item_is_never_delivered() -> None:
    key_item = {"eventName": "INSERT", "dynamodb": {"NewImage": {"pk": {"S": "idem#x"}, "jobId": {"S": "j"}}}}
    assert matches(push_filter(), key_item) is False


def test_the_functions_are_granted_what_they_do_and_no_more(synthesized: Synthesized) -> None:
    push_role = resource(synthesized.json, IAM_PATH, "websocket-push")[1]["Properties"]["Role"]["Fn::GetAtt"][
        0
    ]
    connection_role = resource(synthesized.json, IAM_PATH, "connections")[1]["Properties"]["Role"][
        "Fn::GetAtt"
    ][0]
    connections_id, _ = resource(synthesized.json, IAM_PATH, "connections-table")
    table_id, _ = resource(synthesized.json, IAM_PATH, "table")
    api_id, _ = resource(synthesized.json, IAM_PATH, "websocket-api")
    push = _statements(synthesized.json, push_role)
    manage = [s for s in push if _actions(s) == {"execute-api:ManageConnections"}]
    assert len(manage) == 1
    assert refers_to(manage[0]["Resource"], api_id)
    assert "/prod/*/@connections/*" in json.dumps(manage[0]["Resource"])
    every = list(push + _statements(synthesized.json, connection_role))
    assert not any("dynamodb:Scan" in _actions(s) or "dynamodb:*" in _actions(s) for s in every)
    on_status_table = {
        action for s in push if s["Resource"] == {"Fn::GetAtt": [table_id, "Arn"]} for action in _actions(s)
    }
    assert on_status_table == {"dynamodb:UpdateItem"}
    connection = _statements(synthesized.json, connection_role)
    assert not any(
        "execute-api:ManageConnections" in _actions(s) for s in connection
    )  # it answers by route response
    assert {
        action
        for s in connection
        if s["Resource"] == {"Fn::GetAtt": [table_id, "Arn"]}
        for action in _actions(s)
    } == {"dynamodb:GetItem", "dynamodb:UpdateItem"}
    assert any(
        refers_to(s["Resource"], connections_id) and "dynamodb:BatchWriteItem" in _actions(s)
        for s in connection
    )
    submit_role = resource(synthesized.json, IAM_PATH, "submit")[1]["Properties"]["Role"]["Fn::GetAtt"][0]
    on_connections = [
        s for s in _statements(synthesized.json, submit_role) if refers_to(s["Resource"], connections_id)
    ]
    assert [_actions(s) for s in on_connections] == [{"dynamodb:GetItem"}]


def test_the_rest_functions_link_the_websocket(synthesized: Synthesized) -> None:
    api_id, _ = resource(synthesized.json, IAM_PATH, "websocket-api")
    for role in ("submit", "status"):
        url = env(synthesized.json, IAM_PATH, role)["ASYNC_JOB_WEBSOCKET_URL"]
        assert refers_to(url, api_id)
        assert url["Fn::Join"][1][0] == "wss://"
    push_env = env(synthesized.json, IAM_PATH, "websocket-push")
    assert push_env["ASYNC_JOB_WEBSOCKET_ENDPOINT"]["Fn::Join"][1][0] == "https://"
    rest_id, _ = resource(synthesized.json, IAM_PATH, "api")
    assert refers_to(env(synthesized.json, IAM_PATH, "connections")["ASYNC_JOB_JOBS_URL"], rest_id)


def test_fails_if_custom_or_cognito_auth_has_no_authorizer_function() -> None:
    stack = cdk.Stack(cdk.App(), "Stack")
    fn = lambda_.Function(
        stack, "Fn", runtime=lambda_.Runtime.PYTHON_3_14, handler="i.h", code=lambda_.Code.from_inline("x=1")
    )
    from aws_cdk import aws_apigateway as apigateway

    with pytest.raises(PropValueError, match=r"websocket\.authorizer_function is required with auth CUSTOM"):
        AsyncJobApi(
            stack,
            "Jobs",
            handler="m.f",
            code=TEAM_CODE,
            auth=JobApiAuth.custom(apigateway.TokenAuthorizer(stack, "T", handler=fn)),
            websocket=True,
        )


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (JobWebSocketOptions(identity_source=["route.request.header.Authorization"]), "applies to a Lambda"),
        (JobWebSocketOptions(stage_name="a b"), r"websocket\.stage_name"),
        (JobWebSocketOptions(throttling_rate_limit=0), r"websocket\.throttling_rate_limit"),
        ("yes", "websocket must be a JobWebSocketOptions"),
    ],
)
def test_fails_if_a_websocket_option_is_invalid(options: Any, match: str) -> None:
    stack = cdk.Stack(cdk.App(), "Stack")
    with pytest.raises(PropValueError, match=match):
        AsyncJobApi(stack, "Jobs", handler="m.f", code=TEAM_CODE, websocket=options)


def test_fails_if_the_teams_table_has_no_stream() -> None:
    stack = cdk.Stack(cdk.App(), "Stack")
    table = dynamodb.Table.from_table_name(stack, "Theirs", "their-table")
    with pytest.raises(PropValueError, match="needs the status table's stream"):
        AsyncJobApi(stack, "Jobs", handler="m.f", code=TEAM_CODE, table=table, websocket=True)


def test_a_websocket_without_auth_warns() -> None:
    stack = cdk.Stack(cdk.App(), "Stack")
    AsyncJobApi(stack, "Jobs", handler="m.f", code=TEAM_CODE, auth=JobApiAuth.none(), websocket=True)
    Annotations.from_stack(stack).has_warning(
        "*", Match.string_like_regexp("websocket with auth JobApiAuth.none")
    )


def test_the_websocket_attributes_are_typed(synthesized: Synthesized) -> None:
    websocket = synthesized.iam.websocket
    assert websocket is not None
    assert websocket.options.stage_name == "prod"
    assert websocket.url == websocket.stage.url
    assert websocket.connection_function is not websocket.push_function
    assert isinstance(websocket.connections_table, dynamodb.Table)
    assert props(synthesized.json, IAM_PATH, "connections")["Handler"] == "lambda_handlers.websocket.handler"
    assert (
        props(synthesized.json, IAM_PATH, "websocket-push")["Handler"]
        == "lambda_handlers.websocket_push.handler"
    )


def test_the_saved_log_queries_read_the_websocket_functions_too(synthesized: Synthesized) -> None:
    push_logs = synthesized.iam.websocket.push_function.log_group  # type: ignore[union-attr]
    logs_id = synthesized.stack.get_logical_id(push_logs.node.default_child)  # type: ignore[arg-type]
    queries = synthesized.template.find_resources("AWS::Logs::QueryDefinition")
    assert any(refers_to(q["Properties"]["LogGroupNames"], logs_id) for q in queries.values())
