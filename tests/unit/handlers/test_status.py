"""GET /jobs/{id}: the job to its owner; one identical 404 for unknown, expired and someone else's jobs."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from types import ModuleType

import pytest

from lambda_handlers import clients
from lambda_handlers.models import MAX_PENDING_SECONDS, Job, utc_now
from tests.unit.handlers.conftest import RETRY_AFTER_SECONDS, Aws
from tests.unit.handlers.events import ACCOUNT, ALICE, BOB, DOMAIN, STAGE, FakeLambdaContext, body, get_event
from tests.unit.handlers.test_idempotency import watched_calls
from tests.unit.handlers.test_submit import assert_problem


def given_job(
    aws: Aws, owner: str = ALICE, *, ttl_seconds: int = 3_600, now: dt.datetime | None = None
) -> str:
    job_id = str(uuid.uuid4())
    aws.store.create(
        Job.new(job_id, owner=owner, payload_sha256="0" * 64, now=now or utc_now(), ttl_seconds=ttl_seconds)
    )
    return job_id


def test_shows_a_queued_job_to_its_owner(
    status: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a job of Alice's
    job_id = given_job(aws)

    # WHEN Alice reads it
    response = status.handler(get_event(job_id), lambda_context)

    # THEN 200 with the job, a poll interval, and no caching
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == "application/json"
    assert response["headers"]["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert response["headers"]["Cache-Control"] == "no-store"
    job = body(response)
    assert job["id"] == job_id
    assert job["status"] == "QUEUED"
    assert job["attempts"] == 0
    assert job["progress"] is None
    assert job["links"] == {"self": f"https://{DOMAIN}/{STAGE}/jobs/{job_id}"}
    # AND nothing internal leaks
    assert not {"owner", "runId", "leaseUntil", "payloadSha256", "expiresAt"} & job.keys()
    assert ALICE not in response["body"]


def test_shows_progress_and_the_last_error_of_a_running_job(
    status: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a job that failed once and runs again, 40 % done
    job_id = given_job(aws)
    aws.store.claim(job_id, "run-1", lease_until_ms=0)
    aws.store.record_failure(job_id, "run-1", "RuntimeError", "boom", final=False)
    aws.store.claim(job_id, "run-2", lease_until_ms=2**41)
    aws.store.report_progress(job_id, "run-2", 40, "step 4/10")

    job = body(status.handler(get_event(job_id), lambda_context))

    assert job["status"] == "RUNNING"
    assert job["attempts"] == 2
    assert job["progress"] == {"percent": 40, "message": "step 4/10"}
    assert job["lastError"] == {"type": "RuntimeError", "message": "boom"}
    assert "error" not in job
    assert "result" not in job


def test_shows_the_result_of_a_finished_job_without_retry_after(
    status: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a job that succeeded after a failed attempt
    job_id = given_job(aws)
    aws.store.claim(job_id, "run-1", lease_until_ms=0)
    aws.store.record_failure(job_id, "run-1", "RuntimeError", "boom", final=False)
    aws.store.claim(job_id, "run-2", lease_until_ms=2**41)
    aws.store.complete(job_id, "run-2", json.dumps({"rows": 12, "ok": True}))

    response = status.handler(get_event(job_id), lambda_context)

    # THEN the result, no error, and no Retry-After: there is nothing left to poll for
    assert response["statusCode"] == 200
    assert "Retry-After" not in response["headers"]
    job = body(response)
    assert job["status"] == "SUCCEEDED"
    assert job["result"] == {"rows": 12, "ok": True}
    assert "lastError" not in job
    assert "error" not in job


def test_shows_the_error_of_a_failed_job(
    status: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    job_id = given_job(aws)
    aws.store.claim(job_id, "run-1", lease_until_ms=0)
    aws.store.record_failure(job_id, "run-1", "JobFailedError", "payload.account is required", final=True)

    response = status.handler(get_event(job_id), lambda_context)

    assert "Retry-After" not in response["headers"]
    job = body(response)
    assert job["status"] == "FAILED"
    assert job["error"] == {"type": "JobFailedError", "message": "payload.account is required"}
    assert "lastError" not in job
    assert "result" not in job


def test_hides_unknown_expired_and_other_owners_jobs_behind_one_identical_404(
    status: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN Bob's job, a job of Alice's past its expiry (not yet deleted by TTL), and an unknown id
    bobs = given_job(aws, owner=BOB)
    expired = given_job(aws, ttl_seconds=60, now=utc_now() - dt.timedelta(seconds=MAX_PENDING_SECONDS + 120))
    unknown = str(uuid.uuid4())
    assert aws.item(expired) is not None

    # WHEN Alice asks for each
    responses = [status.handler(get_event(job_id), lambda_context) for job_id in (bobs, expired, unknown)]

    # THEN each is the same 404, body and headers alike
    for response in responses:
        assert_problem(response, 404, "job-not-found")
    assert len({json.dumps(r, sort_keys=True) for r in responses}) == 1


@pytest.mark.parametrize(
    "job_id",
    [
        "not-a-uuid",
        "4F0C5A0E-3B7D-4D0F-9A57-0F1C2F8B9E21",
        "4f0c5a0e-3b7d-1d0f-9a57-0f1c2f8b9e21",
        "4f0c5a0e3b7d4d0f9a570f1c2f8b9e21",
        "4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21\n",
        "",
        None,
    ],
    ids=["text", "uppercase", "uuid1", "no-dashes", "trailing-newline", "empty", "missing"],
)
def test_rejects_what_is_not_a_job_id(
    status: ModuleType, aws: Aws, lambda_context: FakeLambdaContext, job_id: str | None
) -> None:
    response = status.handler(get_event(job_id), lambda_context)

    assert_problem(response, 400, "invalid-job-id")


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_answers_405_to_other_methods(
    status: ModuleType, aws: Aws, lambda_context: FakeLambdaContext, method: str
) -> None:
    event = get_event(given_job(aws))
    event["httpMethod"] = method

    response = status.handler(event, lambda_context)

    assert_problem(response, 405, "method-not-allowed")
    assert response["headers"]["Allow"] == "GET, DELETE"


def test_answers_503_when_the_table_cannot_be_read(
    aws: Aws,
    entry_points: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: FakeLambdaContext,
) -> None:
    monkeypatch.setenv("ASYNC_JOB_TABLE_NAME", "No-Such-Table")
    status = entry_points("lambda_handlers.status")

    response = status.handler(get_event(str(uuid.uuid4())), lambda_context)

    assert_problem(response, 503, "service-unavailable")
    assert response["headers"]["Retry-After"] == str(RETRY_AFTER_SECONDS)


def test_builds_no_sqs_client(status: ModuleType, aws: Aws, lambda_context: FakeLambdaContext) -> None:
    # GIVEN a fresh execution environment's clients
    clients.sqs.cache_clear()

    # WHEN the status function answers
    response = status.handler(get_event(given_job(aws)), lambda_context)

    # THEN it never built an SQS client
    assert response["statusCode"] == 200
    assert clients.sqs.cache_info().currsize == 0


OPS_ROLE = f"arn:aws:iam::{ACCOUNT}:role/platform/Ops"


@pytest.mark.parametrize(
    ("reader", "visible"),
    [
        (f"arn:aws:sts::{ACCOUNT}:assumed-role/Ops/carol", True),
        (OPS_ROLE, True),
        (f"arn:aws:sts::{ACCOUNT}:assumed-role/Dev/carol", False),
        ("arn:aws:sts::999999999999:assumed-role/Ops/carol", False),
        (f"arn:aws:iam::{ACCOUNT}:user/Ops", False),
    ],
)
def test_operators_read_every_job(
    aws: Aws,
    entry_points: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: FakeLambdaContext,
    reader: str,
    visible: bool,
) -> None:
    # GIVEN the Ops role (with a path) as operator, and a job of Bob's
    monkeypatch.setenv("ASYNC_JOB_OPERATORS", json.dumps([OPS_ROLE]))
    status = entry_points("lambda_handlers.status")
    job_id = given_job(aws, owner=BOB)

    # WHEN someone else reads it
    response = status.handler(get_event(job_id, user_arn=reader), lambda_context)

    # THEN the role and its sessions see it; other identities get the 404
    assert response["statusCode"] == (200 if visible else 404)


def test_reads_a_job_with_one_aws_call(
    status: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    job_id = given_job(aws)

    with watched_calls() as calls:
        response = status.handler(get_event(job_id), lambda_context)

    assert response["statusCode"] == 200
    assert calls == ["GetItem"]
