"""Every client operation and CLI command against the real local runtime (``async-job local`` on the e2e app).

The runtime here runs one worker poller (``--concurrency 1``), so that a job submitted behind a running one stays
``QUEUED`` long enough to be cancelled.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

from async_job_client import ApiError, Job, JobClient, JobFailed, LocalCaller, WaitTimeout
from tests.e2e.conftest import CLI, E2E_APP, ROOT, CliProcess, E2eRuntime, free_port
from tests.e2e.e2e_app.e2e_settings import GREETING, POLL_INTERVAL_SECONDS

#: The failing job: MAX_RECEIVE_COUNT attempts, a retry backoff of up to 10 s between them.
FAILURE_DEADLINE = 90.0


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2eRuntime]:
    work = tmp_path_factory.mktemp("client-e2e")
    log_file = work / "functions.log"
    cli = CliProcess(
        "--app",
        str(E2E_APP.relative_to(ROOT)),
        "--port",
        str(free_port()),
        "--output",
        str(work / "cdk.out"),
        "--concurrency",
        "1",
        "--log-file",
        str(log_file),
    )
    try:
        yield E2eRuntime(cli, work / "cdk.out", log_file)
    finally:
        cli.stop()


@pytest.fixture(scope="module")
def base_url(runtime: E2eRuntime) -> str:
    assert runtime.jobs_url.endswith("/jobs")
    return runtime.jobs_url.removesuffix("/jobs")


def client(base_url: str, principal: str = "local-user", **kwargs: Any) -> JobClient:
    return JobClient(base_url, auth=LocalCaller(principal), **kwargs)


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The installed ``async-job`` console script (this tree first on PYTHONPATH)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [str(CLI), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
    )


def test_submit_get_wait_with_progress(base_url: str) -> None:
    jobs = client(base_url)
    seen: list[Job] = []

    submitted = jobs.submit({"mode": "ok", "steps": 3, "delay": 0.3})
    read = jobs.get(submitted.id)
    finished = jobs.wait(submitted.id, timeout=60, on_progress=seen.append)

    assert submitted.status == "QUEUED"
    assert submitted.retry_after == POLL_INTERVAL_SECONDS
    assert submitted.location is not None
    assert submitted.location.endswith(f"/jobs/{submitted.id}")
    assert read.id == submitted.id
    assert read.type == "jobs"
    assert finished.status == "SUCCEEDED"
    assert finished.result == {"echo": {"mode": "ok", "steps": 3, "delay": 0.3}, "greeting": GREETING}
    assert finished.progress is not None
    assert finished.progress.percent == 100
    assert finished.retry_after is None
    assert seen[-1].status == "SUCCEEDED"


def test_run_returns_the_result_and_counts_its_requests(base_url: str) -> None:
    jobs = client(base_url)
    started = time.monotonic()

    result = jobs.run(
        {"mode": "ok", "steps": 3, "delay": 0.4}, timeout=60
    )  # 1.2 s: the runtime stops a job at ~2 s

    elapsed = time.monotonic() - started
    assert result["greeting"] == GREETING
    # One submit, then one read per Retry-After (1 s here) until the end, and the last read: for a job of
    # `elapsed` seconds, 1 + ceil(elapsed / Retry-After) (+1 when a read lands just before the end).
    print(
        f"run(): {jobs.requests_sent} requests for a job of {elapsed:.1f} s at Retry-After {POLL_INTERVAL_SECONDS} s"
    )
    assert jobs.requests_sent <= 2 + int(elapsed / POLL_INTERVAL_SECONDS) + 1


def test_run_of_a_failing_job_raises_job_failed_with_its_error(base_url: str) -> None:
    with pytest.raises(JobFailed) as raised:
        client(base_url).run({"mode": "fail"}, timeout=FAILURE_DEADLINE)

    assert raised.value.error["type"] == "RuntimeError"
    assert "failed on purpose" in raised.value.error["message"]
    assert raised.value.job.status == "FAILED"


def test_cancel_of_a_queued_job_and_wait_timeout(base_url: str) -> None:
    jobs = client(base_url)
    blocker = jobs.submit(
        {"mode": "sleep", "seconds": 1.5}
    )  # holds the one worker poller (the runtime stops at ~2 s)
    _wait_until(jobs, blocker.id, "RUNNING")
    queued = jobs.submit({"mode": "ok"})

    cancelled = jobs.cancel(queued.id)
    with pytest.raises(WaitTimeout) as raised:
        jobs.wait(blocker.id, timeout=0.3)

    assert cancelled.status == "CANCELLED"
    assert raised.value.job.status == "RUNNING"
    assert jobs.wait(queued.id, timeout=10).status == "CANCELLED"
    with pytest.raises(ApiError) as again:
        jobs.cancel(queued.id)
    assert (again.value.status, again.value.type) == (409, "urn:async-job:problem:job-finished")


def test_api_errors_carry_the_runtimes_problem_documents(base_url: str) -> None:
    jobs = client(base_url)

    with pytest.raises(ApiError) as not_found:
        jobs.get(str(uuid.uuid4()))
    with pytest.raises(ApiError) as invalid:
        jobs.get("not-a-job-id")
    key = str(uuid.uuid4())
    jobs.submit({"mode": "ok", "steps": 1}, idempotency_key=key)
    with pytest.raises(ApiError) as reused:
        jobs.submit({"mode": "ok", "steps": 2}, idempotency_key=key)

    assert (not_found.value.status, not_found.value.type) == (404, "urn:async-job:problem:job-not-found")
    assert (invalid.value.status, invalid.value.type) == (400, "urn:async-job:problem:invalid-job-id")
    assert (reused.value.status, reused.value.type) == (422, "urn:async-job:problem:idempotency-key-reused")
    assert reused.value.title
    assert reused.value.detail


# --- a retried submit creates one job -----------------------------------------------------------------------------


class DroppingProxy(ThreadingHTTPServer):
    """Forwards to the runtime; the first POST's answer is dropped (a TCP reset) after the runtime answered it."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        split = urlsplit(upstream)
        self.upstream = (split.hostname or "127.0.0.1", split.port or 80)
        self.upstream_path = split.path
        self.drop_posts = 1
        self.forwarded: list[tuple[str, int, dict[str, str]]] = []
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{self.upstream_path}"


