"""``JobClient``: submit, read, wait for and cancel jobs of one job API, deployed or local."""

from __future__ import annotations

import http.client
import importlib.util
import json
import re
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urlencode, urlsplit

from async_job_client.auth import Auth, LocalCaller, SigV4Auth
from async_job_client.errors import ApiError, JobCancelled, JobFailed, TransportError, WaitTimeout
from async_job_client.models import Job, JobFile, JobPage
from async_job_client.retry import RetryPolicy, parse_retry_after

__all__ = [
    "DEFAULT_MAX_POLL",
    "DEFAULT_MIN_POLL",
    "DEFAULT_POLL",
    "JobClient",
    "default_auth",
    "updates_link",
]

#: The shortest wait between two reads of a job, whatever ``Retry-After`` says.
DEFAULT_MIN_POLL: Final = 0.5
#: The longest wait between two reads of a job, whatever ``Retry-After`` says.
DEFAULT_MAX_POLL: Final = 30.0
#: The wait between two reads when an answer gives no ``Retry-After`` (the construct's ``poll_interval``).
DEFAULT_POLL: Final = 5.0

_TRANSPORT_ERRORS: Final = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)
#: One link of a ``Link`` header: its target and its parameters.
_LINK: Final = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]+)*)")
_REL: Final = re.compile(r"""rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))""", re.IGNORECASE)


def updates_link(header: str | None) -> str | None:
    """The target of the ``rel="updates"`` link of a ``Link`` header (the API's WebSocket), else None.

    Examples
    --------
    >>> updates_link('<wss://abc.execute-api.eu-west-1.amazonaws.com/prod>; rel="updates"')
    'wss://abc.execute-api.eu-west-1.amazonaws.com/prod'
    """
    for found in _LINK.finditer(header or ""):
        rel = _REL.search(found[2])
        if rel is not None and "updates" in (rel[1] or rel[2] or "").lower().split():
            return found[1].strip() or None
    return None


def _websockets_installed() -> bool:
    return importlib.util.find_spec("websockets") is not None


