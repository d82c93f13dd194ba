"""A small HTTP client of the job API (standard library only), for the CLI, the tests and the benchmark.

It speaks to the local runtime, where the caller is named by the ``X-Async-Job-Principal`` header; a deployed
API needs SigV4-signed requests instead (botocore's ``SigV4Auth``, or ``awscurl``).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urlsplit

from lambda_handlers.contract import PRINCIPAL_HEADER

__all__ = ["TERMINAL_STATUSES", "HttpResponse", "JobClient", "JobClientError"]

TERMINAL_STATUSES: Final = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})


class JobClientError(RuntimeError):
    """The API answered something other than what the call expects (``response`` holds the answer)."""

    def __init__(self, message: str, response: HttpResponse) -> None:
        super().__init__(message)
        self.response = response


@dataclass(frozen=True)
class HttpResponse:
    """An HTTP response: ``headers`` keyed by lowercase name (repeated headers joined with ``, ``)."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (any case), or None."""
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body, JSON-decoded."""
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        """The media type, without parameters."""
        return (self.header("Content-Type") or "").split(";")[0].strip()


class JobClient:
    """Submit jobs to and read jobs from one job API.

    Parameters
    ----------
    jobs_url
        The API's ``/jobs`` URL, as ``async-job local`` prints it.
    principal
        Sent as ``X-Async-Job-Principal`` (who the caller is, locally). None sends no header: the runtime's
        default principal applies.
    timeout
        Socket timeout of each request, seconds.

    Connections are kept alive, one per thread.

    Example
    -------
    >>> client = JobClient("http://127.0.0.1:3000/asyncjobsample-reports/jobs")
    >>> job = client.submit({"seconds": 3}).json()
    >>> client.wait(job["id"], on_update=print)["status"]
    'SUCCEEDED'
    """

    def __init__(self, jobs_url: str, *, principal: str | None = "local-user", timeout: float = 30.0) -> None:
        split = urlsplit(jobs_url)
        if split.scheme != "http" or split.hostname is None:
            raise ValueError(f"jobs_url must be an http:// URL (given {jobs_url!r})")
        self.jobs_url = jobs_url.rstrip("/")
        self.principal = principal
        self.timeout = timeout
        self._host = split.hostname
        self._port = split.port or 80
        self._jobs_path = split.path.rstrip("/")
        self._local = threading.local()

    # ---------------------------------------------------------------------------------------------- HTTP

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
            self._local.connection = connection
        return connection

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def request(
        self,
        method: str,
        path_or_url: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        """Send one request (``path_or_url``: a path on the API's host, or an absolute URL on it)."""
        split = urlsplit(path_or_url)
        path = split.path + (f"?{split.query}" if split.query else "")
        all_headers = {"Accept": "application/json", **(headers or {})}
        if self.principal is not None:
            all_headers.setdefault(PRINCIPAL_HEADER, self.principal)
        for attempt in (1, 2):
            connection = self._connection()
            reused = connection.sock is not None
            try:
                connection.request(method, path, body=body, headers=all_headers)
                raw = connection.getresponse()
                data = raw.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._drop_connection()
                if attempt == 2 or not reused:  # only a stale kept-alive connection is worth a retry
                    raise
                continue
            except Exception:
                self._drop_connection()
                raise
            if raw.will_close:
                self._drop_connection()
            merged: dict[str, str] = {}
            for name, value in raw.getheaders():
                key = name.lower()
                merged[key] = f"{merged[key]}, {value}" if key in merged else value
            return HttpResponse(status=raw.status, headers=merged, body=data)
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close this thread's connection."""
        self._drop_connection()

    # ---------------------------------------------------------------------------------------------- jobs

    def submit(
        self, payload: Any, *, content_type: str = "application/json", job_type: str | None = None
    ) -> HttpResponse:
        """``POST /jobs``, or ``POST /{job_type}`` beside it. ``payload``: an object (sent as JSON), or
        ``str``/``bytes`` sent as they are."""
        if isinstance(payload, bytes):
            body = payload
        elif isinstance(payload, str):
            body = payload.encode()
        else:
            body = json.dumps(payload).encode()
        path = self._jobs_path
        if job_type is not None:
            path = f"{path.rsplit('/', 1)[0]}/{quote(job_type, safe='')}"
        return self.request("POST", path, body, {"Content-Type": content_type})

    def job_url(self, job: str) -> str:
        """The status URL of a job id (an absolute URL is returned as is)."""
        if "://" in job:
            return job
        return f"{self.jobs_url}/{quote(job, safe='')}"

    def status(self, job: str) -> HttpResponse:
        """``GET /jobs/{id}`` (``job``: an id, or the status URL from ``Location``)."""
        return self.request("GET", self.job_url(job))

    def wait(
        self,
        job: str,
        *,
        poll_interval: float = 0.5,
        timeout: float | None = None,
        on_update: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll a job until it is ``SUCCEEDED``, ``FAILED`` or ``CANCELLED``; return it.

        ``on_update`` gets each job document that differs from the previous one. Raises ``TimeoutError``
        after ``timeout`` seconds, ``JobClientError`` when a read does not answer ``200``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        previous: dict[str, Any] | None = None
        while True:
            response = self.status(job)
            if response.status != 200:
                raise JobClientError(f"GET {self.job_url(job)} answered {response.status}", response)
            document: dict[str, Any] = response.json()
            if on_update is not None and document != previous:
                on_update(document)
            previous = document
            if document.get("status") in TERMINAL_STATUSES:
                return document
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job} is still {document.get('status')} after {timeout} s")
            time.sleep(poll_interval)
