"""The `async-job local` command: what it prints, and Ctrl-C."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from async_job_local.client import JobClient
from tests.e2e.conftest import CliProcess, E2eRuntime, free_port


def test_cli_prints_each_api_url_its_routes_and_the_identity_header(e2e: E2eRuntime) -> None:
    output = e2e.cli.output

    assert re.search(r"^\s+AsyncJobE2E/Jobs: http://127\.0\.0\.1:\d+/asyncjobe2e-jobs/jobs$", output, re.M), (
        output
    )
    assert re.search(r"POST\s+http://\S+/asyncjobe2e-jobs/jobs$", output, re.M), output
    assert re.search(r"GET\s+http://\S+/asyncjobe2e-jobs/jobs/\{id\}$", output, re.M), output
    assert "X-Async-Job-Principal" in output


def _wait_for_pid(pid_file: Path, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid_file.exists() and (text := pid_file.read_text()):
            return int(text)
        time.sleep(0.1)
    pytest.fail(f"the job never started (no {pid_file})")


def test_submit_without_exit_when_done_keeps_serving_until_ctrl_c_which_kills_running_environments(
    e2e: E2eRuntime, tmp_path: Path
) -> None:
    # A second runtime from the kept cloud assembly (no synthesis): it runs one job, then keeps serving.
    cli = CliProcess(
        "--app",
        str(e2e.assembly),
        "--port",
        str(free_port()),
        "--no-function-logs",
        "--submit",
        '{"mode": "ok", "steps": 2, "delay": 0.1}',
        "--type",
        "jobs",
    )
    try:
        jobs_url = cli.wait_for(r"^\s+AsyncJobE2E/Jobs: (http://\S+/jobs)$", 60)[1]
        status_url = cli.wait_for(r"^status URL: (http://\S+)$", 60)[1]
        cli.wait_for(rf"^\s+curl -H 'X-Async-Job-Principal: local-user' {re.escape(status_url)}$", 5)
        cli.wait_for(r"^Ready\.", 10)
        client = JobClient(jobs_url)
        job = client.status(status_url)  # what the printed curl command does
        assert job.status == 200, job.body
        assert job.json()["status"] == "SUCCEEDED"
        pid_file = tmp_path / "pid"
        accepted = client.submit({"mode": "hang", "seconds": 60, "pid_file": str(pid_file)})
        assert accepted.status == 202, accepted.body
        pid = _wait_for_pid(pid_file, 20)
        environments = cli.children()
        assert pid in environments

        code = cli.interrupt(timeout=15)

        assert code == 0, cli.output  # the submitted job SUCCEEDED; Ctrl-C is the normal way to stop
        assert "stopping" in cli.output
        for child in environments:
            with pytest.raises(ProcessLookupError):
                os.kill(child, 0)
    finally:
        cli.stop()
