"""Every documented default of AsyncJobApi, read from one synthesized template."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

from async_job_construct import AsyncJobApi
from lambda_handlers.contract import OWNER_INDEX, OWNER_INDEX_ATTRIBUTES
from tests.unit.construct.helpers import (
    TEAM_CODE,
    env,
    from_stack,
    job_types,
    policy_actions,
    props,
    refers_to,
    resource,
)

API = "Stack/Jobs"


@pytest.fixture(scope="module")
def synthesized() -> tuple[AsyncJobApi, Template, dict[str, Any]]:
    app = cdk.App()
    stack = cdk.Stack(app, "Stack")
    jobs = AsyncJobApi(stack, "Jobs", handler="reports.generate", code=TEAM_CODE)
    template, body = from_stack(stack)
    return jobs, template, body


@pytest.fixture(scope="module")
def jobs(synthesized: tuple[AsyncJobApi, Template, dict[str, Any]]) -> AsyncJobApi:
    return synthesized[0]


@pytest.fixture(scope="module")
def template(synthesized: tuple[AsyncJobApi, Template, dict[str, Any]]) -> Template:
    return synthesized[1]


@pytest.fixture(scope="module")
def body(synthesized: tuple[AsyncJobApi, Template, dict[str, Any]]) -> dict[str, Any]:
    return synthesized[2]


def test_resolved_defaults_are_exposed(jobs: AsyncJobApi) -> None:
    assert jobs.timeout.to_seconds() == 300
    assert jobs.memory_size == 1024
    assert jobs.max_receive_count == 3
    assert jobs.visibility_timeout.to_seconds() == 6 * 300
    assert jobs.batch_size == 1
    assert jobs.max_concurrency is None
    assert jobs.job_ttl.to_days() == 7
    assert jobs.max_payload_bytes == 256 * 1024
    assert jobs.poll_interval.to_seconds() == 5
    assert jobs.removal_policy == cdk.RemovalPolicy.RETAIN
    assert jobs.tracing is True
    assert jobs.trace_aws_calls is False
    assert jobs.metrics_namespace == "AsyncJobs"
    assert jobs.runtime.name == "python3.14"
    assert jobs.idempotency_key_required is False
    assert jobs.retry_base_delay.to_seconds() == 10
    assert jobs.retry_max_delay.to_minutes() == 15
    assert jobs.throttling_rate_limit == 100
    assert jobs.throttling_burst_limit == 200
    assert jobs.api_key_required is False
    assert jobs.operators == ()
    assert jobs.usage_plan is None


def test_worker_defaults(body: dict[str, Any]) -> None:
    worker = props(body, API, "worker")
    assert worker["Timeout"] == 300
    assert worker["MemorySize"] == 1024
    assert worker["Runtime"] == "python3.14"
    assert worker["Architectures"] == ["x86_64"]
    assert worker["Handler"] == "lambda_handlers.worker.handler"
    assert worker["TracingConfig"] == {"Mode": "Active"}
    assert worker["Environment"]["Variables"]["POWERTOOLS_TRACE_DISABLED"] == "true"  # trace_aws_calls=False
    variables = env(body, API, "worker")
    assert variables["ASYNC_JOB_HANDLER"] == "reports.generate"
    assert variables["ASYNC_JOB_MAX_RECEIVE_COUNT"] == "3"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "AsyncJobs"
    assert variables["ASYNC_JOB_RETRY_BASE_SECONDS"] == "10"
    assert variables["ASYNC_JOB_RETRY_MAX_SECONDS"] == "900"


def test_worker_gets_runtime_layer_and_public_powertools_layer(body: dict[str, Any]) -> None:
    layers = props(body, API, "worker")["Layers"]
    runtime_layers = [
        logical_id for logical_id, r in body["Resources"].items() if r["Type"] == "AWS::Lambda::LayerVersion"
    ]
    assert len(runtime_layers) == 1
    assert {"Ref": runtime_layers[0]} in layers
    powertools = repr(layers)
    # An environment-agnostic stack: the account comes from a mapping by partition (test_powertools_layer.py).
    assert "layer:AWSLambdaPowertoolsPythonV3-python314-x86_64:27" in powertools
    assert "AWS::Region" in powertools


def test_api_functions_read_limits_from_defaults(body: dict[str, Any]) -> None:
    submit = env(body, API, "submit")
    assert job_types(body, API)["jobs"]["maxPayloadBytes"] == 262144
    assert submit["ASYNC_JOB_TTL_SECONDS"] == str(7 * 24 * 3600)
    assert submit["ASYNC_JOB_RETRY_AFTER_SECONDS"] == "5"
    assert submit["ASYNC_JOB_IDEMPOTENCY_KEY_REQUIRED"] == "false"
    assert env(body, API, "status")["ASYNC_JOB_RETRY_AFTER_SECONDS"] == "5"


def test_every_function_that_ends_a_job_knows_the_ttl(body: dict[str, Any]) -> None:
    for role in ("submit", "status", "worker", "dead-letter"):
        assert env(body, API, role)["ASYNC_JOB_TTL_SECONDS"] == str(7 * 24 * 3600), role
    assert job_types(body, API, "dead-letter")["jobs"]["maxReceiveCount"] == 3


def test_queue_defaults(body: dict[str, Any]) -> None:
    dlq_id, _ = resource(body, API, "dead-letter-queue")
    queue = props(body, API, "queue")
    assert queue["VisibilityTimeout"] == 1800
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 3
    assert refers_to(queue["RedrivePolicy"]["deadLetterTargetArn"], dlq_id)
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert queue["SqsManagedSseEnabled"] is True
    assert "QueueName" not in queue
    dlq = props(body, API, "dead-letter-queue")
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert dlq["SqsManagedSseEnabled"] is True


def test_queues_deny_plain_http(template: Template, body: dict[str, Any]) -> None:
    for role in ("queue", "dead-letter-queue"):
        queue_id, _ = resource(body, API, role)
        template.has_resource_properties(
            "AWS::SQS::QueuePolicy",
            {
                "Queues": [{"Ref": queue_id}],
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [
                            Match.object_like(
                                {"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
                            )
                        ]
                    )
                },
            },
        )


def test_event_sources_report_batch_item_failures(body: dict[str, Any]) -> None:
    worker_id, _ = resource(body, API, "worker")
    dead_letter_id, _ = resource(body, API, "dead-letter")
    mappings = {
        m["Properties"]["FunctionName"]["Ref"]: m["Properties"]
        for m in body["Resources"].values()
        if m["Type"] == "AWS::Lambda::EventSourceMapping"
    }
    assert mappings[worker_id]["BatchSize"] == 1
    assert mappings[worker_id]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "ScalingConfig" not in mappings[worker_id]
    assert mappings[dead_letter_id]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_table_defaults(body: dict[str, Any]) -> None:
    _, table = resource(body, API, "table")
    assert table["DeletionPolicy"] == "Retain"
    properties = table["Properties"]
    assert properties["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert properties["SSESpecification"]["SSEEnabled"] is True
    assert "TableName" not in properties
    (index,) = properties["GlobalSecondaryIndexes"]
    assert index["IndexName"] == OWNER_INDEX
    assert index["KeySchema"] == [
        {"AttributeName": "owner", "KeyType": "HASH"},
        {"AttributeName": "createdAt", "KeyType": "RANGE"},
    ]
    # The index projects what a listed job shows: never a result or a payload digest.
    assert index["Projection"] == {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": list(OWNER_INDEX_ATTRIBUTES),
    }


def test_the_bucket_is_encrypted_private_tls_only_and_expires_objects_with_their_jobs(
    body: dict[str, Any],
) -> None:
    bucket_id, bucket = resource(body, API, "bucket")
    properties = bucket["Properties"]
    assert "BucketName" not in properties
    encryption = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption == [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    rules = {rule["Prefix"]: rule for rule in properties["LifecycleConfiguration"]["Rules"]}
    # job_ttl is 7 days by default: results and files 7 + 1, payloads 14 + 7 + 1
    assert rules["jobs/"]["ExpirationInDays"] == 8
    assert rules["payloads/"]["ExpirationInDays"] == 22
    (policy,) = [
        r["Properties"]
        for r in body["Resources"].values()
        if r["Type"] == "AWS::S3::BucketPolicy" and r["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    statements = policy["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("submit", {("s3:PutObject", "payloads/*")}),
        ("status", {("s3:GetObject", "jobs/*")}),
        ("worker", {("s3:GetObject", "payloads/*"), ("s3:PutObject", "jobs/*")}),
        ("dead-letter", set()),
    ],
)
def test_each_function_may_touch_only_its_prefix_of_the_bucket(
    body: dict[str, Any], role: str, expected: set[tuple[str, str]]
) -> None:
    _, function = resource(body, API, role)
    role_ref = function["Properties"]["Role"]["Fn::GetAtt"][0]
    bucket_id, _ = resource(body, API, "bucket")
    granted = {
        (statement["Action"], statement["Resource"]["Fn::Join"][1][1].lstrip("/"))
        for policy in body["Resources"].values()
        if policy["Type"] == "AWS::IAM::Policy"
        and any(refers_to(r, role_ref) for r in policy["Properties"]["Roles"])
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if str(statement["Action"]).startswith("s3:")
    }
    assert granted == expected
    for statement in [
        s
        for p in body["Resources"].values()
        if p["Type"] == "AWS::IAM::Policy"
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if str(s["Action"]).startswith("s3:")
    ]:
        assert statement["Resource"]["Fn::Join"][1][0] == {"Fn::GetAtt": [bucket_id, "Arn"]}


def test_the_status_function_may_query_the_owner_index_only(body: dict[str, Any]) -> None:
    _, function = resource(body, API, "status")
    role_ref = function["Properties"]["Role"]["Fn::GetAtt"][0]
    table_id, _ = resource(body, API, "table")
    query_resources = [
        statement["Resource"]
        for policy in body["Resources"].values()
        if policy["Type"] == "AWS::IAM::Policy"
        and any(refers_to(r, role_ref) for r in policy["Properties"]["Roles"])
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "dynamodb:Query"
        in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    ]
    assert query_resources == [
        {"Fn::Join": ["", [{"Fn::GetAtt": [table_id, "Arn"]}, f"/index/{OWNER_INDEX}"]]}
    ]


def test_stateful_resources_are_retained_by_default(body: dict[str, Any]) -> None:
    for role in ("queue", "dead-letter-queue", "table", "bucket"):
        assert resource(body, API, role)[1]["DeletionPolicy"] == "Retain"
    log_groups = [r for r in body["Resources"].values() if r["Type"] == "AWS::Logs::LogGroup"]
    assert (
        len(log_groups) == 6
    )  # one per function (submit, status, worker, dead-letter, events), and the access logs
    for log_group in log_groups:
        assert log_group["DeletionPolicy"] == "Retain"
        assert log_group["Properties"]["RetentionInDays"] == 30


def test_no_hard_coded_physical_names(body: dict[str, Any]) -> None:
    name_props = ("FunctionName", "TableName", "QueueName", "RoleName", "LogGroupName", "LayerName")
    for r in body["Resources"].values():
        for name_prop in name_props:
            value = r.get("Properties", {}).get(name_prop)
            assert not isinstance(value, str), (r["Type"], name_prop, value)


def test_every_method_requires_iam_auth(body: dict[str, Any]) -> None:
    methods = [r["Properties"] for r in body["Resources"].values() if r["Type"] == "AWS::ApiGateway::Method"]
    assert sorted(m["HttpMethod"] for m in methods) == ["DELETE", "GET", "GET", "GET", "POST"]
    assert all(m["AuthorizationType"] == "AWS_IAM" for m in methods)


def test_api_is_regional_traced_and_answers_gateway_errors_as_problems(template: Template) -> None:
    template.has_resource_properties(
        "AWS::ApiGateway::RestApi", {"EndpointConfiguration": {"Types": ["REGIONAL"]}}
    )
    template.has_resource_properties("AWS::ApiGateway::Stage", {"TracingEnabled": True})
    template.resource_count_is("AWS::ApiGateway::Account", 0)
    for response_type in ("DEFAULT_4XX", "DEFAULT_5XX"):
        template.has_resource_properties(
            "AWS::ApiGateway::GatewayResponse",
            {
                "ResponseType": response_type,
                "ResponseParameters": {"gatewayresponse.header.Content-Type": "'application/problem+json'"},
            },
        )


_LOGS = {"logs:CreateLogStream", "logs:PutLogEvents"}
_TRACING = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
_SQS_EVENT_SOURCE = {
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
}


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (
            "submit",
            {"dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:GetItem", "sqs:SendMessage", "s3:PutObject"}
            | _LOGS
            | _TRACING,
        ),
        (
            "status",
            {"dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query", "s3:GetObject"} | _LOGS | _TRACING,
        ),
        (
            "worker",
            {"dynamodb:UpdateItem", "s3:GetObject", "s3:PutObject"} | _SQS_EVENT_SOURCE | _LOGS | _TRACING,
        ),
        ("dead-letter", {"dynamodb:GetItem", "dynamodb:UpdateItem"} | _SQS_EVENT_SOURCE | _LOGS | _TRACING),
    ],
)
def test_each_role_holds_exactly_what_its_function_uses(
    body: dict[str, Any], role: str, expected: set[str]
) -> None:
    logical_id, function = resource(body, API, role)
    assert policy_actions(body, logical_id, function) == expected


def test_no_role_carries_a_managed_policy(body: dict[str, Any]) -> None:
    roles = [r["Properties"] for r in body["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    assert len(roles) == 5
    assert all("ManagedPolicyArns" not in role for role in roles)
