"""A long job type's durable worker, end to end in-process: the durable SDK's own test runner (real checkpoints,
replays, retries and waits, time skipped) over moto's table and bucket."""

from __future__ import annotations

import json
import random
import sys
import uuid
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from aws_durable_execution_sdk_python.exceptions import StepError
from aws_durable_execution_sdk_python.execution import InvocationStatus
from aws_durable_execution_sdk_python_testing.runner import (
    DurableFunctionTestResult,
    DurableFunctionTestRunner,
)

from lambda_handlers import JobCancelledError, JobContext, JobFailedError
from lambda_handlers.messages import encode, payload_digest
from lambda_handlers.models import Job, utc_now
from tests.unit.handlers import durable_jobs
from tests.unit.handlers.conftest import MAX_RECEIVE_COUNT, Aws, fresh_import
from tests.unit.handlers.events import REGION, emitted_metrics, sqs_event

MODULE = "lambda_handlers.durable_worker"
EXECUTION_TIMEOUT_SECONDS = 6 * 3600


@pytest.fixture
def durable_worker(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., ModuleType]]:
    """``durable_worker("steps")``: the durable worker running ``tests.unit.handlers.durable_jobs.steps``."""
    durable_jobs.reset()
    monkeypatch.setenv("ASYNC_JOB_EXECUTION_TIMEOUT_SECONDS", str(EXECUTION_TIMEOUT_SECONDS))
    monkeypatch.setenv("ASYNC_JOB_RETRY_BASE_SECONDS", "1")
    monkeypatch.setenv("ASYNC_JOB_RETRY_MAX_SECONDS", "2")
    monkeypatch.setenv("ASYNC_JOB_TYPE", "exports")

    def load(job: str, *, bucket: bool = False) -> ModuleType:
        monkeypatch.setenv("ASYNC_JOB_HANDLER", f"tests.unit.handlers.durable_jobs.{job}")
        if bucket:
            monkeypatch.setenv("ASYNC_JOB_BUCKET_NAME", aws.bucket)
        return fresh_import(MODULE)

    yield load
    sys.modules.pop(MODULE, None)
    durable_jobs.reset()


def given_queued_job(aws: Aws, payload: dict[str, Any] | None = None) -> tuple[str, str]:
    """A QUEUED job as the submit function leaves it, and its message body (the execution's input)."""
    job_id = str(uuid.uuid4())
    text = json.dumps(payload if payload is not None else {"account": "acme"})
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
    return job_id, encode(job_id, text)


def run_execution(worker: ModuleType, job_id: str, body: str) -> DurableFunctionTestResult:
    """Start the job's durable execution (named after the job, as the starter does) and run it to its end."""
    with DurableFunctionTestRunner(handler=worker.handler) as runner:
        return runner.run(input=body, execution_name=job_id, execution_timeout=EXECUTION_TIMEOUT_SECONDS)


def outcome(result: DurableFunctionTestResult) -> dict[str, Any]:
    assert result.status is InvocationStatus.SUCCEEDED, result.error
    return json.loads(str(result.result))


