"""Idempotency-Key on POST /jobs: the header's syntax; replay, reuse, scoping, concurrency, re-send, roll-back."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from lambda_handlers import clients
from lambda_handlers.idempotency import IdempotencyRecord, InvalidKeyError, key_item_id, parse_key
from lambda_handlers.messages import encode, payload_digest
from lambda_handlers.models import MAX_PENDING_SECONDS, Job, utc_now
from tests.unit.handlers import jobs
from tests.unit.handlers.conftest import RETRY_AFTER_SECONDS, TTL_SECONDS, Aws
from tests.unit.handlers.events import (
    ALICE,
    BOB,
    DOMAIN,
    STAGE,
    FakeLambdaContext,
    body,
    emitted_metrics,
    get_event,
    post_event,
    record_from_message,
    sqs_event,
)
from tests.unit.handlers.test_submit import assert_nothing_accepted, assert_problem
from tests.unit.handlers.test_worker import failures

KEY = "8e03978e-40d5-43e8-bc93-6894a57f9324"


# ------------------------------------------------------------------------------------------ the header


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ([KEY], KEY),
        ([f'"{KEY}"'], KEY),
        ([" \tabc \t"], "abc"),
        (['"a\\"b\\\\c"'], 'a"b\\c'),
        (["x" * 255], "x" * 255),
        ([f'"{"x" * 255}"'], "x" * 255),
        (["a b"], "a b"),
        (["../../etc/passwd"], "../../etc/passwd"),
        (["' OR 1=1 --"], "' OR 1=1 --"),
        (["%00"], "%00"),
        ([KEY, KEY], KEY),
        ([], None),
    ],
    ids=[
        "bare",
        "quoted",
        "surrounding-whitespace",
        "quoted-escapes",
        "255-chars",
        "255-chars-quoted",
        "inner-space",
        "path-like",
        "sql-like",
        "percent-encoded-nul",
        "repeated-identical",
        "absent",
    ],
)
def test_reads_keys_bare_or_quoted(values: list[str], key: str | None) -> None:
    assert parse_key(values) == key


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ([""], "empty"),
        (['""'], "empty"),
        (["x" * 256], "256 characters"),
        ([f'"{"x" * 256}"'], "256 characters"),
        (["x" * 10_240], "10240 characters"),
        (["café"], "U+00E9"),
        (["a\x00b"], "U+0000"),
        (["a\tb"], "U+0009"),
        (["a\u202eb"], "U+202E"),
        (["\U0001f600"], "U+1F600"),
        (['"abc'], "no closing quote"),
        (['"a\\qb"'], "invalid escape"),
        (['"abc";v=1'], "after its closing quote"),
        (['"a", "b"'], "after its closing quote"),
        (["a", "b"], "2 different"),
    ],
    ids=[
        "empty",
        "empty-quoted",
        "256-chars",
        "256-chars-quoted",
        "10-kib",
        "non-ascii",
        "nul",
        "tab",
        "rtl-override",
        "emoji",
        "unterminated",
        "bad-escape",
        "parameters",
        "list",
        "repeated-different",
    ],
)
def test_refuses_malformed_keys(values: list[str], reason: str) -> None:
    with pytest.raises(InvalidKeyError, match=re.escape(reason)):
        parse_key(values)


def test_scopes_key_items_to_their_caller_and_keeps_no_key_in_clear() -> None:
    alices = key_item_id(ALICE, KEY)

    assert alices == key_item_id(ALICE, KEY)
    assert alices != key_item_id(BOB, KEY)
    assert alices != key_item_id(ALICE, KEY.upper())
    assert alices.startswith("idem#")
    assert KEY not in alices
    assert len(alices) == len("idem#") + 64


# -------------------------------------------------------------------------------------- the function


def key_item(aws: Aws, owner: str = ALICE, key: str = KEY) -> dict[str, Any] | None:
    return aws.item(key_item_id(owner, key))


@contextmanager
def watched_calls() -> Iterator[list[str]]:
    """The names of the AWS calls the functions' own clients make inside the block."""
    calls: list[str] = []

    def watch(model: Any, **_: Any) -> None:
        calls.append(model.name)

    watched = (clients.dynamodb(), clients.sqs())
    for client in watched:
        client.meta.events.register("before-call", watch)
    try:
        yield calls
    finally:
        for client in watched:
            client.meta.events.unregister("before-call", watch)


