"""EventBridge events, made visible locally: every event put on a watched bus is shown and kept.

For each bus the runtime watches, ``EventBusWatcher`` puts a rule matching every event (``{"source":
[{"prefix": ""}]}``) whose target is a queue of its own, and polls that queue: each event, as EventBridge
delivers it to a target (``id``, ``source``, ``detail-type``, ``detail`` ...), goes to an ``EventLog``. moto
delivers to SQS targets synchronously within ``PutEvents``, so an event is in the queue once the function's
call returns. On ``stop`` the rule, its target and the queue are deleted.
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Final

from async_job_local.backend import Backend, local_name
from async_job_local.functions import FunctionLogs

__all__ = ["ALL_EVENTS", "EventBusWatcher", "EventLog", "bus_name_of"]

#: The pattern of the watching rule: every event (a source always has a prefix "").
ALL_EVENTS: Final[Mapping[str, Any]] = {"source": [{"prefix": ""}]}
#: Long-poll wait of the watcher (a short one lets the runtime stop within a second).
WAIT_SECONDS: Final = 1


def bus_name_of(bus: str) -> str:
    """The name of an event bus given by name or ARN (``ASYNC_JOB_EVENT_BUS`` may hold either).

    Example
    -------
    >>> bus_name_of("arn:aws:events:us-east-1:123456789012:event-bus/Stack-Bus")
    'Stack-Bus'
    >>> bus_name_of("default")
    'default'
    """
    return bus.rsplit("event-bus/", 1)[-1] if bus.startswith("arn:") else bus


class EventLog:
    """Where watched events go: one line each to the function logs (``events:<bus> | {...}``) and, given a
    path, one JSON document per line appended to that file.

    Example
    -------
    >>> log = EventLog(FunctionLogs(sys.stderr), Path("events.jsonl"))
    >>> log.write("default", {"source": "async-job", "detail-type": "Job Succeeded", "detail": {}})
    >>> log.close()
    """

    def __init__(self, logs: FunctionLogs, path: Path | None = None) -> None:
        self._logs = logs
        self.path = path
        self._file: IO[str] | None = None if path is None else open(path, "a", encoding="utf-8")  # noqa: SIM115
        self._lock = threading.Lock()

    def write(self, bus: str, event: Mapping[str, Any]) -> None:
        """Show and keep one event of ``bus``."""
        line = json.dumps(event, separators=(",", ":"), sort_keys=False)
        self._logs.write(f"events:{bus}", line)
        with self._lock:
            if self._file is not None:
                self._file.write(line + "\n")
                self._file.flush()

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class EventBusWatcher:
    """Watch the event bus ``bus`` (a name, an ARN or ``default``) of ``backend``, writing its events to ``log``.

    Example
    -------
    >>> watcher = EventBusWatcher(backend, "default", EventLog(FunctionLogs(sys.stderr)))
    >>> watcher.start()
    >>> watcher.stop(); watcher.join(3)
    """

    def __init__(self, backend: Backend, bus: str, log: EventLog) -> None:
        self.backend = backend
        self.bus = bus_name_of(bus)
        self.log = log
        # Names of this watcher's own: two runtimes in one process share moto's state, and a rule or queue of the
        # same name would be shared too (one watcher would take the other's events).
        self._instance = f"-{uuid.uuid4().hex[:8]}"
        self.rule_name = local_name("async-job-local-events", self.bus, limit=64, suffix=self._instance)
        self._queue_url: str | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Put the rule and its queue (now: events put after this call are seen), then poll in a thread."""
        events, sqs = self.backend.client("events"), self.backend.client("sqs")
        rule_arn = events.put_rule(
            Name=self.rule_name, EventBusName=self.bus, EventPattern=json.dumps(ALL_EVENTS), State="ENABLED"
        )["RuleArn"]
        queue_name = local_name("async-job-local-events", self.bus, limit=80, suffix=self._instance)
        policy = {  # what EventBridge needs to send to the queue in AWS (moto does not check it)
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": "*",
                    "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
                }
            ],
        }
        self._queue_url = sqs.create_queue(QueueName=queue_name, Attributes={"Policy": json.dumps(policy)})[
            "QueueUrl"
        ]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events.put_targets(
            Rule=self.rule_name, EventBusName=self.bus, Targets=[{"Id": "async-job-local", "Arn": queue_arn}]
        )
        self._thread = threading.Thread(target=self._poll, name=f"events-{self.bus}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling (after the current receive)."""
        self._stopping.set()

    def join(self, timeout: float) -> None:
        """Wait for the poller, deliver what is left in the queue, then delete the rule and the queue."""
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._queue_url is None:
            return
        try:
            self._receive(self.backend.client("sqs"), wait=0)
            events = self.backend.client("events")
            events.remove_targets(Rule=self.rule_name, EventBusName=self.bus, Ids=["async-job-local"])
            events.delete_rule(Name=self.rule_name, EventBusName=self.bus)
            self.backend.client("sqs").delete_queue(QueueUrl=self._queue_url)
        except Exception as error:  # the backend may be gone already
            print(
                f"async-job local: removing the watch of event bus {self.bus} failed: {error}",
                file=sys.stderr,
            )
        self._queue_url = None

    def _poll(self) -> None:
        sqs = self.backend.client("sqs")
        while not self._stopping.is_set():
            try:
                self._receive(sqs, wait=WAIT_SECONDS)
            except Exception as error:
                if self._stopping.is_set():
                    return
                print(f"async-job local: watching event bus {self.bus} failed: {error}", file=sys.stderr)
                self._stopping.wait(1.0)

    def _receive(self, sqs: Any, wait: int) -> None:
        messages = sqs.receive_message(
            QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait
        ).get("Messages", [])
        for message in messages:
            try:
                event = json.loads(message["Body"])
            except ValueError:
                event = {"body": message["Body"]}
            self.log.write(self.bus, event)
        if messages:
            sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)],
            )
