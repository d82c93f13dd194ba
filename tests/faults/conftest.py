"""Fault-injection fixtures: the faults app served by the local runtime, in this process, over loopback HTTP.

The faults app (``tests/faults/faults_app``: timeout 3 s, visibility timeout 4 s, 3 attempts, retry backoff
1-2 s) is synthesized once per session and served by one ``LocalRuntime`` in this process for the session.
moto keeps its state per process, not per server: a second runtime in this process would share the first one's
table and queues. So a test that breaks the backend (deletes the job queue) starts ``async-job local`` on the
same assembly in a process of its own (``faults_cli``).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from async_job_local import FunctionLogs, JobClient, LocalRuntime, load_assembly, synthesize
from async_job_local.assembly import CloudAssembly
from tests.e2e.conftest import START_TIMEOUT, CliProcess, free_port
from tests.faults.faults_app.faults_settings import MAX_RECEIVE_COUNT, VISIBILITY_TIMEOUT_SECONDS

ROOT = Path(__file__).resolve().parents[2]
FAULTS_APP = Path(__file__).resolve().parent / "faults_app" / "app.py"
#: Enough for every attempt of a job, its backoffs and visibility timeouts, on a loaded 2-core machine.
TERMINAL_DEADLINE = 20.0 + MAX_RECEIVE_COUNT * (VISIBILITY_TIMEOUT_SECONDS + 4)


#: The faults app's stack (tests/faults/faults_app/app.py).
STACK_NAME = "AsyncJobFaults"


class FaultsRuntime:
    """A running local runtime of the faults app, with a side-channel directory for its handler.

    ``runtime`` is the ``LocalRuntime`` when it runs in this process, None when it runs as ``async-job local``.
    """

    def __init__(
        self,
        *,
        jobs_url: str,
        endpoint_url: str,
        side_channel: Path,
        log_file: Path,
        runtime: LocalRuntime | None = None,
    ) -> None:
        self.jobs_url = jobs_url
        self.endpoint_url = endpoint_url
        self.side_channel = side_channel
        self.log_file = log_file
        self.runtime = runtime
        # moto's state is per process: an in-process runtime may share it with other tests' resources, so
        # take the faults stack's own (its physical names start with the stack name)
        queues = self.aws("sqs").list_queues(QueueNamePrefix=STACK_NAME)["QueueUrls"]
        self.queue_url = next(url for url in queues if "DeadLetter" not in url)
        self.dead_letter_queue_url = next(url for url in queues if "DeadLetter" in url)
        tables = self.aws("dynamodb").list_tables()["TableNames"]
        (self.table_name,) = (name for name in tables if name.startswith(f"{STACK_NAME}-"))

    @classmethod
    def in_process(cls, runtime: LocalRuntime, side_channel: Path, log_file: Path) -> FaultsRuntime:
        """The faults app's ``LocalRuntime`` started in this process."""
        return cls(
            jobs_url=runtime.api().jobs_url,
            endpoint_url=str(runtime.backend.endpoint_url),
            side_channel=side_channel,
            log_file=log_file,
            runtime=runtime,
        )

    def client(self, principal: str | None = "local-user") -> JobClient:
        """A client of the faults API acting as ``principal``."""
        return JobClient(self.jobs_url, principal=principal, timeout=15)

    def aws(self, service: str) -> Any:
        """A boto3 client of the runtime's embedded moto."""
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def submit(self, mode: str, **payload: Any) -> tuple[str, dict[str, Any]]:
        """POST a job of ``mode``; return its id and the payload sent."""
        body = {"mode": mode, "dir": str(self.side_channel), **payload}
        accepted = self.client().submit(body)
        assert accepted.status == 202, accepted.body
        return accepted.json()["id"], body

    def wait_terminal(self, job_id: str, timeout: float = TERMINAL_DEADLINE) -> dict[str, Any]:
        """Poll ``GET /jobs/{id}`` until the job is terminal; fail with the functions' log tail if it is not."""
        try:
            return self.client().wait(job_id, poll_interval=0.25, timeout=timeout)
        except TimeoutError as error:
            pytest.fail(f"{error}\n{self.function_logs()}")

    def executions(self, job_id: str) -> list[str]:
        """One line per execution of ``job_id``'s handler (written by the handler itself)."""
        path = self.side_channel / f"exec-{job_id}"
        return path.read_text().splitlines() if path.exists() else []

    def completions(self, job_id: str) -> int:
        """How many executions of ``job_id``'s handler returned (written by the handler itself)."""
        path = self.side_channel / "completions"
        return path.read_text().splitlines().count(job_id) if path.exists() else 0

    def queue_depth(self, url: str | None = None) -> int:
        """Messages in the job queue (or ``url``), visible or in flight."""
        attributes = self.aws("sqs").get_queue_attributes(
            QueueUrl=url or self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())

    def function_logs(self, last: int = 80) -> str:
        """The tail of the functions' logs (for assertion messages)."""
        lines = self.log_file.read_text(errors="replace").splitlines() if self.log_file.exists() else []
        return "\n".join(lines[-last:])


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something truthy (returned); fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def message_body(job_id: str, payload: dict[str, Any]) -> str:
    """The job's SQS message body, as ``POST /jobs`` sends it (docs/design.md, "SQS message body")."""
    return json.dumps({"v": 1, "jobId": job_id, "payload": payload}, separators=(",", ":"))


@pytest.fixture(scope="session")
def faults_assembly(tmp_path_factory: pytest.TempPathFactory) -> CloudAssembly:
    """The faults app, synthesized once per session."""
    outdir = tmp_path_factory.mktemp("faults-cdk-out")
    return load_assembly(synthesize(str(FAULTS_APP.relative_to(ROOT)), cwd=ROOT, outdir=outdir))


@pytest.fixture(scope="session")
def faults(
    faults_assembly: CloudAssembly, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FaultsRuntime]:
    """The faults app served in this process (embedded moto, 4 worker environments), shared by the session."""
    work = tmp_path_factory.mktemp("faults")
    log_file = work / "functions.log"
    with log_file.open("a", encoding="utf-8") as log:
        runtime = LocalRuntime(faults_assembly, port=0, concurrency=4, logs=FunctionLogs(log))
        runtime.start()
        try:
            yield FaultsRuntime.in_process(
                runtime, Path(tempfile.mkdtemp(prefix="side-", dir=work)), log_file
            )
        finally:
            runtime.close()


@pytest.fixture(scope="module")
def faults_cli(
    faults_assembly: CloudAssembly, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FaultsRuntime]:
    """``async-job local --app <the faults assembly>`` in a process of its own (its own moto), for one module."""
    work = tmp_path_factory.mktemp("faults-cli")
    log_file = work / "functions.log"
    cli = CliProcess(
        "--app", str(faults_assembly.directory), "--port", str(free_port()), "--log-file", str(log_file)
    )
    try:
        jobs_url = cli.wait_for(
            r"^\s+AsyncJobFaults/Jobs: (http://127\.0\.0\.1:\d+/\S+/jobs)$", START_TIMEOUT
        )[1]
        endpoint_url = cli.wait_for(r"backend: moto, embedded \((http://127\.0\.0\.1:\d+)", 5)[1]
        cli.wait_for(r"^Ready\.", 10)
        side_channel = Path(tempfile.mkdtemp(prefix="side-", dir=work))
        yield FaultsRuntime(
            jobs_url=jobs_url, endpoint_url=endpoint_url, side_channel=side_channel, log_file=log_file
        )
    finally:
        cli.stop()