def default_auth(url: str) -> Auth:
    """``LocalCaller()`` for a loopback URL (``async-job local``), else ``SigV4Auth()``."""
    host = (urlsplit(url).hostname or "").lower()
    if host in ("127.0.0.1", "localhost", "::1") or host.startswith("127."):
        return LocalCaller()
    return SigV4Auth()


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class JobClient:
    """A client of one job API.

    Parameters
    ----------
    url
        The API's base URL, the stage's: ``https://{id}.execute-api.{region}.amazonaws.com/prod``, or the local
        runtime's ``http://127.0.0.1:3000/{stage}``. Jobs are submitted to ``{url}/{type}`` and read at
        ``{url}/jobs/{id}``.
    auth
        ``SigV4Auth()``, ``BearerToken(...)``, ``ApiKey(...)`` or ``LocalCaller(...)``. Default: ``LocalCaller()``
        for a loopback URL, else ``SigV4Auth()`` (the standard botocore credential chain).
    retry
        Retries of 429, 5xx (not 501) and connection errors. Default: ``RetryPolicy()`` (5 attempts, capped
        exponential backoff with full jitter, ``Retry-After`` obeyed up to 60 s).
    timeout
        Seconds one HTTP request may take. Default: 30.
    min_poll, max_poll
        The floor and the cap on ``wait``'s pause between reads. Default: 0.5 s and 30 s. While it follows a
        job's push, ``wait`` reads the job anyway after ``max_poll`` seconds without an update.
    push
        Follow a job over the API's WebSocket in ``wait`` (and so ``run`` and the CLI's progress bar) when the
        API links one (``Link: <...>; rel="updates"``) and the ``websockets`` package is installed. A dropped
        connection falls back to polling at once and reconnects with backoff. Default: True. False: always poll.

    Examples
    --------
    >>> client = JobClient("http://127.0.0.1:3000/prod")
    >>> client.run({"seconds": 2})
    {'slept': 2}
    """

    def __init__(
        self,
        url: str,
        auth: Auth | None = None,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        min_poll: float = DEFAULT_MIN_POLL,
        max_poll: float = DEFAULT_MAX_POLL,
        sleep: Callable[[float], None] = time.sleep,
        push: bool = True,
    ) -> None:
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"url must be an http(s) URL, the API stage's (given {url!r})")
        if not 0 < min_poll <= max_poll:
            raise ValueError(f"min_poll must be positive and at most max_poll (given {min_poll}, {max_poll})")
        self.url = url.rstrip("/")
        self.auth = default_auth(url) if auth is None else auth
        self.retry = RetryPolicy() if retry is None else retry
        self.timeout = timeout
        self.min_poll = min_poll
        self.max_poll = max_poll
        self._sleep = sleep
        self.push = push
        #: Requests sent (every attempt counts, a WebSocket's opening handshake too), for callers who measure.
        self.requests_sent = 0
        #: Frames received over the WebSocket, and connections opened (each also counts in ``requests_sent``).
        self.frames_received = 0
        self.updates_connections = 0

    # -- operations -------------------------------------------------------------------------------------------

    def submit(
        self,
        payload: Mapping[str, Any],
        type: str | None = None,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
    ) -> Job:
        """``POST /{type}`` (default ``/jobs``) with ``payload``; the job the ``202`` describes.

        Every attempt sends the same ``Idempotency-Key`` (a new UUID per call unless given), so a retried submit
        whose first answer was lost creates one job, not two. ``callback_url`` (``Callback-Url``) asks for a signed
        webhook when the job ends (to a host the API allows).

        Examples
        --------
        >>> client.submit({"report": "2026-11"}, type="reports").status
        'QUEUED'
        """
        key = str(uuid.uuid4()) if idempotency_key is None else idempotency_key
        body = json.dumps(payload, separators=(",", ":")).encode()
        answer = self._request(
            "POST",
            f"{self.url}/{quote(type or 'jobs', safe='')}",
            body=body,
            headers={
                "Content-Type": "application/json",
                "Idempotency-Key": key,
                **({} if callback_url is None else {"Callback-Url": callback_url}),
            },
            expect=(202,),
        )
        return self._job(answer)

    def get(self, job_id: str) -> Job:
        """``GET /jobs/{id}``: the job now."""
        return self._job(self._request("GET", self._job_url(job_id), expect=(200,)))

    def result(self, job_id: str) -> Any:
        """``GET /jobs/{id}/result``: a SUCCEEDED job's result, whatever its size.

        A result too large for the job's status item is answered with a ``303`` to a presigned link; that link is
        fetched without the API's credentials (it carries its own).

        Raises
        ------
        ApiError
            ``409 job-not-succeeded`` (the job is not SUCCEEDED), ``404 job-not-found``.
        """
        answer = self._request("GET", f"{self._job_url(job_id)}/result", expect=(200, 303))
        if answer.status == 303:
            answer = self._fetch(answer.headers["location"])
        return answer.json()

    def download(self, file: JobFile) -> bytes:
        """The bytes of a file the job saved (``job.files``), through its presigned link.

        Examples
        --------
        >>> job = client.get(job_id)
        >>> Path("report.csv").write_bytes(client.download(job.files[0]))
        """
        return self._fetch(file.url).body

    def cancel(self, job_id: str) -> Job:
        """``DELETE /jobs/{id}``: the job ``CANCELLED`` (``200``) or with ``cancel_requested`` (``202``)."""
        return self._job(self._request("DELETE", self._job_url(job_id), expect=(200, 202)))

    def list_page(
        self,
        *,
        status: str | Iterable[str] | None = None,
        type: str | None = None,
        limit: int | None = None,
        owner: str | None = None,
        cursor: str | None = None,
    ) -> JobPage:
        """``GET /jobs``: one page of the caller's jobs, newest first.

        Parameters
        ----------
        status
            Only jobs in this status, or in any of these.
        type
            Only jobs of this job type.
        limit
            The most jobs on the page (1-100; the API's default is 20).
        owner
            Whose jobs (operators only; the API answers anyone else ``403 owner-forbidden``).
        cursor
            ``next_cursor`` of the previous page.

        Examples
        --------
        >>> page = client.list_page(status=["FAILED", "CANCELLED"], limit=50)
        >>> while page.next_cursor:
        ...     page = client.list_page(status=["FAILED", "CANCELLED"], limit=50, cursor=page.next_cursor)
        """
        query: dict[str, str] = {}
        if status is not None:
            query["status"] = status if isinstance(status, str) else ",".join(status)
        for name, value in (("type", type), ("limit", limit), ("owner", owner), ("cursor", cursor)):
            if value is not None:
                query[name] = str(value)
        url = f"{self.url}/jobs" + (f"?{urlencode(query)}" if query else "")
        answer = self._request("GET", url, expect=(200,))
        page = answer.json()
        listed = page.get("jobs") if isinstance(page, Mapping) else None
        if not isinstance(listed, list) or not all(isinstance(job, Mapping) for job in listed):
            raise ApiError(
                answer.status,
                {"title": "not a page of jobs", "detail": answer.body[:200].decode("utf-8", "replace")},
                answer.headers,
            )
        following = page.get("next")
        return JobPage(
            tuple(Job.from_resource(job) for job in listed),
            following if isinstance(following, str) and following else None,
        )

    def list(
        self,
        *,
        status: str | Iterable[str] | None = None,
        type: str | None = None,
        owner: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[Job]:
        """Every job of the caller's that matches, newest first, read a page at a time as the loop goes on.

        Examples
        --------
        >>> failed = [job.id for job in client.list(status="FAILED", type="reports")]
        >>> latest = next(client.list(), None)
        """
        cursor: str | None = None
        while True:
            page = self.list_page(status=status, type=type, limit=page_size, owner=owner, cursor=cursor)
            yield from page.jobs
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def wait(
        self,
        job_id: str,
        timeout: float | None = None,
        on_progress: Callable[[Job], None] | None = None,
        *,
        first: Job | None = None,
    ) -> Job:
        """Read the job until it is finished, as often as ``Retry-After`` says, or follow its push; the finished
        job.

        When the API links a WebSocket (``job.updates_url``) and ``push`` is on, the job is followed there:
        ``on_progress`` is called with every state pushed, and on a dropped connection ``wait`` reads the job at
        once, polls while it reconnects (with backoff), and shows no state older than one already shown.
        Otherwise the pause between reads is the answer's ``Retry-After`` held between ``min_poll`` and ``max_poll`` (and
        never past the deadline). ``on_progress`` is called with the job after every read. A job that ends
        ``FAILED`` or ``CANCELLED`` is returned, not raised: ``run`` raises.

        Raises
        ------
        WaitTimeout
            ``timeout`` seconds passed first (``None``: wait for ever).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        job = first if first is not None else self.get(job_id)
        if self.push and job.updates_url is not None and not job.done and _websockets_installed():
            from async_job_client.updates import follow  # lazily: it imports websockets

            return follow(self, job, deadline=deadline, timeout=timeout, on_progress=on_progress)
        while True:
            if on_progress is not None:
                on_progress(job)
            if job.done:
                return job
            pause = self.poll_pause(job.retry_after)
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WaitTimeout(job, timeout or 0.0)
                pause = min(pause, remaining)
            self._sleep(pause)
            job = self.get(job_id)

    def run(
        self,
        payload: Mapping[str, Any],
        type: str | None = None,
        timeout: float | None = None,
        on_progress: Callable[[Job], None] | None = None,
    ) -> Any:
        """Submit and wait: the job's result.

        Examples
        --------
        >>> JobClient(url).run({"seconds": 2})

        Raises
        ------
        JobFailed
            The job ended ``FAILED`` (``error.error`` is its ``{type, message}``).
        JobCancelled
            The job ended ``CANCELLED``.
        WaitTimeout
            ``timeout`` seconds passed first.
        """
        job = self.submit(payload, type=type)
        finished = self.wait(job.id, timeout=timeout, on_progress=on_progress, first=job)
        if finished.status == "FAILED":
            raise JobFailed(finished)
        if finished.status == "CANCELLED":
            raise JobCancelled(finished)
        if not finished.result_inline and finished.result_url is not None:
            return self.result(finished.id)  # kept in the API's bucket: one more request, and its redirect
        return finished.result

    def poll_pause(self, retry_after: float | None) -> float:
        """The pause before the next read: ``retry_after`` (else 5 s) held between ``min_poll`` and ``max_poll``."""
        advised = DEFAULT_POLL if retry_after is None else retry_after
        return min(max(advised, self.min_poll), self.max_poll)

    # -- HTTP ---------------------------------------------------------------------------------------------------

    def _job_url(self, job_id: str) -> str:
        return f"{self.url}/jobs/{quote(job_id, safe='')}"

    def _job(self, answer: _Answer) -> Job:
        resource = answer.json()
        if not isinstance(resource, Mapping) or "id" not in resource or "status" not in resource:
            raise ApiError(
                answer.status,
                {"title": "not a job", "detail": answer.body[:200].decode("utf-8", "replace")},
                answer.headers,
            )
        return Job.from_resource(
            resource,
            location=answer.headers.get("location"),
            retry_after=parse_retry_after(answer.headers.get("retry-after")),
            replayed=answer.headers.get("idempotent-replayed", "").lower() == "true",
            updates_url=updates_link(answer.headers.get("link")),
        )

    def _request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        expect: tuple[int, ...],
    ) -> _Answer:
        attempt = 0
        while True:
            attempt += 1
            try:
                answer = self._send(method, url, body, dict(headers or {}))
            except _TRANSPORT_ERRORS as error:
                if attempt >= self.retry.max_attempts:
                    raise TransportError(
                        f"{method} {url}: no answer after {attempt} attempt(s): {error}"
                    ) from error
                self._sleep(self.retry.delay(attempt))
                continue
            if answer.status in expect:
                return answer
            if self.retry.retryable(answer.status) and attempt < self.retry.max_attempts:
                advised = (
                    parse_retry_after(answer.headers.get("retry-after"))
                    if answer.status in (429, 503)
                    else None
                )
                self._sleep(self.retry.delay(attempt, advised))
                continue
            raise _api_error(answer)

    def _fetch(self, url: str) -> _Answer:
        """GET a presigned link: no credentials of the API's (S3 refuses a second authentication), retried as
        any request."""
        attempt = 0
        while True:
            attempt += 1
            request = urllib.request.Request(url, method="GET")
            self.requests_sent += 1
            try:
                with _NO_REDIRECTS.open(request, timeout=self.timeout) as response:
                    return _Answer(response.status, _lower(response.headers.items()), response.read())
            except urllib.error.HTTPError as error:
                with error:
                    answer = _Answer(error.code, _lower(error.headers.items()), error.read())
                if not (self.retry.retryable(answer.status) and attempt < self.retry.max_attempts):
                    raise _api_error(answer) from None
            except _TRANSPORT_ERRORS as error:
                if attempt >= self.retry.max_attempts:
                    raise TransportError(f"GET {url.split('?')[0]}: no answer: {error}") from error
            self._sleep(self.retry.delay(attempt))

    def _send(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> _Answer:
        headers.setdefault("Accept", "application/json, application/problem+json")
        signed = self.auth.headers(method, url, headers, body)
        request = urllib.request.Request(url, data=body, headers=signed, method=method)
        self.requests_sent += 1
        try:
            with _NO_REDIRECTS.open(request, timeout=self.timeout) as response:
                return _Answer(response.status, _lower(response.headers.items()), response.read())
        except urllib.error.HTTPError as error:
            with error:
                return _Answer(error.code, _lower(error.headers.items()), error.read())


class _KeepRedirects(urllib.request.HTTPRedirectHandler):
    """Hand a redirect back as the answer: following it would send the API's credentials to its target."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


#: urllib without automatic redirects (a ``303`` of ``/result`` is followed by ``_fetch``, without credentials).
_NO_REDIRECTS: Final = urllib.request.build_opener(_KeepRedirects())


def _lower(items: Any) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _api_error(answer: _Answer) -> ApiError:
    try:
        problem = answer.json()
    except ValueError:
        problem = None
    if not isinstance(problem, Mapping):
        text = answer.body[:500].decode("utf-8", "replace")
        problem = {"title": http.client.responses.get(answer.status, "error"), "detail": text or None}
    return ApiError(answer.status, problem, answer.headers)
