"""End-to-end fixtures: the local runtime started through the real ``async-job local`` CLI, over loopback HTTP.

The e2e app (``tests/e2e/e2e_app``, short timeouts so failure paths end in seconds) is synthesized once per
session, by the CLI itself; its cloud assembly is kept (``--output``) so that other CLI runs can reuse it. The
sample app's run (``async-job local --submit ... --exit-when-done``, the README's command) starts at the
beginning of the session, so its synthesis overlaps the e2e app's.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from async_job_local.client import JobClient

ROOT = Path(__file__).resolve().parents[2]
E2E_APP = Path(__file__).resolve().parent / "e2e_app" / "app.py"
CLI = Path(sys.executable).parent / "async-job"
#: Synthesis takes 5-12 s (more while another synth holds a core); start-up adds a few seconds.
START_TIMEOUT = 120.0


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class CliProcess:
    """``async-job local ...`` running in the background, its output collected line by line."""

    def __init__(self, *args: str, cwd: Path = ROOT) -> None:
        assert CLI.exists(), (
            f"{CLI} is missing: run scripts/setup (pip install -e .) to install the console script"
        )
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
        self.args = [str(CLI), "local", *args]
        self.process = subprocess.Popen(
            self.args,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        """Everything printed so far."""
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """Wait for an output line matching ``pattern``; fail with the output if it never comes."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if found := regex.search(line):
                        return found
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.process.poll() is not None:
                    break
                self._changed.wait(min(remaining, 0.5))
        pytest.fail(f"`{' '.join(self.args)}` never printed /{pattern}/; output:\n{self.output}")

    def children(self) -> set[int]:
        """The process ids of this process's children (the functions' execution environments)."""
        found = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.process.pid:
                    found.add(int(stat.parent.name))
        return found

    def wait(self, timeout: float) -> int:
        """Wait for the process to end and for its output to be read; return the exit code."""
        code = self.process.wait(timeout)
        self._reader.join(10)
        return code

    def interrupt(self, timeout: float = 20.0) -> int:
        """Send SIGINT (Ctrl-C) and return the exit code."""
        self.process.send_signal(signal.SIGINT)
        return self.wait(timeout)

    def stop(self) -> None:
        """End the process, gently first."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # The reader ends at the pipe's end of file; only then is the pipe closed, by this thread: a pipe closed
        # by the garbage collector under a reading thread frees its descriptor number while it is still in use.
        self._reader.join(10)
        if self.process.stdout is not None and not self._reader.is_alive():
            self.process.stdout.close()


class E2eRuntime:
    """The e2e app served by ``async-job local``: its URLs, its backend and its output."""

    def __init__(self, cli: CliProcess, assembly: Path, log_file: Path) -> None:
        self.cli = cli
        self.assembly = assembly
        self.log_file = log_file
        self.jobs_url = cli.wait_for(
            r"^\s+AsyncJobE2E/Jobs: (http://127\.0\.0\.1:\d+/\S+/jobs)$", START_TIMEOUT
        )[1]
        self.endpoint_url = cli.wait_for(r"backend: moto, embedded \((http://127\.0\.0\.1:\d+)", 5)[1]
        cli.wait_for(r"^Ready\.", 10)

    def client(self, principal: str | None = "local-user") -> JobClient:
        """A client of the e2e API acting as ``principal``."""
        return JobClient(self.jobs_url, principal=principal, timeout=15)

    def sqs(self) -> object:
        """An SQS client of the runtime's embedded moto."""
        return boto3.client(
            "sqs",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def function_logs(self, last: int = 60) -> str:
        """The tail of the functions' logs (for assertion messages)."""
        lines = self.log_file.read_text(errors="replace").splitlines() if self.log_file.exists() else []
        return "\n".join(lines[-last:])


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliProcess]:
    """The README's command on the sample app (./cdk.json), with a short job; started early, awaited later."""
    log_file = tmp_path_factory.mktemp("sample") / "functions.log"
    cli = CliProcess(
        "--port",
        str(free_port()),
        "--submit",
        '{"seconds": 2, "steps": 8}',
        "--exit-when-done",
        "--log-file",
        str(log_file),
    )
    yield cli
    cli.stop()


@pytest.fixture(scope="session", autouse=True)
def _start_sample_run_early(sample_run: CliProcess) -> None:
    """Start the sample app's synthesis now, so that it overlaps the e2e app's."""


@pytest.fixture(scope="session")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2eRuntime]:
    """``async-job local --app tests/e2e/e2e_app/app.py`` on a free port, synthesized once per session."""
    work = tmp_path_factory.mktemp("e2e")
    assembly = work / "cdk.out"
    log_file = work / "functions.log"
    cli = CliProcess(
        "--app",
        str(E2E_APP.relative_to(ROOT)),
        "--port",
        str(free_port()),
        "--output",
        str(assembly),
        "--concurrency",
        "6",
        "--log-file",
        str(log_file),
    )
    try:
        runtime = E2eRuntime(cli, assembly, log_file)
        yield runtime
    finally:
        cli.stop()
