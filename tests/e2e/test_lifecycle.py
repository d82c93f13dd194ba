"""A job's life over HTTP: 202, then RUNNING with progress, then SUCCEEDED with its result."""

from __future__ import annotations

import time
from typing import Any

from tests.e2e.conftest import E2eRuntime
from tests.e2e.e2e_app.e2e_settings import GREETING, POLL_INTERVAL_SECONDS


def test_submit_answers_202_with_a_curlable_location_and_the_constructs_retry_after(e2e: E2eRuntime) -> None:
    client = e2e.client()

    accepted = client.submit({"mode": "ok", "steps": 1, "delay": 0})

    assert accepted.status == 202, accepted.body
    job = accepted.json()
    assert job["status"] == "QUEUED"
    assert accepted.header("Location") == f"{e2e.jobs_url}/{job['id']}"
    assert accepted.header("Retry-After") == str(POLL_INTERVAL_SECONDS)  # the construct's poll_interval
    assert accepted.header("x-amzn-RequestId")
    assert client.status(accepted.header("Location") or "").status == 200


def test_job_runs_to_succeeded_and_its_progress_is_observed(e2e: E2eRuntime) -> None:
    client = e2e.client()
    # 0.9 s of work: well inside the handler's budget (the 3 s timeout less the runtime's 1 s safety margin).
    accepted = client.submit({"mode": "ok", "steps": 3, "delay": 0.3})
    assert accepted.status == 202, accepted.body
    url = accepted.header("Location") or ""

    seen: list[dict[str, Any]] = []
    retry_after_while_running: list[str | None] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = client.status(url)
        assert response.status == 200, response.body
        job = response.json()
        seen.append(job)
        if job["status"] not in ("SUCCEEDED", "FAILED"):
            retry_after_while_running.append(response.header("Retry-After"))
        else:
            break
        time.sleep(0.1)

    final = seen[-1]
    assert final["status"] == "SUCCEEDED", f"{final}\n{e2e.function_logs()}"
    assert final["result"] == {
        "echo": {"mode": "ok", "steps": 3, "delay": 0.3},
        "greeting": GREETING,  # the construct's `environment`, read from the template
    }
    partial = [
        job["progress"]["percent"]
        for job in seen
        if job["status"] == "RUNNING" and job.get("progress") and 0 < job["progress"]["percent"] < 100
    ]
    assert partial, f"no progress between 0 and 100 % was observed: {seen}"
    assert partial == sorted(partial)
    assert set(retry_after_while_running) == {str(POLL_INTERVAL_SECONDS)}
    assert final["attempts"] == 1
