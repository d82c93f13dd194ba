"""The connections table (who is connected, what each connection follows) and the watch mark on job items.

Items (partition ``pk``, sort ``sk``, both strings; TTL on ``expiresAt``, the connection's end)::

    pk                    sk                 attributes
    conn#<connectionId>   connection         owner, connectedAt, expiresAt, topics (SS: the pk of each
                                             subscription item it wrote)
    job#<jobId>           <connectionId>     owner, expiresAt             (subscribed to one job)
    owner#<owner>         <connectionId>     owner, expiresAt             (subscribed to all the owner's jobs)
    owner#<owner>         #watched           watchedUntil, expiresAt      (the owner's watch: new jobs of the
                                                                           owner are written watched)

Every item expires with the connection (API Gateway ends a connection after 2 hours); ``$disconnect``, an
``unsubscribe`` and a post answered ``410 Gone`` delete what the connection wrote before that.

A job someone follows carries ``watchedUntil`` (epoch seconds) on its status-table item: the push function's
event source filter lets through only the stream records of watched jobs, so nobody listening costs nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from lambda_handlers import clients
from lambda_handlers.contract import OWNER_INDEX
from lambda_handlers.models import Job, epoch_seconds, format_timestamp, utc_now
from lambda_handlers.status_table import StatusTable, is_condition_failure

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = [
    "CONNECTION_SECONDS",
    "MAX_OWNER_JOBS",
    "Connection",
    "Connections",
    "ConnectionsError",
    "JobWatch",
    "job_topic",
    "owner_topic",
]

#: How long API Gateway keeps a WebSocket connection at most (then the client reconnects): every item of a
#: connection expires that long after it connected, and so does its watch on a job.
CONNECTION_SECONDS: Final = 2 * 3600
#: The most unfinished jobs a ``{"jobs": "mine"}`` subscription marks watched (newest first); later jobs of the
#: owner are written watched by the submit function.
MAX_OWNER_JOBS: Final = 200
_CONNECTION: Final = "connection"
_MARKER: Final = "#watched"
#: BatchWriteItem takes at most 25 requests.
_BATCH: Final = 25
_METHODS: Final = {
    "PutItem": "put_item",
    "GetItem": "get_item",
    "UpdateItem": "update_item",
    "DeleteItem": "delete_item",
    "Query": "query",
    "BatchWriteItem": "batch_write_item",
}


def job_topic(job_id: str) -> str:
    """The partition of a job's subscriptions.

    Examples
    --------
    >>> job_topic("4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21")
    'job#4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21'
    """
    return f"job#{job_id}"


def owner_topic(owner: str) -> str:
    """The partition of an owner's subscriptions (``{"jobs": "mine"}``) and of the owner's watch.

    Examples
    --------
    >>> owner_topic("arn:aws:iam::123456789012:user/alice")
    'owner#arn:aws:iam::123456789012:user/alice'
    """
    return f"owner#{owner}"


class ConnectionsError(Exception):
    """DynamoDB failed (the connections table, or the watch mark on a job item)."""


@dataclass(frozen=True, slots=True)
class Connection:
    """A WebSocket connection as ``$connect`` recorded it."""

    connection_id: str
    #: Who connected (``api_common.caller_identity`` of the ``$connect`` event): the owner of its jobs.
    owner: str
    #: Epoch seconds: when API Gateway ends the connection at the latest (every item of it expires then).
    expires_at: int
    #: The subscription partitions it wrote (``job#<id>``, ``owner#<owner>``).
    topics: frozenset[str] = frozenset()


class Connections:
    """Reads and writes of the connections table.

    Examples
    --------
    >>> connections = Connections("Jobs-Connections")
    >>> connection = connections.connect(connection_id, "arn:aws:iam::123456789012:user/alice")
    >>> connections.subscribe(connection, job_topic(job_id))
    >>> connections.subscribers(job_id, connection.owner)
    ['L0SM9cOFvHcCIhw=']
    """

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self.table_name = table_name
        self._client = client

    @property
    def client(self) -> DynamoDBClient:
        """The DynamoDB client in use."""
        return self._client if self._client is not None else clients.dynamodb()

    # ----------------------------------------------------------------------------------------- connections

    def connect(self, connection_id: str, owner: str, now: dt.datetime | None = None) -> Connection:
        """Record a new connection of ``owner``, expiring ``CONNECTION_SECONDS`` from ``now``."""
        now = now or utc_now()
        connection = Connection(connection_id, owner, epoch_seconds(now) + CONNECTION_SECONDS)
        self._call(
            "PutItem",
            Item={
                **_connection_key(connection_id),
                "owner": {"S": owner},
                "connectedAt": {"S": format_timestamp(now)},
                "expiresAt": {"N": str(connection.expires_at)},
            },
        )
        return connection

    def get(self, connection_id: str, now: dt.datetime | None = None) -> Connection | None:
        """The connection (a consistent read), or None when it is unknown or past its expiry."""
        item = self._call("GetItem", Key=_connection_key(connection_id), ConsistentRead=True).get("Item")
        if not item:
            return None
        connection = Connection(
            connection_id,
            item["owner"]["S"],
            int(item["expiresAt"]["N"]),
            frozenset(item.get("topics", {}).get("SS", [])),
        )
        return None if connection.expires_at <= epoch_seconds(now or utc_now()) else connection

    def forget(self, connection_id: str) -> int:
        """Delete the connection and every subscription it wrote (``$disconnect``, a Gone post); the items deleted.

        Safe to repeat: a connection already forgotten deletes nothing. The owner's watch goes too when no other
        connection of the owner follows all its jobs.
        """
        item = self._call("GetItem", Key=_connection_key(connection_id), ConsistentRead=True).get("Item")
        if not item:
            return 0
        topics = sorted(item.get("topics", {}).get("SS", []))
        keys = [_subscription_key(topic, connection_id) for topic in topics] + [
            _connection_key(connection_id)
        ]
        self._delete_all(keys)
        for topic in topics:
            if topic.startswith("owner#"):
                self._drop_idle_watch(topic)
        return len(keys)

    # --------------------------------------------------------------------------------------- subscriptions

    def subscribe(self, connection: Connection, topic: str) -> None:
        """Subscribe ``connection`` to ``topic`` (``job_topic`` or ``owner_topic``); the watch is the caller's."""
        self._call(
            "PutItem",
            Item={
                **_subscription_key(topic, connection.connection_id),
                "owner": {"S": connection.owner},
                "expiresAt": {"N": str(connection.expires_at)},
            },
        )
        self._call(
            "UpdateItem",
            Key=_connection_key(connection.connection_id),
            UpdateExpression="ADD topics :topic",
            ExpressionAttributeValues={":topic": {"SS": [topic]}},
        )

    def unsubscribe(self, connection_id: str, topic: str) -> None:
        """Drop the subscription of ``connection_id`` to ``topic`` (nothing happens if it has none)."""
        self._call("DeleteItem", Key=_subscription_key(topic, connection_id))
        self._forget_topic(connection_id, topic)
        if topic.startswith("owner#"):
            self._drop_idle_watch(topic)

    def subscribers(self, job_id: str, owner: str, now: dt.datetime | None = None) -> list[str]:
        """The connections following the job (to it alone, or to all its owner's jobs), each once, in order."""
        cutoff = epoch_seconds(now or utc_now())
        found: dict[str, None] = {}
        for topic in (job_topic(job_id), owner_topic(owner)):
            for item in self._query(topic):
                if item["sk"]["S"] != _MARKER and int(item["expiresAt"]["N"]) > cutoff:
                    found.setdefault(item["sk"]["S"], None)
        return list(found)

    def drop_job(self, job_id: str) -> list[str]:
        """Delete every subscription to the job (it ended: nothing more will be pushed); the connections."""
        topic = job_topic(job_id)
        connection_ids = [item["sk"]["S"] for item in self._query(topic)]
        self._delete_all([_subscription_key(topic, connection_id) for connection_id in connection_ids])
        for connection_id in connection_ids:
            self._forget_topic(connection_id, topic)
        return connection_ids

    # ------------------------------------------------------------------------------------------ the watch

    def watch_owner(self, owner: str, until: int) -> None:
        """Mark the owner watched until ``until`` (epoch seconds), unless a longer watch is set already."""
        with contextlib.suppress(_ConditionFailed):
            self._call(
                "UpdateItem",
                Key=_subscription_key(owner_topic(owner), _MARKER),
                UpdateExpression="SET watchedUntil = :until, expiresAt = :until",
                ConditionExpression="attribute_not_exists(watchedUntil) OR watchedUntil < :until",
                ExpressionAttributeValues={":until": {"N": str(until)}},
            )

    def owner_watched_until(self, owner: str, now: dt.datetime | None = None) -> int | None:
        """Until when someone follows all the owner's jobs (epoch seconds), or None (the submit function's read)."""
        item = self._call("GetItem", Key=_subscription_key(owner_topic(owner), _MARKER)).get("Item")
        if not item or "watchedUntil" not in item:
            return None
        until = int(item["watchedUntil"]["N"])
        return until if until > epoch_seconds(now or utc_now()) else None

    def _drop_idle_watch(self, topic: str) -> None:
        """Delete the owner's watch when no connection follows the owner's jobs any more."""
        items = list(self._query(topic))
        if any(item["sk"]["S"] != _MARKER for item in items):
            return
        for item in items:  # the marker alone: unchanged since read, else a new subscriber set it
            with contextlib.suppress(_ConditionFailed):
                self._call(
                    "DeleteItem",
                    Key=_subscription_key(topic, _MARKER),
                    ConditionExpression="watchedUntil = :seen",
                    ExpressionAttributeValues={":seen": item["watchedUntil"]},
                )

    # ------------------------------------------------------------------------------------------- plumbing

    def _forget_topic(self, connection_id: str, topic: str) -> None:
        with contextlib.suppress(_ConditionFailed):  # the connection is gone already
            self._call(
                "UpdateItem",
                Key=_connection_key(connection_id),
                UpdateExpression="DELETE topics :topic",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":topic": {"SS": [topic]}},
            )

    def _query(self, topic: str) -> Iterable[dict[str, Any]]:
        start: dict[str, Any] | None = None
        while True:
            page = self._call(
                "Query",
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": topic}},
                ConsistentRead=True,
                **({"ExclusiveStartKey": start} if start else {}),
            )
            yield from page.get("Items", [])
            start = page.get("LastEvaluatedKey")
            if not start:
                return

    def _delete_all(self, keys: Sequence[dict[str, Any]]) -> None:
        for first in range(0, len(keys), _BATCH):
            requests: list[Any] = [{"DeleteRequest": {"Key": key}} for key in keys[first : first + _BATCH]]
            for _ in range(5):
                answer = self._call("BatchWriteItem", RequestItems={self.table_name: requests})
                requests = answer.get("UnprocessedItems", {}).get(self.table_name, [])
                if not requests:
                    break
            else:
                raise ConnectionsError(f"BatchWriteItem left {len(requests)} deletes unprocessed")

    def _call(self, operation: str, **request: Any) -> dict[str, Any]:
        method: Any = getattr(self.client, _METHODS[operation])
        if operation != "BatchWriteItem":
            request["TableName"] = self.table_name
        try:
            return dict(method(**request))
        except ClientError as error:
            if is_condition_failure(error):
                raise _ConditionFailed from error
            raise ConnectionsError(f"{operation} on the connections table failed: {error}") from error
        except BotoCoreError as error:
            raise ConnectionsError(f"{operation} on the connections table failed: {error}") from error


