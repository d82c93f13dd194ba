"""Long job types on the local runtime, over HTTP: a durable execution per job, run through several invocations
of the durable worker (each inside its per-invocation Timeout), cancelled mid-run, failed after its retries,
started once for a message delivered twice, and ended by the sweep when its execution dies outside our code.

The long app (``tests/e2e/long_app``: one type ``long``, invocations of 4 s, 2 attempts) is synthesized and
served once for this module by ``async-job local`` with a 2 s sweep. The durable service's endpoint (printed at
start-up) is read with a plain boto3 Lambda client, to see the executions behind the jobs.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from async_job_local.client import JobClient
from tests.e2e.conftest import ROOT, START_TIMEOUT, CliProcess, free_port
from tests.e2e.long_app.app import INVOCATION_SECONDS, MAX_RECEIVE_COUNT

LONG_APP = Path(__file__).resolve().parent / "long_app" / "app.py"
SWEEP_SECONDS = 2
REPORT = re.compile(r"REPORT RequestId: (\S+)\tDuration: ([\d.]+) ms")


class LongRuntime:
    """The long app served by ``async-job local``: its URLs, its durable endpoint and its logs."""

    def __init__(self, cli: CliProcess, log_file: Path) -> None:
        self.cli = cli
        self.log_file = log_file
        self.jobs_url = cli.wait_for(
            r"^\s+AsyncJobLong/Long: (http://127\.0\.0\.1:\d+/\S+/jobs)$", START_TIMEOUT
        )[1]
        self.moto_url = cli.wait_for(r"backend: moto, embedded \((http://127\.0\.0\.1:\d+)", 5)[1]
        self.function_arn = cli.wait_for(r"durable function: (arn:aws:lambda:\S+:\d+)$", 5)[1]
        self.durable_url = cli.wait_for(r"durable executions: (http://127\.0\.0\.1:\d+)", 5)[1]
        cli.wait_for(r"^Ready\.", 10)
        credentials = {
            "region_name": "us-east-1",
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        }
        self.lambda_ = boto3.client("lambda", endpoint_url=self.durable_url, **credentials)
        self.sqs = boto3.client("sqs", endpoint_url=self.moto_url, **credentials)

    @property
    def worker_name(self) -> str:
        return self.function_arn.split(":")[6]

    def client(self) -> JobClient:
        return JobClient(self.jobs_url, principal="local-user", timeout=15)

    def execution_of(self, job_id: str, *, ended: bool = False) -> dict[str, Any]:
        """The one durable execution named after ``job_id`` (fails if there are none or several); with
        ``ended``, once it has ended (the job's outcome is written by the execution's last step, just before
        the execution itself ends)."""
        listed = self.lambda_.list_durable_executions_by_function(
            FunctionName=self.function_arn, DurableExecutionName=job_id
        )["DurableExecutions"]
        assert len(listed) == 1, listed
        deadline = time.monotonic() + 10
        while True:
            execution = self.lambda_.get_durable_execution(
                DurableExecutionArn=listed[0]["DurableExecutionArn"]
            )
            if not ended or execution["Status"] != "RUNNING" or time.monotonic() > deadline:
                return dict(execution)
            time.sleep(0.1)

    def worker_invocations(self) -> dict[str, float]:
        """Every durable worker invocation so far: request id -> duration, seconds (its REPORT lines)."""
        found = {}
        for line in self.log_file.read_text(errors="replace").splitlines():
            if line.startswith(f"{self.worker_name} | REPORT"):
                match = REPORT.search(line)
                if match:
                    found[match[1]] = float(match[2]) / 1000
        return found

    def logs(self, last: int = 80) -> str:
        lines = self.log_file.read_text(errors="replace").splitlines() if self.log_file.exists() else []
        return "\n".join(lines[-last:])


@pytest.fixture(scope="module")
def long(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LongRuntime]:
    work = tmp_path_factory.mktemp("long")
    log_file = work / "functions.log"
    cli = CliProcess(
        "--app",
        str(LONG_APP.relative_to(ROOT)),
        "--port",
        str(free_port()),
        "--output",
        str(work / "cdk.out"),
        "--sweep-interval",
        str(SWEEP_SECONDS),
        "--log-file",
        str(log_file),
    )
    try:
        yield LongRuntime(cli, log_file)
    finally:
        cli.stop()


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    """A directory the job's steps mark each attempt in (``<job id>.<step>.<attempt>``)."""
    return tmp_path


def _submit(long: LongRuntime, payload: dict[str, Any]) -> str:
    accepted = long.client().submit(payload, job_type="long")
    assert accepted.status == 202, accepted.body
    return str(accepted.json()["id"])


def _wait(long: LongRuntime, job_id: str, timeout: float = 60) -> dict[str, Any]:
    try:
        return long.client().wait(job_id, poll_interval=0.2, timeout=timeout)
    except TimeoutError as error:
        pytest.fail(f"{error}\n{long.logs()}")


def _steps_run(marks: Path, job_id: str) -> dict[int, int]:
    """Attempts per step index of ``job_id``."""
    counts: dict[int, int] = {}
    for mark in marks.glob(f"{job_id}.*"):
        index = int(mark.name.split(".")[1])
        counts[index] = counts.get(index, 0) + 1
    return counts


