"""JobStore on moto: every transition of the state machine, and every condition that refuses one."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest

from lambda_handlers.models import Job, JobStatus, epoch_millis, utc_now
from lambda_handlers.store import (
    ClaimStatus,
    DeadLetterOutcome,
    JobExistsError,
    JobStore,
    JobStoreError,
    WriteOutcome,
)
from tests.unit.handlers.conftest import Aws

NOW = utc_now()
LIVE = epoch_millis(NOW) + 60_000
EXPIRED = epoch_millis(NOW) - 1


def new_job(aws: Aws, *, ttl_seconds: int = 3_600, now: dt.datetime = NOW) -> str:
    job_id = str(uuid.uuid4())
    aws.store.create(
        Job.new(job_id, owner="alice", payload_sha256="ab" * 32, now=now, ttl_seconds=ttl_seconds)
    )
    return job_id


def running(aws: Aws, lease_until_ms: int = LIVE, run_id: str = "run-1") -> str:
    job_id = new_job(aws)
    assert aws.store.claim(job_id, run_id, lease_until_ms, NOW).status is ClaimStatus.CLAIMED
    return job_id


def test_creates_and_reads_a_job(aws: Aws) -> None:
    job = Job.new(str(uuid.uuid4()), owner="alice", payload_sha256="ab" * 32, now=NOW, ttl_seconds=60)

    aws.store.create(job)

    assert aws.store.get(job.job_id, NOW) == job


def test_never_overwrites_a_job(aws: Aws) -> None:
    job_id = running(aws)

    with pytest.raises(JobExistsError, match=job_id):
        aws.store.create(Job.new(job_id, owner="mallory", payload_sha256="00", now=NOW, ttl_seconds=60))

    assert aws.item(job_id)["owner"] == "alice"  # type: ignore[index]


def test_reads_missing_and_expired_jobs_as_none(aws: Aws) -> None:
    expired = new_job(aws, ttl_seconds=60, now=NOW - dt.timedelta(seconds=61))

    assert aws.store.get(expired, NOW) is None
    assert aws.store.get(str(uuid.uuid4()), NOW) is None


def test_claims_a_queued_job(aws: Aws) -> None:
    job_id = new_job(aws)

    outcome = aws.store.claim(job_id, "run-1", LIVE, NOW)

    assert outcome.status is ClaimStatus.CLAIMED
    assert outcome.job is not None
    assert (outcome.job.status, outcome.job.run_id, outcome.job.lease_until) == (
        JobStatus.RUNNING,
        "run-1",
        LIVE,
    )
    assert outcome.job.attempts == 1
    assert outcome.job.payload_sha256 == "ab" * 32
    assert aws.item(job_id)["runId"] == "run-1"  # type: ignore[index]


def test_refuses_a_claim_under_a_live_lease(aws: Aws) -> None:
    job_id = running(aws, LIVE)

    outcome = aws.store.claim(job_id, "run-2", LIVE, NOW)

    assert outcome.status is ClaimStatus.BUSY
    assert outcome.job is not None
    assert outcome.job.run_id == "run-1"
    assert aws.item(job_id)["runId"] == "run-1"  # type: ignore[index]


def test_takes_over_an_expired_lease_and_clears_the_old_progress(aws: Aws) -> None:
    job_id = running(aws, EXPIRED)
    aws.store.report_progress(job_id, "run-1", 70, "almost")

    outcome = aws.store.claim(job_id, "run-2", LIVE, NOW)

    assert outcome.status is ClaimStatus.CLAIMED
    item = aws.item(job_id)
    assert item is not None
    assert (item["runId"], item["attempts"]) == ("run-2", 2)
    assert "progressPercent" not in item


def test_claims_nothing_finished_missing_or_expired(aws: Aws) -> None:
    finished = running(aws)
    aws.store.complete(finished, "run-1", "1")
    expired = new_job(aws, ttl_seconds=60, now=NOW - dt.timedelta(seconds=61))

    assert aws.store.claim(finished, "run-2", LIVE, NOW).status is ClaimStatus.FINISHED
    assert aws.store.claim(expired, "run-2", LIVE, NOW).status is ClaimStatus.GONE
    assert aws.store.claim(str(uuid.uuid4()), "run-2", LIVE, NOW).status is ClaimStatus.GONE
    assert aws.item(expired)["status"] == "QUEUED"  # type: ignore[index]


def test_completes_a_job_held_by_the_run(aws: Aws) -> None:
    job_id = running(aws)
    aws.store.record_failure(job_id, "run-1", "RuntimeError", "boom", final=False)
    aws.store.claim(job_id, "run-2", LIVE, NOW)

    assert aws.store.complete(job_id, "run-2", json.dumps({"ok": True})) is WriteOutcome.APPLIED

    item = aws.item(job_id)
    assert item is not None
    assert item["status"] == "SUCCEEDED"
    assert json.loads(item["result"]) == {"ok": True}
    assert not {"runId", "leaseUntil", "errorType", "errorMessage"} & item.keys()


def test_fences_out_a_stale_run(aws: Aws) -> None:
    # GIVEN run-1 was taken over by run-2
    job_id = running(aws, EXPIRED)
    aws.store.claim(job_id, "run-2", LIVE, NOW)
    before = aws.item(job_id)

    # WHEN run-1 tries to write anything
    outcomes = [
        aws.store.complete(job_id, "run-1", "1"),
        aws.store.record_failure(job_id, "run-1", "RuntimeError", "late", final=True),
        aws.store.report_progress(job_id, "run-1", 99, "late"),
    ]

    # THEN every write is refused and the job is run-2's as before
    assert outcomes == [WriteOutcome.FENCED_OUT] * 3
    assert aws.item(job_id) == before


def test_fences_out_writes_to_a_finished_job(aws: Aws) -> None:
    job_id = running(aws)
    aws.store.record_failure(job_id, "run-1", "JobFailedError", "no", final=True)

    assert aws.store.complete(job_id, "run-1", "1") is WriteOutcome.FENCED_OUT
    assert aws.item(job_id)["status"] == "FAILED"  # type: ignore[index]


def test_requeues_a_retryable_failure_with_its_error(aws: Aws) -> None:
    job_id = running(aws)
    aws.store.report_progress(job_id, "run-1", 30, None)

    assert (
        aws.store.record_failure(job_id, "run-1", "RuntimeError", "boom", final=False) is WriteOutcome.APPLIED
    )

    item = aws.item(job_id)
    assert item is not None
    assert (item["status"], item["errorType"], item["errorMessage"]) == ("QUEUED", "RuntimeError", "boom")
    assert not {"runId", "leaseUntil", "progressPercent"} & item.keys()


def test_fails_a_job_for_good(aws: Aws) -> None:
    job_id = running(aws)

    aws.store.record_failure(job_id, "run-1", "JobTimeoutError", "late", final=True)

    item = aws.item(job_id)
    assert item is not None
    assert (item["status"], item["errorType"]) == ("FAILED", "JobTimeoutError")
    assert not {"runId", "leaseUntil"} & item.keys()


def test_records_progress_and_clears_an_old_message(aws: Aws) -> None:
    job_id = running(aws)

    aws.store.report_progress(job_id, "run-1", 12.5, "reading")
    assert (aws.item(job_id)["progressPercent"], aws.item(job_id)["progressMessage"]) == (12.5, "reading")  # type: ignore[index]
    aws.store.report_progress(job_id, "run-1", 40, None)

    item = aws.item(job_id)
    assert item is not None
    assert item["progressPercent"] == 40
    assert "progressMessage" not in item


@pytest.mark.parametrize(
    ("lease", "outcome", "status"),
    [
        (None, DeadLetterOutcome.MARKED, "FAILED"),
        (EXPIRED, DeadLetterOutcome.MARKED, "FAILED"),
        (LIVE, DeadLetterOutcome.BUSY, "RUNNING"),
    ],
    ids=["queued", "running-expired-lease", "running-live-lease"],
)
def test_marks_dead_lettered_jobs(
    aws: Aws, lease: int | None, outcome: DeadLetterOutcome, status: str
) -> None:
    job_id = new_job(aws) if lease is None else running(aws, lease)

    assert aws.store.mark_dead_lettered(job_id, NOW, receive_count=4) is outcome

    item = aws.item(job_id)
    assert item is not None
    assert item["status"] == status
    assert (item.get("errorType") == "DeadLettered") is (outcome is DeadLetterOutcome.MARKED)


def test_does_not_mark_finished_or_missing_jobs(aws: Aws) -> None:
    job_id = running(aws)
    aws.store.complete(job_id, "run-1", "1")

    assert aws.store.mark_dead_lettered(job_id, NOW) is DeadLetterOutcome.FINISHED
    assert aws.store.mark_dead_lettered(str(uuid.uuid4()), NOW) is DeadLetterOutcome.GONE
    assert aws.item(job_id)["status"] == "SUCCEEDED"  # type: ignore[index]


def test_deletes_only_untouched_jobs(aws: Aws) -> None:
    queued = new_job(aws)
    claimed = running(aws)

    assert aws.store.delete_if_queued(queued) is True
    assert aws.store.delete_if_queued(claimed) is False
    assert aws.item(queued) is None
    assert aws.item(claimed) is not None


def test_raises_job_store_error_when_dynamodb_fails(aws: Aws) -> None:
    store = JobStore("No-Such-Table", aws.dynamodb)
    job_id = str(uuid.uuid4())

    with pytest.raises(JobStoreError, match="GetItem"):
        store.get(job_id)
    with pytest.raises(JobStoreError, match="claim"):
        store.claim(job_id, "run", LIVE)
    with pytest.raises(JobStoreError, match="complete"):
        store.complete(job_id, "run", "1")
    with pytest.raises(JobStoreError, match="PutItem"):
        store.create(Job.new(job_id, owner="a", payload_sha256="00", now=NOW, ttl_seconds=60))
