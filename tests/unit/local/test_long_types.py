"""Long job types in the local runtime's reading of a template and its wiring (a hand-written template in the
construct's shape, no synthesis): the durable worker's ``DurableConfig`` and version, the starter consuming the
type's queue, the sweep rule's schedule, and what the runtime makes of them on embedded moto.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from async_job_local.api_spec import apis_of
from async_job_local.assembly import CloudAssembly
from async_job_local.errors import AssemblyError
from async_job_local.functions import FunctionLogs
from async_job_local.runtime import LocalRuntime
from async_job_local.schedule import scheduled_event
from async_job_local.template import StackSpec, rate_seconds
from lambda_handlers.contract import Env, Role
from tests.unit.local.conftest import StackFactory
from tests.unit.local.templates import api_template, function, make_assets


def long_template(*, schedule: str = "rate(5 minutes)", starter: bool = True) -> dict[str, Any]:
    """Types ``reports`` (short) and ``archive`` (long: a durable worker, its version, a starter, a sweep)."""
    template = api_template(types=("reports", "archive"), typed=True)
    resources = template["Resources"]
    worker = resources["WorkerArchive"]
    worker["Properties"]["Handler"] = "lambda_handlers.durable_worker.handler"
    worker["Properties"]["Timeout"] = 10
    worker["Properties"]["DurableConfig"] = {"ExecutionTimeout": 7200, "RetentionPeriodInDays": 7}
    resources["WorkerArchiveVersion"] = {
        "Type": "AWS::Lambda::Version",
        "Properties": {"FunctionName": {"Ref": "WorkerArchive"}},
    }
    if starter:
        resources["StarterArchive"] = function(
            "lambda_handlers.durable_start.handler",
            Role.STARTER,
            job_type="archive",
            environment={
                Env.TABLE_NAME: {"Ref": "Table"},
                Env.DURABLE_FUNCTION: {"Ref": "WorkerArchiveVersion"},
            },
        )
        resources["EsmArchive"]["Properties"]["FunctionName"] = {"Ref": "StarterArchive"}
        resources["SweepArchive"] = {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "ScheduleExpression": schedule,
                "State": "ENABLED",
                "Targets": [{"Arn": {"Fn::GetAtt": ["StarterArchive", "Arn"]}, "Id": "Target0"}],
            },
        }
    else:
        del resources["EsmArchive"]
    return template


def test_a_long_types_queue_feeds_its_starter_and_its_worker_is_durable(make_stack: StackFactory) -> None:
    # GIVEN a template with a short type and a long one WHEN its API is read
    (api,) = apis_of(make_stack(long_template()), set())

    # THEN the long type's worker has its DurableConfig, its queue's mapping invokes the starter, and the
    # starter's sweep rule is read with its period; the short type is as before
    archive, reports = api.job_types["archive"], api.job_types["reports"]
    assert archive.long
    assert not reports.long
    assert archive.worker.durable is not None
    assert (archive.worker.durable.execution_timeout, archive.worker.durable.retention_days) == (7200, 7)
    assert archive.starter is not None
    assert archive.starter.logical_id == "StarterArchive"
    assert [source.function for source in archive.event_sources] == ["StarterArchive"]
    assert [(s.logical_id, s.period, s.enabled) for s in archive.schedules] == [("SweepArchive", 300, True)]
    assert reports.starter is None
    assert [source.function for source in reports.event_sources] == ["WorkerReports"]


def test_a_durable_config_without_retention_gets_lambdas_14_days(make_stack: StackFactory) -> None:
    template = long_template()
    del template["Resources"]["WorkerArchive"]["Properties"]["DurableConfig"]["RetentionPeriodInDays"]
    stack = make_stack(template)
    assert stack.function("WorkerArchive").durable is not None
    assert stack.function("WorkerArchive").durable.retention_days == 14  # type: ignore[union-attr]


def test_versions_are_numbered_per_function_in_template_order(make_stack: StackFactory) -> None:
    template = long_template()
    template["Resources"]["WorkerArchiveVersion2"] = copy.deepcopy(
        template["Resources"]["WorkerArchiveVersion"]
    )
    versions = make_stack(template).versions()
    assert [(v.logical_id, v.function, v.number) for v in versions] == [
        ("WorkerArchiveVersion", "WorkerArchive", 1),
        ("WorkerArchiveVersion2", "WorkerArchive", 2),
    ]


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("rate(5 minutes)", 300), ("rate(1 minute)", 60), ("rate(2 hours)", 7200), ("rate(1 day)", 86400)],
)
def test_rate_expressions_give_their_period(expression: str, seconds: int) -> None:
    assert rate_seconds(expression) == seconds


def test_a_cron_expression_is_not_a_rate() -> None:
    assert rate_seconds("cron(0 12 * * ? *)") is None


def test_fails_if_a_starters_schedule_is_not_a_rate(make_stack: StackFactory) -> None:
    with pytest.raises(
        AssemblyError, match=r"SweepArchive: schedule 'cron\(0 12 \* \* \? \*\)' is not a rate"
    ):
        list(apis_of(make_stack(long_template(schedule="cron(0 12 * * ? *)")), set()))


def test_fails_if_a_durable_worker_has_no_starter(make_stack: StackFactory) -> None:
    with pytest.raises(
        AssemblyError, match=r"job type 'archive' has a durable worker \(WorkerArchive\) but no starter"
    ):
        list(apis_of(make_stack(long_template(starter=False)), set()))


def test_the_scheduled_event_is_eventbridges() -> None:
    event = scheduled_event("arn:aws:events:us-east-1:123456789012:rule/sweep", "123456789012", "us-east-1")
    assert (event["source"], event["detail-type"], event["resources"], event["detail"]) == (
        "aws.events",
        "Scheduled Event",
        ["arn:aws:events:us-east-1:123456789012:rule/sweep"],
        {},
    )
    assert event["time"].endswith("Z")


# ------------------------------------------------------------------------------------------ the runtime


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    """The two-type template served on embedded moto, its sweep every 0.5 s."""
    directory = tmp_path_factory.mktemp("assembly")
    make_assets(directory)
    stack = StackSpec(artifact_id="Stack", stack_name="Stack", template=long_template(), directory=directory)
    assembly = CloudAssembly(
        directory=stack.directory, stacks=(stack,), apis=tuple(apis_of(stack, set())), warnings=()
    )
    with LocalRuntime(
        assembly,
        port=0,
        logs=FunctionLogs(None),
        check_handlers=False,
        warn=lambda _: None,
        sweep_interval=0.5,
    ) as started:
        try:
            yield started
        finally:
            api = started.api()
            started.backend.client("dynamodb").delete_table(TableName=started.table_name(api))
            sqs = started.backend.client("sqs")
            for job_type in api.job_types:
                for role in ("queue", "dead-letter-queue"):
                    sqs.delete_queue(QueueUrl=started.queue(api, role, job_type).url)


def test_the_version_ref_is_the_function_arn_and_its_number(runtime: LocalRuntime) -> None:
    api = runtime.api()
    worker_arn = runtime.attribute(api, "WorkerArchive", "Arn")
    assert runtime.attribute(api, "WorkerArchiveVersion") == f"{worker_arn}:1"
    starter = runtime.functions[("Stack", "StarterArchive")]
    assert starter.environment[Env.DURABLE_FUNCTION] == f"{worker_arn}:1"


def test_the_durable_service_serves_the_long_types_worker_at_its_version(runtime: LocalRuntime) -> None:
    assert runtime.durable is not None
    (durable,) = runtime.durable.functions.values()
    assert durable.function is runtime.functions[("Stack", "WorkerArchive")]
    assert (durable.version, durable.execution_timeout, durable.retention_days) == ("1", 7200, 7)


def test_every_function_gets_the_durable_services_lambda_endpoint(runtime: LocalRuntime) -> None:
    assert runtime.durable is not None
    endpoints = {
        function.environment.get("AWS_ENDPOINT_URL_LAMBDA") for function in runtime.functions.values()
    }
    assert endpoints == {runtime.durable.endpoint_url}


def test_the_long_types_queue_is_polled_for_its_starter(runtime: LocalRuntime) -> None:
    by_queue = {source.queue.arn: source.function.name for source in runtime.event_sources}
    archive_queue = runtime.queue(runtime.api(), job_type="archive").arn
    assert by_queue[archive_queue] == runtime.functions[("Stack", "StarterArchive")].name


def test_the_sweep_rule_invokes_the_starter_on_the_sweep_interval(runtime: LocalRuntime) -> None:
    # GIVEN sweep_interval=0.5 WHEN 2 s pass THEN the starter's schedule fired several times (its invocations
    # fail here: the hand-written template's code has no durable_start, which does not stop the clock)
    (schedule,) = runtime.schedules
    assert schedule.function is runtime.functions[("Stack", "StarterArchive")]
    assert json.loads(json.dumps(scheduled_event(schedule.rule_arn, "1", "r")))["resources"] == [
        schedule.rule_arn
    ]
    deadline = time.monotonic() + 10
    while schedule.invocations < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert schedule.invocations >= 2