def test_a_long_job_runs_through_several_invocations_to_succeeded_with_its_progress(
    long: LongRuntime, marks: Path
) -> None:
    # GIVEN 5 steps of 1.5 s and a 1 s wait: 8.5 s in all, more than twice the 4 s per-invocation limit
    before = set(long.worker_invocations())
    started = time.monotonic()
    job_id = _submit(long, {"steps": 5, "seconds": 1.5, "wait": 1, "marks": str(marks)})

    # WHEN it is polled until it ends
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        job = long.client().status(job_id).json()
        seen.append(job)
        if job["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            break
        time.sleep(0.2)
    elapsed = time.monotonic() - started

    # THEN it SUCCEEDED with its result, each step ran once, progress was seen rising while it ran
    final = seen[-1]
    assert final["status"] == "SUCCEEDED", f"{final}\n{long.logs()}"
    assert final["result"] == {"steps": 5}
    assert _steps_run(marks, job_id) == dict.fromkeys(range(5), 1)
    partial = [
        job["progress"]["percent"]
        for job in seen
        if job["status"] == "RUNNING" and job.get("progress") and 0 < job["progress"]["percent"] < 100
    ]
    assert len(set(partial)) >= 2, seen
    assert partial == sorted(partial)
    assert elapsed > INVOCATION_SECONDS * 2

    # AND its durable execution SUCCEEDED through several worker invocations, each inside the 4 s Timeout
    assert long.execution_of(job_id, ended=True)["Status"] == "SUCCEEDED"
    invocations = {k: v for k, v in long.worker_invocations().items() if k not in before}
    assert len(invocations) >= 3, invocations
    assert max(invocations.values()) < INVOCATION_SECONDS, invocations


def test_a_long_job_cancelled_mid_run_ends_cancelled_and_its_remaining_steps_never_run(
    long: LongRuntime, marks: Path
) -> None:
    # GIVEN a job of 8 steps of 1 s, running its second step
    job_id = _submit(long, {"steps": 8, "seconds": 1, "wait": 0, "marks": str(marks)})
    deadline = time.monotonic() + 30
    while not _steps_run(marks, job_id).get(1) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _steps_run(marks, job_id).get(1), long.logs()

    # WHEN its owner cancels it
    response = long.client().request("DELETE", long.client().job_url(job_id))
    assert response.status in (200, 202), response.body

    # THEN it ends CANCELLED, its execution STOPPED, and no step after the current one ever runs
    job = _wait(long, job_id)
    assert job["status"] == "CANCELLED", f"{job}\n{long.logs()}"
    assert long.execution_of(job_id, ended=True)["Status"] == "STOPPED"
    ran = _steps_run(marks, job_id)
    time.sleep(3)  # longer than a step and a retry backoff: a step still to run would have marked by now
    assert _steps_run(marks, job_id) == ran
    assert max(ran) <= 2, ran
    assert 7 not in ran


def test_a_long_job_whose_step_fails_every_attempt_ends_failed_after_its_retries(
    long: LongRuntime, marks: Path
) -> None:
    # GIVEN a job whose step 1 raises on every attempt
    job_id = _submit(long, {"steps": 3, "seconds": 0.2, "wait": 0, "fail_step": 1, "marks": str(marks)})

    # WHEN it runs THEN it ends FAILED with the step's error, after max_receive_count attempts of that step
    job = _wait(long, job_id)
    assert job["status"] == "FAILED", f"{job}\n{long.logs()}"
    assert "step 1 fails on purpose" in json.dumps(job["error"]), job
    assert _steps_run(marks, job_id) == {0: 1, 1: MAX_RECEIVE_COUNT}


def test_the_same_message_delivered_twice_starts_one_execution(long: LongRuntime, marks: Path) -> None:
    # GIVEN a job of the long type, and its message, sent to the type's queue again (a duplicate delivery)
    queue_url = next(
        url for url in long.sqs.list_queues()["QueueUrls"] if "longQueue" in url and "DeadLetter" not in url
    )
    job_id = _submit(long, {"steps": 2, "seconds": 1, "wait": 0, "marks": str(marks)})
    body = None
    deadline = time.monotonic() + 20
    while (
        body is None and time.monotonic() < deadline
    ):  # the message as the starter got it: the job's execution
        listed = long.lambda_.list_durable_executions_by_function(
            FunctionName=long.function_arn, DurableExecutionName=job_id
        )["DurableExecutions"]
        if listed:
            execution = long.lambda_.get_durable_execution(
                DurableExecutionArn=listed[0]["DurableExecutionArn"]
            )
            body = execution["InputPayload"]
        time.sleep(0.1)
    assert body is not None, long.logs()
    long.sqs.send_message(QueueUrl=queue_url, MessageBody=body)

    # WHEN the job ends
    job = _wait(long, job_id)

    # THEN it SUCCEEDED, with one execution and each step run once
    assert job["status"] == "SUCCEEDED", f"{job}\n{long.logs()}"
    time.sleep(1)  # the duplicate's delivery to the starter
    assert long.execution_of(job_id, ended=True)["Status"] == "SUCCEEDED"
    assert _steps_run(marks, job_id) == {0: 1, 1: 1}
    attributes = long.sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert attributes == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}


def test_the_sweep_ends_failed_a_job_whose_execution_was_stopped_outside_the_api(
    long: LongRuntime, marks: Path
) -> None:
    # GIVEN a running long job whose execution is stopped directly (not through DELETE /jobs/{id})
    job_id = _submit(long, {"steps": 6, "seconds": 1, "wait": 0, "marks": str(marks)})
    deadline = time.monotonic() + 30
    while not _steps_run(marks, job_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    execution = long.execution_of(job_id)
    long.lambda_.stop_durable_execution(DurableExecutionArn=execution["DurableExecutionArn"])

    # WHEN the sweep runs (every 2 s here; rate(5 minutes) deployed)
    job = _wait(long, job_id, timeout=30)

    # THEN the job is FAILED, not left RUNNING
    assert job["status"] == "FAILED", f"{job}\n{long.logs()}"
