"""The worker on moto: claim, run, record; retries, duplicates, leases, fencing, timeouts, bad results."""

from __future__ import annotations

import dataclasses
import json
import signal
import threading
import time
import uuid
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from lambda_handlers import JobContext, JobLeaseLostError
from lambda_handlers.job import PROGRESS_MESSAGE_MAX_CHARS
from lambda_handlers.messages import payload_digest
from lambda_handlers.models import ITEM_MAX_BYTES, Job, JobStatus, epoch_millis, item_size, utc_now
from tests.unit.handlers import jobs
from tests.unit.handlers.conftest import MAX_RECEIVE_COUNT, Aws
from tests.unit.handlers.events import (
    FakeLambdaContext,
    body,
    emitted_metrics,
    get_event,
    job_record,
    sqs_event,
    sqs_record,
)

LoadWorker = Callable[..., ModuleType]


def given_queued_job(aws: Aws, payload: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """A QUEUED job as the submit function leaves it, and the record carrying its message."""
    job_id = str(uuid.uuid4())
    text = json.dumps(payload if payload is not None else {"report": "Q3"})
    aws.store.create(
        Job.new(job_id, owner="alice", payload_sha256=payload_digest(text), now=utc_now(), ttl_seconds=3600)
    )
    return job_id, job_record(job_id, text)


def delivery(record: dict[str, Any], receive_count: int) -> dict[str, Any]:
    """The same message delivered again, ``receive_count`` times so far."""
    return {**record, "attributes": {**record["attributes"], "ApproximateReceiveCount": str(receive_count)}}


def backoff_elapsed(aws: Aws, job_id: str) -> None:
    """What the clock does while a retry waits out its backoff: ``retryAt`` is in the past now."""
    aws.dynamodb.update_item(
        TableName=aws.table_name,
        Key={"pk": {"S": job_id}},
        UpdateExpression="SET retryAt = :past",
        ConditionExpression="attribute_exists(retryAt)",
        ExpressionAttributeValues={":past": {"N": str(epoch_millis(utc_now()) - 10_000)}},
    )


def failures(response: dict[str, Any]) -> list[str]:
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


def take_over(aws: Aws, job_id: str, run_id: str = "other-run") -> None:
    """What another worker does when this run's lease has run out: it claims the job."""
    aws.dynamodb.update_item(
        TableName=aws.table_name,
        Key={"pk": {"S": job_id}},
        UpdateExpression="SET leaseUntil = :past",
        ExpressionAttributeValues={":past": {"N": "0"}},
    )
    assert aws.store.claim(job_id, run_id, epoch_millis(utc_now()) + 600_000).status.value == "CLAIMED"


def test_runs_a_job_from_queued_through_running_to_succeeded(
    load_worker: LoadWorker,
    status: ModuleType,
    aws: Aws,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a queued job, and a handler that reports 50 % and lets us look while it runs
    worker = load_worker("during")
    job_id, record = given_queued_job(aws)
    seen: dict[str, Any] = {}

    def look(job: JobContext) -> None:
        seen["item"] = aws.item(job_id)
        seen["resource"] = body(status.handler(get_event(job_id, user_arn="alice"), FakeLambdaContext()))

    jobs.DURING = look
    started_ms = epoch_millis(utc_now())

    # WHEN the worker gets its message
    response = worker.handler(sqs_event(record), lambda_context)

    # THEN while it ran, the job was RUNNING under this run's lease, with its progress visible to the owner
    running = seen["item"]
    assert running["status"] == "RUNNING"
    assert running["attempts"] == 1
    assert running["progressPercent"] == 50
    assert running["progressMessage"] == "half way"
    assert len(running["runId"]) == 32
    assert started_ms + 55_000 <= running["leaseUntil"] <= started_ms + 61_000
    assert seen["resource"]["status"] == "RUNNING"
    assert seen["resource"]["progress"] == {"percent": 50, "message": "half way"}
    # AND it ended SUCCEEDED with the result, the run's lease released, and the message consumed
    assert failures(response) == []
    item = aws.item(job_id)
    assert item is not None
    assert item["status"] == "SUCCEEDED"
    assert json.loads(item["result"]) == {"done": True}
    assert not {"runId", "leaseUntil", "errorType", "errorMessage"} & item.keys()
    assert len(jobs.CALLS) == 1
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["JobsSucceeded"] == [1.0]
    assert len(metrics["JobDuration"]) == 1


def test_gives_the_handler_its_payload_attempt_and_time(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    worker = load_worker("succeed")
    job_id, record = given_queued_job(aws, {"account": "acme", "nested": {"n": [1, 2]}})

    worker.handler(sqs_event(delivery(record, 2)), lambda_context)

    item = aws.item(job_id)
    assert item is not None
    result = json.loads(item["result"])
    assert result["echo"] == {"account": "acme", "nested": {"n": [1, 2]}}
    assert result["attempt"] == 2
    assert result["max_attempts"] == MAX_RECEIVE_COUNT
    # 60 s left, less the 3 s safety margin (5 %)
    assert 50_000 < result["remaining_ms"] <= 57_000


def test_retries_a_failing_job_then_fails_it_on_the_last_attempt(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a handler that always raises
    worker = load_worker("crash")
    job_id, record = given_queued_job(aws)

    # WHEN the first attempt fails
    response = worker.handler(sqs_event(delivery(record, 1)), lambda_context)

    # THEN the job is QUEUED again with the error kept, and the message must come back
    assert failures(response) == [record["messageId"]]
    item = aws.item(job_id)
    assert item is not None
    assert item["status"] == "QUEUED"
    assert item["attempts"] == 1
    assert (item["errorType"], item["errorMessage"]) == ("RuntimeError", "the report service answered 502")
    assert not {"runId", "leaseUntil"} & item.keys()

    # WHEN the second attempt fails too
    backoff_elapsed(aws, job_id)
    response = worker.handler(sqs_event(delivery(record, 2)), lambda_context)
    assert failures(response) == [record["messageId"]]
    assert aws.item(job_id)["status"] == "QUEUED"  # type: ignore[index]

    # WHEN the last attempt fails
    backoff_elapsed(aws, job_id)
    response = worker.handler(sqs_event(delivery(record, MAX_RECEIVE_COUNT)), lambda_context)

    # THEN the job is FAILED and the message consumed
    assert failures(response) == []
    item = aws.item(job_id)
    assert item is not None
    assert item["status"] == "FAILED"
    assert item["attempts"] == 3
    assert item["errorType"] == "RuntimeError"
    assert len(jobs.CALLS) == 3
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["JobsRetried"] == [1.0, 1.0]
    assert metrics["JobsFailed"] == [1.0]


def test_fails_at_once_on_job_failed_error(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    worker = load_worker("give_up")
    job_id, record = given_queued_job(aws)

    response = worker.handler(sqs_event(record), lambda_context)

    assert failures(response) == []
    item = aws.item(job_id)
    assert item is not None
    assert item["status"] == "FAILED"
    assert item["attempts"] == 1
    assert (item["errorType"], item["errorMessage"]) == ("JobFailedError", "payload.account is required")


def test_cuts_long_error_messages(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    worker = load_worker("long_message")
    job_id, record = given_queued_job(aws)

    worker.handler(sqs_event(record), lambda_context)

    item = aws.item(job_id)
    assert item is not None
    assert item["errorType"] == "ValueError"
    assert item["errorMessage"] == "x" * 2_000


def test_does_not_run_a_finished_job_again(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a job that succeeded
    worker = load_worker("succeed")
    job_id, record = given_queued_job(aws)
    worker.handler(sqs_event(record), lambda_context)
    finished = aws.item(job_id)

    # WHEN its message is delivered again (SQS delivers at least once)
    response = worker.handler(sqs_event(delivery(record, 2)), lambda_context)

    # THEN the duplicate is consumed without running the handler, and the job is untouched
    assert failures(response) == []
    assert len(jobs.CALLS) == 1
    assert aws.item(job_id) == finished


def test_drops_a_message_whose_job_is_gone(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    worker = load_worker("succeed")

    response = worker.handler(sqs_event(job_record(str(uuid.uuid4()), "{}")), lambda_context)

    assert failures(response) == []
    assert jobs.CALLS == []
    assert aws.item_count() == 0


def test_leaves_a_job_under_a_live_lease_alone(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a job another run holds for another minute
    worker = load_worker("succeed")
    job_id, record = given_queued_job(aws)
    aws.store.claim(job_id, "other-run", epoch_millis(utc_now()) + 60_000)
    held = aws.item(job_id)

    # WHEN a duplicate of its message arrives
    response = worker.handler(sqs_event(record), lambda_context)

    # THEN the message comes back later, the handler does not run, the job is untouched
    assert failures(response) == [record["messageId"]]
    assert jobs.CALLS == []
    assert aws.item(job_id) == held


def test_takes_over_a_job_whose_lease_ran_out(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a job whose run died: RUNNING, its lease in the past
    worker = load_worker("succeed")
    job_id, record = given_queued_job(aws)
    aws.store.claim(job_id, "dead-run", epoch_millis(utc_now()) - 1)

    # WHEN its message comes back
    response = worker.handler(sqs_event(delivery(record, 2)), lambda_context)

    # THEN this run takes it over and finishes it
    assert failures(response) == []
    item = aws.item(job_id)
    assert item is not None
    assert item["status"] == "SUCCEEDED"
    assert item["attempts"] == 2
    assert len(jobs.CALLS) == 1


def test_a_stale_run_cannot_record_its_result(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a run that is taken over while its handler still works
    worker = load_worker("during")
    job_id, record = given_queued_job(aws)
    jobs.DURING = lambda job: take_over(aws, job_id)

    # WHEN the stale run's handler returns
    response = worker.handler(sqs_event(record), lambda_context)

    # THEN its result is not written (the fence rejects it); the new run still holds the job
    assert failures(response) == []
    item = aws.item(job_id)
    assert item is not None
    assert item["status"] == "RUNNING"
    assert item["runId"] == "other-run"
    assert "result" not in item
    assert emitted_metrics(capsys.readouterr().out)["LeaseLost"] == [1.0]


def test_progress_after_a_take_over_stops_the_handler(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a handler that reports progress after its run was taken over
    worker = load_worker("during")
    job_id, record = given_queued_job(aws)
    raised: list[BaseException] = []

    def taken_over_then_report(job: JobContext) -> None:
        take_over(aws, job_id)
        try:
            job.report_progress(100)
        except JobLeaseLostError as error:
            raised.append(error)
            raise

    jobs.DURING = taken_over_then_report

    # WHEN it runs
    response = worker.handler(sqs_event(record), lambda_context)

    # THEN report_progress raised JobLeaseLostError, nothing was written, the message is consumed
    assert len(raised) == 1
    assert failures(response) == []
    item = aws.item(job_id)
    assert item is not None
    assert (item["status"], item["runId"]) == ("RUNNING", "other-run")
    assert "progressPercent" not in item
    assert "errorType" not in item


@pytest.mark.parametrize(("receive_count", "status"), [(1, "QUEUED"), (MAX_RECEIVE_COUNT, "FAILED")])
def test_stops_a_handler_that_runs_into_the_deadline(
    load_worker: LoadWorker, aws: Aws, receive_count: int, status: str
) -> None:
    # GIVEN a handler that would sleep 5 s, with 1.2 s left before the Lambda timeout (so 0.2 s to run)
    worker = load_worker("sleep")
    job_id, record = given_queued_job(aws, {"seconds": 5})
    previous_handler = signal.getsignal(signal.SIGALRM)

    # WHEN it runs
    started = time.monotonic()
    response = worker.handler(
        sqs_event(delivery(record, receive_count)), FakeLambdaContext(remaining_ms=1_200)
    )

    # THEN the worker stopped it (it would have slept 5 s) and recorded JobTimeoutError. The bound leaves room for
    # the failure's write on a loaded machine's moto (it took up to 1.23 s in CI); the margin's size is
    # test_deadline's.
    assert time.monotonic() - started < 2.5
    item = aws.item(job_id)
    assert item is not None
    assert item["status"] == status
    assert item["errorType"] == "JobTimeoutError"
    assert failures(response) == ([] if status == "FAILED" else [record["messageId"]])
    # AND left no timer or signal handler behind
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) == previous_handler


def test_does_not_start_a_handler_without_time_to_run(load_worker: LoadWorker, aws: Aws) -> None:
    worker = load_worker("succeed")
    job_id, record = given_queued_job(aws)

    response = worker.handler(sqs_event(record), FakeLambdaContext(remaining_ms=800))

    assert jobs.CALLS == []
    assert failures(response) == [record["messageId"]]
    item = aws.item(job_id)
    assert item is not None
    assert (item["status"], item["errorType"]) == ("QUEUED", "JobTimeoutError")


def test_runs_without_a_timer_outside_the_main_thread(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    worker = load_worker("succeed")
    job_id, record = given_queued_job(aws)
    responses: list[dict[str, Any]] = []

    thread = threading.Thread(
        target=lambda: responses.append(worker.handler(sqs_event(record), lambda_context))
    )
    thread.start()
    thread.join(10)

    assert failures(responses[0]) == []
    assert aws.item(job_id)["status"] == "SUCCEEDED"  # type: ignore[index]


@pytest.mark.parametrize(
    ("job", "error_type"),
    [
        ("unserialisable", "ResultNotSerializable"),
        ("not_a_number", "ResultNotSerializable"),
        ("too_large", "ResultTooLarge"),
    ],
)
def test_fails_a_job_whose_result_cannot_be_kept(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext, job: str, error_type: str
) -> None:
    worker = load_worker(job)
    job_id, record = given_queued_job(aws)

    response = worker.handler(sqs_event(record), lambda_context)

    # A result that cannot be kept will not improve with a retry: FAILED at once
    assert failures(response) == []
    item = aws.item(job_id)
    assert item is not None
    assert (item["status"], item["errorType"]) == ("FAILED", error_type)
    assert "result" not in item


def result_budget(aws: Aws, job_id: str, record: dict[str, Any], worker: ModuleType) -> int:
    """The result budget of the job as its claim by ``record`` will leave it."""
    job = aws.store.get(job_id)
    assert job is not None
    claimed = dataclasses.replace(
        job,
        status=JobStatus.RUNNING,
        attempts=1,
        message_id=record["messageId"],
        run_id="r" * 32,
        lease_until=1,
    )
    return int(worker.result_budget_bytes(claimed))


@pytest.mark.parametrize("over", [0, 1], ids=["exactly-the-budget", "one-byte-over"])
def test_keeps_a_result_that_fits_the_item_with_the_longest_progress_and_fails_one_that_does_not(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext, over: int
) -> None:
    # GIVEN a handler whose result is exactly the item's room for it (or a byte more), after a progress
    # message of the longest kept length in 4-byte characters
    worker = load_worker("sized")
    payload: dict[str, Any] = {"progress": "\U0001f600" * PROGRESS_MESSAGE_MAX_CHARS, "result_bytes": 0}
    job_id, record = given_queued_job(aws, payload)
    payload["result_bytes"] = result_budget(aws, job_id, record, worker) + over
    job_id, record = given_queued_job(aws, payload)

    # WHEN it runs
    worker.handler(sqs_event(record), lambda_context)

    # THEN the result is kept whole in an item DynamoDB accepts (at most 400 KB), or the job FAILED at once
    item = aws.store.client.get_item(TableName=aws.table_name, Key={"pk": {"S": job_id}})["Item"]
    if over:
        assert (item["status"]["S"], item["errorType"]["S"]) == ("FAILED", "ResultTooLarge")
        assert "result" not in item
    else:
        assert item["status"]["S"] == "SUCCEEDED"
        assert len(item["result"]["S"].encode()) == payload["result_bytes"]
        assert item["progressMessage"]["S"] == payload["progress"]
        assert item_size(item) <= ITEM_MAX_BYTES


@pytest.mark.parametrize(
    ("handler", "mentions"),
    [
        ("tests.unit.handlers.no_such_module.run", "No module named"),
        ("tests.unit.handlers.jobs.no_such_function", "no function 'no_such_function'"),
        ("tests.unit.handlers.jobs.not_callable", "no function 'not_callable'"),
    ],
)
def test_records_a_handler_that_cannot_be_imported(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext, handler: str, mentions: str
) -> None:
    worker = load_worker(handler=handler)
    job_id, record = given_queued_job(aws)

    response = worker.handler(sqs_event(record), lambda_context)

    assert failures(response) == []
    item = aws.item(job_id)
    assert item is not None
    assert (item["status"], item["errorType"]) == ("FAILED", "HandlerImportError")
    assert mentions in item["errorMessage"]


@pytest.mark.parametrize(
    "message_body",
    [
        "not json",
        "[]",
        '{"v":2,"jobId":"4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21","payload":{}}',
        '{"v":true,"jobId":"4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21","payload":{}}',
        '{"v":1,"jobId":"../../etc","payload":{}}',
        '{"v":1,"jobId":"4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21","payload":[1]}',
    ],
    ids=["not-json", "array", "version-2", "version-true", "bad-job-id", "payload-array"],
)
def test_drops_a_malformed_message(
    load_worker: LoadWorker,
    aws: Aws,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
    message_body: str,
) -> None:
    worker = load_worker("succeed")

    response = worker.handler(sqs_event(sqs_record(message_body)), lambda_context)

    # Nothing can ever make sense of it: consumed, logged and counted, never run
    assert failures(response) == []
    assert jobs.CALLS == []
    assert emitted_metrics(capsys.readouterr().out)["MalformedMessages"] == [1.0]


def test_fails_a_job_whose_message_carries_another_payload(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    worker = load_worker("succeed")
    job_id, _ = given_queued_job(aws, {"amount": 10})

    response = worker.handler(sqs_event(job_record(job_id, {"amount": 10_000})), lambda_context)

    assert failures(response) == []
    assert jobs.CALLS == []
    item = aws.item(job_id)
    assert item is not None
    assert (item["status"], item["errorType"]) == ("FAILED", "PayloadMismatch")


def test_keeps_the_message_when_the_table_cannot_be_written(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    worker = load_worker("succeed")
    _, record = given_queued_job(aws)
    aws.dynamodb.delete_table(TableName=aws.table_name)

    response = worker.handler(sqs_event(record), lambda_context)

    assert failures(response) == [record["messageId"]]
    assert jobs.CALLS == []


def test_keeps_the_message_when_the_result_cannot_be_written(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a table that disappears while the handler runs
    worker = load_worker("during")
    _, record = given_queued_job(aws)
    jobs.DURING = lambda job: aws.dynamodb.delete_table(TableName=aws.table_name)

    response = worker.handler(sqs_event(record), lambda_context)

    # THEN the message is reported, so it comes back: the result was not recorded
    assert len(jobs.CALLS) == 1
    assert failures(response) == [record["messageId"]]


def test_reports_only_the_records_that_must_come_back(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a batch: a job held by another run, a job to run, a malformed message
    worker = load_worker("succeed")
    held_id, held = given_queued_job(aws)
    aws.store.claim(held_id, "other-run", epoch_millis(utc_now()) + 60_000)
    ready_id, ready = given_queued_job(aws)
    junk = sqs_record("junk")

    response = worker.handler(sqs_event(held, ready, junk), lambda_context)

    assert failures(response) == [held["messageId"]]
    assert aws.item(ready_id)["status"] == "SUCCEEDED"  # type: ignore[index]
