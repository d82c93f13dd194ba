"""Long job types (timeout above 15 minutes): a durable worker and its version, a starter on the queue, the sweep's
schedule, and IAM scoped to the worker's executions (one synthesis for the module)."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Annotations, Match

from async_job_construct import AsyncJobApi, JobAlarm, PropValueError
from async_job_construct.monitoring import LONG_TYPE_ALARMS
from lambda_handlers.contract import Env
from tests.unit.construct.helpers import TEAM_CODE, env, from_stack, props, resource

MEDIA = "Stack/Media"
SINGLE = "Stack/Single"
SHORT_ALARMS = {
    JobAlarm.DEAD_LETTERED_JOBS,
    JobAlarm.DEAD_LETTER_BACKLOG,
    JobAlarm.OLDEST_MESSAGE_AGE,
    JobAlarm.WORKER_ERRORS,
    JobAlarm.WORKER_THROTTLES,
    JobAlarm.JOB_FAILURE_RATE,
    JobAlarm.SUBMIT_ERRORS,
}


class Synthesized:
    def __init__(self) -> None:
        app = cdk.App()
        self.stack = cdk.Stack(app, "Stack")
        self.media = AsyncJobApi(self.stack, "Media")
        self.reports = self.media.add_job_type("reports", handler="reports.generate", code=TEAM_CODE)
        self.imports = self.media.add_job_type(
            "imports",
            handler="imports.run",
            code=TEAM_CODE,
            timeout=cdk.Duration.hours(6),
            invocation_timeout=cdk.Duration.minutes(10),
            max_concurrency=3,
            batch_size=5,
        )
        self.exports = self.media.add_job_type(
            "exports",
            handler="exports.run",
            code=TEAM_CODE,
            timeout=cdk.Duration.days(2),
            runtime=lambda_.Runtime.PYTHON_3_13,
            architecture=lambda_.Architecture.ARM_64,
        )
        # The single-handler form: the long type `jobs` lives in the API's scope.
        self.single = AsyncJobApi(
            self.stack, "Single", handler="reports.generate", code=TEAM_CODE, timeout=cdk.Duration.hours(2)
        )
        self.template, self.body = from_stack(self.stack)
        self.annotations = Annotations.from_stack(self.stack)

    def logical_id(self, construct: Any) -> str:
        element = construct if isinstance(construct, cdk.CfnElement) else construct.node.default_child
        return self.stack.resolve(self.stack.get_logical_id(element))  # type: ignore[no-any-return]

    def version_id(self, job_type: Any) -> str:
        """The logical id of the ``AWS::Lambda::Version`` of ``job_type``'s worker (its hash is added at synth,
        so it is read from the template)."""
        worker = {"Ref": self.logical_id(job_type.worker_function)}
        versions = self.of_type("AWS::Lambda::Version").items()
        [found] = [k for k, r in versions if r["Properties"]["FunctionName"] == worker]
        return found

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in self.body["Resources"].items() if r["Type"] == resource_type}

    def statements_of(self, function: lambda_.Function) -> list[dict[str, Any]]:
        """Every statement of every policy attached to ``function``'s role."""
        role = {"Ref": self.logical_id(function.role)}
        return [
            statement
            for policy in self.of_type("AWS::IAM::Policy").values()
            if role in policy["Properties"]["Roles"]
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        ]

    def lambda_statements(self, function: lambda_.Function) -> list[dict[str, Any]]:
        """The statements of ``function``'s role with ``lambda:`` actions."""
        return [s for s in self.statements_of(function) if any(a.startswith("lambda:") for a in _actions(s))]


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def _arn(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def _executions(logical_id: str) -> dict[str, Any]:
    return {"Fn::Join": ["", [_arn(logical_id), ":*"]]}


@pytest.fixture(scope="module")
def synth() -> Synthesized:
    return Synthesized()


# ---------------------------------------------------------------------------------------------- attributes


def test_a_timeout_above_15_minutes_makes_the_type_long_with_its_resources(synth: Synthesized) -> None:
    imports = synth.imports
    assert imports.is_long
    assert imports.invocation_timeout.to_minutes() == 10
    assert isinstance(imports.worker_version, lambda_.Version)
    assert imports.worker_version.lambda_ is imports.worker_function
    assert imports.starter_function is not None
    assert imports.starter_schedule is not None
    assert synth.exports.invocation_timeout.to_minutes() == 15  # the default
    assert synth.single.is_long
    assert synth.single.invocation_timeout.to_minutes() == 15


def test_a_short_type_has_no_version_starter_or_schedule(synth: Synthesized) -> None:
    reports = synth.reports
    assert not reports.is_long
    assert reports.worker_version is None
    assert reports.starter_function is None
    assert reports.starter_schedule is None
    assert reports.invocation_timeout.to_seconds() == reports.timeout.to_seconds() == 300
    assert synth.of_type("AWS::Lambda::Version").keys() == {
        synth.version_id(t) for t in (synth.imports, synth.exports, synth.single.job_types["jobs"])
    }


# ------------------------------------------------------------------------------------------- durable worker


def test_the_durable_worker_runs_invocations_of_invocation_timeout_in_an_execution_of_timeout(
    synth: Synthesized,
) -> None:
    worker = props(synth.body, MEDIA, "worker", "imports")
    assert worker["DurableConfig"] == {"ExecutionTimeout": 6 * 3600, "RetentionPeriodInDays": 14}
    assert worker["Timeout"] == 600
    assert worker["Handler"] == "lambda_handlers.durable_worker.handler"
    exports = props(synth.body, MEDIA, "worker", "exports")
    assert exports["DurableConfig"] == {"ExecutionTimeout": 2 * 86400, "RetentionPeriodInDays": 14}
    assert exports["Timeout"] == 900
    assert exports["Runtime"] == "python3.13"
    assert exports["Architectures"] == ["arm64"]
    assert "DurableConfig" not in props(synth.body, MEDIA, "worker", "reports")


def test_the_durable_worker_has_a_short_workers_environment_and_its_execution_timeout(
    synth: Synthesized,
) -> None:
    variables = env(synth.body, MEDIA, "worker", "imports")
    assert variables[Env.EXECUTION_TIMEOUT_SECONDS] == "21600"
    assert variables[Env.JOB_TYPE] == "imports"
    assert variables[Env.HANDLER] == "imports.run"
    assert variables[Env.MAX_RECEIVE_COUNT] == "3"
    short = env(synth.body, MEDIA, "worker", "reports")
    assert set(variables) - set(short) == {Env.EXECUTION_TIMEOUT_SECONDS}
    assert Env.EXECUTION_TIMEOUT_SECONDS not in short


def test_the_durable_worker_has_no_event_source_and_its_version_waits_for_its_checkpoint_policy(
    synth: Synthesized,
) -> None:
    worker_id = synth.logical_id(synth.imports.worker_function)
    mappings = synth.of_type("AWS::Lambda::EventSourceMapping").values()
    assert not [m for m in mappings if m["Properties"]["FunctionName"] == {"Ref": worker_id}]
    version = synth.body["Resources"][synth.version_id(synth.imports)]
    assert version["Properties"] == {"FunctionName": {"Ref": worker_id}}
    policy_id = synth.logical_id(synth.imports.node.find_child("WorkerDurablePolicy"))
    assert version["DependsOn"] == [policy_id]
    # Kept on a deploy that makes a new one: its running executions replay its code until they end.
    assert (version["DeletionPolicy"], version["UpdateReplacePolicy"]) == ("Retain", "Retain")


def test_the_worker_role_has_no_managed_policy_and_checkpoints_only_its_own_executions(
    synth: Synthesized,
) -> None:
    worker = synth.imports.worker_function
    role = synth.body["Resources"][synth.logical_id(worker.role)]["Properties"]
    assert "ManagedPolicyArns" not in role
    assert synth.lambda_statements(worker) == [
        {
            "Action": ["lambda:CheckpointDurableExecution", "lambda:GetDurableExecutionState"],
            "Effect": "Allow",
            "Resource": _executions(synth.logical_id(worker)),
        }
    ]
    # As a short worker otherwise (update its jobs, read payloads, write results), and read its job.
    table = _arn(synth.logical_id(synth.media.table))
    assert [s for s in synth.statements_of(worker) if s["Resource"] == table] == [
        {"Action": ["dynamodb:GetItem", "dynamodb:UpdateItem"], "Effect": "Allow", "Resource": table}
    ]
    actions = {a for s in synth.statements_of(worker) for a in _actions(s)}
    assert actions == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "s3:GetObject",
        "s3:PutObject",
        "lambda:CheckpointDurableExecution",
        "lambda:GetDurableExecutionState",
    }


