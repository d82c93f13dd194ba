"""schemathesis against the local runtime: generated requests for every operation of docs/openapi.yaml, and
not one server error (5xx) in the answers.

It runs schemathesis's CLI (``schemathesis run``) on the session's runtime of the faults app (the fuzzer's jobs
are objects without ``dir``: the handler returns them at once), with a bounded number of examples per
operation and a fixed seed, as the local identity ``X-Async-Job-Principal: schemathesis``.

The coverage phase also sends methods the document does not list (``UNEXPECTED_METHODS``, TRACE and QUERY
included): the runtime answers them as API Gateway does, with its 403 problem.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import schemathesis  # noqa: F401  (declared in the dev extra: the test must run, not skip)

from tests.faults.conftest import ROOT, FaultsRuntime

OPENAPI = ROOT / "docs" / "openapi.yaml"
MAX_EXAMPLES = 30
#: Methods the coverage phase may send where the document lists none (schemathesis's defaults).
UNEXPECTED_METHODS = ("get", "put", "post", "delete", "options", "patch", "trace", "query")


def test_generated_requests_get_no_server_error(faults: FaultsRuntime, tmp_path: Path) -> None:
    assert OPENAPI.exists(), f"{OPENAPI} is missing"
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert cli is not None, "the schemathesis console script is not installed next to this interpreter"
    base_url = faults.jobs_url.removesuffix("/jobs")
    junit = tmp_path / "schemathesis.xml"
    config = tmp_path / "schemathesis.toml"
    methods = ", ".join(f'"{method}"' for method in UNEXPECTED_METHODS)
    # One real job of the fuzzer's, so that GET and DELETE /jobs/{id} reach more than the unknown-id 404.
    job = faults.client("schemathesis").submit({"n": 1})
    assert job.status == 202, job.body
    job_id = job.json()["id"]
    config.write_text(
        f"[phases.coverage]\nunexpected-methods = [{methods}]\n\n"
        f'[[operations]]\ninclude-path-regex = "/jobs/{{id}}$"\nparameters = {{ id = "{job_id}" }}\n'
    )

    run = subprocess.run(
        [
            cli,
            "--config-file",
            str(config),
            "run",
            str(OPENAPI),
            "--url",
            base_url,
            "--checks",
            "not_a_server_error",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            "4",
            "--workers",
            "1",
            "--generation-database",
            "none",
            "--request-timeout",
            "30",
            "--header",
            "X-Async-Job-Principal: schemathesis",
            "--no-color",
            "--report",
            "junit",
            "--report-junit-path",
            str(junit),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )

    assert run.returncode == 0, f"{run.stdout[-8000:]}\n{run.stderr[-2000:]}"
    counts = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert counts is not None, run.stdout[-3000:]
    assert int(counts[1]) == int(counts[2]) >= 50, counts[0]
