"""The status table's stream, pushed to WebSocket connections: each change of a watched job, to its subscribers.

The event source mapping's filter lets through only records of job items that carry ``watchedUntil`` (someone
follows the job, or all its owner's jobs), so with nobody listening this function never runs. A record whose
job looks the same as before (a lease renewal, the watch mark itself) posts nothing. Every other one is posted
as ``{"type": "job", "job": {...}}`` to each connection subscribed to the job or to its owner, in stream order
(one shard at a time: ``ParallelizationFactor`` 1); a connection that is gone (``410``) is forgotten with
everything it wrote; a job that ended drops its subscriptions. A watch that is over (every connection that set
it has ended) is removed, so its later writes reach no function either.

A post that fails for another reason (throttling, a fault) returns the record in ``batchItemFailures``: Lambda
retries from it, and a subscriber may then see an update twice (the same ``updatedAt``), never out of order.

Settings: ``lambda_handlers.websocket_config.PushConfig``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from lambda_handlers import clients, config
from lambda_handlers.connections import Connections, ConnectionsError, JobWatch
from lambda_handlers.models import Job, epoch_seconds, utc_now
from lambda_handlers.observability import MetricUnit, logger, metrics, tracer
from lambda_handlers.status_table import StatusTable
from lambda_handlers.updates import encode, job_frame
from lambda_handlers.websocket_config import PushConfig

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["CONFIG", "handler", "visible_change"]

CONFIG: Final = config.load(PushConfig)
_connections: Final = Connections(CONFIG.connections_table)
_watch: Final = JobWatch(StatusTable(CONFIG.table_name, ttl_seconds=CONFIG.ttl_seconds))
_GONE: Final = "GoneException"


class _RetryError(Exception):
    """A post or a table call failed for a reason that may pass: retry the batch from this record."""


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, list[dict[str, str]]]:
    """Push the batch's changes in order; report the first record that could not be pushed (and so the rest).

    Examples
    --------
    >>> handler({"Records": [stream_record]}, context)
    {'batchItemFailures': []}
    """
    for record in event.get("Records") or []:
        sequence = str((record.get("dynamodb") or {}).get("SequenceNumber", ""))
        try:
            job = visible_change(record)
        except (KeyError, TypeError, ValueError):
            logger.exception("dropping a stream record that is not a job's", extra={"sequence": sequence})
            continue
        if job is None:
            continue
        try:
            _push(job)
        except _RetryError:
            logger.exception(
                "could not push a change; the batch is retried from it", extra={"job_id": job.job_id}
            )
            return {"batchItemFailures": [{"itemIdentifier": sequence}]}
    return {"batchItemFailures": []}


def visible_change(record: dict[str, Any]) -> Job | None:
    """The job a stream record wrote when its subscribers would see a difference (``GET`` shows another JSON).

    None for a removal, an item that is no job, and a write that leaves the job's JSON as it was.

    Examples
    --------
    >>> visible_change(progress_record).progress_percent
    40.0
    """
    if record.get("eventName") not in ("INSERT", "MODIFY"):
        return None
    images = record.get("dynamodb") or {}
    new = images.get("NewImage") or {}
    if "status" not in new or "owner" not in new:
        return None
    job = Job.from_item(new)
    old = images.get("OldImage") or {}
    if "status" in old:
        before = Job.from_item(old)
        if (before.to_resource(""), before.files) == (job.to_resource(""), job.files):
            return None
    return job


def _push(job: Job) -> None:
    try:
        subscribers = _connections.subscribers(job.job_id, job.owner)
    except ConnectionsError as error:
        raise _RetryError(str(error)) from error
    if not subscribers:
        _unwatch_if_over(job)
        return
    data = encode(job_frame(job, CONFIG.jobs_url, CONFIG.bucket_name))
    posted = 0
    for connection_id in subscribers:
        posted += _post(connection_id, data)
    metrics.add_metric(name="WebSocketMessages", unit=MetricUnit.Count, value=posted)
    if job.status.is_terminal:
        try:
            _connections.drop_job(job.job_id)
        except ConnectionsError as error:
            raise _RetryError(str(error)) from error
    logger.info("pushed", extra={"job_id": job.job_id, "status": job.status.value, "connections": posted})


def _post(connection_id: str, data: bytes) -> int:
    """Post to one connection: 1 if sent, 0 if it is gone (then forgotten) or refused the message for good."""
    try:
        clients.management_api(CONFIG.endpoint).post_to_connection(ConnectionId=connection_id, Data=data)
        return 1
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code == _GONE or status == 410:
            logger.info("connection gone; forgetting it", extra={"connection_id": connection_id})
            try:
                _connections.forget(connection_id)
            except ConnectionsError as forget_error:
                raise _RetryError(str(forget_error)) from forget_error
            return 0
        if code == "PayloadTooLargeException" or status == 413:
            logger.error("a job frame was refused as too large", extra={"connection_id": connection_id})
            return 0
        raise _RetryError(f"post to {connection_id} failed: {error}") from error
    except BotoCoreError as error:
        raise _RetryError(f"post to {connection_id} failed: {error}") from error


def _unwatch_if_over(job: Job) -> None:
    """Remove a watch every connection of which has ended (nobody subscribed now, and it is in the past)."""
    if job.watched_until is None or job.watched_until > epoch_seconds(utc_now()):
        return
    try:
        _watch.unwatch(job.job_id, job.watched_until)
    except ConnectionsError:
        logger.warning("could not remove a watch that is over", extra={"job_id": job.job_id})
