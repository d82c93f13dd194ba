"""The WebSocket's routes: ``$connect``, ``$disconnect``, ``subscribe``, ``unsubscribe`` and ``$default``.

``$connect`` (authorised by API Gateway: IAM, or the team's Lambda authorizer) records the connection and its
owner, ``api_common.caller_identity`` of the event, exactly as a REST request's owner. ``subscribe`` follows one
job, which the caller may read (its owner, or an operator: else the ``404`` of ``GET /jobs/{id}``), answering
its snapshot; or all the caller's jobs (``"jobs": "mine"``). ``unsubscribe`` stops that; ``$disconnect`` deletes
everything the connection wrote. ``$default`` answers a frame with no known ``action`` (``400``).

The answers are route responses (the function's return value is the frame the client gets); the updates come
from ``lambda_handlers.websocket_push``. The frames are ``lambda_handlers.updates``'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from lambda_handlers import api_common, config
from lambda_handlers.connections import (
    Connection,
    Connections,
    ConnectionsError,
    JobWatch,
    job_topic,
    owner_topic,
)
from lambda_handlers.models import Job
from lambda_handlers.observability import MetricUnit, logger, metrics, tracer
from lambda_handlers.status_table import JobStoreError, StatusTable
from lambda_handlers.updates import (
    BadFrameError,
    Request,
    encode,
    error_frame,
    not_found_frame,
    parse_request,
    subscribed_frame,
    unsubscribed_frame,
)
from lambda_handlers.websocket_config import ConnectionConfig

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["CONFIG", "handler"]

CONFIG: Final = config.load(ConnectionConfig)
_connections: Final = Connections(CONFIG.connections_table)
_jobs: Final = StatusTable(CONFIG.table_name, ttl_seconds=CONFIG.ttl_seconds)
_watch: Final = JobWatch(_jobs)


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Answer one WebSocket event: ``200`` (with a frame for a message), or a refusal of ``$connect``.

    Examples
    --------
    >>> handler({"requestContext": {"routeKey": "subscribe", "eventType": "MESSAGE", "connectionId": "L0SM=",
    ...          ...}, "body": '{"action": "subscribe", "jobId": "4f0c..."}'}, context)
    {'statusCode': 200, 'body': '{"type":"subscribed","jobId":"4f0c...","job":{...}}'}
    """
    context_ = event.get("requestContext") or {}
    connection_id = str(context_.get("connectionId") or "")
    event_type = context_.get("eventType")
    logger.append_keys(connection_id=connection_id, route=context_.get("routeKey"))
    try:
        if event_type == "CONNECT":
            return _connect(event, connection_id)
        if event_type == "DISCONNECT":
            removed = _connections.forget(connection_id)
            logger.info("disconnected", extra={"items_deleted": removed})
            return {"statusCode": 200}
        return _reply(_message(connection_id, event.get("body")))
    except (ConnectionsError, JobStoreError):
        logger.exception("a table could not be read or written")
        if event_type in ("CONNECT", "DISCONNECT"):
            return {"statusCode": 500}
        return _reply(
            error_frame(503, "Service unavailable", "The request could not be handled now; retry it.")
        )
    except Exception:
        logger.exception("the WebSocket event failed unexpectedly")
        if event_type in ("CONNECT", "DISCONNECT"):
            return {"statusCode": 500}
        return _reply(error_frame(500, "Internal error", "The request failed unexpectedly. It was logged."))


def _connect(event: dict[str, Any], connection_id: str) -> dict[str, Any]:
    owner = api_common.caller_identity(event)
    _connections.connect(connection_id, owner)
    metrics.add_metric(name="WebSocketConnections", unit=MetricUnit.Count, value=1)
    logger.info("connected")
    return {"statusCode": 200}


def _message(connection_id: str, body: object) -> dict[str, Any]:
    try:
        request = parse_request(body)
    except BadFrameError as error:
        return error_frame(400, "Bad frame", str(error))
    connection = _connections.get(connection_id)
    if connection is None:
        return error_frame(
            401, "Not connected", "This connection is not registered (it expired): reconnect.", request.job_id
        )
    if request.action == "unsubscribe":
        topic = owner_topic(connection.owner) if request.job_id is None else job_topic(request.job_id)
        _connections.unsubscribe(connection_id, topic)
        return unsubscribed_frame(request.job_id)
    return _subscribe(connection, request)


def _subscribe(connection: Connection, request: Request) -> dict[str, Any]:
    if request.job_id is None:
        _connections.subscribe(connection, owner_topic(connection.owner))
        _connections.watch_owner(connection.owner, connection.expires_at)
        unfinished = _watch.unfinished_jobs(connection.owner)
        for job_id in unfinished:
            _watch.watch(job_id, connection.expires_at)
        metrics.add_metric(name="WebSocketSubscriptions", unit=MetricUnit.Count, value=1)
        logger.info("subscribed to the owner's jobs", extra={"unfinished": len(unfinished)})
        return subscribed_frame(None, CONFIG.jobs_url, CONFIG.bucket_name)
    job_id = request.job_id
    logger.append_keys(job_id=job_id)
    job = _jobs.get(job_id)
    if not _visible(job, connection):
        if job is not None:
            logger.info("subscribe to someone else's job; answering 404")
        return not_found_frame(job_id)
    assert job is not None
    if job.status.is_terminal:
        return subscribed_frame(
            job, CONFIG.jobs_url, CONFIG.bucket_name
        )  # nothing will change: no subscription
    _connections.subscribe(connection, job_topic(job_id))
    # The write that marks the job watched reads it too: every later change is pushed, none falls in between.
    snapshot = _watch.watch(job_id, connection.expires_at)
    if snapshot is None or snapshot.status.is_terminal:
        _connections.unsubscribe(connection.connection_id, job_topic(job_id))
        if snapshot is None:
            return not_found_frame(job_id)
    metrics.add_metric(name="WebSocketSubscriptions", unit=MetricUnit.Count, value=1)
    logger.info("subscribed", extra={"status": snapshot.status.value})
    return subscribed_frame(snapshot, CONFIG.jobs_url, CONFIG.bucket_name)


def _visible(job: Job | None, connection: Connection) -> bool:
    """Whether the connection's owner may follow the job: the rule of ``GET /jobs/{id}``."""
    if job is None:
        return False
    return job.owner == connection.owner or api_common.is_operator(connection.owner, CONFIG.operators)


def _reply(frame: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": 200, "body": encode(frame).decode("utf-8")}
