"""The DynamoDB Streams event source mapping: a poller that reads a table's stream and invokes a function.

As Lambda's stream pollers do: every shard is read in order (a child shard once its parent is read), each
record becomes Lambda's DynamoDB Streams record, records the mapping's ``FilterCriteria`` does not match are
dropped (never delivered), and the others are delivered in batches of up to ``BatchSize`` (waiting up to
``MaximumBatchingWindowInSeconds`` for a full one). A batch is retried, in order, until it succeeds: from the
first record of a failed invocation (an error, a timeout, a crash: halved first with
``BisectBatchOnFunctionError``), or with ``ReportBatchItemFailures`` from the record the function names in
``batchItemFailures`` (its ``SequenceNumber``). After ``MaximumRetryAttempts`` retries the batch is given up,
with a line on standard error, and the shard goes on (Lambda retries until the records expire when the
mapping sets no maximum; locally that is ``STREAM_LOCAL_MAXIMUM_RETRY_ATTEMPTS``).
"""

from __future__ import annotations

import base64
import datetime as dt
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from async_job_local.backend import Backend
from async_job_local.event_filter import matches_any
from async_job_local.functions import InvokeResult
from async_job_local.template import StreamSourceSpec

__all__ = ["Invocable", "StreamEventSource", "completed_records", "stream_record"]

#: How long an idle poller waits before reading its shards again (Lambda polls a shard 4 times a second).
POLL_SECONDS: Final = 0.25
#: How often the poller looks for new shards.
DESCRIBE_SECONDS: Final = 5.0
#: The wait before a failed batch is retried (doubled each attempt, up to ``MAX_RETRY_DELAY``).
RETRY_DELAY: Final = 0.2
MAX_RETRY_DELAY: Final = 2.0
#: Records per ``GetRecords`` call (DynamoDB Streams allows 1000).
READ_LIMIT: Final = 1000


class Invocable(Protocol):
    """What the poller invokes: a ``LocalFunction`` (or a stand-in in tests)."""

    name: str

    def invoke(self, event: Any) -> InvokeResult:
        """Invoke synchronously and return the result."""
        ...


