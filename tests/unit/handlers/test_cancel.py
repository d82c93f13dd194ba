"""DELETE /jobs/{id} and what the worker and the dead-letter consumer do with a cancel request."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from types import ModuleType

import pytest

from lambda_handlers import JobContext, job
from lambda_handlers.models import epoch_millis, utc_now
from tests.unit.handlers import jobs
from tests.unit.handlers.conftest import MAX_RECEIVE_COUNT, RETRY_AFTER_SECONDS, Aws
from tests.unit.handlers.events import (
    ACCOUNT,
    BOB,
    DOMAIN,
    STAGE,
    FakeLambdaContext,
    body,
    delete_event,
    emitted_metrics,
    get_event,
    post_event,
    record_from_message,
    sqs_event,
)
from tests.unit.handlers.test_idempotency import watched_calls
from tests.unit.handlers.test_status import given_job
from tests.unit.handlers.test_submit import assert_problem
from tests.unit.handlers.test_worker import delivery, failures, given_queued_job

LoadWorker = Callable[..., ModuleType]
LIVE = 2**41  # a lease far in the future


def running_job(aws: Aws, *, lease_until_ms: int = LIVE, owner: str | None = None) -> str:
    job_id = given_job(aws) if owner is None else given_job(aws, owner=owner)
    assert aws.store.claim(job_id, "run-1", lease_until_ms).status.value == "CLAIMED"
    return job_id


def request_cancel(aws: Aws, job_id: str) -> None:
    """What DELETE does to a RUNNING job, written directly (for states DELETE cannot reach by itself)."""
    aws.dynamodb.update_item(
        TableName=aws.table_name,
        Key={"pk": {"S": job_id}},
        UpdateExpression="SET cancelRequested = :true",
        ExpressionAttributeValues={":true": {"BOOL": True}},
    )


# ------------------------------------------------------------------------------------------ DELETE


def test_cancels_a_queued_job_at_once(
    status: ModuleType, aws: Aws, lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a job of Alice's, waiting in the queue
    job_id = given_job(aws)

    # WHEN Alice deletes it
    with watched_calls() as calls:
        response = status.handler(delete_event(job_id), lambda_context)

    # THEN 200 with the job, CANCELLED, in one UpdateItem; nothing to poll for any more
    assert calls == ["UpdateItem"]
    assert response["statusCode"] == 200
    assert response["headers"]["Cache-Control"] == "no-store"
    assert "Retry-After" not in response["headers"]
    job_resource = body(response)
    assert job_resource["id"] == job_id
    assert job_resource["status"] == "CANCELLED"
    assert job_resource["links"] == {"self": f"https://{DOMAIN}/{STAGE}/jobs/{job_id}"}
    assert "cancelRequested" not in job_resource
    item = aws.item(job_id)
    assert item is not None
    assert item["status"] == "CANCELLED"
    assert emitted_metrics(capsys.readouterr().out)["JobsCancelled"] == [1.0]


def test_a_cancelled_job_is_never_run(
    submit: ModuleType,
    status: ModuleType,
    load_worker: LoadWorker,
    aws: Aws,
    lambda_context: FakeLambdaContext,
) -> None:
    # GIVEN a job posted and cancelled before any worker got it
    worker = load_worker("succeed")
    job_id = body(submit.handler(post_event("{}"), lambda_context))["id"]
    assert status.handler(delete_event(job_id), lambda_context)["statusCode"] == 200

    # WHEN the worker gets its message
    (message,) = aws.receive(visibility_timeout=30)
    response = worker.handler(sqs_event(record_from_message(message, aws.queue_arn)), FakeLambdaContext())

    # THEN the message is consumed, the handler never runs, and the owner reads CANCELLED
    assert failures(response) == []
    assert jobs.CALLS == []
    assert body(status.handler(get_event(job_id), lambda_context))["status"] == "CANCELLED"


def test_asks_a_running_job_to_stop(
    status: ModuleType, aws: Aws, lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a job a live run holds
    job_id = running_job(aws)

    # WHEN its owner deletes it
    with watched_calls() as calls:
        response = status.handler(delete_event(job_id), lambda_context)

    # THEN 202: cancellation requested, the job still RUNNING until its handler stops; poll it
    assert calls == ["UpdateItem", "UpdateItem"]
    assert response["statusCode"] == 202
    assert response["headers"]["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert response["headers"]["Location"] == f"https://{DOMAIN}/{STAGE}/jobs/{job_id}"
    job_resource = body(response)
    assert (job_resource["status"], job_resource["cancelRequested"]) == ("RUNNING", True)
    item = aws.item(job_id)
    assert item is not None
    assert (item["status"], item["runId"], item["cancelRequested"]) == ("RUNNING", "run-1", True)
    # AND a GET shows the pending request
    assert body(status.handler(get_event(job_id), lambda_context))["cancelRequested"] is True
    assert emitted_metrics(capsys.readouterr().out)["CancelsRequested"] == [1.0]


def test_a_second_delete_of_a_running_job_answers_the_same(
    status: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    job_id = running_job(aws)
    status.handler(delete_event(job_id), lambda_context)

    again = status.handler(delete_event(job_id), lambda_context)

    assert again["statusCode"] == 202
    assert body(again)["cancelRequested"] is True


def test_cancels_at_once_a_running_job_whose_run_is_dead(
    status: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a RUNNING job whose run's lease ran out (its Lambda is gone)
    job_id = running_job(aws, lease_until_ms=epoch_millis(utc_now()) - 1)

    response = status.handler(delete_event(job_id), lambda_context)

    # THEN nobody has to stop: CANCELLED now, the dead run's lease removed
    assert response["statusCode"] == 200
    assert body(response)["status"] == "CANCELLED"
    item = aws.item(job_id)
    assert item is not None
    assert not {"runId", "leaseUntil", "cancelRequested"} & item.keys()


@pytest.mark.parametrize("finish", ["SUCCEEDED", "FAILED", "CANCELLED"])
def test_a_finished_job_cannot_be_cancelled(
    status: ModuleType, aws: Aws, lambda_context: FakeLambdaContext, finish: str
) -> None:
    # GIVEN a finished job
    job_id = running_job(aws)
    if finish == "SUCCEEDED":
        aws.store.complete(job_id, "run-1", "1")
    elif finish == "FAILED":
        aws.store.record_failure(job_id, "run-1", "JobFailedError", "no", final=True)
    else:
        aws.store.cancel_run(job_id, "run-1")
    before = aws.item(job_id)

    response = status.handler(delete_event(job_id), lambda_context)

    # THEN 409 job-finished naming its status; the job is untouched
    problem = assert_problem(response, 409, "job-finished")
    assert problem["jobStatus"] == finish
    assert finish in problem["detail"]
    assert aws.item(job_id) == before


def test_hides_unknown_expired_and_other_owners_jobs_behind_the_404_of_get(
    status: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN Bob's queued and running jobs, an expired job of Alice's, an unknown id
    bobs_queued = given_job(aws, owner=BOB)
    bobs_running = running_job(aws, owner=BOB)
    expired = given_job(aws, ttl_seconds=1, now=utc_now().replace(year=2020))
    unknown = str(uuid.uuid4())
    before = {job_id: aws.item(job_id) for job_id in (bobs_queued, bobs_running, expired)}

    # WHEN Alice deletes each
    responses = [
        status.handler(delete_event(job_id), lambda_context)
        for job_id in (bobs_queued, bobs_running, expired, unknown)
    ]

    # THEN each is the very 404 a GET of an unknown id gets, and nothing changed
    expected = status.handler(get_event(unknown), lambda_context)
    for response in responses:
        assert_problem(response, 404, "job-not-found")
        assert json.dumps(response, sort_keys=True) == json.dumps(expected, sort_keys=True)
    assert {job_id: aws.item(job_id) for job_id in before} == before


def test_operators_may_read_but_not_cancel_others_jobs(
    aws: Aws,
    entry_points: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: FakeLambdaContext,
) -> None:
    # GIVEN an operator role, and a job of Bob's
    ops = f"arn:aws:iam::{ACCOUNT}:role/Ops"
    monkeypatch.setenv("ASYNC_JOB_OPERATORS", json.dumps([ops]))
    status = entry_points("lambda_handlers.status")
    job_id = given_job(aws, owner=BOB)

    # WHEN the operator reads it and deletes it THEN it may read (200) but cancelling is the owner's (404)
    assert status.handler(get_event(job_id, user_arn=ops), lambda_context)["statusCode"] == 200
    assert_problem(status.handler(delete_event(job_id, user_arn=ops), lambda_context), 404, "job-not-found")
    assert aws.item(job_id)["status"] == "QUEUED"  # type: ignore[index]


@pytest.mark.parametrize("job_id", ["not-a-uuid", "../../etc/passwd", None])
def test_rejects_what_is_not_a_job_id(
    status: ModuleType, aws: Aws, lambda_context: FakeLambdaContext, job_id: str | None
) -> None:
    assert_problem(status.handler(delete_event(job_id), lambda_context), 400, "invalid-job-id")


def test_answers_503_when_the_table_cannot_be_written(
    aws: Aws,
    entry_points: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: FakeLambdaContext,
) -> None:
    monkeypatch.setenv("ASYNC_JOB_TABLE_NAME", "No-Such-Table")
    status = entry_points("lambda_handlers.status")

    response = status.handler(delete_event(str(uuid.uuid4())), lambda_context)

    assert_problem(response, 503, "service-unavailable")
    assert response["headers"]["Retry-After"] == str(RETRY_AFTER_SECONDS)


# ------------------------------------------------------------------------------------------ the worker


def test_the_handler_sees_the_request_and_its_job_ends_cancelled(
    load_worker: LoadWorker,
    status: ModuleType,
    aws: Aws,
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a cooperative handler of 5 steps (every progress report written), whose owner cancels during step 2
    monkeypatch.setattr(job, "PROGRESS_INTERVAL_SECONDS", 0)
    worker = load_worker("cooperative")
    job_id, record = given_queued_job(aws, {"steps": 5})
    seen: list[bool] = []

    def owner_cancels_in_step_2(context: JobContext) -> None:
        seen.append(context.cancel_requested)
        if len(seen) == 2:
            cancelled = status.handler(delete_event(job_id, user_arn="alice"), FakeLambdaContext())
            assert cancelled["statusCode"] == 202

    jobs.DURING = owner_cancels_in_step_2

    # WHEN the worker runs it
    response = worker.handler(sqs_event(record), lambda_context)

    # THEN the handler learnt of it with step 2's progress write and stopped: the job is CANCELLED
    assert seen == [False, False]
    assert failures(response) == []
    item = aws.item(job_id)
    assert item is not None
    assert item["status"] == "CANCELLED"
    assert item["progressPercent"] == 20
    assert not {"runId", "leaseUntil", "cancelRequested"} & item.keys()
    resource = body(status.handler(get_event(job_id, user_arn="alice"), lambda_context))
    assert resource["status"] == "CANCELLED"
    assert "cancelRequested" not in resource
    assert emitted_metrics(capsys.readouterr().out)["JobsCancelled"] == [1.0]


def test_a_handler_may_end_its_job_cancelled(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    worker = load_worker("cancel_self")
    job_id, record = given_queued_job(aws)

    response = worker.handler(sqs_event(record), lambda_context)

    assert failures(response) == []
    assert aws.item(job_id)["status"] == "CANCELLED"  # type: ignore[index]


@pytest.mark.parametrize("state", ["queued", "running-dead-run"])
def test_a_claim_that_finds_a_cancel_request_cancels_without_running(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext, state: str
) -> None:
    # GIVEN a job asked to cancel that no live run holds (its run died before it could stop)
    worker = load_worker("succeed")
    job_id, record = given_queued_job(aws)
    if state == "running-dead-run":
        aws.store.claim(job_id, "dead-run", epoch_millis(utc_now()) - 1)
    request_cancel(aws, job_id)

    # WHEN its message comes (back)
    response = worker.handler(sqs_event(delivery(record, 2)), lambda_context)

    # THEN the job is CANCELLED without running, and the message consumed
    assert failures(response) == []
    assert jobs.CALLS == []
    item = aws.item(job_id)
    assert item is not None
    assert item["status"] == "CANCELLED"
    assert not {"runId", "leaseUntil", "cancelRequested"} & item.keys()


def test_a_claim_leaves_a_live_run_asked_to_cancel_alone(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a job asked to cancel whose run is alive (it will stop by itself)
    worker = load_worker("succeed")
    job_id, record = given_queued_job(aws)
    aws.store.claim(job_id, "live-run", LIVE)
    request_cancel(aws, job_id)
    before = aws.item(job_id)

    response = worker.handler(sqs_event(delivery(record, 2)), lambda_context)

    assert failures(response) == [record["messageId"]]
    assert aws.item(job_id) == before


def test_a_retryable_failure_of_a_job_asked_to_cancel_ends_it_cancelled(
    load_worker: LoadWorker, status: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a handler that fails (retryably) after its owner asked to cancel the job
    worker = load_worker("during_then_crash")
    job_id, record = given_queued_job(aws)
    jobs.DURING = lambda context: status.handler(delete_event(job_id, user_arn="alice"), FakeLambdaContext())

    # WHEN it runs
    response = worker.handler(sqs_event(record), lambda_context)

    # THEN it is not retried: CANCELLED, message consumed
    assert failures(response) == []
    item = aws.item(job_id)
    assert item is not None
    assert item["status"] == "CANCELLED"
    assert "cancelRequested" not in item


@pytest.mark.parametrize(
    ("handler_name", "receive_count", "ending"),
    [("during_then_crash", MAX_RECEIVE_COUNT, "FAILED"), ("during", 1, "SUCCEEDED")],
    ids=["last-attempt-fails", "succeeds"],
)
def test_a_job_asked_to_cancel_that_finishes_anyway_keeps_its_outcome(
    load_worker: LoadWorker,
    status: ModuleType,
    aws: Aws,
    lambda_context: FakeLambdaContext,
    handler_name: str,
    receive_count: int,
    ending: str,
) -> None:
    # GIVEN a handler that ignores the cancel request and finishes (fails for good, or succeeds)
    worker = load_worker(handler_name)
    job_id, record = given_queued_job(aws)
    jobs.DURING = lambda context: status.handler(delete_event(job_id, user_arn="alice"), FakeLambdaContext())

    response = worker.handler(sqs_event(delivery(record, receive_count)), lambda_context)

    # THEN the job ends as it really ended; the request is gone with the run
    assert failures(response) == []
    item = aws.item(job_id)
    assert item is not None
    assert item["status"] == ending
    assert "cancelRequested" not in item


# ------------------------------------------------------------------------------------ dead-lettering


def test_the_dead_letter_consumer_cancels_a_job_asked_to_cancel(
    dead_letter: ModuleType, aws: Aws, lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a job asked to cancel whose run died, its message dead-lettered
    job_id, record = given_queued_job(aws)
    aws.store.claim(job_id, "dead-run", epoch_millis(utc_now()) - 1)
    request_cancel(aws, job_id)

    response = dead_letter.handler(sqs_event(record), lambda_context)

    # THEN CANCELLED (what its owner asked for), not FAILED
    assert failures(response) == []
    item = aws.item(job_id)
    assert item is not None
    assert item["status"] == "CANCELLED"
    assert "errorType" not in item
    assert emitted_metrics(capsys.readouterr().out)["JobsCancelled"] == [1.0]


def test_the_dead_letter_consumer_waits_for_a_live_run_asked_to_cancel(
    dead_letter: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    job_id, record = given_queued_job(aws)
    aws.store.claim(job_id, "live-run", LIVE)
    request_cancel(aws, job_id)

    response = dead_letter.handler(sqs_event(record), lambda_context)

    assert failures(response) == [record["messageId"]]
    assert aws.item(job_id)["status"] == "RUNNING"  # type: ignore[index]