# ------------------------------------------------------------------------------------------------ starter


def test_the_starter_consumes_the_types_queue_reporting_batch_item_failures(synth: Synthesized) -> None:
    starter_id, starter = resource(synth.body, MEDIA, "starter", "imports")
    assert starter["Properties"]["Handler"] == "lambda_handlers.durable_start.handler"
    assert starter["Properties"]["Timeout"] == 60
    synth.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "FunctionName": {"Ref": starter_id},
            "EventSourceArn": _arn(synth.logical_id(synth.imports.queue)),
            "BatchSize": 5,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            # Under a running-executions cap few starters count at once.
            "ScalingConfig": {"MaximumConcurrency": 2},
        },
    )
    exports_id, _ = resource(synth.body, MEDIA, "starter", "exports")
    synth.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "FunctionName": {"Ref": exports_id},
            "EventSourceArn": _arn(synth.logical_id(synth.exports.queue)),
            "BatchSize": 1,
            "ScalingConfig": Match.absent(),
        },
    )


def test_the_starter_knows_the_version_the_cap_and_the_sweep_window(synth: Synthesized) -> None:
    variables = env(synth.body, MEDIA, "starter", "imports")
    common = env(synth.body, MEDIA, "dead-letter")
    assert {k: v for k, v in variables.items() if k in common} == {
        k: v for k, v in common.items() if k != Env.JOB_TYPES
    }
    assert {k: v for k, v in variables.items() if k not in common} == {
        Env.DURABLE_FUNCTION: {"Ref": synth.version_id(synth.imports)},
        Env.MAX_RUNNING: "3",
        Env.SWEEP_WINDOW_SECONDS: str(6 * 3600 + 86400),
        Env.JOB_TYPE: "imports",
        Env.MAX_RECEIVE_COUNT: "3",
    }
    exports = env(synth.body, MEDIA, "starter", "exports")
    assert Env.MAX_RUNNING not in exports
    assert exports[Env.SWEEP_WINDOW_SECONDS] == str(3 * 86400)


