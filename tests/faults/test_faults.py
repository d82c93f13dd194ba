"""Faults injected into a running local runtime; each job's terminal state is read over HTTP (GET /jobs/{id}).

The jobs that need no action from the test (transient, always failing, overrunning) are submitted together
at the start of the module, so their retries and backoffs overlap the tests that act on a running job.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import FaultsRuntime, message_body, wait_until
from tests.faults.faults_app.faults_settings import MAX_RECEIVE_COUNT, VISIBILITY_TIMEOUT_SECONDS

#: The time a duplicate message may take to come back and be dropped (visibility timeout, one poll, margin).
DRAIN_DEADLINE = 3 * VISIBILITY_TIMEOUT_SECONDS + 10


@pytest.fixture(scope="module")
def passive_jobs(faults: FaultsRuntime) -> dict[str, str]:
    """One job per fault that needs no action from the test: their ids, by mode."""
    return {
        "transient": faults.submit("transient", failures=1)[0],
        "fail": faults.submit("fail")[0],
        "sleep": faults.submit("sleep", seconds=30)[0],
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_transient_failure_is_retried_and_succeeds(
    faults: FaultsRuntime, passive_jobs: dict[str, str]
) -> None:
    job_id = passive_jobs["transient"]

    job = faults.wait_terminal(job_id)

    assert job["status"] == "SUCCEEDED", job
    assert job["attempts"] == 2, job
    assert job["result"] == {"mode": "transient", "executions": 2}, job
    assert len(faults.executions(job_id)) == 2
    assert faults.completions(job_id) == 1


def test_handler_that_always_raises_fails_after_max_receive_count_attempts(
    faults: FaultsRuntime, passive_jobs: dict[str, str]
) -> None:
    job_id = passive_jobs["fail"]

    job = faults.wait_terminal(job_id)

    assert job["status"] == "FAILED", job
    assert job["attempts"] == MAX_RECEIVE_COUNT, job
    assert job["error"]["type"] == "RuntimeError", job
    assert "failed on purpose" in job["error"]["message"], job
    assert len(faults.executions(job_id)) == MAX_RECEIVE_COUNT
    assert faults.completions(job_id) == 0


def test_handler_overrunning_its_timeout_fails_with_a_timeout_error(
    faults: FaultsRuntime, passive_jobs: dict[str, str]
) -> None:
    job_id = passive_jobs["sleep"]

    job = faults.wait_terminal(job_id)

    assert job["status"] == "FAILED", job
    assert job["error"]["type"] == "JobTimeoutError", job
    assert job["attempts"] == MAX_RECEIVE_COUNT, job
    assert faults.completions(job_id) == 0


def test_worker_process_killed_mid_job_is_retried_and_succeeds(faults: FaultsRuntime) -> None:
    # GIVEN a job whose first execution writes its process id, then sleeps
    job_id, _ = faults.submit("killme", seconds=30)
    pid_file = faults.side_channel / f"pid-{job_id}"
    pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text(), 15, "the handler's pid file"))
    assert faults.client().status(job_id).json()["status"] == "RUNNING"

    # WHEN the execution environment running it is killed (a real SIGKILL, no exception in the handler)
    os.kill(pid, signal.SIGKILL)

    # THEN the message comes back after the visibility timeout, the stale lease is taken over, and it succeeds
    job = faults.wait_terminal(job_id)
    assert job["status"] == "SUCCEEDED", job
    assert job["attempts"] == 2, job
    assert len(faults.executions(job_id)) == 2
    assert faults.completions(job_id) == 1
    assert not _alive(pid)


def test_duplicate_message_delivered_while_the_job_runs_is_executed_once(faults: FaultsRuntime) -> None:
    # GIVEN a job that runs for 1.5 s (the handler is stopped at 2 s)
    job_id, payload = faults.submit("ok", delay=1.5)
    wait_until(lambda: faults.executions(job_id), 10, "the first execution to start")

    # WHEN a duplicate of its message is delivered while it runs (SQS delivers at least once)
    faults.aws("sqs").send_message(QueueUrl=faults.queue_url, MessageBody=message_body(job_id, payload))

    # THEN the job succeeds once; the duplicate finds the job held (then finished) and is dropped
    job = faults.wait_terminal(job_id)
    assert job["status"] == "SUCCEEDED", job
    assert job["attempts"] == 1, job
    wait_until(lambda: faults.queue_depth() == 0, DRAIN_DEADLINE, "the duplicate message to be consumed")
    assert len(faults.executions(job_id)) == 1, faults.executions(job_id)
    assert faults.completions(job_id) == 1
    assert faults.client().status(job_id).json() == job  # nothing was recorded after the completion


def test_message_duplicated_at_submit_is_executed_once(faults: FaultsRuntime) -> None:
    # GIVEN a job whose message is sent a second time right after the POST
    job_id, payload = faults.submit("ok", delay=1)
    sqs: Any = faults.aws("sqs")
    sqs.send_message(QueueUrl=faults.queue_url, MessageBody=message_body(job_id, payload))

    # WHEN both copies are delivered (to concurrent worker environments, or one after the other)
    job = faults.wait_terminal(job_id)
    wait_until(lambda: faults.queue_depth() == 0, DRAIN_DEADLINE, "both messages to be consumed")

    # THEN one claim succeeded (attempts counts claims), one handler ran, one completion was recorded
    # (test_race.py forces the two claims to overlap; here they may or may not)
    assert job["status"] == "SUCCEEDED", job
    assert job["attempts"] == 1, job
    assert len(faults.executions(job_id)) == 1, faults.executions(job_id)
    assert faults.completions(job_id) == 1
    assert faults.queue_depth(faults.dead_letter_queue_url) == 0
