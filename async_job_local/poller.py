"""The SQS event source mapping: pollers that receive batches and invoke a function with them.

As Lambda's pollers do: long-poll ``ReceiveMessage`` for up to the mapping's batch size, build the SQS event
(one record per message, in Lambda's shape), invoke the function synchronously, then delete the messages that
succeeded. With ``ReportBatchItemFailures`` the ones the function lists in ``batchItemFailures`` are kept; a
function error, a timeout or a crash keeps the whole batch. Kept messages come back after the queue's
visibility timeout, and SQS moves a message to the dead-letter queue once it has been received
``maxReceiveCount`` times.
"""

from __future__ import annotations

import base64
import sys
import threading
from collections.abc import Mapping
from typing import Any, Final

from async_job_local.backend import Backend, LocalQueue
from async_job_local.functions import InvokeResult, LocalFunction

__all__ = ["SqsEventSource", "deletable", "sqs_record"]

#: Long-poll wait. SQS allows 20 s; a short wait lets the runtime stop within a second.
WAIT_SECONDS: Final = 1
#: How long an idle extra poller sleeps before polling again on its own (the first poller never sleeps).
IDLE_SECONDS: Final = 10.0


def _message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    attribute: dict[str, Any] = {
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": value["DataType"],
    }
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return attribute


def sqs_record(message: Mapping[str, Any], queue: LocalQueue, region: str) -> dict[str, Any]:
    """The Lambda SQS event record of a ``ReceiveMessage`` message.

    Example
    -------
    >>> sqs_record(message, queue, "us-east-1")["eventSource"]
    'aws:sqs'
    """
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: _message_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue.arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def deletable(
    records: list[dict[str, Any]], result: InvokeResult, report_batch_item_failures: bool
) -> list[str]:
    """The message ids of ``records`` to delete after an invocation, by Lambda's rules.

    A failed invocation deletes nothing. Without ``ReportBatchItemFailures`` a successful one deletes all.
    With it, a null or empty response or ``batchItemFailures`` deletes all; the listed items are kept; a
    malformed response (an item identifier that is missing, empty or not in the batch) keeps the whole batch.
    """
    ids = [record["messageId"] for record in records]
    if not result.ok:
        return []
    if not report_batch_item_failures or not result.payload:
        return ids
    if not isinstance(result.payload, Mapping):
        return []
    failures = result.payload.get("batchItemFailures")
    if not failures:
        return ids
    if not isinstance(failures, list):
        return []
    failed = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
        if not isinstance(identifier, str) or identifier not in ids:
            return []
        failed.add(identifier)
    return [i for i in ids if i not in failed]


class SqsEventSource:
    """Pollers for one queue -> function mapping.

    Parameters
    ----------
    backend, queue, function
        Where to poll and what to invoke.
    batch_size
        ``MaxNumberOfMessages`` of each receive (the mapping's ``BatchSize``).
    pollers
        Concurrent pollers, hence concurrent invocations at most.
    report_batch_item_failures
        Whether the mapping has ``FunctionResponseTypes: [ReportBatchItemFailures]``.

    Like Lambda's pollers, they scale with the backlog: the first one always long-polls; the others sleep while
    the queue is empty and start polling as soon as any of them receives messages.
    """

    def __init__(
        self,
        *,
        backend: Backend,
        queue: LocalQueue,
        function: LocalFunction,
        batch_size: int,
        pollers: int,
        report_batch_item_failures: bool,
    ) -> None:
        self.backend = backend
        self.queue = queue
        self.function = function
        self.batch_size = batch_size
        self.pollers = pollers
        self.report_batch_item_failures = report_batch_item_failures
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._busy = threading.Condition()
        self._receipts = 0  # batches received so far: a change wakes the idle pollers

    def start(self) -> None:
        """Start the pollers."""
        for index in range(self.pollers):
            thread = threading.Thread(
                target=self._poll, args=(index,), name=f"poller-{self.queue.name}-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Ask the pollers to stop after their current receive or invocation."""
        self._stopping.set()
        with self._busy:
            self._busy.notify_all()

    def _wait_for_work(self, seen: int) -> int:
        """Sleep until another poller receives messages (or ``IDLE_SECONDS``); return the count then."""
        with self._busy:
            self._busy.wait_for(lambda: self._stopping.is_set() or self._receipts != seen, IDLE_SECONDS)
            return self._receipts

    def _received(self) -> None:
        with self._busy:
            self._receipts += 1
            self._busy.notify_all()

    def join(self, timeout: float) -> None:
        """Wait for the pollers to end."""
        for thread in self._threads:
            thread.join(timeout)

    def _poll(self, index: int) -> None:
        sqs = self.backend.client("sqs")
        idle = False
        seen = 0
        while not self._stopping.is_set():
            if idle and index > 0:
                seen = self._wait_for_work(seen)
                if self._stopping.is_set():
                    return
            try:
                messages = sqs.receive_message(
                    QueueUrl=self.queue.url,
                    MaxNumberOfMessages=self.batch_size,
                    WaitTimeSeconds=WAIT_SECONDS,
                    MessageSystemAttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
            except Exception as error:
                if self._stopping.is_set():
                    return
                print(f"async-job local: polling {self.queue.name} failed: {error}", file=sys.stderr)
                self._stopping.wait(1.0)
                continue
            idle = not messages
            if idle or self._stopping.is_set():
                continue
            self._received()
            records = [sqs_record(message, self.queue, self.backend.region) for message in messages]
            result = self.function.invoke({"Records": records})
            if self._stopping.is_set():
                return
            done = set(deletable(records, result, self.report_batch_item_failures))
            entries = [
                {"Id": str(number), "ReceiptHandle": record["receiptHandle"]}
                for number, record in enumerate(records)
                if record["messageId"] in done
            ]
            if not entries:
                continue
            try:
                sqs.delete_message_batch(QueueUrl=self.queue.url, Entries=entries)
            except Exception as error:  # the messages come back after the visibility timeout, as in AWS
                print(f"async-job local: deleting from {self.queue.name} failed: {error}", file=sys.stderr)
