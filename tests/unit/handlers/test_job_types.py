"""Job types: ``POST /{type}`` routes to the type's queue under its limits; every job is read at ``/jobs/{id}``
with its ``type``; every metric carries its job type, so two types never share a series."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from lambda_handlers import messages
from lambda_handlers.contract import JOB_TYPE_DIMENSION, UNKNOWN_JOB_TYPE, Env
from lambda_handlers.models import Job, epoch_millis, utc_now
from tests.unit.handlers.conftest import Aws
from tests.unit.handlers.events import (
    ALICE,
    DOMAIN,
    STAGE,
    FakeLambdaContext,
    body,
    delete_event,
    emitted_series,
    get_event,
    job_record,
    post_event,
    sqs_event,
    sqs_record,
)
from tests.unit.handlers.test_submit import assert_problem

SERVICE = "async-job-tests"


@pytest.fixture
def typed(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Two job types, ``reports`` (the fixture's queue, 8 KiB, 3 attempts) and ``thumbnails`` (its own queue,
    16 bytes, 5 attempts), in ``ASYNC_JOB_TYPES``; the legacy single-type variables are unset."""
    thumbnails = aws.sqs.create_queue(QueueName="Thumbnails-Queue")["QueueUrl"]
    types = {
        "reports": {"queueUrl": aws.queue_url, "maxPayloadBytes": 8_192, "maxReceiveCount": 3},
        "thumbnails": {"queueUrl": thumbnails, "maxPayloadBytes": 16, "maxReceiveCount": 5},
    }
    monkeypatch.setenv(Env.JOB_TYPES, json.dumps(types))
    for name in (Env.QUEUE_URL, Env.MAX_PAYLOAD_BYTES, Env.MAX_RECEIVE_COUNT):
        monkeypatch.delenv(name)
    return {"reports": aws.queue_url, "thumbnails": thumbnails}


def post_to(name: str, payload: str = "{}", **kwargs: Any) -> dict[str, Any]:
    return post_event(payload, resource=f"/{name}", path=f"/{name}", **kwargs)


def test_submits_each_type_to_its_own_queue_and_locates_it_under_jobs(
    typed: dict[str, str],
    aws: Aws,
    entry_points: Callable[[str], ModuleType],
    lambda_context: FakeLambdaContext,
) -> None:
    # GIVEN the submit function of an API with two job types
    submit = entry_points("lambda_handlers.submit")

    # WHEN a job is posted at /thumbnails
    response = submit.handler(post_to("thumbnails", '{"w": 64}'), lambda_context)

    # THEN it is accepted at /jobs/{id}, whatever its type, and shows its type
    assert response["statusCode"] == 202
    job = body(response)
    assert response["headers"]["Location"] == f"https://{DOMAIN}/{STAGE}/jobs/{job['id']}"
    assert job["links"]["self"] == response["headers"]["Location"]
    assert job["type"] == "thumbnails"
    # AND the item records the type, and only the type's queue got the message
    item = aws.item(job["id"])
    assert item is not None
    assert item["jobType"] == "thumbnails"
    (message,) = aws.receive(typed["thumbnails"])
    assert messages.decode(message["Body"]).job_id == job["id"]
    assert aws.receive(typed["reports"]) == []


def test_enforces_each_types_payload_limit(
    typed: dict[str, str],
    aws: Aws,
    entry_points: Callable[[str], ModuleType],
    lambda_context: FakeLambdaContext,
) -> None:
    submit = entry_points("lambda_handlers.submit")
    payload = '{"text": "seventeen bytes or more"}'

    # WHEN one body goes to a type with a 16-byte limit and to one with 8 KiB
    small = submit.handler(post_to("thumbnails", payload), lambda_context)
    large = submit.handler(post_to("reports", payload), lambda_context)

    # THEN each type's own limit applies
    assert assert_problem(small, 413, "payload-too-large")["maxBytes"] == 16
    assert large["statusCode"] == 202


def test_answers_404_for_a_type_the_api_does_not_have(
    typed: dict[str, str],
    aws: Aws,
    entry_points: Callable[[str], ModuleType],
    lambda_context: FakeLambdaContext,
) -> None:
    submit = entry_points("lambda_handlers.submit")

    response = submit.handler(post_to("videos"), lambda_context)

    problem = assert_problem(response, 404, "job-type-not-found")
    assert "videos" in problem["detail"]
    assert aws.item_count() == 0


