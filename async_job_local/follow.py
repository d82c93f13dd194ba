"""``async-job local --submit``: submit one job, follow its progress, print its outcome.

When the API has a WebSocket (the submit's ``Link: <...>; rel="updates"``) and ``websockets`` is installed, the
progress is pushed: ``async_job_client.JobClient.wait`` follows the job there (falling back to polling if the
connection drops). Otherwise the job is read every ``poll_interval`` seconds.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import sys
import threading
import time
from typing import IO, Any, Final

import async_job_client
from async_job_client.client import updates_link
from async_job_local.client import TERMINAL_STATUSES, JobClient
from async_job_local.runtime import LocalRuntime
from lambda_handlers.contract import PRINCIPAL_HEADER

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_NOT_SUCCEEDED",
    "EXIT_SUCCEEDED",
    "EXIT_USAGE",
    "Progress",
    "follow",
]

EXIT_SUCCEEDED: Final = 0
EXIT_NOT_SUCCEEDED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130
BAR_WIDTH: Final = 30


def _print(message: str = "") -> None:
    print(message, flush=True)


class Progress:
    """The job's progress: a bar redrawn with ``\\r`` on a terminal, one line per change otherwise.

    Example
    -------
    >>> progress = Progress(sys.stdout)
    >>> progress.update({"status": "RUNNING", "progress": {"percent": 50, "message": "half"}})
    [###############---------------]  50%  RUNNING   half
    """

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._last: tuple[Any, ...] | None = None
        self._width = 0

    def update(self, job: dict[str, Any]) -> None:
        """Show ``job`` (a job document) when its status, percent or message changed."""
        status = str(job.get("status"))
        progress = job.get("progress") or {}
        percent = progress.get("percent")
        message = progress.get("message") or ""
        if status == "SUCCEEDED" and percent is None:
            percent = 100
        state = (status, percent, message)
        if state == self._last:
            return
        self._last = state
        shown = 0.0 if percent is None else max(0.0, min(100.0, float(percent)))
        filled = round(BAR_WIDTH * shown / 100)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        line = f"[{bar}] {shown:3.0f}%  {status:<9} {message}".rstrip()
        if self.tty:
            padding = " " * max(0, self._width - len(line))
            self._width = len(line)
            self.stream.write(f"\r{line}{padding}")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        """End the bar's line (on a terminal)."""
        if self.tty and self._last is not None:
            self.stream.write("\n")
            self.stream.flush()


def follow(
    runtime: LocalRuntime,
    *,
    body: str,
    api_name: str | None,
    job_type: str | None,
    principal: str,
    poll_interval: float,
    stop: threading.Event,
) -> int:
    """Submit ``body`` as a job of ``job_type`` to the API ``api_name``, show its progress until it ends (or
    ``stop`` is set), print the outcome; return the exit code.

    ``EXIT_USAGE`` when the API or the type is not one of the runtime's (the message lists them),
    ``EXIT_SUCCEEDED`` when the job ``SUCCEEDED``, ``EXIT_INTERRUPTED`` when stopped first, else
    ``EXIT_NOT_SUCCEEDED``.

    Example
    -------
    >>> follow(runtime, body='{"seconds": 2}', api_name=None, job_type="reports", principal="local-user",
    ...        poll_interval=0.5, stop=threading.Event())
    0
    """
    try:
        api = runtime.api(api_name)
        submit_url = api.submit_url(job_type)
    except KeyError as error:
        _print(f"async-job local: {error.args[0]} (--api, --type)")
        return EXIT_USAGE
    client = JobClient(api.jobs_url, principal=principal)
    started = time.monotonic()
    response = client.request("POST", submit_url, body.encode(), {"Content-Type": "application/json"})
    _print(f"POST {submit_url} -> {response.status}")
    if response.status != 202:
        _print(response.body.decode("utf-8", "replace"))
        return EXIT_NOT_SUCCEEDED
    job = response.json()
    url = response.header("Location") or client.job_url(job["id"])
    updates = updates_link(response.header("Link"))
    pushed = updates is not None and importlib.util.find_spec("websockets") is not None
    how = f"pushed over {updates}" if pushed else f"read every {poll_interval:g} s"
    _print(f"job {job['id']} accepted; following it, {how} (Ctrl-C to stop)")
    progress = Progress(sys.stdout)
    progress.update(job)
    if pushed:
        job = _follow_push(api.base_url, job, updates, principal, progress, stop)
    while not stop.is_set() and job.get("status") not in TERMINAL_STATUSES:
        reply = client.status(url)
        if reply.status != 200:
            progress.finish()
            _print(f"GET {url} -> {reply.status}: {reply.body.decode('utf-8', 'replace')}")
            return EXIT_NOT_SUCCEEDED
        job = reply.json()
        progress.update(job)
        if job.get("status") in TERMINAL_STATUSES:
            break
        stop.wait(poll_interval)
    progress.finish()
    if job.get("status") not in TERMINAL_STATUSES:
        return EXIT_INTERRUPTED
    elapsed = time.monotonic() - started
    _print(f"{job['status']} after {elapsed:.1f} s")
    if "result" in job:
        _print(f"result: {json.dumps(job['result'])}")
    if job.get("error"):
        failure = job["error"]
        _print(
            f"error: {failure.get('type')}: {failure.get('message')}"
            if isinstance(failure, dict)
            else f"error: {failure}"
        )
    _print(f"status URL: {url}")
    _print(f"  curl -H {shlex.quote(f'{PRINCIPAL_HEADER}: {principal}')} {url}")
    return EXIT_SUCCEEDED if job["status"] == "SUCCEEDED" else EXIT_NOT_SUCCEEDED


def _follow_push(
    base_url: str,
    job: dict[str, Any],
    updates: str | None,
    principal: str,
    progress: Progress,
    stop: threading.Event,
) -> dict[str, Any]:
    """Follow the job's push (``JobClient.wait``, in a thread so that ``stop`` ends the wait); the last job
    seen (its polling loop takes over if the wait failed)."""
    client = async_job_client.JobClient(base_url, auth=async_job_client.LocalCaller(principal))
    first = async_job_client.Job.from_resource(job, updates_url=updates)
    latest: list[dict[str, Any]] = [job]
    done = threading.Event()

    def shown(state: async_job_client.Job) -> None:
        latest.append(state.to_dict())
        progress.update(latest[-1])

    def wait() -> None:
        try:
            client.wait(first.id, on_progress=shown, first=first)
        except async_job_client.ClientError as error:
            _print(f"\nasync-job local: following the push failed ({error}); reading the job instead")
        finally:
            done.set()

    threading.Thread(target=wait, name="follow-push", daemon=True).start()
    while not done.wait(0.1):
        if stop.is_set():
            break
    return latest[-1]
