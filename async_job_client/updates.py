"""Live job updates over the API's WebSocket: connect, subscribe to a job, follow its states as they are written.

An API built with ``AsyncJobApi(websocket=...)`` answers ``POST`` and ``GET /jobs/{id}`` with
``Link: <wss://...>; rel="updates"``. ``JobClient.wait`` (and so ``run`` and the CLI's progress bar) then follows
the job over that WebSocket instead of polling, when the ``websockets`` package is installed (the ``client``
extra). This module imports ``websockets``; ``async_job_client`` imports this module only when it follows a job.

The wire protocol (``docs/websockets.md``): the client sends ``{"action": "subscribe", "jobId": ...}``; the
server answers ``{"type": "subscribed", "jobId": ..., "job": {...}}`` (the job as ``GET /jobs/{id}`` shows it,
at subscribe time), then ``{"type": "job", "job": {...}}`` for every change, in order, up to the terminal state;
``{"type": "error", "status": 404, ...}`` for a job that does not exist or is another caller's.

How the connection is authenticated follows the client's ``auth``: ``SigV4Auth`` presigns the URL (botocore's
``SigV4QueryAuth``, service ``execute-api``), ``BearerToken`` and ``ApiKey`` send their headers, ``LocalCaller``
the local runtime's principal header.

Examples
--------
>>> with JobUpdates("wss://abc123.execute-api.eu-west-1.amazonaws.com/prod", SigV4Auth()) as updates:
...     job = updates.subscribe(job_id)
...     while not job.done:
...         job = updates.next(timeout=30) or job
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit, urlunsplit

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from async_job_client.auth import ApiKey, Auth, SigV4Auth
from async_job_client.errors import ApiError, ClientError, WaitTimeout
from async_job_client.models import Job

if TYPE_CHECKING:
    from async_job_client.client import JobClient

__all__ = ["PRESIGN_SECONDS", "UPDATE_ERRORS", "JobUpdates", "UpdatesError", "connection_request", "follow"]

#: How long a presigned ``$connect`` URL stays valid (it is used at once).
PRESIGN_SECONDS: Final = 60


class UpdatesError(ClientError):
    """The WebSocket did not deliver: the connection failed or dropped, or the server said something else than
    the protocol's frames (API Gateway's ``{"message": "Internal server error", ...}``)."""


#: What a lost or refused connection raises (the caller falls back to polling).
UPDATE_ERRORS: Final = (UpdatesError, ConnectionClosed, InvalidHandshake, InvalidURI, OSError, TimeoutError)


def _http_url(url: str) -> str:
    """The ``https://`` (``http://``) form of a ``wss://`` (``ws://``) URL: what a signature covers."""
    split = urlsplit(url)
    scheme = {"wss": "https", "ws": "http"}.get(split.scheme, split.scheme)
    return urlunsplit((scheme, split.netloc, split.path, split.query, ""))


def _ws_url(url: str) -> str:
    split = urlsplit(url)
    scheme = {"https": "wss", "http": "ws"}.get(split.scheme, split.scheme)
    return urlunsplit((scheme, split.netloc, split.path, split.query, ""))


def connection_request(url: str, auth: Auth) -> tuple[str, dict[str, str]]:
    """The URL to open and the headers to send for ``auth``: a SigV4 signature presigned in the query string,
    else the auth's own headers (``Authorization``, ``x-api-key``, the local principal header).

    Examples
    --------
    >>> connection_request("ws://127.0.0.1:3001/prod", LocalCaller("alice"))
    ('ws://127.0.0.1:3001/prod', {'X-Async-Job-Principal': 'alice'})
    """
    headers: dict[str, str] = {}
    while isinstance(auth, ApiKey):
        headers["x-api-key"] = auth.key
        if auth.also is None:
            return url, headers
        auth = auth.also
    if isinstance(auth, SigV4Auth):
        return _ws_url(auth.presign(_http_url(url), expires=PRESIGN_SECONDS)), headers
    signed = auth.headers("GET", _http_url(url), {}, None)
    return url, {**headers, **signed}