def test_the_starter_runs_on_the_types_runtime(synth: Synthesized) -> None:
    starter = props(synth.body, MEDIA, "starter", "exports")
    assert starter["Runtime"] == "python3.13"
    assert starter["Architectures"] == ["arm64"]


def test_the_starter_may_invoke_the_version_and_read_the_workers_executions_only(synth: Synthesized) -> None:
    starter = synth.imports.starter_function
    assert starter is not None
    worker_id = synth.logical_id(synth.imports.worker_function)
    assert synth.lambda_statements(starter) == [
        {
            "Action": "lambda:InvokeFunction",
            "Effect": "Allow",
            "Resource": {"Ref": synth.version_id(synth.imports)},
        },
        {
            "Action": "lambda:ListDurableExecutionsByFunction",
            "Effect": "Allow",
            "Resource": [_arn(worker_id), _executions(worker_id)],
        },
        {"Action": "lambda:GetDurableExecution", "Effect": "Allow", "Resource": _executions(worker_id)},
    ]
    table = _arn(synth.logical_id(synth.media.table))
    table_statements = [s for s in synth.statements_of(starter) if s["Resource"] == table]
    assert table_statements == [
        {"Action": ["dynamodb:GetItem", "dynamodb:UpdateItem"], "Effect": "Allow", "Resource": table}
    ]
    queue = _arn(synth.logical_id(synth.imports.queue))
    assert {a for s in synth.statements_of(starter) if s["Resource"] == queue for a in _actions(s)} == {
        # the event source's
        "sqs:ReceiveMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueUrl",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        # a held-back job's message sent again on its last receive
        "sqs:SendMessage",
    }
    actions = {a for s in synth.statements_of(starter) for a in _actions(s)}
    assert not {a for a in actions if a.startswith("s3:")}
    role = synth.body["Resources"][synth.logical_id(starter.role)]["Properties"]
    assert "ManagedPolicyArns" not in role


