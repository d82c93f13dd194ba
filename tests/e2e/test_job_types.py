"""Job types in the local runtime: ``--submit --type``, the start-up handler check, and an API with two types
(``AsyncJobApi.add_job_type``), each run by its own handler.

The single-type tests reuse the e2e app's kept cloud assembly (no synthesis); the two-type app is synthesized
once per session, by the CLI.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from async_job_local.client import JobClient
from tests.e2e.conftest import ROOT, START_TIMEOUT, CliProcess, E2eRuntime, free_port

TYPES_APP = Path(__file__).resolve().parent / "types_app" / "app.py"


def test_submit_type_jobs_runs_the_single_type_apis_job(e2e: E2eRuntime) -> None:
    # GIVEN the e2e app's assembly (one type, jobs)
    # WHEN a job is submitted with --type jobs
    cli = CliProcess(
        "--app",
        str(e2e.assembly),
        "--port",
        str(free_port()),
        "--no-function-logs",
        "--submit",
        '{"mode": "ok", "steps": 1, "delay": 0.1}',
        "--type",
        "jobs",
        "--exit-when-done",
    )
    try:
        code = cli.wait(START_TIMEOUT)
    finally:
        cli.stop()

    # THEN it is posted at /jobs and succeeds; the start-up output names the type and its handler
    assert code == 0, cli.output
    assert "job type jobs: POST http://" in cli.output
    assert "(handler e2e_jobs.run)" in cli.output
    assert "SUCCEEDED after" in cli.output


def test_fails_if_submit_names_a_type_the_api_does_not_have(e2e: E2eRuntime) -> None:
    # GIVEN the e2e app's assembly WHEN --type names no type of it
    cli = CliProcess(
        "--app",
        str(e2e.assembly),
        "--port",
        str(free_port()),
        "--no-function-logs",
        "--submit",
        "{}",
        "--type",
        "videos",
    )
    try:
        code = cli.wait(START_TIMEOUT)
    finally:
        cli.stop()

    # THEN it is a usage error listing the API's types, and no job is submitted
    assert code == 2, cli.output
    assert "no job type 'videos'; its types: jobs" in cli.output
    assert " -> 202" not in cli.output
    assert "Ready." not in cli.output


def _with_handler(assembly: Path, copy: Path, handler: str) -> Path:
    """A copy of ``assembly`` whose worker runs ``handler`` (as if the app named it)."""
    shutil.copytree(assembly, copy)
    for template_file in copy.glob("*.template.json"):
        template = json.loads(template_file.read_text())
        for resource in template["Resources"].values():
            variables = resource.get("Properties", {}).get("Environment", {}).get("Variables", {})
            if "ASYNC_JOB_HANDLER" in variables:
                variables["ASYNC_JOB_HANDLER"] = handler
        template_file.write_text(json.dumps(template))
    return copy


@pytest.mark.parametrize(
    ("handler", "why"),
    [
        ("e2e_jobs.missing", "module 'e2e_jobs' has no function 'missing'"),
        ("no_such_module.run", "cannot import module 'no_such_module': ModuleNotFoundError"),
    ],
)
def test_fails_at_start_up_naming_a_handler_that_cannot_be_loaded(
    e2e: E2eRuntime, tmp_path: Path, handler: str, why: str
) -> None:
    # GIVEN the e2e app's assembly with a worker whose handler cannot be loaded
    assembly = _with_handler(e2e.assembly, tmp_path / "cdk.out", handler)

    # WHEN the runtime starts
    cli = CliProcess("--app", str(assembly), "--port", str(free_port()), "--no-function-logs")
    try:
        code = cli.wait(START_TIMEOUT)
    finally:
        cli.stop()

    # THEN it stops at once (exit 2), naming the API, the type, the handler and the error; it never serves
    assert code == 2, cli.output
    assert f"AsyncJobE2E/Jobs, job type 'jobs': handler '{handler}' cannot be loaded: {why}" in cli.output
    assert "Ready." not in cli.output


@pytest.fixture(scope="module")
def types_cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CliProcess, Path]]:
    """``async-job local --app tests/e2e/types_app/app.py``, its assembly kept."""
    assembly = tmp_path_factory.mktemp("types") / "cdk.out"
    cli = CliProcess(
        "--app",
        str(TYPES_APP.relative_to(ROOT)),
        "--port",
        str(free_port()),
        "--output",
        str(assembly),
        "--no-function-logs",
    )
    try:
        cli.wait_for(r"^Ready\.", START_TIMEOUT)
        yield cli, assembly
    finally:
        cli.stop()


def test_two_job_types_each_run_by_their_own_handler_and_read_at_jobs_id(
    types_cli: tuple[CliProcess, Path],
) -> None:
    cli, _ = types_cli
    # GIVEN the two-type app served, printing both types
    jobs_url = cli.wait_for(r"^\s+AsyncJobTypes/Media: (http://\S+/jobs)$", 5)[1]
    assert "job type reports: POST http://" in cli.output
    assert "job type thumbs: POST http://" in cli.output
    client = JobClient(jobs_url, timeout=15)

    # WHEN a job of each type is submitted at POST /{type}
    accepted = {name: client.submit({"n": name}, job_type=name) for name in ("reports", "thumbs")}

    # THEN each is accepted with its status at /jobs/{id}, and succeeds, run by its own handler, with its type
    for name, response in accepted.items():
        assert response.status == 202, response.body
        job = response.json()
        assert response.header("Location") == f"{jobs_url}/{job['id']}"
        done = client.wait(job["id"], poll_interval=0.2, timeout=60)
        assert done["status"] == "SUCCEEDED", done
        assert done["type"] == name
        assert done["result"] == {
            "handler": {"reports": "report", "thumbs": "thumb"}[name],
            "echo": {"n": name},
        }


def test_submit_type_picks_the_type_and_no_type_is_a_usage_error_listing_them(
    types_cli: tuple[CliProcess, Path],
) -> None:
    _, assembly = types_cli
    # GIVEN the two-type app's assembly
    # WHEN --submit names thumbs
    named = CliProcess(
        "--app",
        str(assembly),
        "--port",
        str(free_port()),
        "--no-function-logs",
        "--submit",
        "{}",
        "--type",
        "thumbs",
        "--exit-when-done",
    )
    # ... and WHEN --submit names no type
    unnamed = CliProcess(
        "--app", str(assembly), "--port", str(free_port()), "--no-function-logs", "--submit", "{}"
    )
    try:
        named_code, unnamed_code = named.wait(START_TIMEOUT), unnamed.wait(START_TIMEOUT)
    finally:
        named.stop()
        unnamed.stop()

    # THEN the first posts at /thumbs and succeeds; the second is a usage error listing the types
    assert named_code == 0, named.output
    assert "/thumbs -> 202" in named.output
    assert unnamed_code == 2, unnamed.output
    assert "has 2 job types; name one of: reports, thumbs" in unnamed.output
