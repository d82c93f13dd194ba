"""lambda_handlers.status_table.StatusTable.update: the one conditional UpdateItem every job write uses."""

from __future__ import annotations

import uuid

from lambda_handlers.conditions import ALIVE
from lambda_handlers.models import Job, JobStatus, utc_now
from lambda_handlers.status_table import StatusTable
from tests.unit.handlers.conftest import TTL_SECONDS, Aws


def given_job(aws: Aws) -> str:
    job_id = str(uuid.uuid4())
    aws.store.create(Job.new(job_id, owner="alice", payload_sha256="0" * 64, now=utc_now(), ttl_seconds=60))
    return job_id


def table(aws: Aws) -> StatusTable:
    return StatusTable(aws.table_name, aws.dynamodb, ttl_seconds=TTL_SECONDS)


def test_an_applied_update_returns_the_job_as_written(aws: Aws) -> None:
    job_id = given_job(aws)

    written = table(aws).update(
        "test", job_id, "SET #s = :failed, updatedAt = :now", ALIVE, {":failed": {"S": "FAILED"}}
    )

    assert written.applied
    assert written.job is not None
    assert written.job.status is JobStatus.FAILED


def test_a_refused_update_returns_the_job_as_found_and_writes_nothing(aws: Aws) -> None:
    job_id = given_job(aws)
    before = aws.item(job_id)

    written = table(aws).update(
        "test",
        job_id,
        "SET #s = :failed",
        "#s = :running",
        {":failed": {"S": "FAILED"}, ":running": {"S": "RUNNING"}},
    )

    assert not written.applied
    assert written.job is not None
    assert written.job.status is JobStatus.QUEUED
    assert aws.item(job_id) == before


def test_a_refused_update_of_a_missing_job_finds_none(aws: Aws) -> None:
    written = table(aws).update("test", str(uuid.uuid4()), "SET updatedAt = :now", ALIVE, {})

    assert (written.applied, written.job) == (False, None)


def test_an_update_may_leave_the_written_job_untold(aws: Aws) -> None:
    job_id = given_job(aws)

    written = table(aws).update("test", job_id, "SET expiresAt = :expires", ALIVE, {}, return_new=False)

    assert (written.applied, written.job) == (True, None)
    item = aws.item(job_id)
    assert item is not None
    assert item["expiresAt"] > 0


def test_the_backoff_is_arithmetic_without_a_worker(aws_environment: None) -> None:
    # job_run builds the Powertools metrics at import: import it under the tests' Powertools settings
    from lambda_handlers.job_run import backoff_seconds

    class Top:
        def uniform(self, low: float, high: float) -> float:
            return high

    assert [backoff_seconds(a, 10, 900, Top()) for a in (1, 2, 3, 8, 9)] == [10, 20, 40, 900, 900]  # type: ignore[arg-type]