class _ConditionFailed(Exception):
    """A conditional write of the connections table found its condition false (an expected outcome)."""


class JobWatch:
    """The ``watchedUntil`` mark on job items of the status table, which lets their stream records reach the push.

    Examples
    --------
    >>> JobWatch(StatusTable("Jobs-Table")).watch(job_id, until=connection.expires_at).status
    <JobStatus.RUNNING: 'RUNNING'>
    """

    def __init__(self, table: StatusTable) -> None:
        self.table = table

    def watch(self, job_id: str, until: int) -> Job | None:
        """Mark the job watched until ``until`` (unless it is until later); the job as it is then, or None.

        The job returned is read by the same write that set the mark, so every later change reaches the
        stream watched: a ``subscribed`` snapshot of it misses nothing.
        """
        try:
            update = self.table.update(
                "watch",
                job_id,
                "SET watchedUntil = :until",
                "attribute_exists(pk) AND (attribute_not_exists(watchedUntil) OR watchedUntil < :until)",
                {":until": {"N": str(until)}},
            )
        except Exception as error:  # JobStoreError, and a malformed item
            raise ConnectionsError(f"could not mark job {job_id} watched: {error}") from error
        return update.job

    def unwatch(self, job_id: str, seen: int) -> bool:
        """Remove a watch that is over (``seen`` in the past: every connection that set it has ended)."""
        try:
            update = self.table.update(
                "unwatch",
                job_id,
                "REMOVE watchedUntil",
                "watchedUntil = :seen",
                {":seen": {"N": str(seen)}},
                return_new=False,
            )
        except Exception as error:
            raise ConnectionsError(f"could not remove the watch of job {job_id}: {error}") from error
        return update.applied

    def unfinished_jobs(self, owner: str, limit: int = MAX_OWNER_JOBS) -> list[str]:
        """The ids of the owner's QUEUED and RUNNING jobs, newest first, at most ``limit`` (the owner index)."""
        found: list[str] = []
        start: dict[str, Any] | None = None
        while len(found) < limit:
            try:
                page = self.table.client.query(
                    TableName=self.table.table_name,
                    IndexName=OWNER_INDEX,
                    KeyConditionExpression="#o = :owner",
                    FilterExpression="#s IN (:queued, :running)",
                    ExpressionAttributeNames={"#o": "owner", "#s": "status"},
                    ExpressionAttributeValues={
                        ":owner": {"S": owner},
                        ":queued": {"S": "QUEUED"},
                        ":running": {"S": "RUNNING"},
                    },
                    ProjectionExpression="pk",
                    ScanIndexForward=False,
                    **({"ExclusiveStartKey": start} if start else {}),  # type: ignore[arg-type]
                )
            except (ClientError, BotoCoreError) as error:
                raise ConnectionsError(f"could not list the unfinished jobs of an owner: {error}") from error
            found.extend(item["pk"]["S"] for item in page.get("Items", []))
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        return found[:limit]


def _connection_key(connection_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"conn#{connection_id}"}, "sk": {"S": _CONNECTION}}


def _subscription_key(topic: str, sort: str) -> dict[str, Any]:
    return {"pk": {"S": topic}, "sk": {"S": sort}}