class JobUpdates:
    """One WebSocket connection to a job API's updates.

    Parameters
    ----------
    url
        The ``Link: <...>; rel="updates"`` URL (``wss://{api}.execute-api.{region}.amazonaws.com/{stage}``, or
        the local runtime's ``ws://127.0.0.1:3001/{stage}``).
    auth
        The client's auth (see :func:`connection_request`).
    timeout
        Seconds the opening handshake and the subscribe answer may take. Default: 30.
    """

    def __init__(self, url: str, auth: Auth, *, timeout: float = 30.0) -> None:
        self.url = url
        self.auth = auth
        self.timeout = timeout
        self._socket: ClientConnection | None = None
        #: Frames received (every one counts), for callers who measure.
        self.frames_received = 0
        self._pending: list[dict[str, Any]] = []

    def __enter__(self) -> JobUpdates:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> JobUpdates:
        """Connect (``UpdatesError`` and the ``websockets`` errors of ``UPDATE_ERRORS`` when it fails)."""
        target, headers = connection_request(self.url, self.auth)
        self._socket = connect(
            target,
            additional_headers=headers,
            open_timeout=self.timeout,
            close_timeout=2,
            compression=None,
            max_size=2**20,
        )
        self._socket.__enter__()  # websockets 17 warns of a connection not entered (closed by close())
        return self

    def close(self) -> None:
        """Close the connection (nothing if it is closed)."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def subscribe(self, job_id: str) -> Job:
        """Subscribe to ``job_id``; the job at subscribe time.

        Raises
        ------
        ApiError
            The server's error frame: ``404`` for a job that does not exist or is another caller's.
        UpdatesError
            No subscribe answer in ``timeout`` seconds, or a frame that is not the protocol's.
        """
        socket = self._connected()
        socket.send(json.dumps({"action": "subscribe", "jobId": job_id}))
        while True:
            frame = self._receive(self.timeout)
            if frame is None:
                raise UpdatesError(f"no answer to subscribe {job_id} in {self.timeout:g} s")
            kind = frame.get("type")
            if kind == "subscribed" and frame.get("jobId") == job_id:
                return _job_of(frame)
            if kind == "error":
                raise ApiError(int(frame.get("status") or 400), frame)
            # pushed before the answer (the subscription is written first): kept for next()
            if kind == "job":
                self._pending.append(frame)

    def next(self, timeout: float | None) -> Job | None:
        """The next job frame within ``timeout`` seconds (None: none came); ``UpdatesError`` or
        ``ConnectionClosed`` when the connection is lost."""
        frame = self._pending.pop(0) if self._pending else self._receive(timeout)
        if frame is None:
            return None
        if frame.get("type") in ("job", "subscribed") and isinstance(frame.get("job"), Mapping):
            return _job_of(frame)
        if frame.get("type") == "error":
            raise ApiError(int(frame.get("status") or 400), frame)
        return None

    def _connected(self) -> ClientConnection:
        if self._socket is None:
            raise UpdatesError("not connected (call open first)")
        return self._socket

    def _receive(self, timeout: float | None) -> dict[str, Any] | None:
        try:
            message = self._connected().recv(timeout=timeout)
        except TimeoutError:
            return None
        self.frames_received += 1
        try:
            frame = json.loads(message)
        except ValueError:
            raise UpdatesError(f"not a JSON frame: {str(message)[:200]!r}") from None
        if not isinstance(frame, dict):
            raise UpdatesError(f"not a JSON object: {str(message)[:200]!r}")
        if (
            "type" not in frame and "message" in frame
        ):  # API Gateway's own answer (Forbidden, Internal server error)
            raise UpdatesError(f"the WebSocket API answered {frame.get('message')!r}")
        return frame


def _job_of(frame: Mapping[str, Any]) -> Job:
    resource = frame.get("job")
    if not isinstance(resource, Mapping) or "id" not in resource or "status" not in resource:
        raise UpdatesError(f"a {frame.get('type')} frame without a job: {json.dumps(frame)[:200]}")
    return Job.from_resource(resource)


class _Follower:
    """The state of one ``follow``: the newest job shown, the connection, the reconnect schedule."""

    def __init__(self, client: JobClient, job: Job, on_progress: Callable[[Job], None] | None) -> None:
        self.client = client
        self.job_id = job.id
        self.url = str(job.updates_url)
        self.on_progress = on_progress
        self.shown = job
        self.advised = job.retry_after  # the last read's Retry-After, for the pauses while polling
        self.updates: JobUpdates | None = None
        self.failures = 0
        self.reconnect_at = time.monotonic()
        self.refused = False  # the server refused the subscription: poll to the end
        self.last_heard = time.monotonic()

    def show(self, job: Job) -> bool:
        """Show ``job`` if it is newer than what was shown; whether the job is finished."""
        if job.id == self.job_id and job.is_newer_than(self.shown):
            self.shown = job
            if self.on_progress is not None:
                self.on_progress(job)
        return self.shown.done

    def read(self) -> bool:
        """``GET`` the job now; whether it is finished."""
        job = self.client.get(self.job_id)
        self.advised = job.retry_after
        self.last_heard = time.monotonic()
        return self.show(job)

    def disconnect(self, failed: bool) -> None:
        if self.updates is not None:
            self.client.frames_received += self.updates.frames_received
            self.updates.close()
            self.updates = None
        if failed:
            self.failures += 1
            self.reconnect_at = time.monotonic() + self.client.retry.delay(self.failures)

    def connect(self) -> bool:
        """Connect and subscribe; whether the job is finished. A failure schedules the next attempt and
        reads the job at once (the poll that stands in while the connection is down)."""
        self.client.requests_sent += 1
        self.client.updates_connections += 1
        self.updates = JobUpdates(self.url, self.client.auth, timeout=self.client.timeout)
        try:
            self.updates.open()
            snapshot = self.updates.subscribe(self.job_id)
        except ApiError:
            self.refused = True
            self.disconnect(failed=False)
            return self.read()
        except UPDATE_ERRORS:
            self.disconnect(failed=True)
            return self.read()
        self.failures = 0
        self.last_heard = time.monotonic()
        return self.show(snapshot)

    def listen(self, remaining: float | None) -> bool:
        """Wait for the next pushed state (up to ``max_poll`` since the last news, then read the job anyway);
        whether the job is finished. A lost connection reads the job at once."""
        assert self.updates is not None
        quiet = self.client.max_poll - (time.monotonic() - self.last_heard)
        wait = quiet if remaining is None else min(quiet, remaining)
        try:
            job = self.updates.next(timeout=max(0.0, wait))
        except ApiError:
            self.refused = True
            self.disconnect(failed=False)
            return self.read()
        except UPDATE_ERRORS:
            self.disconnect(failed=True)
            return self.read()
        if job is not None:
            self.last_heard = time.monotonic()
            return self.show(job)
        if time.monotonic() - self.last_heard >= self.client.max_poll:
            return self.read()  # a safety net: an update lost on the way is caught up within max_poll
        return False

    def poll(self, remaining: float | None) -> bool:
        """While disconnected: pause as ``Retry-After`` says (until the next reconnect at most), then read."""
        pause = self.client.poll_pause(self.advised)
        if not self.refused:
            until_reconnect = self.reconnect_at - time.monotonic()
            if until_reconnect < pause:
                self.client._sleep(max(0.0, until_reconnect))  # then reconnect: its snapshot is the read
                return False
        if remaining is not None:
            pause = min(pause, remaining)
        self.client._sleep(pause)
        return self.read()


def follow(
    client: JobClient,
    job: Job,
    *,
    deadline: float | None,
    timeout: float | None,
    on_progress: Callable[[Job], None] | None,
) -> Job:
    """Follow ``job`` over its API's WebSocket (``job.updates_url``) until it is finished; the finished job.

    ``on_progress`` is called with ``job``, then with every newer state, pushed or read. A connection that
    fails or drops is replaced by a ``GET`` at once and polling while it reconnects (backoff of
    ``client.retry``); a subscription the server refuses (``404``) is replaced by polling to the end.
    ``JobClient.wait`` calls it.

    Raises
    ------
    WaitTimeout
        ``deadline`` (``time.monotonic()``) passed first.
    """
    follower = _Follower(client, job, on_progress)
    if on_progress is not None:
        on_progress(job)
    try:
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise WaitTimeout(follower.shown, timeout or 0.0)
            if follower.updates is not None:
                finished = follower.listen(remaining)
            elif not follower.refused and time.monotonic() >= follower.reconnect_at:
                finished = follower.connect()
            else:
                finished = follower.poll(remaining)
            if finished:
                return follower.shown
    finally:
        follower.disconnect(failed=False)
