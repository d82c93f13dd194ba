"""A long job type's starter on moto (table, queue) with the Lambda API stubbed (botocore's Stubber: moto has no
durable-execution APIs): idempotent starts, backpressure, skips, and the sweep of executions that died."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from botocore.stub import ANY, Stubber

from lambda_handlers import clients
from lambda_handlers.messages import encode, payload_digest
from lambda_handlers.models import Job, utc_now
from tests.unit.handlers.conftest import MAX_RECEIVE_COUNT, Aws, fresh_import
from tests.unit.handlers.events import (
    ACCOUNT,
    REGION,
    FakeLambdaContext,
    emitted_metrics,
    record_from_message,
)

MODULE = "lambda_handlers.durable_start"
FUNCTION = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:Exports-Worker"
VERSION = f"{FUNCTION}:3"
SWEEP_WINDOW_SECONDS = 7 * 86_400


@pytest.fixture
def lambda_api(aws: Aws) -> Iterator[Stubber]:
    """The functions' Lambda client, stubbed: each test queues the answers AWS would give, in order."""
    clients.lambda_.cache_clear()
    stubber = Stubber(clients.lambda_())
    stubber.activate()
    yield stubber
    stubber.deactivate()
    clients.lambda_.cache_clear()


@pytest.fixture
def starter(
    aws: Aws, lambda_api: Stubber, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., ModuleType]]:
    """``starter(max_running=2)``: the starter of type ``exports`` (its worker's version 3)."""

    def load(*, max_running: int | None = None) -> ModuleType:
        monkeypatch.setenv("ASYNC_JOB_DURABLE_FUNCTION", VERSION)
        monkeypatch.setenv("ASYNC_JOB_SWEEP_WINDOW_SECONDS", str(SWEEP_WINDOW_SECONDS))
        monkeypatch.setenv("ASYNC_JOB_TYPE", "exports")
        if max_running is None:
            monkeypatch.delenv("ASYNC_JOB_MAX_RUNNING", raising=False)
        else:
            monkeypatch.setenv("ASYNC_JOB_MAX_RUNNING", str(max_running))
        return fresh_import(MODULE)

    yield load
    sys.modules.pop(MODULE, None)


def given_queued_job(aws: Aws, *, visibility_timeout: int = 30) -> tuple[str, dict[str, Any]]:
    """A QUEUED job, its message on the queue (as submit leaves them), and that message as a received record."""
    job_id = str(uuid.uuid4())
    text = json.dumps({"account": "acme"})
    aws.store.create(
        Job.new(
            job_id,
            owner="alice",
            payload_sha256=payload_digest(text),
            now=utc_now(),
            ttl_seconds=3600,
            job_type="exports",
        )
    )
    aws.sqs.send_message(QueueUrl=aws.queue_url, MessageBody=encode(job_id, text))
    (message,) = aws.receive(visibility_timeout=visibility_timeout)
    return job_id, record_from_message(message, aws.queue_arn)


def execution_arn(job_id: str) -> str:
    return f"{VERSION}/durable-execution/{job_id}/{uuid.uuid4().hex}"


def execution(job_id: str, status: str) -> dict[str, Any]:
    """One entry of ``ListDurableExecutionsByFunction``."""
    return {
        "DurableExecutionArn": execution_arn(job_id),
        "DurableExecutionName": job_id,
        "FunctionArn": VERSION,
        "Status": status,
        "StartTimestamp": utc_now() - dt.timedelta(hours=1),
    }


def expect_invoke(lambda_api: Stubber, job_id: str, record: dict[str, Any]) -> None:
    lambda_api.add_response(
        "invoke",
        {"StatusCode": 202, "DurableExecutionArn": execution_arn(job_id)},
        {
            "FunctionName": VERSION,
            "InvocationType": "Event",
            "DurableExecutionName": job_id,
            "Payload": record["body"].encode("utf-8"),
        },
    )