def test_runs_a_job_through_steps_and_a_wait_to_succeeded_with_its_progress(
    durable_worker: Callable[..., ModuleType], aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a queued job of a long type, and a handler of two steps around a progress report and a wait
    worker = durable_worker("steps")
    job_id, body = given_queued_job(aws)
    seen: dict[str, Any] = {}
    durable_jobs.DURING = lambda job: seen.update(item=aws.item(job_id), attempt=job.attempt)

    # WHEN its durable execution runs
    result = run_execution(worker, job_id, body)

    # THEN while the second step ran (after the wait, in a later invocation) the job was RUNNING in that
    # execution, with the progress reported before the wait
    running = seen["item"]
    assert running["status"] == "RUNNING"
    assert running["progressPercent"] == 50
    assert running["progressMessage"] == "loaded, in run 1"
    assert running["execution"]
    assert seen["attempt"] == 1
    # AND the job ended SUCCEEDED with the handler's result; the execution ended well
    assert outcome(result) == {"jobId": job_id, "outcome": "SUCCEEDED"}
    item = aws.item(job_id)
    assert item is not None
    assert item["status"] == "SUCCEEDED"
    assert json.loads(item["result"]) == {"rows": ["acme", 1, 2], "counted": 3, "attempt_outside": 1}
    assert item["attempts"] == 1
    assert not {"runId", "leaseUntil", "errorType"} & item.keys()
    assert result.get_step("load").status.value == "SUCCEEDED"
    assert result.get_wait("wait 600 s") is not None
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["JobsSucceeded"] == [1.0]
    assert len(metrics["JobDuration"]) == 1


def test_a_replay_runs_no_finished_step_again_and_rewrites_no_progress(
    durable_worker: Callable[..., ModuleType], aws: Aws
) -> None:
    # GIVEN a handler whose wait ends its first invocation
    worker = durable_worker("steps")
    job_id, body = given_queued_job(aws)
    messages_seen: list[str] = []
    durable_jobs.DURING = lambda job: messages_seen.append(aws.item(job_id)["progressMessage"])  # type: ignore[index]

    # WHEN the execution runs to its end
    outcome(run_execution(worker, job_id, body))

    # THEN the handler ran again from the top in a later invocation (a replay) ...
    assert len(durable_jobs.ENTRIES) >= 2
    # ... yet each step's function ran once, and the progress written is the first run's
    assert durable_jobs.STEP_CALLS == {"load": 1, "look": 1}
    assert messages_seen == ["loaded, in run 1"]


def test_a_step_failing_every_attempt_fails_the_job_after_max_receive_count_attempts(
    durable_worker: Callable[..., ModuleType], aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    worker = durable_worker("flaky")
    job_id, body = given_queued_job(aws)

    result = run_execution(worker, job_id, body)

    assert outcome(result) == {"jobId": job_id, "outcome": "FAILED"}
    assert durable_jobs.STEP_CALLS == {"fetch": MAX_RECEIVE_COUNT}
    item = aws.item(job_id)
    assert item is not None
    assert item["status"] == "FAILED"
    assert item["errorType"] == "RuntimeError"
    assert item["errorMessage"] == f"the report service answered 502 (attempt {MAX_RECEIVE_COUNT})"
    assert emitted_metrics(capsys.readouterr().out)["JobsFailed"] == [1.0]


def test_job_failed_error_fails_the_job_at_once(durable_worker: Callable[..., ModuleType], aws: Aws) -> None:
    worker = durable_worker("give_up")
    job_id, body = given_queued_job(aws)

    outcome(run_execution(worker, job_id, body))

    assert durable_jobs.STEP_CALLS == {"check": 1}
    item = aws.item(job_id)
    assert item is not None
    assert (item["status"], item["errorType"], item["errorMessage"]) == (
        "FAILED",
        "JobFailedError",
        "payload.account is required",
    )


def test_job_cancelled_error_ends_the_job_cancelled_with_its_message(
    durable_worker: Callable[..., ModuleType], aws: Aws
) -> None:
    worker = durable_worker("stop")
    job_id, body = given_queued_job(aws)

    assert outcome(run_execution(worker, job_id, body))["outcome"] == "CANCELLED"

    item = aws.item(job_id)
    assert item is not None
    assert (item["status"], item["cancelMessage"]) == ("CANCELLED", "stopped after the first step")


def test_does_not_run_a_queued_job_whose_owner_asked_to_cancel_it(
    durable_worker: Callable[..., ModuleType], aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    worker = durable_worker("steps")
    job_id, body = given_queued_job(aws)
    aws.dynamodb.update_item(
        TableName=aws.table_name,
        Key={"pk": {"S": job_id}},
        UpdateExpression="SET cancelRequested = :true",
        ExpressionAttributeValues={":true": {"BOOL": True}},
    )

    assert outcome(run_execution(worker, job_id, body)) == {"jobId": job_id, "outcome": "CANCELLED"}

    assert durable_jobs.ENTRIES == []
    assert aws.item(job_id)["status"] == "CANCELLED"  # type: ignore[index]
    assert emitted_metrics(capsys.readouterr().out)["JobsCancelled"] == [1.0]


def test_does_not_run_a_finished_job_again(durable_worker: Callable[..., ModuleType], aws: Aws) -> None:
    worker = durable_worker("steps")
    job_id, body = given_queued_job(aws)
    outcome(run_execution(worker, job_id, body))
    durable_jobs.reset()

    # WHEN another execution of the same job runs (its message delivered again, started under another name)
    assert outcome(run_execution(worker, job_id, body)) == {"jobId": job_id, "outcome": "FINISHED"}

    assert durable_jobs.ENTRIES == []
    assert aws.item(job_id)["status"] == "SUCCEEDED"  # type: ignore[index]


def test_keeps_a_result_too_large_for_the_item_in_the_bucket(
    durable_worker: Callable[..., ModuleType], aws: Aws
) -> None:
    worker = durable_worker("too_large", bucket=True)
    job_id, body = given_queued_job(aws)

    outcome(run_execution(worker, job_id, body))

    item = aws.item(job_id)
    assert item is not None
    assert item["status"] == "SUCCEEDED"
    assert "result" not in item
    assert item["resultRef"] == f"jobs/{job_id}/result.json"
    assert item["resultBytes"] == 409_602
    stored = boto3.client("s3", region_name=REGION).get_object(Bucket=aws.bucket, Key=item["resultRef"])
    assert json.loads(stored["Body"].read()) == "x" * 409_600


def test_a_step_that_leaves_too_little_time_moves_the_job_to_a_fresh_invocation(
    durable_worker: Callable[..., ModuleType], aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN invocations with 1.5 s left (1 s of it the safety margin), and a first step that takes 0.6 s
    from aws_durable_execution_sdk_python_testing import model

    monkeypatch.setattr(model.LambdaContext, "get_remaining_time_in_millis", lambda self: 1_500)
    worker = durable_worker("slow_steps")
    job_id, body = given_queued_job(aws, {"seconds": 0.6})

    # WHEN the job runs
    result = run_execution(worker, job_id, body)

    # THEN a 1 s durable wait followed the slow step, and the next step ran in a new invocation
    from lambda_handlers.durable_job import YIELD_WAIT

    assert outcome(result)["outcome"] == "SUCCEEDED"
    assert result.get_wait(YIELD_WAIT) is not None
    assert durable_jobs.STEP_CALLS == {"slow": 1, "after": 1}
    assert len(durable_jobs.ENTRIES) >= 2


def test_a_long_type_s_handler_runs_as_a_short_one(
    load_worker: Callable[..., ModuleType], aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the long handler, as a short type's worker runs it (a wait within its 60 s would not fit: skip it)
    monkeypatch.setattr(JobContext, "wait", lambda self, duration: None)
    worker = load_worker(handler="tests.unit.handlers.durable_jobs.steps")
    job_id, body = given_queued_job(aws)
    record = {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": "AQEB",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "eventSourceARN": aws.queue_arn,
    }

    from tests.unit.handlers.events import FakeLambdaContext

    assert worker.handler(sqs_event(record), FakeLambdaContext())["batchItemFailures"] == []

    item = aws.item(job_id)
    assert item is not None
    assert item["status"] == "SUCCEEDED"
    assert json.loads(item["result"])["rows"] == ["acme", 1, 2]


# ------------------------------------------------------------------------------ pure pieces


def test_retries_a_step_with_the_type_s_backoff_up_to_its_attempts(aws_environment: None) -> None:
    from lambda_handlers.durable_job import step_retry_strategy

    decide = step_retry_strategy(3, base_seconds=10, max_seconds=900, rng=random.Random(7))

    first, second, last = (decide(RuntimeError("502"), attempts) for attempts in (1, 2, 3))

    assert first.should_retry
    assert 1 <= first.delay_seconds <= 10
    assert second.should_retry
    assert 1 <= second.delay_seconds <= 20
    assert not last.should_retry


@pytest.mark.parametrize("error", [JobFailedError("no"), JobCancelledError("stop")])
def test_never_retries_a_step_the_handler_failed_or_stopped(error: Exception, aws_environment: None) -> None:
    from lambda_handlers.durable_job import step_retry_strategy

    assert not step_retry_strategy(5, base_seconds=1, max_seconds=1)(error, 1).should_retry


class _Refused(JobFailedError):
    """A team's own kind of final failure."""


def test_a_step_s_job_errors_come_back_as_themselves(aws_environment: None) -> None:
    # (imported here: lambda_handlers.observability, which it loads, reads its settings when first imported)
    from lambda_handlers.durable_job import job_error

    failed = job_error(StepError("payload.account is required", "lambda_handlers.job.JobFailedError"))
    subclass = job_error(StepError("no", f"{__name__}._Refused"))

    assert isinstance(failed, JobFailedError)
    assert str(failed) == "payload.account is required"
    assert isinstance(subclass, _Refused)
    assert job_error(StepError("boom", "RuntimeError")) is None
    assert job_error(StepError("boom", "no_such_module.Error")) is None


def test_a_step_that_fails_once_is_retried_and_the_job_succeeds(
    durable_worker: Callable[..., ModuleType], aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    worker = durable_worker("flaky_once")
    job_id, body = given_queued_job(aws)

    outcome(run_execution(worker, job_id, body))

    assert durable_jobs.STEP_CALLS == {"fetch": 2}
    item = aws.item(job_id)
    assert item is not None
    assert item["status"] == "SUCCEEDED"
    assert json.loads(item["result"]) == {"attempt": 2}
    assert item["attempts"] == 1  # one claim: the retry was the step's, not the job's
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["JobsSucceeded"] == [1.0]
    assert "JobsFailed" not in metrics


def test_a_wait_past_the_job_s_deadline_fails_the_job_at_once(
    durable_worker: Callable[..., ModuleType], aws: Aws
) -> None:
    worker = durable_worker("wait_past_the_deadline")
    job_id, body = given_queued_job(aws)

    outcome(run_execution(worker, job_id, body))

    item = aws.item(job_id)
    assert item is not None
    assert (item["status"], item["errorType"]) == ("FAILED", "JobTimeoutError")
    assert "would outlast" in item["errorMessage"]


def test_fails_a_job_whose_message_carries_another_payload(
    durable_worker: Callable[..., ModuleType], aws: Aws
) -> None:
    worker = durable_worker("steps")
    job_id, _ = given_queued_job(aws, {"account": "acme"})

    outcome(run_execution(worker, job_id, encode(job_id, '{"account": "evil"}')))

    assert durable_jobs.ENTRIES == []
    item = aws.item(job_id)
    assert item is not None
    assert (item["status"], item["errorType"]) == ("FAILED", "PayloadMismatch")


def test_an_execution_whose_input_is_not_a_job_message_touches_nothing(
    durable_worker: Callable[..., ModuleType], aws: Aws
) -> None:
    worker = durable_worker("steps")

    assert outcome(run_execution(worker, str(uuid.uuid4()), '{"hello": "world"}')) == {
        "outcome": "MalformedMessage"
    }
    assert aws.item_count() == 0