def test_records_the_job_and_its_key_together_and_enqueues_once(
    submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN / WHEN a job posted with a key
    with watched_calls() as calls:
        response = submit.handler(post_event('{"n": 1}', KEY), lambda_context)

    # THEN 202 as without a key, after the same two calls (a transaction instead of the PutItem)
    assert response["statusCode"] == 202
    assert calls == ["TransactWriteItems", "SendMessage"]
    assert "Idempotent-Replayed" not in response["headers"]
    job_id = body(response)["id"]
    # AND the key item points at the job, with the payload's digest and the job's expiry; no key in clear
    job_item, item = aws.item(job_id), key_item(aws)
    assert job_item is not None
    assert item == {
        "pk": key_item_id(ALICE, KEY),
        "jobId": job_id,
        "payloadSha256": payload_digest('{"n": 1}'),
        "expiresAt": job_item["expiresAt"],
    }
    assert aws.item_count() == 2
    assert aws.queue_depth(aws.queue_url) == 1


def test_a_replay_answers_with_the_same_job_and_the_job_runs_once(
    submit: ModuleType,
    status: ModuleType,
    load_worker: Callable[..., ModuleType],
    aws: Aws,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a job posted with a key, not yet started
    worker = load_worker("succeed")
    first = submit.handler(post_event('{"n": 1}', KEY), lambda_context)

    # WHEN the same caller sends the same request again (say its connection dropped before the answer)
    second = submit.handler(post_event('{"n": 1}', f'"{KEY}"'), lambda_context)

    # THEN it gets the same job, marked as a replay; no second job is recorded
    assert second["statusCode"] == 202
    assert body(second)["id"] == body(first)["id"]
    assert second["headers"]["Location"] == first["headers"]["Location"]
    assert second["headers"]["Idempotent-Replayed"] == "true"
    assert second["headers"]["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert aws.item_count() == 2
    # AND the never-started job's message was sent again (a 202 always means "enqueued")
    messages = aws.receive(visibility_timeout=30)
    assert len(messages) == 2
    assert {m["Body"] for m in messages} == {encode(body(first)["id"], '{"n": 1}')}
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["JobsSubmitted"] == [1.0]
    assert metrics["JobsReplayed"] == [1.0]
    assert metrics["MessagesResent"] == [1.0]

    # WHEN the worker gets both messages
    response = worker.handler(
        sqs_event(*(record_from_message(m, aws.queue_arn) for m in messages)), FakeLambdaContext()
    )

    # THEN the handler ran once; the duplicate was dropped
    assert failures(response) == []
    assert len(jobs.CALLS) == 1
    assert body(status.handler(get_event(body(first)["id"]), lambda_context))["status"] == "SUCCEEDED"


@pytest.mark.parametrize("state", ["running", "retrying", "succeeded"])
def test_a_replay_of_a_started_job_sends_nothing_and_shows_the_job_as_it_is(
    submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext, state: str
) -> None:
    # GIVEN a keyed job that a worker has started (its message is in flight, or consumed)
    job_id = body(submit.handler(post_event("{}", KEY), lambda_context))["id"]
    aws.receive(visibility_timeout=30)
    aws.store.claim(job_id, "run-1", lease_until_ms=2**41)
    if state == "retrying":
        aws.store.record_failure(job_id, "run-1", "RuntimeError", "boom", final=False)
    if state == "succeeded":
        aws.store.complete(job_id, "run-1", '{"rows": 3}')

    # WHEN the request is replayed
    response = submit.handler(post_event("{}", KEY), lambda_context)

    # THEN 202 with the job as it is now; nothing is sent (a message exists, or the job is done)
    assert response["statusCode"] == 202
    job = body(response)
    assert job["id"] == job_id
    assert job["status"] == {"running": "RUNNING", "retrying": "QUEUED", "succeeded": "SUCCEEDED"}[state]
    assert ("Retry-After" in response["headers"]) is (state != "succeeded")
    assert aws.queue_depth(aws.queue_url) == 1  # the first message only, still in flight
    if state == "succeeded":
        assert job["result"] == {"rows": 3}


def test_a_replay_sends_the_message_the_first_request_never_sent(
    submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a first request that recorded its job and key, then died before SendMessage
    job = given_keyed_job_without_message(aws, '{"n": 1}')
    assert aws.queue_depth(aws.queue_url) == 0

    # WHEN the client retries with its key
    response = submit.handler(post_event('{"n": 1}', KEY), lambda_context)

    # THEN it gets the job, and now the job is really enqueued
    assert response["statusCode"] == 202
    assert body(response)["id"] == job.job_id
    (message,) = aws.receive()
    assert message["Body"] == encode(job.job_id, '{"n": 1}')


@pytest.mark.parametrize(
    "second", ['{"n": 2}', '{"n":1}', '{"n": 1} '], ids=["other-value", "other-spacing", "trailing-space"]
)
def test_the_same_key_with_another_body_is_refused_with_422(
    submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext, second: str
) -> None:
    # GIVEN a job posted with a key
    first = body(submit.handler(post_event('{"n": 1}', KEY), lambda_context))

    # WHEN the key comes back with a body that differs (even by a byte: the fingerprint is the bytes' digest)
    response = submit.handler(post_event(second, KEY), lambda_context)

    # THEN 422, and nothing new is recorded or enqueued
    assert "another request body" in assert_problem(response, 422, "idempotency-key-reused")["detail"]
    assert aws.item_count() == 2
    assert aws.queue_depth(aws.queue_url) == 1
    assert key_item(aws)["jobId"] == first["id"]  # type: ignore[index]


def test_keys_are_scoped_to_their_caller(
    submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN Alice's job under a key
    alices = submit.handler(post_event('{"n": 1}', KEY), lambda_context)

    # WHEN Bob uses the same key, with the same body and with another
    bobs = submit.handler(post_event('{"n": 1}', KEY, user_arn=BOB), lambda_context)
    bobs_other = submit.handler(post_event('{"n": 2}', KEY, user_arn=BOB), lambda_context)

    # THEN Bob gets a job of his own (never Alice's), and then his own 422
    assert bobs["statusCode"] == 202
    assert "Idempotent-Replayed" not in bobs["headers"]
    assert body(bobs)["id"] != body(alices)["id"]
    assert aws.item(body(bobs)["id"])["owner"] == BOB  # type: ignore[index]
    assert_problem(bobs_other, 422, "idempotency-key-reused")
    assert key_item(aws, BOB)["jobId"] == body(bobs)["id"]  # type: ignore[index]
    assert key_item(aws, ALICE)["jobId"] == body(alices)["id"]  # type: ignore[index]


@pytest.mark.parametrize(
    "key",
    ["", "x" * 256, "café", '"unterminated', '"bad\\escape"'],
    ids=["empty", "long", "non-ascii", "quote", "escape"],
)
def test_a_malformed_key_is_refused_before_anything_is_recorded(
    submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext, key: str
) -> None:
    response = submit.handler(post_event("{}", key), lambda_context)

    assert_problem(response, 400, "invalid-idempotency-key")
    assert_nothing_accepted(aws)


def test_a_repeated_header_with_two_keys_is_refused(
    submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    event = post_event("{}", "k1")
    event["multiValueHeaders"]["Idempotency-Key"] = ["k1", "k2"]

    assert_problem(submit.handler(event, lambda_context), 400, "invalid-idempotency-key")
    assert_nothing_accepted(aws)


def test_the_key_can_be_required(
    aws: Aws,
    entry_points: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: FakeLambdaContext,
) -> None:
    # GIVEN a deployment that requires keys
    monkeypatch.setenv("ASYNC_JOB_IDEMPOTENCY_KEY_REQUIRED", "true")
    submit = entry_points("lambda_handlers.submit")

    # WHEN a request comes without one THEN 400, nothing recorded
    problem = assert_problem(
        submit.handler(post_event("{}"), lambda_context), 400, "idempotency-key-required"
    )
    assert "Idempotency-Key" in problem["detail"]
    assert_nothing_accepted(aws)
    # AND with one it is accepted
    assert submit.handler(post_event("{}", KEY), lambda_context)["statusCode"] == 202


def test_keys_are_optional_by_default(submit: ModuleType, lambda_context: FakeLambdaContext) -> None:
    assert submit.CONFIG.idempotency_key_required is False
    assert submit.handler(post_event("{}"), lambda_context)["statusCode"] == 202


def test_two_concurrent_requests_with_one_key_get_one_job(
    submit: ModuleType,
    load_worker: Callable[..., ModuleType],
    aws: Aws,
    lambda_context: FakeLambdaContext,
) -> None:
    # GIVEN a second request with the same key arriving while the first is between its two calls
    worker = load_worker("succeed")
    answers: list[dict[str, Any]] = []

    def second_request(**_: Any) -> None:
        if not answers:
            answers.append({})  # only once
            answers.append(submit.handler(post_event('{"n": 1}', KEY), FakeLambdaContext()))

    sqs = clients.sqs()
    sqs.meta.events.register("before-call.sqs.SendMessage", second_request)
    try:
        first = submit.handler(post_event('{"n": 1}', KEY), lambda_context)
    finally:
        sqs.meta.events.unregister("before-call.sqs.SendMessage", second_request)

    # THEN both are answered 202 with the one job; the table holds one job and its key
    second = answers[1]
    assert (first["statusCode"], second["statusCode"]) == (202, 202)
    assert body(first)["id"] == body(second)["id"]
    assert aws.item_count() == 2
    # AND however many messages that left on the queue, the job runs once
    messages = aws.receive(visibility_timeout=30)
    response = worker.handler(
        sqs_event(*(record_from_message(m, aws.queue_arn) for m in messages)), FakeLambdaContext()
    )
    assert failures(response) == []
    assert len(jobs.CALLS) == 1


def transaction_conflict(times: int) -> Callable[..., Any]:
    """A ``before-call`` hook answering the next ``times`` TransactWriteItems as DynamoDB does when a concurrent
    transaction holds the key item (``TransactionConflict``)."""
    left = [times]

    def answer(**_: Any) -> Any:
        if left[0] == 0:
            return None
        left[0] -= 1
        parsed = {
            "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
            "CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"}],
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }
        return AWSResponse("https://dynamodb.us-east-1.amazonaws.com/", 400, {}, None), parsed

    return answer


@pytest.mark.parametrize(("conflicts", "status"), [(1, 202), (2, 202), (3, 409)])
def test_a_transaction_conflict_on_the_key_is_tried_again_then_answered_409(
    submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext, conflicts: int, status: int
) -> None:
    # GIVEN DynamoDB reporting a concurrent transaction on the key, ``conflicts`` times in a row
    dynamodb = clients.dynamodb()
    hook = transaction_conflict(conflicts)
    dynamodb.meta.events.register("before-call.dynamodb.TransactWriteItems", hook)
    try:
        response = submit.handler(post_event("{}", KEY), lambda_context)
    finally:
        dynamodb.meta.events.unregister("before-call.dynamodb.TransactWriteItems", hook)

    # THEN two tries more are made; a third conflict is a 409 the client may retry (IETF draft: "in use")
    if status == 202:
        assert response["statusCode"] == 202
        assert aws.item_count() == 2
    else:
        assert_problem(response, 409, "idempotency-key-in-use")
        assert response["headers"]["Retry-After"] == "1"
        assert_nothing_accepted(aws)


def test_a_failed_send_leaves_neither_job_nor_key_so_a_retry_starts_afresh(
    aws: Aws,
    entry_points: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: FakeLambdaContext,
) -> None:
    # GIVEN a submit function whose queue is unreachable
    queue_url = aws.queue_url
    monkeypatch.setenv("ASYNC_JOB_QUEUE_URL", queue_url.replace("Jobs-Queue", "No-Such-Queue"))
    broken = entry_points("lambda_handlers.submit")

    # WHEN a keyed job is posted THEN 503, and both items were removed again
    response = broken.handler(post_event("{}", KEY), lambda_context)
    assert_problem(response, 503, "service-unavailable")
    assert_nothing_accepted(aws)

    # WHEN the queue is back and the client retries with the same key THEN a new job is accepted and enqueued
    monkeypatch.setenv("ASYNC_JOB_QUEUE_URL", queue_url)
    submit = entry_points("lambda_handlers.submit")
    retried = submit.handler(post_event("{}", KEY), lambda_context)
    assert retried["statusCode"] == 202
    assert "Idempotent-Replayed" not in retried["headers"]
    assert aws.queue_depth(aws.queue_url) == 1


def given_keyed_job_without_message(aws: Aws, payload_text: str = "{}") -> Job:
    """What a first request leaves when it dies between TransactWriteItems and SendMessage."""
    job = Job.new(
        "4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21",
        owner=ALICE,
        payload_sha256=payload_digest(payload_text),
        now=utc_now(),
        ttl_seconds=TTL_SECONDS,
    )
    record = IdempotencyRecord(
        key_item_id(ALICE, KEY), job.job_id, payload_digest(payload_text), job.expires_at
    )
    assert aws.store.create_keyed(job, record) is None
    return job


def test_a_replay_whose_message_cannot_be_sent_is_a_503_and_the_next_retry_sends_it(
    submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a keyed job left without a message, and SQS failing
    job = given_keyed_job_without_message(aws)
    sqs = clients.sqs()
    hook = _failing()
    sqs.meta.events.register("before-call.sqs.SendMessage", hook)
    try:
        # WHEN the client retries THEN 503 (a 202 would promise an enqueued job); the job and key stay
        replay = submit.handler(post_event("{}", KEY), lambda_context)
    finally:
        sqs.meta.events.unregister("before-call.sqs.SendMessage", hook)
    assert_problem(replay, 503, "service-unavailable")
    assert aws.item_count() == 2
    assert aws.queue_depth(aws.queue_url) == 0

    # WHEN it retries once more, SQS back THEN it gets the job, enqueued now
    again = submit.handler(post_event("{}", KEY), lambda_context)
    assert again["statusCode"] == 202
    assert body(again)["id"] == job.job_id
    assert aws.queue_depth(aws.queue_url) == 1


def _failing() -> Callable[..., Any]:
    """A ``before-call`` hook answering every call with a 503 from SQS."""

    def answer(**_: Any) -> Any:
        parsed = {
            "Error": {"Code": "ServiceUnavailable", "Message": "try later"},
            "ResponseMetadata": {"HTTPStatusCode": 503},
        }
        return AWSResponse("https://sqs.us-east-1.amazonaws.com/", 503, {}, None), parsed

    return answer


def test_an_expired_key_gets_a_new_job(
    submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a key whose job expired (TTL has not deleted either item yet)
    old = Job.new(
        "4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21",
        owner=ALICE,
        payload_sha256=payload_digest("{}"),
        now=utc_now() - dt.timedelta(seconds=MAX_PENDING_SECONDS + TTL_SECONDS + 1),
        ttl_seconds=TTL_SECONDS,
    )
    aws.store.create_keyed(
        old, IdempotencyRecord(key_item_id(ALICE, KEY), old.job_id, payload_digest("{}"), old.expires_at)
    )

    # WHEN the key is used again (with any body: the old request is forgotten)
    response = submit.handler(post_event('{"other": true}', KEY), lambda_context)

    # THEN a new job, and the key now points at it
    assert response["statusCode"] == 202
    assert "Idempotent-Replayed" not in response["headers"]
    assert body(response)["id"] != old.job_id
    assert key_item(aws)["jobId"] == body(response)["id"]  # type: ignore[index]


def test_a_key_whose_job_is_gone_gets_a_new_job(
    submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a keyed job whose item was deleted by hand
    first = body(submit.handler(post_event("{}", KEY), lambda_context))["id"]
    aws.dynamodb.delete_item(TableName=aws.table_name, Key={"pk": {"S": first}})

    # WHEN the request is replayed THEN the key gets a new job rather than pointing at nothing
    response = submit.handler(post_event("{}", KEY), lambda_context)
    assert response["statusCode"] == 202
    assert body(response)["id"] != first
    assert key_item(aws)["jobId"] == body(response)["id"]  # type: ignore[index]


def test_a_key_item_is_never_readable_as_a_job(
    submit: ModuleType, status: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    submit.handler(post_event("{}", KEY), lambda_context)

    response = status.handler(get_event(key_item_id(ALICE, KEY)), lambda_context)

    assert_problem(response, 400, "invalid-job-id")


def test_a_replay_tells_the_jobs_url_as_the_caller_sees_it(
    submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    first = submit.handler(post_event("{}", KEY), lambda_context)

    second = submit.handler(post_event("{}", KEY), lambda_context)

    job_id = body(first)["id"]
    assert second["headers"]["Location"] == f"https://{DOMAIN}/{STAGE}/jobs/{job_id}"
    assert body(second)["links"] == {"self": second["headers"]["Location"]}
    assert json.loads(second["body"])["status"] == "QUEUED"
