"""The API's bucket: results too large for the item, saved files, claim-checked payloads, GET /jobs/{id}/result."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from lambda_handlers import contract, objects
from lambda_handlers.job import JobContext
from lambda_handlers.messages import decode
from tests.unit.handlers import jobs
from tests.unit.handlers.conftest import Aws
from tests.unit.handlers.events import (
    FakeLambdaContext,
    body,
    get_event,
    post_event,
    record_from_message,
    rest_event,
    sqs_event,
)
from tests.unit.handlers.test_submit import assert_problem
from tests.unit.handlers.test_worker import given_queued_job

#: Whose jobs ``given_queued_job`` makes.
OWNER = "alice"


@pytest.fixture
def with_bucket(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> str:
    """The functions use the test bucket (``ASYNC_JOB_BUCKET_NAME``), and take bodies up to 4 MiB."""
    monkeypatch.setenv("ASYNC_JOB_BUCKET_NAME", aws.bucket)
    monkeypatch.setenv("ASYNC_JOB_MAX_PAYLOAD_BYTES", str(4 * 1024 * 1024))
    return aws.bucket


def s3_object(aws: Aws, key: str) -> bytes:
    return bytes(boto3.client("s3").get_object(Bucket=aws.bucket, Key=key)["Body"].read())


def result_event(job_id: str) -> dict[str, Any]:
    return rest_event(
        "GET",
        content_type=None,
        resource="/jobs/{id}/result",
        path=f"/jobs/{job_id}/result",
        path_parameters={"id": job_id},
        user_arn=OWNER,
    )


def run_worker(
    entry_points: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    job: str,
    record: dict[str, Any],
) -> dict[str, Any]:
    monkeypatch.setenv("ASYNC_JOB_HANDLER", f"tests.unit.handlers.jobs.{job}")
    worker = entry_points("lambda_handlers.worker")
    return worker.handler(sqs_event(record), FakeLambdaContext())  # type: ignore[no-any-return]


def test_a_result_too_large_for_the_item_goes_to_the_bucket_and_result_redirects_to_it(
    aws: Aws,
    with_bucket: str,
    entry_points: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: FakeLambdaContext,
) -> None:
    # GIVEN a handler returning 1 MB of JSON
    job_id, record = given_queued_job(aws, {"result_bytes": 1_000_000})

    run_worker(entry_points, monkeypatch, "save_files", record)

    # THEN the item keeps its key and size, the bucket the bytes
    item = aws.item(job_id)
    assert item is not None
    assert (item["status"], item["resultRef"], item["resultBytes"]) == (
        "SUCCEEDED",
        f"jobs/{job_id}/result.json",
        1_000_000,
    )
    assert "result" not in item
    assert s3_object(aws, f"jobs/{job_id}/result.json") == b'"' + b"x" * 999_998 + b'"'
    # AND the job shows no inline result but where to read it
    status = entry_points("lambda_handlers.status")
    job = body(status.handler(get_event(job_id, user_arn=OWNER), lambda_context))
    assert "result" not in job
    assert job["links"]["result"].endswith(f"/jobs/{job_id}/result")
    # AND /result answers 303 to a presigned link of the object, valid 5 minutes
    response = status.handler(result_event(job_id), lambda_context)
    assert response["statusCode"] == 303
    assert response["body"] == ""
    location = urlsplit(response["headers"]["Location"])
    assert location.path.endswith(f"/jobs/{job_id}/result.json")
    assert parse_qs(location.query)["X-Amz-Expires"] == [str(objects.LINK_SECONDS)]
    assert response["headers"]["Cache-Control"] == "no-store"


def test_a_small_result_stays_inline_and_result_answers_it(
    aws: Aws,
    with_bucket: str,
    entry_points: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: FakeLambdaContext,
) -> None:
    job_id, record = given_queued_job(aws, {"report": "Q3"})
    run_worker(entry_points, monkeypatch, "succeed", record)
    status = entry_points("lambda_handlers.status")

    job = body(status.handler(get_event(job_id, user_arn=OWNER), lambda_context))
    response = status.handler(result_event(job_id), lambda_context)

    assert job["result"]["echo"] == {"report": "Q3"}
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == job["result"]
    assert "resultRef" not in (aws.item(job_id) or {})


def test_result_of_an_unfinished_or_failed_job_is_a_409(
    aws: Aws,
    with_bucket: str,
    entry_points: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: FakeLambdaContext,
) -> None:
    queued, _ = given_queued_job(aws)
    failed, record = given_queued_job(aws)
    run_worker(entry_points, monkeypatch, "give_up", record)
    status = entry_points("lambda_handlers.status")

    waiting = status.handler(result_event(queued), lambda_context)
    over = status.handler(result_event(failed), lambda_context)
    unknown = status.handler(result_event(str(uuid.uuid4())), lambda_context)

    assert assert_problem(waiting, 409, "job-not-succeeded")["jobStatus"] == "QUEUED"
    assert waiting["headers"]["Retry-After"]
    assert assert_problem(over, 409, "job-not-succeeded")["jobStatus"] == "FAILED"
    assert "Retry-After" not in over["headers"]
    assert_problem(unknown, 404, "job-not-found")


def test_saved_files_are_listed_with_download_links_and_kept_in_the_bucket(
    aws: Aws,
    with_bucket: str,
    entry_points: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: FakeLambdaContext,
) -> None:
    files = {"report.csv": "account,total\nacme,12\n", "summary.txt": "ok", "again.csv": "1"}
    job_id, record = given_queued_job(aws, {"files": files})
    run_worker(entry_points, monkeypatch, "save_files", record)
    status = entry_points("lambda_handlers.status")

    job = body(status.handler(get_event(job_id, user_arn=OWNER), lambda_context))

    listed = {entry["name"]: entry for entry in job["files"]}
    assert set(listed) == set(files)
    assert listed["report.csv"]["size"] == len(files["report.csv"])
    assert listed["report.csv"]["contentType"] == "text/csv"
    url = urlsplit(listed["report.csv"]["url"])
    assert url.path.endswith(f"/jobs/{job_id}/files/report.csv")
    assert "attachment" in parse_qs(url.query)["response-content-disposition"][0]
    assert listed["report.csv"]["urlExpiresAt"] > job["updatedAt"]
    for name, text in files.items():
        assert s3_object(aws, objects.file_key(job_id, name)) == text.encode()


def test_the_files_room_is_taken_from_the_results(
    aws: Aws,
    with_bucket: str,
    entry_points: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN files whose list is long, and a result that fits the item only without that list
    files = {f"part-{index:03d}-{'n' * 150}.csv": "x" for index in range(100)}
    job_id, record = given_queued_job(aws, {"files": files, "result_bytes": 390_000})

    run_worker(entry_points, monkeypatch, "save_files", record)

    # THEN the result went to the bucket instead of making the item too large
    item = aws.item(job_id)
    assert item is not None
    assert item["status"] == "SUCCEEDED", item.get("errorMessage")
    assert item["resultRef"] == objects.result_key(job_id)
    assert len(json.loads(item["files"])) == 100


def test_save_file_refuses_a_bad_name_and_keeps_files_in_memory_without_a_saver() -> None:
    job = JobContext("4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21")

    job.save_file("a.txt", "one")
    job.save_file("a.txt", b"two", "text/plain")

    assert job.saved_files == {"a.txt": (b"two", "text/plain")}
    for name in ("../etc/passwd", ".hidden", "", "a/b", "x" * 201):
        with pytest.raises(ValueError, match="not allowed"):
            job.save_file(name, "x")


def test_a_payload_over_the_claim_check_size_travels_through_the_bucket(
    aws: Aws,
    with_bucket: str,
    entry_points: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: FakeLambdaContext,
) -> None:
    # GIVEN a 3 MB body
    text = json.dumps({"rows": ["r" * 1000] * 3000})
    assert len(text) > 3_000_000

    submit = entry_points("lambda_handlers.submit")
    response = submit.handler(post_event(text), lambda_context)

    # THEN it is accepted; the message is a claim check and the payload is in the bucket as it was sent
    assert response["statusCode"] == 202, response["body"]
    job_id = body(response)["id"]
    (message,) = aws.receive(visibility_timeout=30)
    assert len(message["Body"]) < 200
    assert decode(message["Body"]).payload_ref == f"payloads/{job_id}.json"
    assert s3_object(aws, f"payloads/{job_id}.json") == text.encode()
    # AND the handler sees the same payload as a small one
    jobs.reset()
    run_worker(entry_points, monkeypatch, "succeed", record_from_message(message, aws.queue_arn))
    assert (aws.item(job_id) or {})["status"] == "SUCCEEDED"
    assert jobs.CALLS[0][0] == json.loads(text)


def test_a_claim_checked_payload_that_is_gone_fails_the_job_once(
    aws: Aws,
    with_bucket: str,
    entry_points: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: FakeLambdaContext,
) -> None:
    text = json.dumps({"blob": "b" * (contract.CLAIM_CHECK_BYTES + 1)})
    response = entry_points("lambda_handlers.submit").handler(post_event(text), lambda_context)
    job_id = body(response)["id"]
    boto3.client("s3").delete_object(Bucket=aws.bucket, Key=f"payloads/{job_id}.json")
    (message,) = aws.receive(visibility_timeout=30)

    result = run_worker(entry_points, monkeypatch, "succeed", record_from_message(message, aws.queue_arn))

    item = aws.item(job_id)
    assert item is not None
    assert (item["status"], item["errorType"]) == ("FAILED", "PayloadNotFound")
    assert result == {"batchItemFailures": []}


def test_without_a_bucket_a_large_payload_stays_in_the_message(
    aws: Aws,
    entry_points: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: FakeLambdaContext,
) -> None:
    monkeypatch.setenv("ASYNC_JOB_MAX_PAYLOAD_BYTES", str(contract.CLAIM_CHECK_BYTES * 2))
    text = json.dumps({"blob": "b" * (contract.CLAIM_CHECK_BYTES + 1)})

    response = entry_points("lambda_handlers.submit").handler(post_event(text), lambda_context)

    assert response["statusCode"] == 202
    (message,) = aws.receive()
    assert decode(message["Body"]).payload == json.loads(text)
