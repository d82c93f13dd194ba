"""The status table's stream consumer: publish each job's change of status to EventBridge, and queue its webhook.

The event source mapping delivers only the records its filter lets through (terminal statuses, or every status
with ``job_events="all"``); a record whose status did not change is skipped here. Each batch is published with
PutEvents (10 entries a call); a record whose entry failed, or whose webhook could not be queued, is reported in
``batchItemFailures`` (its sequence number), so Lambda retries from it: an event may so be delivered twice, never
lost (readers dedupe on ``jobId`` and ``status``). A terminal job with a callback URL gets one message on the
webhook queue (``lambda_handlers.webhooks`` delivers it).

Settings: ``ASYNC_JOB_EVENT_BUS`` (name or ARN; ``default``), ``ASYNC_JOB_WEBHOOK_QUEUE_URL`` (optional).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from lambda_handlers import clients
from lambda_handlers.config import ConfigError
from lambda_handlers.contract import Env
from lambda_handlers.job_events import DETAIL_TYPES, EVENT_SOURCE, changed_job, detail_of
from lambda_handlers.models import Job
from lambda_handlers.observability import MetricUnit, logger, metrics, tracer

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["EVENT_BUS", "handler"]

#: The bus every event goes to (``ASYNC_JOB_EVENT_BUS``).
EVENT_BUS: Final = os.environ.get(Env.EVENT_BUS, "").strip()
if not EVENT_BUS:
    raise ConfigError("ASYNC_JOB_EVENT_BUS must name the event bus (or be 'default'); the construct sets it.")
#: The webhook queue (``ASYNC_JOB_WEBHOOK_QUEUE_URL``); None when the API takes no callback URLs.
WEBHOOK_QUEUE_URL: Final = os.environ.get(Env.WEBHOOK_QUEUE_URL) or None
_API: Final = os.environ.get("POWERTOOLS_SERVICE_NAME", "async-job")
#: PutEvents takes at most 10 entries a call.
_ENTRIES_PER_CALL: Final = 10


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, list[dict[str, str]]]:
    """Publish the batch's changes of status; report the first record that could not be handled.

    Examples
    --------
    >>> handler({"Records": [stream_record]}, context)
    {'batchItemFailures': []}
    """
    changes: list[tuple[str, Job, dict[str, Any]]] = []
    for record in event.get("Records") or []:
        sequence = str((record.get("dynamodb") or {}).get("SequenceNumber", ""))
        try:
            found = changed_job(record)
        except (KeyError, TypeError, ValueError):
            logger.exception("dropping a stream record that is not a job's", extra={"sequence": sequence})
            continue
        if found is not None:
            job, before = found
            changes.append((sequence, job, detail_of(job, before, _API)))
    failed = _publish(changes) | _queue_webhooks(changes)
    # Lambda retries from the lowest failed sequence number: report that one (and so every later record).
    ordered = [sequence for sequence, _, _ in changes if sequence in failed]
    return {"batchItemFailures": [{"itemIdentifier": ordered[0]}] if ordered else []}


def _publish(changes: list[tuple[str, Job, dict[str, Any]]]) -> set[str]:
    """PutEvents of every change; the sequence numbers whose entries failed."""
    failed: set[str] = set()
    for start in range(0, len(changes), _ENTRIES_PER_CALL):
        chunk = changes[start : start + _ENTRIES_PER_CALL]
        entries = [
            {
                "Source": EVENT_SOURCE,
                "DetailType": DETAIL_TYPES[job.status],
                "Detail": json.dumps(detail, separators=(",", ":")),
                "EventBusName": EVENT_BUS,
            }
            for _, job, detail in chunk
        ]
        try:
            answer = clients.events().put_events(Entries=entries)
        except (BotoCoreError, ClientError):
            logger.exception("PutEvents failed; the batch will be retried")
            failed.update(sequence for sequence, _, _ in chunk)
            continue
        for (sequence, job, _), result in zip(chunk, answer.get("Entries", []), strict=False):
            if "ErrorCode" in result:
                logger.warning(
                    "an event was refused", extra={"job_id": job.job_id, "error": result.get("ErrorCode")}
                )
                failed.add(sequence)
        metrics.add_metric(name="EventsPublished", unit=MetricUnit.Count, value=len(chunk))
    return failed


def _queue_webhooks(changes: list[tuple[str, Job, dict[str, Any]]]) -> set[str]:
    """One webhook message per job that ended and has a callback URL; the sequence numbers that failed."""
    failed: set[str] = set()
    if WEBHOOK_QUEUE_URL is None:
        return failed
    for sequence, job, detail in changes:
        if not job.status.is_terminal or not job.webhook:
            continue
        try:
            clients.sqs().send_message(
                QueueUrl=WEBHOOK_QUEUE_URL,
                MessageBody=json.dumps({"jobId": job.job_id, "detail": detail}, separators=(",", ":")),
            )
        except (BotoCoreError, ClientError):
            logger.exception(
                "could not queue the webhook; the batch will be retried", extra={"job_id": job.job_id}
            )
            failed.add(sequence)
    return failed