def test_a_schedule_runs_the_starters_sweep_every_5_minutes(synth: Synthesized) -> None:
    starter = synth.imports.starter_function
    assert starter is not None
    rule = synth.body["Resources"][synth.logical_id(synth.imports.starter_schedule)]["Properties"]
    assert rule["ScheduleExpression"] == "rate(5 minutes)"
    assert rule["State"] == "ENABLED"
    [target] = rule["Targets"]
    assert target["Arn"] == _arn(synth.logical_id(starter))
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 300, "MaximumRetryAttempts": 2}
    synth.template.has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": _arn(synth.logical_id(starter)),
            "Principal": "events.amazonaws.com",
            "SourceArn": _arn(synth.logical_id(synth.imports.starter_schedule)),
        },
    )
    assert len(synth.of_type("AWS::Events::Rule")) == 3  # one per long type


# ----------------------------------------------------------------------------------- queues and the API


def test_a_long_types_queue_visibility_is_about_the_starter(synth: Synthesized) -> None:
    assert synth.imports.visibility_timeout.to_seconds() == 6 * 60
    queue = synth.body["Resources"][synth.logical_id(synth.imports.queue)]["Properties"]
    assert queue["VisibilityTimeout"] == 360
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 3


def test_the_dead_letter_function_consumes_a_long_types_dead_letter_queue(synth: Synthesized) -> None:
    dead_letter_id, _ = resource(synth.body, MEDIA, "dead-letter")
    synth.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "FunctionName": {"Ref": dead_letter_id},
            "EventSourceArn": _arn(synth.logical_id(synth.imports.dead_letter_queue)),
        },
    )


def test_the_status_function_may_stop_the_executions_of_every_long_type_only(synth: Synthesized) -> None:
    stops = [
        s
        for s in synth.lambda_statements(synth.media.status_function)
        if _actions(s) == ["lambda:StopDurableExecution"]
    ]
    assert [s["Resource"] for s in stops] == [
        _executions(synth.logical_id(synth.imports.worker_function)),
        _executions(synth.logical_id(synth.exports.worker_function)),
    ]
    assert len(synth.lambda_statements(synth.media.status_function)) == 2
    for function in (synth.media.submit_function, synth.media.dead_letter_function):
        assert synth.lambda_statements(function) == []


def test_the_single_form_keeps_a_long_types_resources_in_the_api(synth: Synthesized) -> None:
    starter_id, _ = resource(synth.body, SINGLE, "starter", "jobs")
    worker_id, worker = resource(synth.body, SINGLE, "worker", "jobs")
    assert starter_id.startswith("SingleStarter")
    assert worker_id.startswith("SingleWorker")
    assert worker["Properties"]["DurableConfig"]["ExecutionTimeout"] == 7200
    assert synth.single.node.find_child("StarterSchedule") is not None
    # read on the API as in the single form
    single_type = synth.single.job_types["jobs"]
    assert synth.single.starter_function is single_type.starter_function is not None
    assert synth.single.worker_version is single_type.worker_version is not None


def test_a_long_type_does_not_warn_about_its_starters_batch_size(synth: Synthesized) -> None:
    synth.annotations.has_no_warning("*", Match.string_like_regexp("batch_size is 5"))


# --------------------------------------------------------------------------------------------- monitoring


def test_a_long_type_has_alarms_on_its_starter_and_its_durable_executions(synth: Synthesized) -> None:
    monitoring = synth.media.monitoring
    assert monitoring is not None
    assert set(monitoring.job_type_alarms["imports"]) == SHORT_ALARMS | LONG_TYPE_ALARMS
    assert set(monitoring.job_type_alarms["reports"]) == SHORT_ALARMS
    alarms = monitoring.job_type_alarms["imports"]
    worker = {"Ref": synth.logical_id(synth.imports.worker_function)}
    starter = {"Ref": synth.logical_id(synth.imports.starter_function)}
    for kind, metric, function in (
        (JobAlarm.STARTER_ERRORS, "Errors", starter),
        (JobAlarm.DURABLE_EXECUTIONS_FAILED, "DurableExecutionFailed", worker),
        (JobAlarm.DURABLE_EXECUTIONS_TIMED_OUT, "DurableExecutionTimedOut", worker),
    ):
        alarm = synth.body["Resources"][synth.logical_id(alarms[kind])]["Properties"]
        assert alarm["Namespace"] == "AWS/Lambda", kind
        assert alarm["MetricName"] == metric, kind
        assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": function}], kind
        assert (alarm["Statistic"], alarm["Period"], alarm["Threshold"]) == ("Sum", 300, 1), kind


