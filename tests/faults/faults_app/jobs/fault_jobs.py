"""The fault tests' job handler: ``payload["mode"]`` picks a fault; side-channel files record what ran.

Every execution appends a line to ``<dir>/exec-<job id>`` when it starts; every execution that returns
appends the job id to ``<dir>/completions`` (one ``O_APPEND`` write of a short line: atomic between
processes). The tests and the load bench count handler executions and completions from these files, with no
help from the runtime under test.

Modes:

- ``ok``: sleep ``delay`` seconds (default 0), return.
- ``transient``: raise ``RuntimeError`` on the first ``failures`` executions (default 1), then return.
- ``fail``: raise ``RuntimeError`` on every execution (a retryable failure).
- ``killme``: on the first execution, write the process id to ``<dir>/pid-<job id>`` and sleep ``seconds``
  (default 30): the test kills the process with ``SIGKILL``. Later executions return at once.
- ``crash_once``: on the first execution end the process at once (``os._exit(137)``, as an out-of-memory kill);
  later executions return.
- ``sleep``: sleep ``seconds`` (default 30), past the timeout.
- ``cancellable``: report progress every 0.2 s for ``seconds`` (default 3), stop with ``JobCancelledError``
  once the owner asked to cancel.

A payload without ``dir`` (a fuzzer's) returns at once and writes nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from lambda_handlers.job import JobCancelledError


def _append(path: Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def executions(directory: Path, job_id: str) -> int:
    """How many executions of ``job_id``'s handler have started."""
    path = directory / f"exec-{job_id}"
    return len(path.read_text().splitlines()) if path.exists() else 0


def run(payload: dict[str, Any], job: Any) -> Any:
    """Behave as ``payload["mode"]`` says (see the module's docstring)."""
    if not isinstance(payload.get("dir"), str):
        return {"echo": True}
    directory = Path(payload["dir"])
    mode = payload.get("mode", "ok")
    _append(directory / f"exec-{job.job_id}", f"{os.getpid()} attempt={job.attempt}")
    count = executions(directory, job.job_id)
    if mode == "transient" and count <= int(payload.get("failures", 1)):
        raise RuntimeError(f"transient failure {count}")
    if mode == "fail":
        raise RuntimeError("the fault handler failed on purpose")
    if mode == "killme" and count == 1:
        (directory / f"pid-{job.job_id}").write_text(str(os.getpid()))
        time.sleep(float(payload.get("seconds", 30)))
    if mode == "crash_once" and count == 1:
        os._exit(137)
    if mode == "sleep":
        time.sleep(float(payload.get("seconds", 30)))
    if mode == "cancellable":
        end = time.monotonic() + float(payload.get("seconds", 3))
        while time.monotonic() < end:
            job.report_progress(50)
            if job.cancel_requested:
                raise JobCancelledError("stopped on request")
            time.sleep(0.2)
    if mode == "ok":
        time.sleep(float(payload.get("delay", 0)))
    _append(directory / "completions", job.job_id)
    return {"mode": mode, "executions": count}
