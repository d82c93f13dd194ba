"""Failure paths end FAILED as deployed: retries, max_receive_count, the DLQ, and the Lambda timeout.

The jobs are submitted together (each takes seconds of visibility timeouts), then each test waits for its own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import E2eRuntime
from tests.e2e.e2e_app.e2e_settings import MAX_RECEIVE_COUNT

#: Enough for two attempts, two visibility timeouts and the dead-letter consumer, on a loaded machine.
FAILURE_DEADLINE = 45.0


@pytest.fixture(scope="module")
def hang_pid_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hang") / "pid"


@pytest.fixture(scope="module")
def failing_jobs(e2e: E2eRuntime, hang_pid_file: Path) -> dict[str, str]:
    """Submit one job per failure mode; return their ids."""
    client = e2e.client()
    ids = {}
    for mode in ("fail", "crash", "sleep", "hang"):
        accepted = client.submit({"mode": mode, "seconds": 30, "pid_file": str(hang_pid_file)})
        assert accepted.status == 202, accepted.body
        ids[mode] = accepted.json()["id"]
    return ids


def _final(e2e: E2eRuntime, job_id: str) -> dict[str, Any]:
    try:
        return e2e.client().wait(job_id, poll_interval=0.25, timeout=FAILURE_DEADLINE)
    except TimeoutError as error:
        pytest.fail(f"{error}\n{e2e.function_logs()}")


def test_failing_handler_ends_failed_after_max_receive_count_attempts(
    e2e: E2eRuntime, failing_jobs: dict[str, str]
) -> None:
    job = _final(e2e, failing_jobs["fail"])

    assert job["status"] == "FAILED"
    assert job["attempts"] == MAX_RECEIVE_COUNT
    assert job["error"]["type"] == "RuntimeError"
    assert "failed on purpose" in job["error"]["message"]


def test_crashing_worker_process_is_dead_lettered_then_failed(
    e2e: E2eRuntime, failing_jobs: dict[str, str]
) -> None:
    job = _final(e2e, failing_jobs["crash"])

    assert job["status"] == "FAILED", job
    assert job["error"]["type"] == "DeadLettered", job


def test_handler_running_past_its_timeout_is_stopped_and_fails(
    e2e: E2eRuntime, failing_jobs: dict[str, str]
) -> None:
    job = _final(e2e, failing_jobs["sleep"])

    assert job["status"] == "FAILED", job
    assert job["error"]["type"] == "JobTimeoutError", job


def test_handler_that_ignores_the_timeout_is_killed_like_a_lambda_timeout(
    e2e: E2eRuntime, failing_jobs: dict[str, str], hang_pid_file: Path
) -> None:
    job = _final(e2e, failing_jobs["hang"])

    assert job["status"] == "FAILED", job
    assert job["error"]["type"] == "DeadLettered", job
    pid = int(hang_pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the environment was killed at the deadline, not left running


def test_queues_are_drained_once_the_failed_jobs_are_recorded(
    e2e: E2eRuntime, failing_jobs: dict[str, str]
) -> None:
    for job_id in failing_jobs.values():
        assert _final(e2e, job_id)["status"] == "FAILED"
    sqs: Any = e2e.sqs()

    counts = {}
    for url in sqs.list_queues()["QueueUrls"]:
        attributes = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        counts[url.rsplit("/", 1)[-1]] = sum(int(v) for v in attributes.values())

    # Every queue of the app: each job type's queue and DLQ, the webhook queue and its DLQ, the events' DLQ
    assert len(counts) == 7, counts
    assert set(counts.values()) == {0}, counts  # the DLQ messages were consumed by the dead-letter function
