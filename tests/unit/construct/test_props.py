"""Each prop's effect on the template: several AsyncJobApi instances, one synthesis."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Annotations, Match, Template

from async_job_construct import AsyncJobApi
from tests.unit.construct.helpers import (
    TEAM_CODE,
    env,
    job_types,
    policy_actions,
    props,
    refers_to,
    resource,
)

CUSTOM = "Stack/Custom"
BYO = "Stack/Byo"
IMPORTED = "Stack/Imported"


class Synthesized:
    def __init__(self) -> None:
        app = cdk.App()
        stack = cdk.Stack(app, "Stack", env=cdk.Environment(account="111111111111", region="eu-west-1"))
        self.custom = AsyncJobApi(
            stack,
            "Custom",
            handler="pkg.jobs.run",
            code=TEAM_CODE,
            timeout=cdk.Duration.minutes(10),
            memory_size=2048,
            environment={"REPORT_BUCKET": "reports", "POWERTOOLS_LOG_LEVEL": "DEBUG"},
            architecture=lambda_.Architecture.ARM_64,
            runtime=lambda_.Runtime.PYTHON_3_12,
            max_receive_count=5,
            visibility_timeout=cdk.Duration.hours(1),
            batch_size=1,
            max_concurrency=5,
            job_ttl=cdk.Duration.days(1),
            max_payload_bytes=1000,
            poll_interval=cdk.Duration.seconds(30),
            removal_policy=cdk.RemovalPolicy.DESTROY,
            log_retention=logs.RetentionDays.ONE_WEEK,
            worker_policy_statements=[
                iam.PolicyStatement(actions=["s3:PutObject"], resources=["arn:aws:s3:::reports/*"])
            ],
            tracing=False,
            metrics_namespace="Reporting",
            idempotency_key_required=True,
            retry_base_delay=cdk.Duration.seconds(2),
            retry_max_delay=cdk.Duration.minutes(1),
        )
        dead_letters = sqs.Queue(stack, "TeamDlq")
        self.team_queue = sqs.Queue(
            stack,
            "TeamQueue",
            visibility_timeout=cdk.Duration.minutes(40),
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=4, queue=dead_letters),
        )
        self.team_table = dynamodb.Table(
            stack,
            "TeamTable",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
        )
        self.byo = AsyncJobApi(
            stack, "Byo", handler="m.f", code=TEAM_CODE, queue=self.team_queue, table=self.team_table
        )
        self.imported = AsyncJobApi(
            stack,
            "Imported",
            handler="m.f",
            code=TEAM_CODE,
            queue=sqs.Queue.from_queue_arn(stack, "ImportedQueue", "arn:aws:sqs:eu-west-1:111111111111:jobs"),
            dead_letter_queue=sqs.Queue.from_queue_arn(
                stack, "ImportedDlq", "arn:aws:sqs:eu-west-1:111111111111:jobs-dlq"
            ),
            max_receive_count=2,
            trace_aws_calls=True,
            powertools_layer=lambda_.LayerVersion.from_layer_version_arn(
                stack, "OwnPowertools", "arn:aws:lambda:eu-west-1:111111111111:layer:powertools:3"
            ),
        )
        self.stack = stack
        self.body: dict[str, Any] = Template.from_stack(stack).to_json()


@pytest.fixture(scope="module")
def synth() -> Synthesized:
    return Synthesized()


def test_worker_props_reach_the_function(synth: Synthesized) -> None:
    worker = props(synth.body, CUSTOM, "worker")
    assert worker["Timeout"] == 600
    assert worker["MemorySize"] == 2048
    assert worker["Architectures"] == ["arm64"]
    assert worker["Runtime"] == "python3.12"
    assert "TracingConfig" not in worker  # Lambda's own default: PassThrough, no active X-Ray
    assert "AWSLambdaPowertoolsPythonV3-python312-arm64:" in repr(worker["Layers"])
    variables = env(synth.body, CUSTOM, "worker")
    assert variables["REPORT_BUCKET"] == "reports"
    assert variables["POWERTOOLS_LOG_LEVEL"] == "DEBUG"
    assert variables["ASYNC_JOB_HANDLER"] == "pkg.jobs.run"
    assert variables["ASYNC_JOB_MAX_RECEIVE_COUNT"] == "5"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "Reporting"
    assert variables["ASYNC_JOB_RETRY_BASE_SECONDS"] == "2"
    assert variables["ASYNC_JOB_RETRY_MAX_SECONDS"] == "60"


def test_every_function_shares_architecture_and_tracing(synth: Synthesized) -> None:
    for role in ("submit", "status", "worker", "dead-letter"):
        function = props(synth.body, CUSTOM, role)
        assert function["Architectures"] == ["arm64"]
        assert function["Environment"]["Variables"]["POWERTOOLS_TRACE_DISABLED"] == "true"
        assert env(synth.body, BYO, role)["POWERTOOLS_TRACE_DISABLED"] == "true"  # the default
        assert "POWERTOOLS_TRACE_DISABLED" not in env(synth.body, IMPORTED, role)  # trace_aws_calls=True
        assert "TracingConfig" not in function


def test_queue_props(synth: Synthesized) -> None:
    queue = props(synth.body, CUSTOM, "queue")
    assert queue["VisibilityTimeout"] == 3600
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 5
    worker_id, _ = resource(synth.body, CUSTOM, "worker")
    mapping = next(
        r["Properties"]
        for r in synth.body["Resources"].values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
        and r["Properties"]["FunctionName"] == {"Ref": worker_id}
    )
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 5}


def test_api_limits(synth: Synthesized) -> None:
    submit = env(synth.body, CUSTOM, "submit")
    assert job_types(synth.body, CUSTOM)["jobs"]["maxPayloadBytes"] == 1000
    assert submit["ASYNC_JOB_TTL_SECONDS"] == "86400"
    assert submit["ASYNC_JOB_RETRY_AFTER_SECONDS"] == "30"
    assert submit["ASYNC_JOB_IDEMPOTENCY_KEY_REQUIRED"] == "true"
    assert env(synth.body, CUSTOM, "status")["ASYNC_JOB_RETRY_AFTER_SECONDS"] == "30"


def test_removal_policy_and_log_retention(synth: Synthesized) -> None:
    for role in ("queue", "dead-letter-queue", "table"):
        assert resource(synth.body, CUSTOM, role)[1]["DeletionPolicy"] == "Delete"
    worker = props(synth.body, CUSTOM, "worker")
    log_group_id = worker["LoggingConfig"]["LogGroup"]["Ref"]
    log_group = synth.body["Resources"][log_group_id]
    assert log_group["DeletionPolicy"] == "Delete"
    assert log_group["Properties"]["RetentionInDays"] == 7


def test_tracing_off_reaches_the_stage(synth: Synthesized) -> None:
    api_id, _ = resource(synth.body, CUSTOM, "api")
    stage = next(
        r["Properties"]
        for r in synth.body["Resources"].values()
        if r["Type"] == "AWS::ApiGateway::Stage" and r["Properties"]["RestApiId"] == {"Ref": api_id}
    )
    assert stage.get("TracingEnabled", False) is False


def test_worker_policy_statements_are_added(synth: Synthesized) -> None:
    worker_id, worker = resource(synth.body, CUSTOM, "worker")
    assert "s3:PutObject" in policy_actions(synth.body, worker_id, worker)


def test_bring_your_own_queue_and_table(synth: Synthesized) -> None:
    assert synth.byo.queue is synth.team_queue
    assert synth.byo.table is synth.team_table
    assert synth.byo.max_receive_count == 4
    assert synth.byo.visibility_timeout.to_minutes() == 40
    assert env(synth.body, BYO, "worker")["ASYNC_JOB_MAX_RECEIVE_COUNT"] == "4"
    for role in ("queue", "dead-letter-queue", "table"):
        assert not [
            r
            for r in synth.body["Resources"].values()
            if (mark := r.get("Metadata", {}).get("AsyncJob", {})).get("api") == BYO
            and mark.get("role") == role
        ]
    team_table_id = synth.stack.get_logical_id(synth.team_table.node.default_child)  # type: ignore[arg-type]
    assert refers_to(
        env(synth.body, BYO, "status")["ASYNC_JOB_TABLE_NAME"], synth.stack.resolve(team_table_id)
    )
    team_dlq_arn = synth.stack.resolve(synth.team_queue.dead_letter_queue.queue.queue_arn)  # type: ignore[union-attr]
    dead_letter_id, _ = resource(synth.body, BYO, "dead-letter")
    assert any(
        r["Properties"]["EventSourceArn"] == team_dlq_arn
        and r["Properties"]["FunctionName"] == {"Ref": dead_letter_id}
        for r in synth.body["Resources"].values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
    )


def test_bring_your_own_table_warns_about_its_schema(synth: Synthesized) -> None:
    Annotations.from_stack(synth.stack).has_warning(f"/{BYO}", Match.string_like_regexp("partition key 'pk'"))


def test_imported_queue_with_explicit_dead_letter_queue(synth: Synthesized) -> None:
    assert synth.imported.max_receive_count == 2
    dead_letter_id, _ = resource(synth.body, IMPORTED, "dead-letter")
    assert any(
        r["Properties"]["EventSourceArn"] == "arn:aws:sqs:eu-west-1:111111111111:jobs-dlq"
        and r["Properties"]["FunctionName"] == {"Ref": dead_letter_id}
        for r in synth.body["Resources"].values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
    )


def test_powertools_layer_can_be_replaced(synth: Synthesized) -> None:
    layers = repr(props(synth.body, IMPORTED, "worker")["Layers"])
    assert "arn:aws:lambda:eu-west-1:111111111111:layer:powertools:3" in layers
    assert "017000801446" not in layers


def test_grant_invoke_allows_the_job_routes_only() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "Grants")
    jobs = AsyncJobApi(stack, "Jobs", handler="m.f", code=TEAM_CODE)
    client = iam.Role(stack, "Client", assumed_by=iam.AccountRootPrincipal())
    jobs.grant_invoke(client)
    statements = [
        s
        for r in Template.from_stack(stack).to_json()["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy"
        for s in r["Properties"]["PolicyDocument"]["Statement"]
        if s["Action"] == "execute-api:Invoke"
    ]
    assert len(statements) == 1
    resources = repr(statements[0]["Resource"])
    assert "/POST/jobs" in resources
    assert "/GET/jobs/*" in resources
    assert "/DELETE/jobs/*" in resources