class _ProxyHandler(BaseHTTPRequestHandler):
    server: DroppingProxy
    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        upstream = http.client.HTTPConnection(*self.server.upstream, timeout=30)
        upstream.request(self.command, self.path, body=body, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        upstream.close()
        self.server.forwarded.append((self.command, answer.status, dict(answer.getheaders())))
        if self.command == "POST" and self.server.drop_posts > 0:
            self.server.drop_posts -= 1
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _forward

    def log_message(self, format: str, *args: object) -> None:
        pass


def _jobs_owned_by(runtime: E2eRuntime, owner: str) -> list[dict[str, Any]]:
    """The job items of the runtime's tables whose owner names ``owner`` (the local runtime may wrap the name)."""
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=runtime.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    items = []
    for table in dynamodb.list_tables()["TableNames"]:
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            items += [
                item
                for item in page["Items"]
                if owner in item.get("owner", {}).get("S", "") and "status" in item and "createdAt" in item
            ]
    return items


def test_submit_whose_answer_was_lost_is_retried_and_creates_one_job(
    runtime: E2eRuntime, base_url: str
) -> None:
    proxy = DroppingProxy(base_url)
    owner = f"retry-{uuid.uuid4()}"
    try:
        submitted = client(proxy.url, owner).submit({"mode": "ok", "steps": 1})
    finally:
        proxy.shutdown()
        proxy.server_close()

    posts = [entry for entry in proxy.forwarded if entry[0] == "POST"]
    assert [status for _, status, _ in posts] == [202, 202]  # the runtime answered both; the first was lost
    assert posts[1][2].get("Idempotent-Replayed") == "true"
    assert submitted.replayed
    jobs = _jobs_owned_by(runtime, owner)
    assert [item["pk"]["S"] for item in jobs] == [submitted.id]


# --- the CLI --------------------------------------------------------------------------------------------------


def test_cli_submit_wait_json_exits_0_with_the_result(base_url: str) -> None:
    done = cli(
        "submit", base_url, "--data", '{"mode": "ok", "steps": 2, "delay": 0.2}', "--wait", "--output", "json"
    )

    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["status"] == "SUCCEEDED"
    assert job["result"]["greeting"] == GREETING


def test_cli_submit_get_wait_text(base_url: str, tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_text('{"mode": "ok", "steps": 3, "delay": 0.4}')

    submitted = cli("submit", base_url, "--data", f"@{body}", "--key", str(uuid.uuid4()), "--output", "json")
    job_id = json.loads(submitted.stdout)["id"]
    waited = cli("wait", base_url, job_id, "--timeout", "60")
    got = cli("get", base_url, job_id, "--output", "json")

    assert submitted.returncode == 0, submitted.stderr
    assert waited.returncode == 0, waited.stderr
    assert waited.stdout.startswith(f"{job_id} SUCCEEDED")
    assert "\x1b[" not in waited.stderr + waited.stdout  # not a terminal: plain lines, no progress bar
    assert got.returncode == 0
    assert json.loads(got.stdout)["status"] == "SUCCEEDED"


def test_cli_failed_job_exits_1(base_url: str) -> None:
    done = cli("submit", base_url, "--data", '{"mode": "fail"}', "--wait", timeout=FAILURE_DEADLINE + 30)

    assert done.returncode == 1, done.stderr
    assert "FAILED" in done.stdout
    assert "RuntimeError" in done.stdout


def test_cli_cancel_exits_0_and_waiting_on_the_cancelled_job_exits_3(base_url: str) -> None:
    jobs = client(base_url)
    blocker = jobs.submit({"mode": "sleep", "seconds": 1.8})  # holds the one worker poller
    _wait_until(jobs, blocker.id, "RUNNING")
    queued = jobs.submit({"mode": "ok"})

    cancelled = cli("cancel", base_url, queued.id, "--output", "json")
    waited = cli("wait", base_url, queued.id)

    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["status"] == "CANCELLED"
    assert waited.returncode == 3
    assert "CANCELLED" in waited.stdout


def test_cli_wait_timeout_exits_4(base_url: str) -> None:
    running = client(base_url).submit({"mode": "sleep", "seconds": 1.8})

    timed_out = cli("wait", base_url, running.id, "--timeout", "0.3")

    assert timed_out.returncode == 4, timed_out.stderr
    assert "after 0.3 s" in timed_out.stderr


def test_cli_api_error_exits_5_and_no_answer_exits_6(base_url: str) -> None:
    missing = cli("get", base_url, str(uuid.uuid4()), "--output", "json")
    closed = cli("get", f"http://127.0.0.1:{free_port()}/prod", str(uuid.uuid4()), "--max-attempts", "2")

    assert missing.returncode == 5
    assert json.loads(missing.stdout)["type"] == "urn:async-job:problem:job-not-found"
    assert closed.returncode == 6, closed.stderr


@pytest.fixture(scope="module")
def listed_jobs(base_url: str) -> tuple[str, list[Job]]:
    """A caller of its own with five jobs, oldest first: three SUCCEEDED, one RUNNING (soon SUCCEEDED) and,
    submitted behind it, one CANCELLED."""
    principal = f"lister-{uuid.uuid4().hex[:8]}"
    jobs = client(base_url, principal)
    made = [jobs.submit({"mode": "ok"}, type=None) for _ in range(3)]
    for job in made:
        jobs.wait(job.id, timeout=60)
    blocker = jobs.submit({"mode": "sleep", "seconds": 1.5})
    _wait_until(jobs, blocker.id, "RUNNING")
    queued = jobs.submit({"mode": "ok"})
    jobs.cancel(queued.id)
    jobs.wait(blocker.id, timeout=60)
    return principal, [*made, blocker, queued]


def test_list_pages_newest_first_with_filters(base_url: str, listed_jobs: tuple[str, list[Job]]) -> None:
    principal, made = listed_jobs
    jobs = client(base_url, principal)

    first = jobs.list_page(limit=2)
    second = jobs.list_page(limit=2, cursor=first.next_cursor)
    everything = list(jobs.list(page_size=2))

    assert [job.id for job in first.jobs] == [made[4].id, made[3].id]
    assert first.next_cursor is not None
    assert [job.id for job in second.jobs] == [made[2].id, made[1].id]
    assert [job.id for job in everything] == [job.id for job in reversed(made)]
    assert [job.id for job in jobs.list(status="CANCELLED")] == [made[4].id]
    assert {job.id for job in jobs.list(status=["SUCCEEDED"], type="jobs")} == {job.id for job in made[:4]}
    assert list(jobs.list(type="thumbnails")) == []
    # A listed job is a summary: its result is read with get()
    assert everything[1].status == "SUCCEEDED"
    assert everything[1].result is None
    assert jobs.get(everything[1].id).result is not None
    # Nobody else sees them; naming their owner is for operators only
    assert [job.id for job in client(base_url, f"other-{uuid.uuid4().hex[:8]}").list()] == []
    with pytest.raises(ApiError) as refused:
        jobs.list_page(owner="local-user")
    assert (refused.value.status, refused.value.type) == (403, "urn:async-job:problem:owner-forbidden")
    with pytest.raises(ApiError) as invalid:
        jobs.list_page(limit=500)
    assert invalid.value.problem["parameter"] == "limit"


def test_cli_list_text_json_and_exit_codes(base_url: str, listed_jobs: tuple[str, list[Job]]) -> None:
    principal, made = listed_jobs

    newest = cli("list", base_url, "--principal", principal, "--limit", "2", "--output", "json")
    succeeded = cli("list", base_url, "--principal", principal, "--all", "--status", "SUCCEEDED")
    refused = cli("list", base_url, "--principal", principal, "--owner", "local-user", "--output", "json")
    bad = cli("list", base_url, "--limit", "0")

    assert newest.returncode == 0, newest.stderr
    assert [job["id"] for job in json.loads(newest.stdout)] == [made[4].id, made[3].id]
    assert succeeded.returncode == 0, succeeded.stderr
    lines = succeeded.stdout.splitlines()
    assert [line.split()[2] for line in lines] == [job.id for job in reversed(made[:4])]
    assert all("SUCCEEDED" in line for line in lines)
    assert refused.returncode == 5
    assert json.loads(refused.stdout)["type"] == "urn:async-job:problem:owner-forbidden"
    assert bad.returncode == 2


def test_cli_help_lists_the_client_commands_and_exit_codes() -> None:
    shown = cli("--help")
    submit = cli("submit", "--help")

    assert shown.returncode == 0
    for command in ("submit", "get", "wait", "cancel", "list", "local"):
        assert command in shown.stdout
    assert "exit codes:" in submit.stdout
    assert "CANCELLED" in submit.stdout


def _wait_until(jobs: JobClient, job_id: str, status: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while jobs.get(job_id).status != status:
        assert time.monotonic() < deadline, f"job {job_id} never became {status}"
        time.sleep(0.1)


def test_readme_example_runs_against_the_local_runtime(base_url: str) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "client" / "run_job.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), "JOBS_API_URL": base_url},
    )

    assert done.returncode == 0, done.stderr
    assert GREETING in done.stdout