def test_the_legacy_single_type_is_jobs(
    submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a template made before job types (no ASYNC_JOB_TYPES) WHEN a job is posted at /jobs
    response = submit.handler(post_event("{}"), lambda_context)

    # THEN it is a job of type "jobs"
    assert response["statusCode"] == 202
    assert body(response)["type"] == "jobs"
    item = aws.item(body(response)["id"])
    assert item is not None
    assert item["jobType"] == "jobs"


@pytest.mark.parametrize(
    ("context_path", "resource", "location"),
    [
        ("/prod/reports", "/reports", "https://api.example.com/prod/jobs"),
        ("/v1/reports", "/reports", "https://api.example.com/v1/jobs"),  # a custom domain's base path
        ("/reports", "/reports", "https://api.example.com/jobs"),  # a custom domain, no base path
        ("/prod/reports/", "/reports", "https://api.example.com/prod/jobs"),
        ("/prod/api/reports", "/api/reports", "https://api.example.com/prod/api/jobs"),  # a nested resource
    ],
)
def test_locates_jobs_under_the_stage_or_base_path(
    typed: dict[str, str],
    aws: Aws,
    entry_points: Callable[[str], ModuleType],
    lambda_context: FakeLambdaContext,
    context_path: str,
    resource: str,
    location: str,
) -> None:
    submit = entry_points("lambda_handlers.submit")
    event = post_to("reports")
    event["resource"] = resource
    event["requestContext"]["path"] = context_path
    event["requestContext"]["domainName"] = "api.example.com"

    response = submit.handler(event, lambda_context)

    assert response["headers"]["Location"] == f"{location}/{body(response)['id']}"


def test_status_shows_the_type_and_reads_an_older_item_as_jobs(
    status: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a job of type reports, and an item written before job types (no jobType)
    typed_id, old_id = str(uuid.uuid4()), str(uuid.uuid4())
    aws.store.create(
        Job.new(
            typed_id, owner=ALICE, payload_sha256="0" * 64, now=utc_now(), ttl_seconds=60, job_type="reports"
        )
    )
    aws.store.create(Job.new(old_id, owner=ALICE, payload_sha256="0" * 64, now=utc_now(), ttl_seconds=60))
    aws.dynamodb.update_item(
        TableName=aws.table_name, Key={"pk": {"S": old_id}}, UpdateExpression="REMOVE jobType"
    )

    # WHEN both are read THEN each shows its type
    assert body(status.handler(get_event(typed_id), lambda_context))["type"] == "reports"
    assert body(status.handler(get_event(old_id), lambda_context))["type"] == "jobs"


def series(capsys: pytest.CaptureFixture[str]) -> list[tuple[str, dict[str, str]]]:
    return [(name, dimensions) for name, dimensions, _ in emitted_series(capsys.readouterr().out)]


def test_submit_metrics_carry_the_type_of_their_request(
    typed: dict[str, str],
    aws: Aws,
    entry_points: Callable[[str], ModuleType],
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    submit = entry_points("lambda_handlers.submit")
    capsys.readouterr()

    # WHEN one job of each type is accepted, one invocation each
    submit.handler(post_to("reports"), lambda_context)
    submit.handler(post_to("thumbnails"), lambda_context)

    # THEN the two counts are two series, each with the service and its job type only
    assert series(capsys) == [
        ("JobsSubmitted", {"service": SERVICE, JOB_TYPE_DIMENSION: "reports"}),
        ("JobsSubmitted", {"service": SERVICE, JOB_TYPE_DIMENSION: "thumbnails"}),
    ]


def test_worker_metrics_carry_its_type(
    aws: Aws,
    load_worker: Callable[..., ModuleType],
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the worker of type thumbnails
    monkeypatch.setenv(Env.JOB_TYPE, "thumbnails")
    worker = load_worker("succeed")
    job_id = str(uuid.uuid4())
    aws.store.create(
        Job.new(
            job_id, owner=ALICE, payload_sha256=messages.payload_digest("{}"), now=utc_now(), ttl_seconds=60
        )
    )
    capsys.readouterr()

    # WHEN it runs a job, over two invocations (a job, then a malformed message)
    worker.handler(sqs_event(job_record(job_id, "{}")), lambda_context)
    worker.handler(sqs_event(sqs_record("junk")), lambda_context)

    # THEN every metric of both invocations names its type
    found = series(capsys)
    assert {name for name, _ in found} >= {"JobsSucceeded", "JobDuration", "MalformedMessages"}
    assert all(
        dimensions == {"service": SERVICE, JOB_TYPE_DIMENSION: "thumbnails"} for _, dimensions in found
    )


def test_dead_letter_metrics_and_messages_follow_each_records_type(
    typed: dict[str, str],
    aws: Aws,
    entry_points: Callable[[str], ModuleType],
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN jobs of two types whose runs died mid-run, dead-lettered into one batch, and a malformed message
    dead_letter = entry_points("lambda_handlers.dead_letter")
    records = []
    for job_type in ("reports", "thumbnails"):
        job_id = str(uuid.uuid4())
        job = Job.new(
            job_id, owner=ALICE, payload_sha256="0" * 64, now=utc_now(), ttl_seconds=60, job_type=job_type
        )
        aws.store.create(job)
        aws.store.claim(job_id, "dead-run", epoch_millis(utc_now()) - 1)
        records.append(job_record(job_id, "{}"))
    capsys.readouterr()

    # WHEN the dead-letter consumer handles the batch
    dead_letter.handler(sqs_event(*records, sqs_record("junk")), lambda_context)

    # THEN each job's message counts its own type's attempts
    reports, thumbnails = (aws.item(messages.decode(r["body"]).job_id) for r in records)
    assert reports is not None
    assert thumbnails is not None
    assert "after attempt 1 of 3," in reports["errorMessage"]
    assert "after attempt 1 of 5," in thumbnails["errorMessage"]
    # AND each metric is in its type's series; the malformed message's in no type's
    assert sorted(series(capsys), key=lambda s: s[1][JOB_TYPE_DIMENSION]) == [
        ("MalformedMessages", {"service": SERVICE, JOB_TYPE_DIMENSION: UNKNOWN_JOB_TYPE}),
        ("JobsDeadLettered", {"service": SERVICE, JOB_TYPE_DIMENSION: "reports"}),
        ("JobsDeadLettered", {"service": SERVICE, JOB_TYPE_DIMENSION: "thumbnails"}),
    ]


def test_status_metrics_carry_the_type_of_the_cancelled_job(
    status: ModuleType, aws: Aws, lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = str(uuid.uuid4())
    aws.store.create(
        Job.new(
            job_id, owner=ALICE, payload_sha256="0" * 64, now=utc_now(), ttl_seconds=60, job_type="reports"
        )
    )
    capsys.readouterr()

    status.handler(delete_event(job_id), lambda_context)

    assert series(capsys) == [("JobsCancelled", {"service": SERVICE, JOB_TYPE_DIMENSION: "reports"})]
