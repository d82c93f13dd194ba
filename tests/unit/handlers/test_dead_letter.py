"""The dead-letter consumer: jobs whose messages were dead-lettered end FAILED, unless a run still holds them."""

from __future__ import annotations

import json
import uuid
from types import ModuleType

import pytest

from lambda_handlers.models import epoch_millis, utc_now
from tests.unit.handlers.conftest import Aws
from tests.unit.handlers.events import FakeLambdaContext, emitted_metrics, job_record, sqs_event, sqs_record
from tests.unit.handlers.test_worker import failures, given_queued_job


def test_fails_a_running_job_whose_lease_ran_out(
    dead_letter: ModuleType, aws: Aws, lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a job whose worker died mid-run (RUNNING, lease in the past), its message dead-lettered
    job_id, record = given_queued_job(aws)
    aws.store.claim(job_id, "dead-run", epoch_millis(utc_now()) - 1)

    # WHEN the dead-letter consumer gets the message
    response = dead_letter.handler(
        sqs_event({**record, "attributes": {"ApproximateReceiveCount": "4"}}), lambda_context
    )

    # THEN the job is FAILED as dead-lettered, saying which attempt it was (the job's count, not the
    # message's receive count), the run's lease removed, the message consumed
    assert failures(response) == []
    item = aws.item(job_id)
    assert item is not None
    assert item["status"] == "FAILED"
    assert item["errorType"] == "DeadLettered"
    assert "after attempt 1 of 3," in item["errorMessage"]
    assert "4" not in item["errorMessage"]
    assert not {"runId", "leaseUntil"} & item.keys()
    assert emitted_metrics(capsys.readouterr().out)["JobsDeadLettered"] == [1.0]


def test_fails_a_queued_job(dead_letter: ModuleType, aws: Aws, lambda_context: FakeLambdaContext) -> None:
    job_id, record = given_queued_job(aws)

    response = dead_letter.handler(sqs_event(record), lambda_context)

    assert failures(response) == []
    item = aws.item(job_id)
    assert item is not None
    assert (item["status"], item["errorType"]) == ("FAILED", "DeadLettered")


def test_leaves_a_finished_job_untouched(
    dead_letter: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a job that succeeded (a duplicate of its message was dead-lettered)
    job_id, record = given_queued_job(aws)
    aws.store.claim(job_id, "run", epoch_millis(utc_now()) + 60_000)
    aws.store.complete(job_id, "run", json.dumps({"rows": 1}))
    finished = aws.item(job_id)

    response = dead_letter.handler(sqs_event(record), lambda_context)

    assert failures(response) == []
    assert aws.item(job_id) == finished


def test_looks_again_later_at_a_job_under_a_live_lease(
    dead_letter: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a job a run still holds (a duplicate of its message was dead-lettered)
    job_id, record = given_queued_job(aws)
    aws.store.claim(job_id, "live-run", epoch_millis(utc_now()) + 60_000)
    held = aws.item(job_id)

    response = dead_letter.handler(sqs_event(record), lambda_context)

    # THEN the record comes back later, and the run may still finish the job
    assert failures(response) == [record["messageId"]]
    assert aws.item(job_id) == held


@pytest.mark.parametrize("message_body", ["junk", None])
def test_drops_malformed_messages(
    dead_letter: ModuleType, aws: Aws, lambda_context: FakeLambdaContext, message_body: str | None
) -> None:
    record = sqs_record("x")
    record["body"] = message_body

    response = dead_letter.handler(sqs_event(record), lambda_context)

    assert failures(response) == []


def test_drops_messages_of_unknown_jobs(
    dead_letter: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    response = dead_letter.handler(sqs_event(job_record(str(uuid.uuid4()), "{}")), lambda_context)

    assert failures(response) == []
    assert aws.item_count() == 0


def test_keeps_the_message_when_the_table_cannot_be_written(
    dead_letter: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    _, record = given_queued_job(aws)
    aws.dynamodb.delete_table(TableName=aws.table_name)

    response = dead_letter.handler(sqs_event(record), lambda_context)

    assert failures(response) == [record["messageId"]]
