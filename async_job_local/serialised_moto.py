"""moto served to many threads one request at a time (linearizable), SQS long polls waiting outside.

moto is not thread-safe. ``TransactWriteItems`` copies every table it touches and puts the copy back when the
transaction fails, erasing what other threads wrote meanwhile; ``UpdateItem`` and ``PutItem`` check their
condition and write in two steps, so two conditional writes can both pass; ``ReceiveMessage`` can hand one
message to two consumers or fail with ``list.remove(x): x not in list``. Every idempotent replay is a
transaction that fails on purpose, so a burst of replays rolls the status table back. (Under the lock a
transaction is run by ``async_job_local.moto_transactions`` instead: the same answers, at the cost of the items
it names rather than of the whole table.)

So ``SerialisedMotoApp`` runs every request to moto under one lock, start to end, response body included:
each request takes effect at one instant between its arrival and its answer, in one order for all of them.
The lock is the process's, not the server's: moto keeps its state per process (two servers in one process
share it), so two servers must exclude each other too. One lock for DynamoDB and SQS alike: under the GIL
moto's requests cannot overlap usefully anyway (they never wait on I/O), and one lock cannot deadlock.

What the lock must not hold is an SQS long poll (``ReceiveMessage`` with ``WaitTimeSeconds`` > 0, or without
it on a queue whose ``ReceiveMessageWaitTimeSeconds`` is > 0): moto waits inside the request, which would stop
every other request for up to 20 s. Such a receive is run here instead, as SQS would: moto is asked with
``WaitTimeSeconds=0`` (one atomic attempt under the lock) until messages come or the wait is over, and between
attempts the request waits, lock released, for its queue to change: a send or a visibility change to that
queue wakes it at once (a long poll returns a new message in ~15 ms, as moto's own did), and it looks again
every ``RECHECK_SECONDS`` regardless, since messages also become visible by the clock (a visibility timeout or
a delay running out). Both SQS protocols are understood: JSON (``X-Amz-Target: AmazonSQS.ReceiveMessage``,
what botocore speaks now) and the older query protocol (``Action=ReceiveMessage`` in a form body or the query
string). A receive in neither, or malformed, goes to moto as it is: moto answers it with an error, at once.

Request bodies are read whole before the lock is taken, so a slow client holds up no one but itself; answers
are buffered whole, then sent once the lock is released. What the lock cannot cover: moto used in this process
by other means (``mock_aws``), and a request moto would serve by calling this server over HTTP (it would wait
for itself; DynamoDB and SQS make none). The lock costs no CPU, only the overlap the GIL allowed: the local
benchmark's throughput and POST latencies stay within run-to-run noise (docs/local-runtime.md).
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

from async_job_local import moto_transactions

__all__ = ["RECHECK_SECONDS", "SerialisedMotoApp"]

#: How often a waiting long poll looks again with nothing sent to its queue: the longest a message made
#: visible by the clock (a visibility timeout or a delay ending) waits past that moment (moto's own long
#: poll looked once a second). Each look is one empty receive, ~2 ms of moto, so 8 ms/s per waiting poll.
RECHECK_SECONDS: Final = 0.25
#: SQS's longest ``WaitTimeSeconds``: a longer (or negative, or non-integer) one is moto's to reject.
MAX_WAIT_SECONDS: Final = 20
#: SQS actions after which a waiting receive on the same queue may find messages.
_WAKING_ACTIONS: Final = frozenset(
    {"SendMessage", "SendMessageBatch", "ChangeMessageVisibility", "ChangeMessageVisibilityBatch"}
)
#: SQS actions that may make messages visible on queues they do not name: every waiting receive looks again.
_WAKE_ALL_ACTIONS: Final = frozenset({"StartMessageMoveTask"})
_SQS_TARGET: Final = "AmazonSQS."
_FORM: Final = "application/x-www-form-urlencoded"
_XML_WAIT: Final = re.compile(rb"<Name>ReceiveMessageWaitTimeSeconds</Name>\s*<Value>(\d+)</Value>")

StartResponse = Callable[..., Any]
Headers = list[tuple[str, str]]


@dataclass(frozen=True)
class _Answer:
    """A response from moto, complete: sent to the client once the lock is released."""

    status: str
    headers: Headers
    body: bytes

    @property
    def ok(self) -> bool:
        return self.status.startswith("2")

    def has_messages(self) -> bool:
        """Whether this (successful) ``ReceiveMessage`` answer holds messages, in either protocol."""
        if self.body.lstrip().startswith(b"<"):
            return b"<Message>" in self.body
        try:
            document = json.loads(self.body)
        except ValueError:
            return True  # not a receive's answer as we know it: no reason to ask again
        return not isinstance(document, dict) or bool(document.get("Messages"))


class _Changes:
    """Which queues have changed, and the receives waiting for that: a count and a condition per queue name.

    A change to a queue wakes as many of its waiting receives as it may have made messages visible (one per
    message sent, say): the others would find nothing. A waiting receive looks again by the clock anyway.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conditions: dict[str, threading.Condition] = {}
        self._counts: dict[str, int] = {}
        self._everything = 0  # changes that may concern any queue

    def _condition(self, queue: str) -> threading.Condition:
        condition = self._conditions.get(queue)
        if condition is None:
            condition = self._conditions[queue] = threading.Condition(self._lock)
        return condition

    def seen(self, queue: str) -> tuple[int, int]:
        """A token of the queue's state now, to wait on."""
        with self._lock:
            return self._counts.get(queue, 0), self._everything

    def changed(self, queue: str | None, wake: int = 1) -> None:
        """Record a change to ``queue`` and wake ``wake`` of its waiting receives (None: every queue, all)."""
        if wake <= 0:
            return
        with self._lock:
            if queue is None:
                self._everything += 1
                for condition in self._conditions.values():
                    condition.notify_all()
            else:
                self._counts[queue] = self._counts.get(queue, 0) + 1
                self._condition(queue).notify(wake)

    def wait(self, queue: str, seen: tuple[int, int], timeout: float, closed: threading.Event) -> None:
        """Wait until the queue changes after ``seen``, ``closed`` is set, or ``timeout`` seconds pass."""
        with self._lock:
            self._condition(queue).wait_for(
                lambda: closed.is_set() or (self._counts.get(queue, 0), self._everything) != seen, timeout
            )

    def wake_all(self) -> None:
        """Wake every waiting receive so that it looks at what it waits for (a server closing)."""
        with self._lock:
            for condition in self._conditions.values():
                condition.notify_all()


