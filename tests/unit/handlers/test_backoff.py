"""Retries with capped exponential backoff and full jitter: the delay's bounds, and its effect on a real queue."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from lambda_handlers import clients
from lambda_handlers.messages import payload_digest
from lambda_handlers.models import Job, utc_now
from tests.unit.handlers import jobs
from tests.unit.handlers.conftest import MAX_RECEIVE_COUNT, Aws
from tests.unit.handlers.events import (
    FakeLambdaContext,
    emitted_metrics,
    record_from_message,
    sqs_event,
)
from tests.unit.handlers.test_idempotency import watched_calls
from tests.unit.handlers.test_worker import delivery, failures, given_queued_job

LoadWorker = Callable[..., ModuleType]


class Draws:
    """A stand-in for ``random.Random`` whose ``uniform(a, b)`` returns ``b * fraction`` and records ``(a, b)``."""

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction
        self.ranges: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.ranges.append((a, b))
        return a + (b - a) * self.fraction


# ------------------------------------------------------------------------------------------ the delay


@pytest.mark.parametrize(("base", "maximum"), [(10, 900), (1, 1), (3, 100), (60, 43_200)])
def test_every_delay_is_whole_seconds_within_1_and_the_capped_doubling(
    load_worker: LoadWorker, base: int, maximum: int
) -> None:
    worker = load_worker()
    rng = random.Random(20261123)

    for attempt in range(1, 20):
        ceiling = min(maximum, base * 2 ** (attempt - 1))
        draws = [worker.backoff_seconds(attempt, base, maximum, rng) for _ in range(500)]

        assert all(isinstance(d, int) for d in draws)
        assert min(draws) >= 1
        assert max(draws) <= ceiling
        if ceiling >= 20:
            # full jitter: the draws spread over the whole range, not around its top
            assert min(draws) <= ceiling * 0.05 + 1
            assert max(draws) >= ceiling * 0.95
            assert ceiling * 0.4 <= sum(draws) / len(draws) <= ceiling * 0.6


@pytest.mark.parametrize(
    ("attempt", "fraction", "delay"),
    [
        (1, 0.0, 1),
        (1, 0.01, 1),
        (1, 0.5, 5),
        (1, 1.0, 10),
        (2, 1.0, 20),
        (3, 0.51, 21),
        (7, 1.0, 640),
        (8, 1.0, 900),
    ],
)
def test_the_delay_is_the_draw_rounded_up_at_least_1_and_at_most_the_cap(
    load_worker: LoadWorker, attempt: int, fraction: float, delay: int
) -> None:
    worker = load_worker()
    draws = Draws(fraction)

    assert worker.backoff_seconds(attempt, 10, 900, draws) == delay
    assert draws.ranges == [(0, min(900, 10 * 2 ** (attempt - 1)))]


def test_the_delay_stays_capped_for_any_attempt_number(load_worker: LoadWorker) -> None:
    worker = load_worker()

    assert worker.backoff_seconds(10_000, 10, 900, Draws(1.0)) == 900
    assert worker.backoff_seconds(0, 10, 900, Draws(1.0)) == 10


def test_a_seeded_random_gives_the_same_delays(load_worker: LoadWorker) -> None:
    worker = load_worker()

    def delays(seed: int) -> list[int]:
        rng = random.Random(seed)
        return [worker.backoff_seconds(n, 10, 900, rng) for n in range(1, 10)]

    assert delays(7) == delays(7)
    assert delays(7) != delays(8)


def test_the_worker_reads_its_delays_and_defaults_to_10_and_900(
    load_worker: LoadWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a deployment made before the variables existed
    monkeypatch.delenv("ASYNC_JOB_RETRY_BASE_SECONDS", raising=False)
    monkeypatch.delenv("ASYNC_JOB_RETRY_MAX_SECONDS", raising=False)
    assert (load_worker().CONFIG.retry_base_seconds, load_worker().CONFIG.retry_max_seconds) == (10, 900)

    # GIVEN the construct's values
    monkeypatch.setenv("ASYNC_JOB_RETRY_BASE_SECONDS", "2")
    monkeypatch.setenv("ASYNC_JOB_RETRY_MAX_SECONDS", "60")
    worker = load_worker()
    assert (worker.CONFIG.retry_base_seconds, worker.CONFIG.retry_max_seconds) == (2, 60)


# ------------------------------------------------------------------------------------ on a real queue


def submitted(aws: Aws, payload: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """A QUEUED job with its message really on the queue, received (visibility 30 s) as Lambda would."""
    job_id, record = given_queued_job(aws, payload)
    aws.sqs.send_message(QueueUrl=aws.queue_url, MessageBody=record["body"])
    (message,) = aws.receive(visibility_timeout=30)
    return job_id, record_from_message(message, aws.queue_arn)


def wait_until_visible(aws: Aws, since: float, seconds: float = 10) -> tuple[float, list[dict[str, Any]]]:
    """Poll the queue for up to ``seconds``; when the message shows, how long after ``since`` (a monotonic
    time taken before the worker ran) that was, and the message."""
    while time.monotonic() - since < seconds:
        messages = aws.receive(visibility_timeout=30)
        if messages:
            return time.monotonic() - since, messages
        time.sleep(0.05)
    return time.monotonic() - since, []


def test_a_failed_attempt_comes_back_after_its_backoff_and_not_before(
    load_worker: LoadWorker,
    aws: Aws,
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a worker backing off from 3 s doubling up to 60 s, whose jitter draws the top of its range
    # (3 s, not 1 s: the "still hidden" check below must hold even when a loaded machine is slow)
    monkeypatch.setenv("ASYNC_JOB_RETRY_BASE_SECONDS", "3")
    monkeypatch.setenv("ASYNC_JOB_RETRY_MAX_SECONDS", "60")
    worker = load_worker("crash")
    draws = Draws(1.0)
    monkeypatch.setattr(worker, "_random", draws)
    job_id, record = submitted(aws)

    # WHEN the second attempt of the job fails (the message received with a 30 s visibility timeout)
    before = time.monotonic()
    response = worker.handler(sqs_event(delivery(record, 2)), lambda_context)

    # THEN the record is reported, and its visibility was set to the drawn delay: 3 * 2 ** (2 - 1) = 6 s
    assert failures(response) == [record["messageId"]]
    assert draws.ranges == [(0, 6)]
    item = aws.item(job_id)
    assert item is not None
    assert item["status"] == "QUEUED"
    # AND on the real queue the message stays hidden for those 6 s (not 30, not 0), then comes back
    assert aws.receive() == []
    waited, messages = wait_until_visible(aws, before)
    assert 5.95 <= waited < 15  # far from the 30 s visibility timeout it was received with
    assert messages[0]["MessageId"] == record["messageId"]
    assert messages[0]["Attributes"]["ApproximateReceiveCount"] == "2"
    assert emitted_metrics(capsys.readouterr().out)["JobsRetried"] == [1.0]


def test_the_smallest_draw_brings_a_retry_back_after_1_second(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = load_worker("crash")  # the defaults: 10 s base, 900 s cap
    monkeypatch.setattr(worker, "_random", Draws(0.0))
    _, record = submitted(aws)

    before = time.monotonic()
    worker.handler(sqs_event(record), lambda_context)

    waited, messages = wait_until_visible(aws, before)
    assert messages
    assert 0.95 <= waited < 10


def test_a_visibility_change_that_fails_loses_nothing(
    load_worker: LoadWorker,
    aws: Aws,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a job whose message was received with a 1 s visibility timeout, its receipt handle gone stale
    worker = load_worker("crash")
    job_id, record = given_queued_job(aws)
    aws.sqs.send_message(QueueUrl=aws.queue_url, MessageBody=record["body"])
    (message,) = aws.receive(visibility_timeout=1)
    stale = {**record_from_message(message, aws.queue_arn), "receiptHandle": "AQEBstale"}

    # WHEN its attempt fails and ChangeMessageVisibility is refused
    before = time.monotonic()
    response = worker.handler(sqs_event(stale), lambda_context)

    # THEN the record is still reported, the failure recorded, and the message comes back after its timeout
    assert failures(response) == [stale["messageId"]]
    assert aws.item(job_id)["status"] == "QUEUED"  # type: ignore[index]
    assert emitted_metrics(capsys.readouterr().out)["BackoffErrors"] == [1.0]
    _, messages = wait_until_visible(aws, before)
    assert [m["MessageId"] for m in messages] == [message["MessageId"]]


@pytest.mark.parametrize(
    "arn",
    ["arn:aws:sqs:us-east-1:123456789012:No-Such-Queue", "not-an-arn", None],
    ids=["gone", "bad", "none"],
)
def test_a_retry_of_a_record_from_an_unknown_queue_is_still_reported(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext, arn: str | None
) -> None:
    worker = load_worker("crash")
    _, record = given_queued_job(aws)
    record = {**record, "eventSourceARN": arn}

    response = worker.handler(sqs_event(record), lambda_context)

    assert failures(response) == [record["messageId"]]


def test_a_success_builds_no_sqs_client_and_makes_two_aws_calls(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a fresh execution environment's clients
    worker = load_worker("succeed")
    _, record = given_queued_job(aws)
    clients.dynamodb()  # the table client exists already in a warm worker; the SQS one need not
    clients.sqs.cache_clear()

    # WHEN a job succeeds
    dynamodb_calls: list[str] = []
    dynamodb = clients.dynamodb()

    def watch(model: Any, **_: Any) -> None:
        dynamodb_calls.append(model.name)

    dynamodb.meta.events.register("before-call", watch)
    try:
        response = worker.handler(sqs_event(record), lambda_context)
    finally:
        dynamodb.meta.events.unregister("before-call", watch)

    # THEN claim and complete, and no SQS client was ever built (it is made on the first retry only)
    assert failures(response) == []
    assert dynamodb_calls == ["UpdateItem", "UpdateItem"]
    assert clients.sqs.cache_info().currsize == 0


def test_a_retry_makes_three_aws_calls(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    worker = load_worker("crash")
    _, record = submitted(aws)

    with watched_calls() as calls:
        worker.handler(sqs_event(record), lambda_context)

    assert calls == ["UpdateItem", "UpdateItem", "ChangeMessageVisibility"]


def test_duplicate_messages_cannot_give_a_job_more_attempts(
    load_worker: LoadWorker, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a job already started MAX_RECEIVE_COUNT - 1 times, and a delivery of its message whose receive
    # count says less (SQS's count is approximate; a message redriven from a DLQ starts again from 1)
    worker = load_worker("crash")
    job_id = "4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21"
    aws.store.create(
        Job.new(job_id, owner="alice", payload_sha256=payload_digest("{}"), now=utc_now(), ttl_seconds=3600)
    )
    _, record = given_queued_job(aws)
    for run in range(MAX_RECEIVE_COUNT - 1):
        aws.store.claim(job_id, f"run-{run}", 2**41, message_id=record["messageId"])
        aws.store.record_failure(job_id, f"run-{run}", "RuntimeError", "boom", final=False)
    duplicate = {
        **record,
        "body": json.dumps({"v": 1, "jobId": job_id, "payload": {}}, separators=(",", ":")),
    }

    # WHEN it (received once by its count) runs the job and it fails
    response = worker.handler(sqs_event(delivery(duplicate, 1)), lambda_context)

    # THEN that was the job's last attempt by its own count: FAILED, not retried
    assert failures(response) == []
    item = aws.item(job_id)
    assert item is not None
    assert (item["status"], item["attempts"]) == ("FAILED", MAX_RECEIVE_COUNT)
    (_, context) = jobs.CALLS[-1]
    assert context.attempt == MAX_RECEIVE_COUNT