def test_a_long_types_oldest_message_age_is_the_starters_attempts_and_a_run_under_a_cap(
    synth: Synthesized,
) -> None:
    monitoring = synth.media.monitoring
    assert monitoring is not None

    def threshold(name: str) -> float:
        alarm = monitoring.job_type_alarms[name][JobAlarm.OLDEST_MESSAGE_AGE]
        return synth.body["Resources"][synth.logical_id(alarm)]["Properties"]["Threshold"]  # type: ignore[no-any-return]

    assert threshold("imports") == 3 * 360 + 6 * 3600  # capped: a job may wait one run for a slot
    assert threshold("exports") == 3 * 360


# ------------------------------------------------------------------------------------------------- errors


def build(**overrides: Any) -> AsyncJobApi:
    stack = cdk.Stack(cdk.App(), "Stack")
    api = AsyncJobApi(stack, "Jobs")
    api.add_job_type("imports", **{"handler": "imports.run", "code": TEAM_CODE, **overrides})
    return api


def test_fails_if_invocation_timeout_is_given_to_a_short_type() -> None:
    with pytest.raises(
        PropValueError,
        match=r"^invocation_timeout applies only to a long job type \(timeout above 15 minutes\), and this "
        r"type's timeout is 10 minutes \(given 5 minutes\)\. Drop invocation_timeout: .*Or raise timeout above 15 "
        r"minutes",
    ):
        build(timeout=cdk.Duration.minutes(10), invocation_timeout=cdk.Duration.minutes(5))


def test_fails_if_invocation_timeout_is_given_with_a_timeout_unknown_at_synth() -> None:
    timeout = cdk.Duration.seconds(cdk.Token.as_number({"Ref": "JobTimeout"}))
    with pytest.raises(
        PropValueError, match=r"^invocation_timeout .*deploy-time token.*must be known at synth"
    ):
        build(timeout=timeout, invocation_timeout=cdk.Duration.minutes(5))


def test_fails_if_invocation_timeout_is_over_15_minutes() -> None:
    with pytest.raises(
        PropValueError,
        match=r"^invocation_timeout must be between 1 second and 15 minutes inclusive \(given 16 minutes\)",
    ):
        build(timeout=cdk.Duration.hours(1), invocation_timeout=cdk.Duration.minutes(16))


def test_fails_if_timeout_is_over_365_days() -> None:
    with pytest.raises(
        PropValueError, match=r"^timeout must be between 1 second and 365 days inclusive \(given 366 days\)"
    ):
        build(timeout=cdk.Duration.days(366))


def test_fails_if_a_long_type_runs_on_python_3_12() -> None:
    with pytest.raises(
        PropValueError,
        match=r"^runtime must be a Python runtime of version 3\.13 or later for a long job type "
        r"\(timeout=2 hours\): .*\(given python3\.12\)\. Pass lambda_\.Runtime\.PYTHON_3_14",
    ):
        build(timeout=cdk.Duration.hours(2), runtime=lambda_.Runtime.PYTHON_3_12)


def test_fails_if_a_long_types_max_concurrency_is_zero() -> None:
    with pytest.raises(
        PropValueError, match=r"^max_concurrency .*between 1 and 1000.*most executions running"
    ):
        build(timeout=cdk.Duration.hours(2), max_concurrency=0)


def test_fails_if_a_long_types_visibility_timeout_is_shorter_than_its_starters_timeout() -> None:
    with pytest.raises(
        PropValueError,
        match=r"^visibility_timeout must be between 1 minute and 12 hours inclusive \(given 30 seconds\)\. It must "
        r"cover one attempt \(the starter's timeout=1 minute\)",
    ):
        build(timeout=cdk.Duration.hours(2), visibility_timeout=cdk.Duration.seconds(30))


def test_fails_if_invocation_timeout_is_not_a_duration() -> None:
    with pytest.raises(
        PropValueError, match=r"^invocation_timeout must be an aws_cdk\.Duration \(given 600 "
    ):
        build(timeout=cdk.Duration.hours(2), invocation_timeout=600)
