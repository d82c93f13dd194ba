"""`async-job local` as a child process for the benchmarks (so their clients do not share its GIL)."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalRuntimeProcess:
    """Serve the AsyncJobApi at ``api_path`` of the CDK app ``app_file`` (run as ``app_file --cdk-app``).

    Attributes
    ----------
    jobs_url
        The API's ``/jobs`` URL.
    endpoint_url
        The embedded moto's URL, or "" with an external ``endpoint_url``.
    """

    def __init__(
        self, app_file: Path, api_path: str, *, concurrency: int, endpoint_url: str | None = None
    ) -> None:
        command = [
            sys.executable, "-m", "async_job_local", "local",
            "--app", shlex.join([sys.executable, str(app_file), "--cdk-app"]),
            "--port", str(free_port()),
            "--concurrency", str(concurrency),
            "--no-function-logs",
        ]  # fmt: skip
        if endpoint_url:
            command += ["--endpoint-url", endpoint_url]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.jobs_url = ""
        self.endpoint_url = ""
        self.output: list[str] = []
        self._api_line = re.compile(rf"^\s+{re.escape(api_path)}: (http://\S+/jobs)$")
        ready = threading.Event()
        threading.Thread(target=self._read, args=(ready,), daemon=True).start()
        if not ready.wait(180) or not self.jobs_url:
            self.stop()
            raise SystemExit("the local runtime did not start:\n" + "\n".join(self.output))

    def _read(self, ready: threading.Event) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if len(self.output) < 10_000:
                self.output.append(line.rstrip())
            if found := self._api_line.match(line):
                self.jobs_url = found[1]
            if found := re.search(r"backend: moto, embedded \((http://127\.0\.0\.1:\d+)", line):
                self.endpoint_url = found[1]
            if line.startswith("Ready."):
                ready.set()
        ready.set()

    def cpu_seconds(self) -> tuple[float, float] | None:
        """CPU time so far of the runtime process and of its live children (the environments); Linux only."""
        ticks = os.sysconf("SC_CLK_TCK")

        def stat(path: Path) -> list[str]:
            return path.read_text().rsplit(")", 1)[1].split()

        try:
            own = stat(Path(f"/proc/{self.process.pid}/stat"))
        except OSError:
            return None
        children = 0
        for path in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat(path)
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:
                children += int(fields[11]) + int(fields[12])
        return (int(own[11]) + int(own[12])) / ticks, children / ticks

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
