"""Whole journeys on moto's real queues: submit, receive, work, poll; and a job whose worker keeps dying."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import ModuleType

import pytest

from lambda_handlers.models import epoch_millis, utc_now
from tests.unit.handlers import jobs
from tests.unit.handlers.conftest import MAX_RECEIVE_COUNT, Aws
from tests.unit.handlers.events import (
    FakeLambdaContext,
    body,
    get_event,
    record_from_message,
    rest_event,
    sqs_event,
)
from tests.unit.handlers.test_worker import failures


def test_a_job_goes_from_post_to_a_result(
    submit: ModuleType,
    status: ModuleType,
    load_worker: Callable[..., ModuleType],
    aws: Aws,
    lambda_context: FakeLambdaContext,
) -> None:
    # GIVEN a job posted through the API
    worker = load_worker("succeed")
    accepted = submit.handler(rest_event(body='{"report": "Q3"}'), lambda_context)
    job_id = body(accepted)["id"]
    assert body(status.handler(get_event(job_id), lambda_context))["status"] == "QUEUED"

    # WHEN the worker receives its message from the queue
    (message,) = aws.receive(visibility_timeout=30)
    response = worker.handler(sqs_event(record_from_message(message, aws.queue_arn)), FakeLambdaContext())

    # THEN the owner polls the result at the URL the 202 gave
    assert failures(response) == []
    polled = status.handler(get_event(job_id), lambda_context)
    job = body(polled)
    assert job["status"] == "SUCCEEDED"
    assert job["result"]["echo"] == {"report": "Q3"}
    assert job["links"]["self"] == accepted["headers"]["Location"]
    assert "Retry-After" not in polled["headers"]


def test_a_job_whose_worker_keeps_dying_is_dead_lettered_and_failed(
    submit: ModuleType,
    status: ModuleType,
    dead_letter: ModuleType,
    load_worker: Callable[..., ModuleType],
    aws: Aws,
    lambda_context: FakeLambdaContext,
) -> None:
    # GIVEN a job posted through the API, and a worker whose process dies inside the handler
    worker = load_worker("die")
    job_id = body(submit.handler(rest_event(body="{}"), lambda_context))["id"]

    # WHEN each delivery kills the worker (the first one after claiming the job with a 1.5 s lease, which leaves
    # the handler 0.5 s to start even on a busy machine); with visibility timeout 0 the message is visible again
    # at once, as after a real visibility timeout
    for receive_count in range(1, MAX_RECEIVE_COUNT + 1):
        (message,) = aws.receive()
        assert message["Attributes"]["ApproximateReceiveCount"] == str(receive_count)
        if receive_count == 1:
            with pytest.raises(jobs.SimulatedLambdaCrash):
                worker.handler(
                    sqs_event(record_from_message(message, aws.queue_arn)),
                    FakeLambdaContext(remaining_ms=1_500),
                )
    item = aws.item(job_id)
    assert item is not None
    assert item["status"] == "RUNNING"

    # THEN SQS moves the message to the dead-letter queue instead of delivering it a fourth time
    assert aws.receive() == []
    (dead,) = aws.receive(aws.dlq_url, visibility_timeout=30)
    assert dead["Body"].startswith(f'{{"v":1,"jobId":"{job_id}"')

    # AND once the dead run's lease has run out, the dead-letter consumer fails the job
    time.sleep(max(0.0, (item["leaseUntil"] - epoch_millis(utc_now())) / 1000 + 0.01))
    response = dead_letter.handler(sqs_event(record_from_message(dead, aws.dlq_arn)), lambda_context)
    assert failures(response) == []
    job = body(status.handler(get_event(job_id), lambda_context))
    assert job["status"] == "FAILED"
    assert job["error"]["type"] == "DeadLettered"
    assert len(jobs.CALLS) == 1
