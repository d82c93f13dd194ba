"""The webhook queue's consumer: deliver each finished job's webhook, signed, retried with backoff.

A message (``{"jobId", "detail"}``, queued by ``lambda_handlers.events``) is one delivery: POST the job's event to
its callback URL (``lambda_handlers.webhook_delivery``: allowed hosts, public addresses, Standard Webhooks
signature). The job records every attempt in its ``webhook`` member (``status`` ``PENDING``, ``DELIVERED`` or
``FAILED``, ``attempts``, ``lastStatusCode``, ``lastError``, ``deliveredAt``), so its owner sees the delivery on
``GET /jobs/{id}``. A failed attempt comes back after ``min(3600, 30 * 2 ** (n - 1))`` seconds; after
``ASYNC_JOB_WEBHOOK_MAX_ATTEMPTS`` attempts the delivery is ``FAILED``. A delivered job's message is dropped.

Settings: ``ASYNC_JOB_TABLE_NAME``, ``ASYNC_JOB_WEBHOOK_SECRET_ARN``, ``ASYNC_JOB_WEBHOOK_ALLOWED_HOSTS``,
``ASYNC_JOB_WEBHOOK_MAX_ATTEMPTS`` (default 8).
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from lambda_handlers import clients
from lambda_handlers.config import ConfigError
from lambda_handlers.contract import Env
from lambda_handlers.models import format_timestamp, utc_now
from lambda_handlers.observability import MetricUnit, logger, metrics, tracer
from lambda_handlers.status_table import JobStoreError, StatusTable
from lambda_handlers.webhook_delivery import Delivery, deliver, policy_from_environ, signature, signing_key

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["MAX_ATTEMPTS", "backoff", "handler"]


def _setting(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default or "").strip()
    if not value:
        raise ConfigError(
            f"{name} is not set; the construct sets it on the webhook function (redeploy the stack)."
        )
    return value


_table: Final = StatusTable(_setting(Env.TABLE_NAME))
_POLICY: Final = policy_from_environ(os.environ)
_SECRET_ARN: Final = _setting(Env.WEBHOOK_SECRET_ARN)
#: Attempts before a delivery is FAILED.
_ATTEMPTS_TEXT: Final = _setting(Env.WEBHOOK_MAX_ATTEMPTS, "8")
MAX_ATTEMPTS: Final = int(_ATTEMPTS_TEXT) if _ATTEMPTS_TEXT.isdigit() else 0
if not 1 <= MAX_ATTEMPTS <= 20:
    raise ConfigError(
        f"{Env.WEBHOOK_MAX_ATTEMPTS} must be a whole number from 1 to 20 (webhook_max_attempts)."
    )
_key: bytes | None = None


def backoff(attempt: int) -> int:
    """Seconds before the next attempt after attempt ``attempt`` failed.

    Examples
    --------
    >>> [backoff(n) for n in (1, 2, 3, 8)]
    [30, 60, 120, 3600]
    """
    return int(min(3_600, 30 * 2 ** (attempt - 1)))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, list[dict[str, str]]]:
    """Deliver each record's webhook; report those to try again (after their backoff).

    Examples
    --------
    >>> handler({"Records": [webhook_record]}, context)
    {'batchItemFailures': []}
    """
    failures = []
    for record in event.get("Records") or []:
        if not _handle(record):
            failures.append({"itemIdentifier": str(record["messageId"])})
    return {"batchItemFailures": failures}


def _handle(record: dict[str, Any]) -> bool:
    """One delivery attempt; whether the message is done with."""
    try:
        message = json.loads(record["body"])
        job_id, detail = str(message["jobId"]), dict(message["detail"])
    except (KeyError, TypeError, ValueError):
        logger.error("dropping a webhook message that is not one")
        return True
    try:
        job = _table.get(job_id)
    except JobStoreError:
        logger.exception("could not read the job; the webhook comes back", extra={"job_id": job_id})
        return False
    state = json.loads(job.webhook) if job is not None and job.webhook else None
    if job is None or state is None or state.get("status") != "PENDING":
        logger.info("no webhook to deliver (gone, delivered or given up)", extra={"job_id": job_id})
        return True
    attempt = int(state.get("attempts", 0)) + 1
    outcome = _attempt(str(state["url"]), job_id, detail)
    final = outcome.delivered or attempt >= MAX_ATTEMPTS
    state.update(
        attempts=attempt,
        lastStatusCode=outcome.status,
        lastError=outcome.error,
        status="DELIVERED" if outcome.delivered else ("FAILED" if final else "PENDING"),
        **({"deliveredAt": format_timestamp(utc_now())} if outcome.delivered else {}),
    )
    _record(job_id, state)
    metrics.add_metric(
        name="WebhooksDelivered" if outcome.delivered else "WebhookAttemptsFailed",
        unit=MetricUnit.Count,
        value=1,
    )
    logger.info(
        "webhook attempt",
        extra={"job_id": job_id, "attempt": attempt, "status": outcome.status, "error": outcome.error},
    )
    if not final:
        _delay(record, backoff(attempt))
    return final


def _attempt(url: str, job_id: str, detail: dict[str, Any]) -> Delivery:
    """POST the job's event, signed."""
    global _key
    if _key is None:
        try:
            value = clients.secrets().get_secret_value(SecretId=_SECRET_ARN)["SecretString"]
        except (BotoCoreError, ClientError, KeyError) as error:
            return Delivery(None, f"the signing secret could not be read: {error}"[:500])
        _key = signing_key(str(value))
    status = str(detail.get("status", "")).lower()
    body = json.dumps(
        {
            "type": f"job.{status}",
            "timestamp": format_timestamp(utc_now()),
            "data": detail,
        },
        separators=(",", ":"),
    ).encode()
    timestamp = int(time.time())
    headers = {
        "webhook-id": job_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(_key, job_id, timestamp, body),
    }
    return deliver(url, body, headers, _POLICY)


def _record(job_id: str, state: dict[str, Any]) -> None:
    """Write the delivery's state on the job (best effort: the message decides what happens next)."""
    try:
        _table.update(
            "record_webhook",
            job_id,
            "SET webhook = :webhook",
            "attribute_exists(pk)",
            {":webhook": {"S": json.dumps(state, separators=(",", ":"))}},
            return_new=False,
        )
    except JobStoreError:
        logger.warning(
            "could not record the webhook attempt on the job", exc_info=True, extra={"job_id": job_id}
        )


def _delay(record: dict[str, Any], seconds: int) -> None:
    """Bring the message back after ``seconds`` (on failure it keeps the queue's visibility timeout)."""
    try:
        clients.sqs().change_message_visibility(
            QueueUrl=clients.queue_url(record.get("eventSourceARN")),
            ReceiptHandle=str(record.get("receiptHandle")),
            VisibilityTimeout=seconds,
        )
    except (BotoCoreError, ClientError, ValueError):
        logger.warning("could not delay the next webhook attempt", exc_info=True)
