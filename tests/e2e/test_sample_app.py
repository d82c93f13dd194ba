"""The README's command on the sample app: `async-job local --submit '<json>' --exit-when-done`."""

from __future__ import annotations

import re

from tests.e2e.conftest import START_TIMEOUT, CliProcess


def test_sample_app_job_runs_to_succeeded_with_progress_and_a_curlable_status_url(
    sample_run: CliProcess,
) -> None:
    code = sample_run.wait(timeout=START_TIMEOUT)
    output = sample_run.output

    assert code == 0, output
    assert "AsyncJobSample/Reports: http://127.0.0.1:" in output
    assert re.search(r"POST http://\S+/asyncjobsample-reports/jobs -> 202", output), output
    # Not a terminal: one line per change, fed by the job's own progress reports.
    percents = [int(p) for p in re.findall(r"^\[[#-]+\]\s+(\d+)%\s+RUNNING", output, re.M)]
    assert any(0 < p < 100 for p in percents), output
    assert percents == sorted(percents), output
    assert re.search(r"^\[#+\] 100%\s+SUCCEEDED", output, re.M), output
    assert re.search(r"^SUCCEEDED after \d+\.\d s$", output, re.M), output
    assert re.search(r"^result: \{.*\}$", output, re.M), output
    status_url = re.search(
        r"^status URL: (http://127\.0\.0\.1:\d+/asyncjobsample-reports/jobs/[0-9a-f-]{36})$", output, re.M
    )
    assert status_url, output
    assert f"curl -H 'X-Async-Job-Principal: local-user' {status_url[1]}" in output
