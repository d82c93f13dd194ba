"""Push instead of poll on the real local runtime: an EventBridge event per terminal state, and a signed webhook.

The runtime writes every event the app's functions put on the bus to ``--events-file``; the e2e app allows
webhooks to ``127.0.0.1``, so a receiver in this process gets them. The signature is checked by the
``standardwebhooks`` package (an implementation of the scheme that is not ours), with the secret read from the
runtime's Secrets Manager.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
import standardwebhooks

from async_job_client import ApiError, JobClient, LocalCaller
from lambda_handlers.webhook_delivery import standard_secret
from tests.e2e.conftest import E2E_APP, ROOT, CliProcess, E2eRuntime, free_port

#: How long an event or a webhook may take to arrive after its job ended (stream poll, batching window).
ARRIVAL_SECONDS = 30.0


class Receiver:
    """A webhook receiver on 127.0.0.1: keeps every request (path, headers, body) and answers 204."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, path: str) -> tuple[dict[str, str], bytes]:
        deadline = time.monotonic() + ARRIVAL_SECONDS
        while time.monotonic() < deadline:
            for got, headers, body in self.requests:
                if got == path:
                    return headers, body
            time.sleep(0.2)
        raise AssertionError(
            f"no webhook reached {path} in {ARRIVAL_SECONDS} s (got {[r[0] for r in self.requests]})"
        )


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[E2eRuntime, Path]]:
    work = tmp_path_factory.mktemp("push-e2e")
    events_file = work / "events.jsonl"
    cli = CliProcess(
        "--app",
        str(E2E_APP.relative_to(ROOT)),
        "--port",
        str(free_port()),
        "--output",
        str(work / "cdk.out"),
        "--log-file",
        str(work / "functions.log"),
        "--concurrency",
        "1",
        "--events-file",
        str(events_file),
    )
    try:
        yield E2eRuntime(cli, work / "cdk.out", work / "functions.log"), events_file
    finally:
        cli.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiving = Receiver()
    yield receiving
    receiving.server.shutdown()


def client(runtime: tuple[E2eRuntime, Path], principal: str = "push-tester") -> JobClient:
    return JobClient(runtime[0].jobs_url.removesuffix("/jobs"), auth=LocalCaller(principal), timeout=60)


def events_of(events_file: Path, job_id: str) -> list[dict[str, Any]]:
    """The events of ``job_id`` in the file, once it has them (waiting for at least one)."""
    deadline = time.monotonic() + ARRIVAL_SECONDS
    while True:
        found = []
        if events_file.exists():
            for line in events_file.read_text(encoding="utf-8").splitlines():
                event = json.loads(line)
                if event.get("detail", {}).get("jobId") == job_id:
                    found.append(event)
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_each_terminal_state_is_one_event_with_its_detail(runtime: tuple[E2eRuntime, Path]) -> None:
    jobs = client(runtime)
    succeeded = jobs.submit({"mode": "ok", "steps": 1, "delay": 0.1})
    jobs.wait(succeeded.id, timeout=60)
    failed = jobs.submit({"mode": "give_up"})
    jobs.wait(failed.id, timeout=60)
    blocker = jobs.submit({"mode": "sleep", "seconds": 1.5})  # holds the one worker poller
    _wait_until(jobs, blocker.id, "RUNNING")
    cancelled = jobs.cancel(jobs.submit({"mode": "ok"}).id)

    expected = {
        succeeded.id: ("Job Succeeded", "SUCCEEDED"),
        failed.id: ("Job Failed", "FAILED"),
        cancelled.id: ("Job Cancelled", "CANCELLED"),
    }
    for job_id, (detail_type, status) in expected.items():
        (event,) = events_of(runtime[1], job_id)
        assert (event["source"], event["detail-type"]) == ("async-job", detail_type)
        detail = event["detail"]
        assert detail["status"] == status
        assert detail["owner"].endswith(":user/push-tester")
        assert detail["type"] == "jobs"
        assert detail["durationMs"] >= 0
        assert detail["version"] == 1
    assert events_of(runtime[1], failed.id)[0]["detail"]["error"] == {
        "type": "JobFailedError",
        "message": "the e2e handler gave up on purpose",
    }
    # Progress writes and a RUNNING job publish nothing (terminal events only, the default)
    assert all(e["detail"]["status"] == "SUCCEEDED" for e in events_of(runtime[1], succeeded.id))


def test_a_webhook_is_signed_verifiably_and_its_delivery_shows_on_the_job(
    runtime: tuple[E2eRuntime, Path], receiver: Receiver
) -> None:
    jobs = client(runtime)
    path = "/hooks/reports"

    submitted = jobs.submit({"mode": "ok", "steps": 1, "delay": 0.1}, callback_url=receiver.url + path)
    finished = jobs.wait(submitted.id, timeout=60)
    headers, body = receiver.wait_for(path)

    # THEN an independent implementation of Standard Webhooks verifies it with the API's secret
    secret = _secret_value(runtime[0])
    verified = standardwebhooks.Webhook(standard_secret(secret)).verify(body, headers)
    assert verified["type"] == "job.succeeded"
    assert verified["data"]["jobId"] == finished.id
    assert headers["webhook-id"] == finished.id
    # AND a tampered body does not verify
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(standard_secret(secret)).verify(
            body.replace(b"succeeded", b"failed"), headers
        )
    # AND the job shows the delivery
    deadline = time.monotonic() + ARRIVAL_SECONDS
    while (webhook := jobs.get(finished.id).raw["webhook"])["status"] == "PENDING":  # type: ignore[index]
        assert time.monotonic() < deadline, webhook
        time.sleep(0.2)
    assert webhook["status"] == "DELIVERED"
    assert webhook["attempts"] == 1
    assert webhook["lastStatusCode"] == 204
    assert webhook["url"] == receiver.url + path


def test_a_callback_url_to_a_host_not_allowed_is_a_400(runtime: tuple[E2eRuntime, Path]) -> None:
    jobs = client(runtime)

    with pytest.raises(ApiError) as raised:
        jobs.submit({"mode": "ok"}, callback_url="http://169.254.169.254/latest/meta-data/")

    assert (raised.value.status, raised.value.type) == (400, "urn:async-job:problem:invalid-callback-url")
    assert "127.0.0.1" in str(raised.value.detail)


def _secret_value(runtime: E2eRuntime) -> str:
    secrets = boto3.client(
        "secretsmanager",
        endpoint_url=runtime.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    (entry,) = [s for s in secrets.list_secrets()["SecretList"] if "WebhookSecret" in s["Name"]]
    return str(secrets.get_secret_value(SecretId=entry["ARN"])["SecretString"])


def _wait_until(jobs: JobClient, job_id: str, status: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while jobs.get(job_id).status != status:
        assert time.monotonic() < deadline, f"job {job_id} never became {status}"
        time.sleep(0.1)