#: The one lock over moto in this process, and the queues' changes (moto's state is per process).
_MOTO_LOCK: Final = threading.Lock()
_CHANGES: Final = _Changes()


@dataclass(frozen=True)
class _SqsRequest:
    """An SQS request's action and parameters, and how to send it again with other parameters.

    ``form``: where the query protocol's parameters came from (``"body"`` or ``"query"``); None for JSON.
    """

    action: str
    params: dict[str, Any]
    path: str
    form: str | None = None

    @property
    def queue(self) -> str | None:
        """The queue's name as moto finds it: the end of ``QueueUrl`` (or a name alone), else of the path."""
        url = self.params.get("QueueUrl")
        name = url.rstrip("/").rsplit("/", 1)[-1] if isinstance(url, str) else self.path.rsplit("/", 1)[-1]
        return name or None

    def made_visible(self) -> int:
        """At most how many messages this send or visibility change may have made visible on its queue."""
        entries = self.params.get("Entries") if self.form is None else _query_entries(self.params)
        changes = entries if self.action.endswith("Batch") else [self.params]
        if not isinstance(changes, list):
            return 1  # malformed: moto rejects it, but a look costs little
        if self.action.startswith("Send"):
            return len(changes)
        return sum(1 for change in changes if not _positive(change, "VisibilityTimeout"))

    def wait_seconds(self) -> int | None:
        """``WaitTimeSeconds`` read as moto reads it: None means the queue's default (absent, or moto's
        ``int()`` of it raises ``TypeError``); 0 means moto answers at once (no wait, or an error to give)."""
        raw = self.params.get("WaitTimeSeconds")
        try:
            wait = int(raw)  # type: ignore[arg-type]
        except TypeError:
            return None
        except ValueError:
            return 0
        return wait if 0 < wait <= MAX_WAIT_SECONDS else 0

    def environ(self, original: dict[str, Any], action: str, params: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``original`` sending ``action`` with ``params`` instead (same headers, same signature)."""
        environ = dict(original)
        if self.form is None:
            environ["HTTP_X_AMZ_TARGET"] = _SQS_TARGET + action
            return _with_body(environ, json.dumps(params).encode())
        encoded = urlencode({"Action": action, **params})
        if self.form == "query":
            environ["QUERY_STRING"] = encoded
            return _with_body(environ, b"")
        return _with_body(environ, encoded.encode())


def _sqs_request(environ: dict[str, Any], body: bytes) -> _SqsRequest | None:
    """The SQS request in ``environ`` (body already read), or None when it is not one we must look into."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    path = environ.get("PATH_INFO", "")
    if target.startswith(_SQS_TARGET):
        action = target[len(_SQS_TARGET) :]
        if action not in _WAKING_ACTIONS and action != "ReceiveMessage":
            return _SqsRequest(action, {}, path)
        try:
            params = json.loads(body)
        except ValueError:
            return None  # moto answers an error: nothing to wait for
        return _SqsRequest(action, params, path) if isinstance(params, dict) else None
    if target:
        return None  # another JSON service (DynamoDB): nothing to look into
    if environ.get("CONTENT_TYPE", "").startswith(_FORM) and body:
        params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        form = "body"
    else:
        params = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        form = "query"
    action = params.pop("Action", None)
    return _SqsRequest(action, params, path, form) if action else None


def _query_entries(params: dict[str, Any]) -> list[dict[str, str]]:
    """The entries of a query-protocol batch (``<...>Entry.<n>.<field>=<value>``), in no particular order."""
    entries: dict[str, dict[str, str]] = {}
    for key, value in params.items():
        parts = key.split(".")
        if len(parts) == 3 and parts[0].endswith("Entry"):
            entries.setdefault(parts[1], {})[parts[2]] = value
    return list(entries.values())


def _positive(params: Any, name: str) -> bool:
    try:
        return int(params[name]) > 0
    except (TypeError, ValueError, KeyError):
        return False  # absent or malformed: not a positive integer


def _with_body(environ: dict[str, Any], body: bytes) -> dict[str, Any]:
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("wsgi.input_terminated", None)
    return environ


def _read_body(environ: dict[str, Any]) -> bytes:
    """The whole request body (a chunked one too), read from the client now."""
    stream = environ["wsgi.input"]
    if environ.get("wsgi.input_terminated"):
        return bytes(stream.read())
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return bytes(stream.read(length)) if length > 0 else b""


class SerialisedMotoApp:
    """A WSGI app that runs each request of ``app`` (moto's) atomically, and SQS long polls outside.

    Parameters
    ----------
    app
        moto's WSGI application.

    Example
    -------
    >>> from werkzeug.serving import make_server
    >>> server = make_server("127.0.0.1", 0, SerialisedMotoApp(moto_app), threaded=True)
    """

    def __init__(self, app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]]) -> None:
        self._app = app
        self._closed = threading.Event()
        moto_transactions.install()

    def close(self) -> None:
        """End the waiting long polls now (each answers what it has: no messages)."""
        self._closed.set()
        _CHANGES.wake_all()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        body = _read_body(environ)
        pristine = _with_body(dict(environ), body)  # moto's Request caches itself in the environ it gets
        sqs = _sqs_request(pristine, body)
        if sqs is not None and sqs.action == "ReceiveMessage":
            answer = self._receive(pristine, sqs)
        else:
            answer = self._call(pristine)
            if sqs is not None and sqs.action in _WAKING_ACTIONS:
                _CHANGES.changed(sqs.queue, sqs.made_visible())  # (queue None: one we cannot name, so all)
            elif sqs is not None and sqs.action in _WAKE_ALL_ACTIONS:
                _CHANGES.changed(None)
        start_response(answer.status, answer.headers)
        return [answer.body]

    def _call(self, environ: dict[str, Any]) -> _Answer:
        """One request to moto, atomically: its body is read to the end before the lock is released."""
        started: list[tuple[str, Headers]] = []
        written: list[bytes] = []

        def capture(status: str, headers: Headers, exc_info: Any = None) -> Callable[[bytes], None]:
            started[:] = [(status, list(headers))]
            return written.append

        with _MOTO_LOCK:
            moto_transactions.SERIALISED.active = True
            try:
                chunks = self._app(environ, capture)
                try:
                    written.extend(chunks)
                finally:
                    close = getattr(chunks, "close", None)
                    if close is not None:
                        close()
            finally:
                moto_transactions.SERIALISED.active = False
        (status, headers) = started[0]
        return _Answer(status, headers, b"".join(written))

    def _receive(self, environ: dict[str, Any], request: _SqsRequest) -> _Answer:
        """``ReceiveMessage``: one atomic attempt at a time until messages come or the wait is over."""
        wait = request.wait_seconds()
        if wait is None:
            wait = self._default_wait(environ, request)
        queue = request.queue
        if wait == 0 or queue is None:
            return self._call(dict(environ))  # no wait, or moto's error to answer: as it is
        attempt = {**request.params, "WaitTimeSeconds": 0}
        deadline = time.monotonic() + wait
        while True:
            seen = _CHANGES.seen(queue)
            answer = self._call(request.environ(environ, "ReceiveMessage", attempt))
            remaining = deadline - time.monotonic()
            if not answer.ok or answer.has_messages() or remaining <= 0 or self._closed.is_set():
                return answer
            _CHANGES.wait(queue, seen, min(RECHECK_SECONDS, remaining), self._closed)

    def _default_wait(self, environ: dict[str, Any], request: _SqsRequest) -> int:
        """The queue's ``ReceiveMessageWaitTimeSeconds`` (0 when moto cannot say: the receive then answers)."""
        if request.form is None:
            params: dict[str, Any] = {
                "QueueUrl": request.params.get("QueueUrl"),
                "AttributeNames": ["ReceiveMessageWaitTimeSeconds"],
            }
        else:
            params = {key: value for key, value in request.params.items() if key in ("QueueUrl", "Version")}
            params["AttributeName.1"] = "ReceiveMessageWaitTimeSeconds"
        answer = self._call(request.environ(environ, "GetQueueAttributes", params))
        if not answer.ok:
            return 0
        if request.form is not None:
            found = _XML_WAIT.search(answer.body)
            return min(int(found[1]), MAX_WAIT_SECONDS) if found else 0
        try:
            value = json.loads(answer.body)["Attributes"]["ReceiveMessageWaitTimeSeconds"]
            return min(max(int(value), 0), MAX_WAIT_SECONDS)
        except (ValueError, KeyError, TypeError):
            return 0