def expect_running(lambda_api: Stubber, count: int, limit: int) -> None:
    running = [execution(str(uuid.uuid4()), "RUNNING") for _ in range(count)]
    lambda_api.add_response(
        "list_durable_executions_by_function",
        {"DurableExecutions": running},
        {"FunctionName": FUNCTION, "Statuses": ["RUNNING"], "MaxItems": limit},
    )


def failures(response: dict[str, Any]) -> list[str]:
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


def test_starts_one_durable_execution_per_job_named_after_it_on_the_version(
    starter: Callable[..., ModuleType], aws: Aws, lambda_api: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    start = starter()
    job_id, record = given_queued_job(aws)
    expect_invoke(lambda_api, job_id, record)

    response = start.handler({"Records": [record]}, FakeLambdaContext())

    lambda_api.assert_no_pending_responses()
    assert failures(response) == []
    assert aws.item(job_id)["status"] == "QUEUED"  # type: ignore[index]  # the execution's claim runs it
    assert emitted_metrics(capsys.readouterr().out)["ExecutionsStarted"] == [1.0]


def test_consumes_a_message_whose_execution_was_started_already(
    starter: Callable[..., ModuleType], aws: Aws, lambda_api: Stubber
) -> None:
    start = starter()
    _job_id, record = given_queued_job(aws)
    lambda_api.add_client_error(
        "invoke",
        service_error_code="DurableExecutionAlreadyStartedException",
        service_message="An execution with this name exists with another input",
        http_status_code=409,
    )

    response = start.handler({"Records": [record]}, FakeLambdaContext())

    lambda_api.assert_no_pending_responses()
    assert failures(response) == []


@pytest.mark.parametrize(
    ("code", "status"),
    [("TooManyRequestsException", 429), ("ServiceException", 500), ("ResourceNotFoundException", 404)],
)
def test_reports_a_record_whose_start_failed_so_that_it_comes_back(
    starter: Callable[..., ModuleType],
    aws: Aws,
    lambda_api: Stubber,
    capsys: pytest.CaptureFixture[str],
    code: str,
    status: int,
) -> None:
    start = starter()
    job_id, record = given_queued_job(aws)
    lambda_api.add_client_error("invoke", service_error_code=code, http_status_code=status)

    response = start.handler({"Records": [record]}, FakeLambdaContext())

    assert failures(response) == [record["messageId"]]
    assert aws.item(job_id)["status"] == "QUEUED"  # type: ignore[index]
    assert emitted_metrics(capsys.readouterr().out)["StartErrors"] == [1.0]


def test_holds_a_job_back_in_the_queue_while_the_most_executions_run(
    starter: Callable[..., ModuleType], aws: Aws, lambda_api: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN at most 2 running executions, and 2 running
    start = starter(max_running=2)
    _, record = given_queued_job(aws, visibility_timeout=1)
    expect_running(lambda_api, 2, limit=2)

    # WHEN the job's message comes
    response = start.handler({"Records": [record]}, FakeLambdaContext())

    # THEN nothing is started: the message is reported, and stays invisible past its 1 s visibility timeout
    lambda_api.assert_no_pending_responses()
    assert failures(response) == [record["messageId"]]
    time.sleep(1.2)
    assert aws.receive() == []
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["JobsHeldBack"] == [1.0]
    assert "StartErrors" not in metrics


def test_starts_jobs_while_fewer_than_the_most_executions_run_and_counts_what_it_started(
    starter: Callable[..., ModuleType], aws: Aws, lambda_api: Stubber
) -> None:
    # GIVEN at most 2 running executions, 1 running, and two jobs in one batch
    start = starter(max_running=2)
    first_id, first = given_queued_job(aws)
    _, second = given_queued_job(aws)
    expect_running(lambda_api, 1, limit=2)
    expect_invoke(lambda_api, first_id, first)

    response = start.handler({"Records": [first, second]}, FakeLambdaContext())

    # THEN the first is started (listed once), the second waits: 2 run now
    lambda_api.assert_no_pending_responses()
    assert failures(response) == [second["messageId"]]


def test_sends_a_held_back_job_again_on_its_last_receive_rather_than_let_it_be_dead_lettered(
    starter: Callable[..., ModuleType], aws: Aws, lambda_api: Stubber
) -> None:
    start = starter(max_running=1)
    _, record = given_queued_job(aws)
    last = {
        **record,
        "attributes": {**record["attributes"], "ApproximateReceiveCount": str(MAX_RECEIVE_COUNT)},
    }
    expect_running(lambda_api, 1, limit=1)

    response = start.handler({"Records": [last]}, FakeLambdaContext())

    assert failures(response) == []
    attributes = aws.sqs.get_queue_attributes(QueueUrl=aws.queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"


def test_consumes_a_finished_job_s_message_without_starting_it(
    starter: Callable[..., ModuleType], aws: Aws, lambda_api: Stubber
) -> None:
    start = starter()
    job_id, record = given_queued_job(aws)
    assert aws.store.claim(job_id, "run-1", 2**41).status.value == "CLAIMED"
    assert aws.store.complete(job_id, "run-1", '{"done":true}').value == "APPLIED"

    response = start.handler({"Records": [record]}, FakeLambdaContext())

    lambda_api.assert_no_pending_responses()  # no Invoke: it would find no stubbed answer
    assert failures(response) == []


def test_consumes_a_message_that_is_not_a_job_message(
    starter: Callable[..., ModuleType], aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    start = starter()
    _, record = given_queued_job(aws)

    response = start.handler({"Records": [{**record, "body": "not json"}]}, FakeLambdaContext())

    assert failures(response) == []
    assert emitted_metrics(capsys.readouterr().out)["MalformedMessages"] == [1.0]


# ------------------------------------------------------------------------------------------ sweep


def running_in(aws: Aws, job_id: str, arn: str, *, cancel_requested: bool = False) -> None:
    """The job as its execution's claim leaves it: RUNNING, leased till the deadline, the execution recorded."""
    from lambda_handlers.durable_store import DurableJobStore

    store = DurableJobStore(aws.table_name, aws.dynamodb, ttl_seconds=3600)
    assert store.claim(job_id, "run-1", 2**41).status.value == "CLAIMED"
    assert store.record_execution(job_id, "run-1", arn)[0].value == "APPLIED"
    if cancel_requested:
        aws.dynamodb.update_item(
            TableName=aws.table_name,
            Key={"pk": {"S": job_id}},
            UpdateExpression="SET cancelRequested = :true",
            ExpressionAttributeValues={":true": {"BOOL": True}},
        )


def expect_ended(lambda_api: Stubber, executions: list[dict[str, Any]]) -> None:
    lambda_api.add_response(
        "list_durable_executions_by_function",
        {"DurableExecutions": executions},
        {"FunctionName": FUNCTION, "Statuses": ["FAILED", "TIMED_OUT", "STOPPED"], "StartedAfter": ANY},
    )


def expect_execution(lambda_api: Stubber, ended: dict[str, Any], error: dict[str, str] | None = None) -> None:
    answer: dict[str, Any] = {
        key: ended[key]
        for key in ("DurableExecutionArn", "DurableExecutionName", "FunctionArn", "Status", "StartTimestamp")
    }
    if error is not None:
        answer["Error"] = error
    lambda_api.add_response(
        "get_durable_execution", answer, {"DurableExecutionArn": ended["DurableExecutionArn"]}
    )


SCHEDULED = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


def test_the_sweep_fails_the_running_job_of_a_timed_out_execution_and_leaves_finished_jobs_alone(
    starter: Callable[..., ModuleType], aws: Aws, lambda_api: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a job RUNNING in an execution that timed out, and a SUCCEEDED job whose execution was stopped later
    start = starter()
    running_id, _ = given_queued_job(aws)
    finished_id, _ = given_queued_job(aws)
    timed_out = execution(running_id, "TIMED_OUT")
    running_in(aws, running_id, timed_out["DurableExecutionArn"])
    stopped = execution(finished_id, "STOPPED")
    running_in(aws, finished_id, stopped["DurableExecutionArn"])
    assert aws.store.complete(finished_id, "run-1", "1").value == "APPLIED"
    expect_ended(lambda_api, [timed_out, stopped])
    expect_execution(lambda_api, timed_out)

    # WHEN the schedule runs the sweep
    swept = start.handler(SCHEDULED, FakeLambdaContext())

    # THEN the running job is FAILED, ExecutionTimedOut; the finished one is as it was (nor was its execution read)
    lambda_api.assert_no_pending_responses()
    assert swept == {"ended": 1, "left": 1}
    item = aws.item(running_id)
    assert item is not None
    assert (item["status"], item["errorType"]) == ("FAILED", "ExecutionTimedOut")
    assert "timeout" in item["errorMessage"]
    assert not {"runId", "leaseUntil"} & item.keys()
    assert aws.item(finished_id)["status"] == "SUCCEEDED"  # type: ignore[index]
    assert emitted_metrics(capsys.readouterr().out)["JobsFailed"] == [1.0]


def test_the_sweep_fails_a_queued_job_whose_execution_failed_before_its_claim_with_the_execution_s_error(
    starter: Callable[..., ModuleType], aws: Aws, lambda_api: Stubber
) -> None:
    start = starter()
    job_id, _ = given_queued_job(aws)
    failed = execution(job_id, "FAILED")
    expect_ended(lambda_api, [failed])
    expect_execution(
        lambda_api,
        failed,
        {"ErrorType": "Runtime.ImportModuleError", "ErrorMessage": "No module named 'reports'"},
    )

    assert start.handler(SCHEDULED, FakeLambdaContext()) == {"ended": 1, "left": 0}

    item = aws.item(job_id)
    assert item is not None
    assert (item["status"], item["errorType"]) == ("FAILED", "ExecutionFailed")
    assert "Runtime.ImportModuleError: No module named 'reports'" in item["errorMessage"]


def test_the_sweep_cancels_a_job_whose_owner_asked_to_cancel_it_when_its_execution_was_stopped(
    starter: Callable[..., ModuleType], aws: Aws, lambda_api: Stubber
) -> None:
    start = starter()
    job_id, _ = given_queued_job(aws)
    stopped = execution(job_id, "STOPPED")
    running_in(aws, job_id, stopped["DurableExecutionArn"], cancel_requested=True)
    expect_ended(lambda_api, [stopped])
    expect_execution(lambda_api, stopped)

    assert start.handler(SCHEDULED, FakeLambdaContext()) == {"ended": 1, "left": 0}

    assert aws.item(job_id)["status"] == "CANCELLED"  # type: ignore[index]


def test_the_sweep_leaves_a_job_running_in_another_execution_alone(
    starter: Callable[..., ModuleType], aws: Aws, lambda_api: Stubber
) -> None:
    start = starter()
    job_id, _ = given_queued_job(aws)
    running_in(aws, job_id, execution_arn(job_id))
    expect_ended(lambda_api, [execution(job_id, "FAILED")])

    assert start.handler(SCHEDULED, FakeLambdaContext()) == {"ended": 0, "left": 1}

    lambda_api.assert_no_pending_responses()
    assert aws.item(job_id)["status"] == "RUNNING"  # type: ignore[index]


def test_the_sweep_survives_a_failed_listing(
    starter: Callable[..., ModuleType], aws: Aws, lambda_api: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    start = starter()
    lambda_api.add_client_error(
        "list_durable_executions_by_function", service_error_code="ServiceException", http_status_code=500
    )

    assert start.handler(SCHEDULED, FakeLambdaContext()) == {"ended": 0, "left": 0}
    assert emitted_metrics(capsys.readouterr().out)["SweepErrors"] == [1.0]
