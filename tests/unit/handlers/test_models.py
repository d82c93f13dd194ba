"""lambda_handlers.models: the item mapping and the HTTP resource of each status."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import replace

import pytest

from lambda_handlers.models import MAX_PENDING_SECONDS, ItemError, Job, JobStatus, format_timestamp, is_job_id

NOW = dt.datetime(2026, 11, 23, 10, 0, 0, 123_456, tzinfo=dt.UTC)
URL = "https://api.example.com/prod/jobs/4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21"


def queued() -> Job:
    return Job.new(
        "4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21",
        owner="alice",
        payload_sha256="ab" * 32,
        now=NOW,
        ttl_seconds=60,
    )


def test_statuses_know_whether_they_are_terminal() -> None:
    assert {s for s in JobStatus if s.is_terminal} == {
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
    }
    assert JobStatus("QUEUED") is JobStatus.QUEUED
    assert JobStatus.RUNNING == "RUNNING"


def test_formats_times_as_iso_utc_with_milliseconds() -> None:
    assert format_timestamp(NOW) == "2026-11-23T10:00:00.123Z"
    eastern = dt.timezone(dt.timedelta(hours=-5))
    assert format_timestamp(dt.datetime(2026, 11, 23, 5, 0, tzinfo=eastern)) == "2026-11-23T10:00:00.000Z"


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (str(uuid.uuid4()), True),
        (str(uuid.uuid4()).upper(), False),
        (str(uuid.uuid1()), False),
        ("4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21\n", False),
        ("4f0c5a0e-3b7d-4d0f-7a57-0f1c2f8b9e21", False),
        (None, False),
        (42, False),
    ],
)
def test_recognises_canonical_job_ids(value: object, valid: bool) -> None:
    assert is_job_id(value) is valid


def test_a_new_job_is_queued_and_kept_while_it_can_wait_plus_its_ttl() -> None:
    job = queued()

    assert job.status is JobStatus.QUEUED
    assert job.created_at == job.updated_at == "2026-11-23T10:00:00.123Z"
    assert job.expires_at == int(NOW.timestamp()) + MAX_PENDING_SECONDS + 60
    assert job.attempts == 0
    assert not job.is_expired(NOW + dt.timedelta(seconds=MAX_PENDING_SECONDS + 59))
    assert job.is_expired(NOW + dt.timedelta(seconds=MAX_PENDING_SECONDS + 60))


def test_maps_to_and_from_the_documented_item() -> None:
    job = replace(
        queued(),
        status=JobStatus.RUNNING,
        attempts=2,
        progress_percent=12.5,
        progress_message="reading",
        error_type="RuntimeError",
        error_message="boom",
        run_id="abc",
        lease_until=1_800_000_000_000,
        job_type="reports",
    )

    item = job.to_item()

    assert item == {
        "pk": {"S": job.job_id},
        "owner": {"S": "alice"},
        "status": {"S": "RUNNING"},
        "createdAt": {"S": "2026-11-23T10:00:00.123Z"},
        "updatedAt": {"S": "2026-11-23T10:00:00.123Z"},
        "expiresAt": {"N": str(job.expires_at)},
        "attempts": {"N": "2"},
        "jobType": {"S": "reports"},
        "payloadSha256": {"S": "ab" * 32},
        "progressPercent": {"N": "12.5"},
        "progressMessage": {"S": "reading"},
        "errorType": {"S": "RuntimeError"},
        "errorMessage": {"S": "boom"},
        "runId": {"S": "abc"},
        "leaseUntil": {"N": "1800000000000"},
    }
    assert Job.from_item(item) == job


@pytest.mark.parametrize(
    "item",
    [
        {"pk": {"S": "x"}},
        {**queued().to_item(), "status": {"S": "DONE"}},
        {**queued().to_item(), "attempts": {"S": "1"}},
    ],
)
def test_refuses_a_malformed_item(item: dict[str, dict[str, str]]) -> None:
    with pytest.raises(ItemError, match="malformed"):
        Job.from_item(item)  # type: ignore[arg-type]


def test_a_queued_resource_has_no_progress_result_or_error() -> None:
    assert queued().to_resource(URL) == {
        "id": "4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21",
        "type": "jobs",
        "status": "QUEUED",
        "createdAt": "2026-11-23T10:00:00.123Z",
        "updatedAt": "2026-11-23T10:00:00.123Z",
        "attempts": 0,
        "progress": None,
        "links": {"self": URL},
    }


def test_a_retried_job_shows_its_last_error_and_progress() -> None:
    job = replace(
        queued(),
        status=JobStatus.RUNNING,
        attempts=2,
        progress_percent=33.33,
        error_type="E",
        error_message="m",
    )

    resource = job.to_resource(URL)

    assert resource["progress"] == {"percent": 33.33, "message": None}
    assert resource["lastError"] == {"type": "E", "message": "m"}
    assert "error" not in resource
    assert "result" not in resource


def test_a_succeeded_job_shows_its_result() -> None:
    job = replace(
        queued(), status=JobStatus.SUCCEEDED, progress_percent=100.0, result=json.dumps([1, {"a": None}])
    )

    resource = job.to_resource(URL)

    assert resource["result"] == [1, {"a": None}]
    assert resource["progress"] == {"percent": 100, "message": None}
    assert "lastError" not in resource
    assert list(resource)[-1] == "links"


def test_a_failed_job_shows_its_error_only() -> None:
    job = replace(queued(), status=JobStatus.FAILED, error_type="DeadLettered", error_message="gone")

    resource = job.to_resource(URL)

    assert resource["error"] == {"type": "DeadLettered", "message": "gone"}
    assert "lastError" not in resource
    assert "result" not in resource


def test_the_owner_is_never_shown() -> None:
    for status in JobStatus:
        assert "alice" not in json.dumps(replace(queued(), status=status, result="null").to_resource(URL))


def test_maps_a_cancel_request_to_and_from_the_item() -> None:
    job = replace(queued(), status=JobStatus.RUNNING, cancel_requested=True)

    item = job.to_item()

    assert item["cancelRequested"] == {"BOOL": True}
    assert Job.from_item(item) == job
    assert "cancelRequested" not in queued().to_item()
    assert Job.from_item(queued().to_item()).cancel_requested is False


def test_refuses_a_cancel_request_that_is_not_a_boolean() -> None:
    with pytest.raises(ItemError, match="malformed"):
        Job.from_item({**queued().to_item(), "cancelRequested": {"S": "yes"}})  # type: ignore[dict-item]


@pytest.mark.parametrize("status", list(JobStatus))
def test_shows_a_cancel_request_only_while_it_is_pending(status: JobStatus) -> None:
    resource = replace(queued(), status=status, cancel_requested=True, result="null").to_resource(URL)

    assert ("cancelRequested" in resource) is (not status.is_terminal)
    if not status.is_terminal:
        assert resource["cancelRequested"] is True
    assert "cancelRequested" not in replace(queued(), status=status, result="null").to_resource(URL)


@pytest.mark.parametrize(
    ("status", "lease", "takeable"),
    [
        (JobStatus.QUEUED, None, True),
        (JobStatus.RUNNING, None, True),
        (JobStatus.RUNNING, 0, True),
        (JobStatus.RUNNING, 2**41, False),
        (JobStatus.SUCCEEDED, None, False),
        (JobStatus.CANCELLED, None, False),
    ],
)
def test_knows_whether_a_live_run_holds_it(status: JobStatus, lease: int | None, takeable: bool) -> None:
    assert replace(queued(), status=status, lease_until=lease).is_takeable(NOW) is takeable


def test_an_item_written_before_job_types_is_of_type_jobs() -> None:
    # GIVEN an item without jobType (written by an older runtime)
    item = queued().to_item()
    del item["jobType"]

    # WHEN it is read THEN its type is the single-handler form's, and the resource shows it
    job = Job.from_item(item)
    assert job.job_type == "jobs"
    assert job.to_resource(URL)["type"] == "jobs"