def _jsonable(value: Any) -> Any:
    """An attribute value as Lambda's JSON event carries it (binary values base64-encoded)."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(item) for item in value]
    return value


def stream_record(record: Mapping[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """Lambda's DynamoDB Streams event record of a ``GetRecords`` record.

    Example
    -------
    >>> stream_record(record, "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x", "us-east-1")["eventVersion"]
    '1.1'
    """
    stream = record.get("dynamodb", {})
    created = stream.get("ApproximateCreationDateTime")
    if isinstance(created, dt.datetime):
        created = int(created.timestamp())
    dynamodb: dict[str, Any] = {"ApproximateCreationDateTime": created}
    for key in ("Keys", "NewImage", "OldImage"):
        if key in stream:
            dynamodb[key] = _jsonable(stream[key])
    dynamodb.update(
        {
            "SequenceNumber": str(stream.get("SequenceNumber", "")),
            "SizeBytes": stream.get("SizeBytes"),
            "StreamViewType": stream.get("StreamViewType"),
        }
    )
    return {
        "eventID": record.get("eventID"),
        "eventName": record.get("eventName"),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": record.get("awsRegion") or region,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }


def completed_records(
    records: Sequence[Mapping[str, Any]], result: InvokeResult, report_batch_item_failures: bool
) -> int:
    """How many records of a batch, from its start, an invocation completed (the rest are retried).

    A failed invocation completes none. Without ``ReportBatchItemFailures`` a successful one completes all.
    With it, a null or empty response or ``batchItemFailures`` completes all; otherwise the records before the
    lowest sequence number listed are complete; a malformed response (an item identifier that is missing,
    empty or not in the batch) completes none.

    Example
    -------
    >>> completed_records(batch_of_three, InvokeResult("r", {"batchItemFailures": [
    ...     {"itemIdentifier": batch_of_three[1]["dynamodb"]["SequenceNumber"]}]}, None, 1.0), True)
    1
    """
    if not result.ok:
        return 0
    if not report_batch_item_failures or not result.payload:
        return len(records)
    if not isinstance(result.payload, Mapping):
        return 0
    failures = result.payload.get("batchItemFailures")
    if not failures:
        return len(records)
    if not isinstance(failures, list):
        return 0
    positions = {str(record["dynamodb"]["SequenceNumber"]): index for index, record in enumerate(records)}
    failed = []
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
        if not isinstance(identifier, str) or identifier not in positions:
            return 0
        failed.append(positions[identifier])
    return min(failed)


@dataclass
class _Shard:
    """What the poller knows of one shard: where it reads next and the records read but not yet done."""

    shard_id: str
    parent: str | None
    iterator: str | None
    buffer: list[dict[str, Any]] = field(default_factory=list)
    buffered_at: float | None = None
    attempts: int = 0
    batch_size: int = 0

    @property
    def done(self) -> bool:
        """The shard is closed and every record of it is delivered (or given up)."""
        return self.iterator is None and not self.buffer


def _log(message: str) -> None:
    print(f"async-job local: {message}", file=sys.stderr)


class StreamEventSource:
    """The poller of one DynamoDB stream -> function mapping.

    Parameters
    ----------
    backend
        Where the stream is (its ``dynamodbstreams`` client).
    stream_arn
        The table's ``LatestStreamArn``.
    function
        What to invoke.
    spec
        The mapping (batch size and window, starting position, retries, bisection, filters).
    log
        Where to report given-up batches and read errors. Default: standard error.

    Example
    -------
    >>> source = StreamEventSource(backend=backend, stream_arn=arn, function=function, spec=spec)
    >>> source.start()
    >>> source.stop(); source.join(3)
    """

    def __init__(
        self,
        *,
        backend: Backend,
        stream_arn: str,
        function: Invocable,
        spec: StreamSourceSpec,
        log: Callable[[str], None] = _log,
    ) -> None:
        self.backend = backend
        self.stream_arn = stream_arn
        self.function = function
        self.spec = spec
        self._log = log
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._shards: dict[str, _Shard] = {}
        self._client: Any = None
        self._described_at = 0.0

    def start(self) -> None:
        """Take the starting position in every shard now (``LATEST`` is the end of the stream at this call),
        then poll in a thread of its own."""
        self._client = self.backend.client("dynamodbstreams")
        self._discover(self.spec.starting_position)
        self._thread = threading.Thread(target=self._run, name=f"stream-{self.spec.logical_id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the poller to stop after its current read or invocation."""
        self._stopping.set()

    def join(self, timeout: float) -> None:
        """Wait for the poller to end."""
        if self._thread is not None:
            self._thread.join(timeout)

    # ------------------------------------------------------------------------------------------ the loop

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                if time.monotonic() - self._described_at >= DESCRIBE_SECONDS:
                    self._discover("TRIM_HORIZON")  # shards that appear later are read from their start
                stepped = [self._step(shard) for shard in self._readable()]  # every shard, each time
                busy = any(stepped)
            except Exception as error:
                if self._stopping.is_set():
                    return
                self._log(f"reading the stream of {self.spec.table} failed: {error}")
                self._stopping.wait(1.0)
                continue
            if not busy:
                self._stopping.wait(POLL_SECONDS)

    def _discover(self, position: str) -> None:
        """Track the shards not tracked yet, from ``position`` (``TRIM_HORIZON`` or ``LATEST``)."""
        kind = "TRIM_HORIZON" if position == "TRIM_HORIZON" else "LATEST"
        request: dict[str, Any] = {"StreamArn": self.stream_arn}
        while True:
            description = self._client.describe_stream(**request)["StreamDescription"]
            for shard in description.get("Shards", []):
                shard_id = shard["ShardId"]
                if shard_id in self._shards:
                    continue
                iterator = self._client.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType=kind
                )["ShardIterator"]
                self._shards[shard_id] = _Shard(
                    shard_id, shard.get("ParentShardId"), iterator, batch_size=self.spec.batch_size
                )
            last = description.get("LastEvaluatedShardId")
            if not last:
                break
            request["ExclusiveStartShardId"] = last
        self._described_at = time.monotonic()

    def _readable(self) -> list[_Shard]:
        """The shards to read now: not done, and their parent (if tracked) done."""
        return [
            shard
            for shard in self._shards.values()
            if not shard.done and (shard.parent not in self._shards or self._shards[shard.parent].done)
        ]

    def _step(self, shard: _Shard) -> bool:
        """Read more of ``shard`` and deliver a batch when one is ready; True when anything happened."""
        read = self._read(shard) if shard.iterator is not None and len(shard.buffer) < shard.batch_size else 0
        if not shard.buffer or not self._ready(shard):
            return read > 0
        self._deliver(shard)
        return True

    def _read(self, shard: _Shard) -> int:
        response = self._client.get_records(ShardIterator=shard.iterator, Limit=READ_LIMIT)
        shard.iterator = response.get("NextShardIterator")
        records = [
            stream_record(r, self.stream_arn, self.backend.region) for r in response.get("Records", [])
        ]
        kept = [record for record in records if matches_any(self.spec.filter_patterns, record)]
        if kept and not shard.buffer:
            shard.buffered_at = time.monotonic()
        shard.buffer.extend(kept)
        return len(records)

    def _ready(self, shard: _Shard) -> bool:
        if len(shard.buffer) >= shard.batch_size or shard.iterator is None:
            return True
        window = self.spec.maximum_batching_window
        return window <= 0 or time.monotonic() - (shard.buffered_at or 0.0) >= window

    def _deliver(self, shard: _Shard) -> None:
        batch = shard.buffer[: shard.batch_size]
        result = self.function.invoke({"Records": batch})
        if self._stopping.is_set() and not result.ok:
            return
        done = completed_records(batch, result, self.spec.report_batch_item_failures)
        del shard.buffer[:done]
        if done == len(batch):
            shard.attempts, shard.batch_size = 0, self.spec.batch_size
        else:
            self._failed(shard, batch[done:], result, checkpoint_moved=done > 0)
        shard.buffered_at = time.monotonic() if shard.buffer else None

    def _failed(
        self, shard: _Shard, pending: list[dict[str, Any]], result: InvokeResult, *, checkpoint_moved: bool
    ) -> None:
        shard.attempts = 1 if checkpoint_moved else shard.attempts + 1
        if shard.attempts > self.spec.maximum_retry_attempts:
            del shard.buffer[: len(pending)]
            first, last = pending[0]["dynamodb"]["SequenceNumber"], pending[-1]["dynamodb"]["SequenceNumber"]
            self._log(
                f"{self.spec.logical_id}: gave up {len(pending)} record(s) of the stream of {self.spec.table} "
                f"(sequence numbers {first} to {last}) after {self.spec.maximum_retry_attempts} retries; "
                f"last error: {self._error_of(result)}"
            )
            shard.attempts, shard.batch_size = 0, self.spec.batch_size
            return
        if not result.ok and self.spec.bisect_batch_on_function_error and len(pending) > 1:
            shard.batch_size = max(1, len(pending) // 2)
        delay = min(MAX_RETRY_DELAY, RETRY_DELAY * 2 ** (shard.attempts - 1))
        self._stopping.wait(delay)

    @staticmethod
    def _error_of(result: InvokeResult) -> str:
        if result.error is not None:
            return f"{result.error.get('errorType')}: {result.error.get('errorMessage')}"
        return "batchItemFailures"
