"""JobStore on moto: every transition of the state machine, and every condition that refuses one."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest

from lambda_handlers.idempotency import IdempotencyRecord
from lambda_handlers.models import MAX_PENDING_SECONDS, Job, JobStatus, epoch_millis, utc_now
from lambda_handlers.store import (
    CancelStatus,
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
    expired = new_job(aws, ttl_seconds=60, now=NOW - dt.timedelta(seconds=MAX_PENDING_SECONDS + 61))

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
    expired = new_job(aws, ttl_seconds=60, now=NOW - dt.timedelta(seconds=MAX_PENDING_SECONDS + 61))

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

    assert aws.store.mark_dead_lettered(job_id, NOW, max_attempts=3) is outcome

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


# ------------------------------------------------------------------------ idempotency keys, cancellation


def keyed(
    aws: Aws, key_id: str = "idem#" + "a" * 64, *, now: dt.datetime = NOW
) -> tuple[Job, IdempotencyRecord]:
    job = Job.new(str(uuid.uuid4()), owner="alice", payload_sha256="ab" * 32, now=now, ttl_seconds=3_600)
    return job, IdempotencyRecord(key_id, job.job_id, "ab" * 32, job.expires_at)


def test_records_a_job_and_its_key_together(aws: Aws) -> None:
    job, record = keyed(aws)

    assert aws.store.create_keyed(job, record, now=NOW) is None

    assert aws.store.get(job.job_id, NOW) == job
    assert (
        IdempotencyRecord.from_item(
            aws.dynamodb.get_item(TableName=aws.table_name, Key={"pk": {"S": record.key_id}})["Item"]
        )
        == record
    )


def test_a_used_key_returns_its_record_and_writes_nothing(aws: Aws) -> None:
    first, record = keyed(aws)
    aws.store.create_keyed(first, record, now=NOW)
    second, other = keyed(aws)

    found = aws.store.create_keyed(second, other, now=NOW)

    assert found == record
    assert aws.item(second.job_id) is None
    assert aws.item_count() == 2


def test_an_expired_key_is_overwritten(aws: Aws) -> None:
    long_ago = NOW - dt.timedelta(seconds=MAX_PENDING_SECONDS, hours=2)
    old, record = keyed(aws, now=long_ago)
    aws.store.create_keyed(old, record, now=long_ago)
    new, other = keyed(aws)

    assert aws.store.create_keyed(new, other, now=NOW) is None

    assert aws.item(record.key_id)["jobId"] == new.job_id  # type: ignore[index]


def test_a_key_is_overwritten_only_when_it_points_at_the_job_named_gone(aws: Aws) -> None:
    first, record = keyed(aws)
    aws.store.create_keyed(first, record, now=NOW)
    second, other = keyed(aws)

    assert aws.store.create_keyed(second, other, replacing=str(uuid.uuid4()), now=NOW) == record
    assert aws.store.create_keyed(second, other, replacing=first.job_id, now=NOW) is None
    assert aws.item(record.key_id)["jobId"] == second.job_id  # type: ignore[index]


def test_never_overwrites_a_job_with_a_keyed_one(aws: Aws) -> None:
    job_id = new_job(aws)
    job = Job.new(job_id, owner="mallory", payload_sha256="00", now=NOW, ttl_seconds=60)

    with pytest.raises(JobExistsError):
        aws.store.create_keyed(job, IdempotencyRecord("idem#b", job_id, "00", job.expires_at), now=NOW)
    assert aws.item("idem#b") is None


def test_forgets_a_keyed_job_only_while_both_are_untouched(aws: Aws) -> None:
    job, record = keyed(aws)
    aws.store.create_keyed(job, record, now=NOW)
    other, other_record = keyed(aws, "idem#" + "c" * 64)
    aws.store.create_keyed(other, other_record, now=NOW)
    aws.store.claim(other.job_id, "run-1", LIVE, NOW)

    assert aws.store.forget_keyed(other.job_id, other_record.key_id) is False
    assert aws.store.forget_keyed(job.job_id, other_record.key_id) is False
    assert aws.store.forget_keyed(job.job_id, record.key_id) is True

    assert aws.item(job.job_id) is None
    assert aws.item(record.key_id) is None
    assert aws.item(other.job_id) is not None
    assert aws.item(other_record.key_id) is not None


@pytest.mark.parametrize(
    ("state", "status", "job_status"),
    [
        ("queued", CancelStatus.CANCELLED, JobStatus.CANCELLED),
        ("running", CancelStatus.REQUESTED, JobStatus.RUNNING),
        ("running-expired", CancelStatus.CANCELLED, JobStatus.CANCELLED),
        ("succeeded", CancelStatus.FINISHED, JobStatus.SUCCEEDED),
    ],
)
def test_cancels_by_state(aws: Aws, state: str, status: CancelStatus, job_status: JobStatus) -> None:
    job_id = {
        "queued": lambda: new_job(aws),
        "running": lambda: running(aws),
        "running-expired": lambda: running(aws, EXPIRED),
        "succeeded": lambda: running(aws),
    }[state]()
    if state == "succeeded":
        aws.store.complete(job_id, "run-1", "1")

    outcome = aws.store.cancel(job_id, "alice", NOW)

    assert outcome.status is status
    assert outcome.job is not None
    assert outcome.job.status is job_status
    assert outcome.job.cancel_requested is (status is CancelStatus.REQUESTED)


def test_cancels_nothing_of_another_owner_nor_missing_or_expired(aws: Aws) -> None:
    queued = new_job(aws)
    expired = new_job(aws, ttl_seconds=60, now=NOW - dt.timedelta(seconds=MAX_PENDING_SECONDS + 61))

    assert aws.store.cancel(queued, "bob", NOW).status is CancelStatus.NOT_FOUND
    assert aws.store.cancel(expired, "alice", NOW).status is CancelStatus.NOT_FOUND
    assert aws.store.cancel(str(uuid.uuid4()), "alice", NOW).status is CancelStatus.NOT_FOUND
    assert aws.item(queued)["status"] == "QUEUED"  # type: ignore[index]


def test_a_progress_write_tells_of_a_cancel_request(aws: Aws) -> None:
    job_id = running(aws)
    assert aws.store.report_progress(job_id, "run-1", 10, None) is WriteOutcome.APPLIED

    aws.store.cancel(job_id, "alice", NOW)

    assert aws.store.report_progress(job_id, "run-1", 20, None) is WriteOutcome.CANCEL_REQUESTED
    assert aws.item(job_id)["progressPercent"] == 20  # type: ignore[index]


def test_a_retryable_failure_of_a_job_asked_to_cancel_cancels_it(aws: Aws) -> None:
    job_id = running(aws)
    aws.store.cancel(job_id, "alice", NOW)

    assert (
        aws.store.record_failure(job_id, "run-1", "RuntimeError", "x", final=False) is WriteOutcome.CANCELLED
    )
    assert (
        aws.store.record_failure(job_id, "run-1", "RuntimeError", "x", final=False) is WriteOutcome.FENCED_OUT
    )

    item = aws.item(job_id)
    assert item is not None
    assert item["status"] == "CANCELLED"
    assert not {"runId", "leaseUntil", "cancelRequested"} & item.keys()


def test_a_stale_run_cannot_cancel(aws: Aws) -> None:
    job_id = running(aws, EXPIRED)
    aws.store.claim(job_id, "run-2", LIVE, NOW)

    assert aws.store.cancel_run(job_id, "run-1", NOW) is WriteOutcome.FENCED_OUT
    assert aws.store.cancel_run(job_id, "run-2", NOW) is WriteOutcome.APPLIED
    assert aws.item(job_id)["status"] == "CANCELLED"  # type: ignore[index]


def test_a_claim_or_dead_letter_of_a_job_asked_to_cancel_cancels_it(aws: Aws) -> None:
    claimed = running(aws, EXPIRED)
    aws.store.cancel(claimed, "alice", NOW - dt.timedelta(hours=1))  # requested while the run was alive
    dead = running(aws, EXPIRED)
    aws.store.cancel(dead, "alice", NOW - dt.timedelta(hours=1))

    assert aws.store.claim(claimed, "run-2", LIVE, NOW).status is ClaimStatus.CANCELLED
    assert aws.store.mark_dead_lettered(dead, NOW) is DeadLetterOutcome.CANCELLED
    assert aws.item(claimed)["status"] == aws.item(dead)["status"] == "CANCELLED"  # type: ignore[index]
