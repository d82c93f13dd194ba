"""The races and faults of issue 9, one test each, on moto: every accepted job ends terminal and readable, a
handler that succeeded is not run again because of the plumbing, duplicates change nothing.

Each test failed before its fix (the names say what now holds).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from lambda_handlers import clients
from lambda_handlers.idempotency import IdempotencyRecord, key_item_id
from lambda_handlers.messages import payload_digest
from lambda_handlers.models import MAX_PENDING_SECONDS, Job, epoch_millis, epoch_seconds, utc_now
from tests.unit.handlers import jobs
from tests.unit.handlers.conftest import TTL_SECONDS, Aws
from tests.unit.handlers.events import (
    ALICE,
    FakeLambdaContext,
    body,
    get_event,
    job_record,
    post_event,
    sqs_event,
    sqs_record,
)

KEY = "race-key-1"
LoadWorker = Callable[..., ModuleType]


def failures(response: dict[str, Any]) -> list[str]:
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


@contextmanager
def failing_calls(
    client: Any,
    operation: str,
    code: str,
    *,
    times: int,
    status: int = 400,
    when: Callable[[dict[str, Any]], bool],
) -> Iterator[list[dict[str, Any]]]:
    """Answer the first ``times`` calls of ``operation`` on ``client`` that ``when`` picks with error ``code``.

    ``when`` gets the serialised request (``url``, ``body``, ...). Yields the list of the requests it refused.
    """
    refused: list[dict[str, Any]] = []

    def answer(params: dict[str, Any], **_: Any) -> Any:
        if len(refused) >= times or not when(params):
            return None
        refused.append(params)
        parsed = {
            "Error": {"Code": code, "Message": "injected"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        return AWSResponse("https://example.invalid/", status, {}, None), parsed

    event = f"before-call.{client.meta.service_model.endpoint_prefix}.{operation}"
    client.meta.events.register(event, answer)
    try:
        yield refused
    finally:
        client.meta.events.unregister(event, answer)


def completing(request: dict[str, Any]) -> bool:
    """Whether a DynamoDB request (``before-call``'s serialised request) is the completion write."""
    return b'":succeeded"' in bytes(request.get("body") or b"")


def queued_job(
    aws: Aws, *, now: dt.datetime | None = None, payload: str = "{}"
) -> tuple[str, dict[str, Any]]:
    job_id = str(uuid.uuid4())
    aws.store.create(
        Job.new(
            job_id,
            owner=ALICE,
            payload_sha256=payload_digest(payload),
            now=now or utc_now(),
            ttl_seconds=TTL_SECONDS,
        )
    )
    return job_id, job_record(job_id, payload)


# --------------------------------------------------------------------------------------------- R1, R3


def test_an_enqueue_failure_racing_a_replay_keeps_the_job_the_replay_answered_202_for(
    submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a first request whose SendMessage fails, and a replay of it (same key, same body) that runs in
    # the gap between that failure and the first request's undo, with SQS working for it
    replies: list[dict[str, Any]] = []
    sends: list[dict[str, Any]] = []

    def replay_in_the_gap(params: dict[str, Any]) -> bool:
        sends.append(params)
        if len(sends) == 1:  # the first request's send: the replay runs now, and its own send goes through
            replies.append(submit.handler(post_event("{}", KEY), lambda_context))
            return True
        return False

    with failing_calls(
        clients.sqs(), "SendMessage", "ServiceUnavailable", times=1, status=503, when=replay_in_the_gap
    ):
        first = submit.handler(post_event("{}", KEY), lambda_context)

    # THEN the replay's 202 holds: the job is there, enqueued once, and the first request answers for it too
    (replay,) = replies
    assert replay["statusCode"] == 202
    job_id = body(replay)["id"]
    assert aws.item(job_id) is not None
    assert first["statusCode"] == 202
    assert body(first)["id"] == job_id
    assert aws.queue_depth(aws.queue_url) == 1


def test_a_replay_storm_of_a_job_that_never_started_sends_one_message(
    submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a keyed job whose first request died between recording and enqueueing
    job = Job.new(
        str(uuid.uuid4()),
        owner=ALICE,
        payload_sha256=payload_digest("{}"),
        now=utc_now(),
        ttl_seconds=TTL_SECONDS,
    )
    assert (
        aws.store.create_keyed(
            job, IdempotencyRecord(key_item_id(ALICE, KEY), job.job_id, payload_digest("{}"), job.expires_at)
        )
        is None
    )

    # WHEN the client replays it ten times
    answers = [submit.handler(post_event("{}", KEY), lambda_context) for _ in range(10)]

    # THEN every answer is 202 for that job, and one message was sent, not ten
    assert {(a["statusCode"], body(a)["id"]) for a in answers} == {(202, job.job_id)}
    assert aws.queue_depth(aws.queue_url) == 1


def test_a_duplicate_message_cannot_start_a_retry_before_its_backoff_ends(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a job whose first attempt failed and now waits out its backoff
    worker = load_worker("crash")
    job_id, record = queued_job(aws)
    assert failures(worker.handler(sqs_event(record), lambda_context)) == [record["messageId"]]
    calls = len(jobs.CALLS)

    # WHEN a duplicate of its message (another message id) is delivered meanwhile
    duplicate = sqs_record(record["body"])
    response = worker.handler(sqs_event(duplicate), lambda_context)

    # THEN the duplicate is dropped without running the job, which still waits for its retry
    assert failures(response) == []
    assert len(jobs.CALLS) == calls
    item = aws.item(job_id)
    assert item is not None
    assert (item["status"], item["attempts"]) == ("QUEUED", 1)
    assert item["retryAt"] > epoch_millis(utc_now())


def test_the_jobs_own_message_back_before_its_backoff_ends_waits_again(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a job waiting out a backoff of minutes (its message's visibility change failed: it came back early)
    monkeypatch.setenv("ASYNC_JOB_RETRY_BASE_SECONDS", "600")
    monkeypatch.setenv("ASYNC_JOB_RETRY_MAX_SECONDS", "600")
    worker = load_worker("crash")
    job_id, record = queued_job(aws)
    worker.handler(sqs_event(record), lambda_context)
    calls = len(jobs.CALLS)

    # WHEN its own message is delivered again at once
    response = worker.handler(sqs_event(record), lambda_context)

    # THEN it is not run yet: the message is delivered again when the backoff ends; one attempt so far
    assert failures(response) == [record["messageId"]]
    assert 0 < aws.item(job_id)["retryAt"] - epoch_millis(utc_now()) <= 600_000  # type: ignore[index]
    assert len(jobs.CALLS) == calls
    assert aws.item(job_id)["attempts"] == 1  # type: ignore[index]


# --------------------------------------------------------------------------------------------- R4


def test_a_duplicate_dead_lettered_during_a_backoff_leaves_the_job_to_its_own_message(
    load_worker: LoadWorker, dead_letter: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a job with attempts left, waiting out its backoff
    worker = load_worker("crash")
    job_id, record = queued_job(aws)
    worker.handler(sqs_event(record), lambda_context)

    # WHEN a duplicate of its message is dead-lettered
    response = dead_letter.handler(sqs_event(sqs_record(record["body"], receive_count=4)), lambda_context)

    # THEN the duplicate is consumed and the job still waits for its retry (not FAILED with attempts left)
    assert failures(response) == []
    item = aws.item(job_id)
    assert item is not None
    assert (item["status"], item["attempts"]) == ("QUEUED", 1)

    # AND its own message, dead-lettered, does end it
    dead_letter.handler(sqs_event({**record, "attributes": {"ApproximateReceiveCount": "4"}}), lambda_context)
    item = aws.item(job_id)
    assert item is not None
    assert (item["status"], item["errorType"]) == ("FAILED", "DeadLettered")
    assert "after attempt 1 of 3," in item["errorMessage"]


# --------------------------------------------------------------------------------------------- R5


def test_a_job_waiting_in_a_backlog_past_its_job_ttl_still_runs_and_is_kept_job_ttl_after_it_ends(
    load_worker: LoadWorker, status: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a job accepted longer ago than job_ttl, still QUEUED (a backlog)
    worker = load_worker("succeed")
    job_id, record = queued_job(aws, now=utc_now() - dt.timedelta(seconds=TTL_SECONDS + 60))

    # WHEN its message finally reaches a worker
    before = epoch_seconds(utc_now())
    response = worker.handler(sqs_event(record), lambda_context)

    # THEN it runs to SUCCEEDED, readable by its owner, and expires job_ttl after it ended
    assert failures(response) == []
    item = aws.item(job_id)
    assert item is not None
    assert item["status"] == "SUCCEEDED"
    assert before + TTL_SECONDS <= item["expiresAt"] <= epoch_seconds(utc_now()) + TTL_SECONDS
    assert status.handler(get_event(job_id), lambda_context)["statusCode"] == 200


def test_every_end_restarts_the_ttl(
    load_worker: LoadWorker, dead_letter: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN jobs accepted long ago, one per way a job ends
    long_ago = utc_now() - dt.timedelta(days=10)
    ended = []
    for job in ("give_up", "cancel_self"):
        worker = load_worker(job)
        job_id, record = queued_job(aws, now=long_ago)
        worker.handler(sqs_event(record), lambda_context)
        ended.append(job_id)
    job_id, record = queued_job(aws, now=long_ago)
    dead_letter.handler(sqs_event(record), lambda_context)
    ended.append(job_id)
    job_id, _ = queued_job(aws, now=long_ago)
    assert aws.store.cancel(job_id, ALICE).job is not None
    ended.append(job_id)

    # THEN each ended just now, and is kept job_ttl from now, not from its creation
    now = epoch_seconds(utc_now())
    states = {}
    for job_id in ended:
        item = aws.item(job_id)
        assert item is not None
        states[item["status"]] = states.get(item["status"], 0) + 1
        assert now - 5 + TTL_SECONDS <= item["expiresAt"] <= now + TTL_SECONDS
    assert states == {"FAILED": 2, "CANCELLED": 2}


def test_an_unfinished_job_is_kept_as_long_as_its_message_can_live() -> None:
    now = utc_now()
    job = Job.new(str(uuid.uuid4()), owner="a", payload_sha256="00", now=now, ttl_seconds=TTL_SECONDS)

    assert not job.is_expired(now + dt.timedelta(seconds=MAX_PENDING_SECONDS))
    assert job.is_expired(now + dt.timedelta(seconds=MAX_PENDING_SECONDS + TTL_SECONDS))


# --------------------------------------------------------------------------------------------- R2


def test_a_store_error_on_the_completion_write_is_tried_again_and_the_handler_runs_once(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN DynamoDB throttling the first two tries of the completion write
    worker = load_worker("succeed")
    job_id, record = queued_job(aws)
    with failing_calls(
        clients.dynamodb(), "UpdateItem", "ProvisionedThroughputExceededException", times=2, when=completing
    ) as refused:
        response = worker.handler(sqs_event(record), lambda_context)

    # THEN the result is recorded within the same invocation: SUCCEEDED, message consumed, one execution
    assert len(refused) == 2
    assert failures(response) == []
    assert aws.item(job_id)["status"] == "SUCCEEDED"  # type: ignore[index]
    assert len(jobs.CALLS) == 1


def test_a_completion_write_dynamodb_refuses_for_good_fails_the_job_instead_of_running_it_again(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN DynamoDB refusing the completion write with an error that repeats (a validation error)
    worker = load_worker("succeed")
    job_id, record = queued_job(aws)
    with failing_calls(
        clients.dynamodb(), "UpdateItem", "ValidationException", times=10, when=completing
    ) as refused:
        response = worker.handler(sqs_event(record), lambda_context)

    # THEN it is not tried again and again: the job is FAILED (ResultNotStored), the message consumed
    assert len(refused) == 1
    assert failures(response) == []
    item = aws.item(job_id)
    assert item is not None
    assert (item["status"], item["errorType"]) == ("FAILED", "ResultNotStored")
    assert len(jobs.CALLS) == 1


def test_a_completion_write_failing_until_the_deadline_returns_the_message(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN DynamoDB failing every completion write, and 1.5 s left in the invocation
    worker = load_worker("succeed")
    job_id, record = queued_job(aws)
    lambda_context.set_remaining(1_500)
    with failing_calls(
        clients.dynamodb(), "UpdateItem", "InternalServerError", times=10_000, status=500, when=completing
    ) as refused:
        response = worker.handler(sqs_event(record), lambda_context)

    # THEN it kept trying until the deadline, then reported the record (the at-least-once case)
    assert len(refused) > 2
    assert failures(response) == [record["messageId"]]
    assert aws.item(job_id)["status"] == "RUNNING"  # type: ignore[index]


# --------------------------------------------------------------------------------------------- R7


def test_a_failed_job_shows_no_progress_and_a_cancelled_one_keeps_the_handlers_message(
    load_worker: LoadWorker, status: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a handler that reports 100 % and then fails the job
    worker = load_worker("sized_then_give_up")
    failed_id, record = queued_job(aws, payload='{"result_bytes": 2}')
    worker.handler(sqs_event(record), lambda_context)
    # AND a handler that stops on a cancel request, saying why
    worker = load_worker("cancel_self")
    cancelled_id, record = queued_job(aws)
    worker.handler(sqs_event(record), lambda_context)

    failed = body(status.handler(get_event(failed_id), lambda_context))
    cancelled = body(status.handler(get_event(cancelled_id), lambda_context))

    assert (failed["status"], failed["progress"]) == ("FAILED", None)
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["cancellation"] == {"message": "nothing left to do"}


def test_the_last_delivery_of_a_message_back_before_its_backoff_runs_the_retry_instead_of_losing_it(
    load_worker: LoadWorker,
    dead_letter: ModuleType,
    aws: Aws,
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a job whose first attempt failed and recorded a retry minutes away, but whose worker died before
    # it could delay the message: the message comes back after the visibility timeout, early
    monkeypatch.setenv("ASYNC_JOB_RETRY_BASE_SECONDS", "600")
    monkeypatch.setenv("ASYNC_JOB_RETRY_MAX_SECONDS", "600")
    worker = load_worker("crash")
    job_id, record = queued_job(aws)
    worker.handler(sqs_event(record), lambda_context)
    worker = load_worker("succeed")

    # WHEN it comes back on the last receive SQS allows before dead-lettering it (3 of 3)
    last = {**record, "attributes": {**record["attributes"], "ApproximateReceiveCount": "3"}}
    response = worker.handler(sqs_event(last), lambda_context)

    # THEN the retry runs now (its last attempt) rather than deferring the message into the DLQ
    assert failures(response) == []
    item = aws.item(job_id)
    assert item is not None
    assert (item["status"], item["attempts"]) == ("SUCCEEDED", 2)
