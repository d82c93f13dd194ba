"""The job queue's consumer: claim each job, run the team's handler on it, record the outcome.

Records are handled one after the other. Each record ends in one of three ways:

- consumed (the message is deleted): the job succeeded, failed for good, was cancelled, or was finished,
  missing or owned by another run already (a duplicate delivery);
- retried after a backoff: the attempt failed and may be retried. The message's visibility is set to a delay
  drawn with full jitter from ``[1, min(max, base * 2 ** (attempt - 1))]`` seconds (``ChangeMessageVisibility``)
  and the record is reported in ``batchItemFailures``, so SQS delivers it again after that delay. The job
  records the retry's time (``retryAt``) and the message it belongs to, so a duplicate message cannot start the
  retry early (it is dropped), and the job's own message, should it come back early, waits again;
- reported in ``batchItemFailures`` as it is (SQS delivers it again after the visibility timeout): another run
  holds the job under a live lease, or an AWS call failed. So does a retry whose visibility change failed.

What a record becomes is decided once, as a ``Disposition``; ``handler`` only carries it out. The outcome
writes of a run (and their bounded retries) are ``lambda_handlers.job_run.Run``'s.

One worker runs one job type (``ASYNC_JOB_TYPE``): every metric it publishes carries that ``jobType``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import time
import uuid
from typing import TYPE_CHECKING, Any, Final

from lambda_handlers import clients, config, messages, objects
from lambda_handlers.contract import JOB_TYPE_DIMENSION
from lambda_handlers.deadline import safety_margin_ms, time_limit
from lambda_handlers.job import (
    JobCancelledError,
    JobContext,
    JobFailedError,
    JobLeaseLostError,
    JobTimeoutError,
)
from lambda_handlers.job_run import (
    CONSUME,
    ERROR_MESSAGE_MAX_CHARS,
    OUTCOME_WRITE_MAX_SECONDS,
    REDELIVER,
    Disposition,
    Run,
    backoff_seconds,
    error_message,
    handle_job_record,
    result_budget_bytes,
)
from lambda_handlers.models import Job, epoch_millis, utc_now
from lambda_handlers.observability import MetricUnit, logger, metrics, tracer
from lambda_handlers.store import ClaimStatus, JobStore, JobStoreError
from lambda_handlers.team_handler import (
    FileSaver,
    HandlerImportError,
    PayloadError,
    TeamHandler,
    check_payload,
    import_handler,
    progress_writer,
    read_payload,
)
from lambda_handlers.transitions import retry_wait_seconds

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = [
    "CONFIG",
    "ERROR_MESSAGE_MAX_CHARS",
    "OUTCOME_WRITE_MAX_SECONDS",
    "Disposition",
    "HandlerImportError",
    "TeamHandler",
    "backoff_seconds",
    "handler",
    "result_budget_bytes",
]

CONFIG: Final = config.load(config.WorkerConfig)
_store: Final = JobStore(CONFIG.table_name, ttl_seconds=CONFIG.ttl_seconds)
# One worker runs one job type: every metric of every invocation is in that type's series.
metrics.set_default_dimensions(**{JOB_TYPE_DIMENSION: CONFIG.job_type})
_team_handler: TeamHandler | None = None
#: The jitter's source (tests put a seeded one in its place).
_random = random.Random()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, list[dict[str, str]]]:
    """Handle a batch of job messages; report those that must come back (``ReportBatchItemFailures``).

    Examples
    --------
    >>> handler({"Records": [record]}, context)
    {'batchItemFailures': []}
    """
    failures: list[dict[str, str]] = []
    for record in event.get("Records") or []:
        disposition = _handle_record(record, context)
        if disposition.visible_in is not None:
            _delay(record, disposition.visible_in)
        if not disposition.consume:
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def _delay(record: dict[str, Any], seconds: int) -> None:
    """Make the record's message visible again only after ``seconds``; on failure it keeps its timeout."""
    try:
        clients.delay_record(record, seconds)
    except Exception:  # whatever went wrong, the record is reported: nothing here may fail the batch
        logger.warning(
            "could not delay the retry; the message comes back after the visibility timeout",
            exc_info=True,
            extra={"job_id": _job_id_of(record)},
        )
        _count("BackoffErrors")
        return
    logger.info("retry delayed", extra={"job_id": _job_id_of(record), "delay_s": seconds})


def _job_id_of(record: dict[str, Any]) -> str | None:
    try:
        return messages.decode(record.get("body")).job_id
    except messages.MessageError:
        return None


def _handle_record(record: dict[str, Any], context: LambdaContext) -> Disposition:
    """Handle one record; return what becomes of its message."""
    return handle_job_record(record, lambda message: _run(message, record, context))


def _run(message: messages.JobMessage, record: dict[str, Any], context: LambdaContext) -> Disposition:
    """Claim the job, run the team's handler on it, record the outcome; return what becomes of the message."""
    job_id = message.job_id
    run = Run(
        job_id,
        uuid.uuid4().hex,
        context,
        _store,
        retry_base_seconds=CONFIG.retry_base_seconds,
        retry_max_seconds=CONFIG.retry_max_seconds,
        rng=_random,
        bucket=CONFIG.bucket_name,
    )
    claimed = _claim(
        run,
        str(record.get("messageId") or ""),
        last_delivery=_receive_count(record) >= CONFIG.max_receive_count,
    )
    if not isinstance(claimed, Job):
        return claimed
    # The larger of the deliveries and the claims counts the attempt: the last delivery SQS makes before it
    # dead-letters the message is then the last attempt, whose failure is recorded as the job's error.
    attempt = max(_receive_count(record), claimed.attempts)
    logger.info("job claimed", extra={"attempt": attempt, "attempts": claimed.attempts, "run_id": run.run_id})
    if message.payload_ref is not None:
        loaded = _claimed_payload(run, message)
        if isinstance(loaded, Disposition):
            return loaded
        message = loaded
    try:
        check_payload(message, claimed.payload_sha256)
    except PayloadError as error:
        return run.fail(error.error_type, str(error), final=True)
    try:
        team_handler = _load_team_handler()
    except HandlerImportError as error:
        logger.exception("cannot load the job handler")
        return run.fail("HandlerImportError", error_message(error), final=True)

    remaining_ms = context.get_remaining_time_in_millis()
    budget_ms = remaining_ms - safety_margin_ms(remaining_ms)
    job_context = JobContext(
        job_id,
        attempt=attempt,
        max_attempts=CONFIG.max_receive_count,
        time_limit=dt.timedelta(milliseconds=max(budget_ms, 0)),
        progress_writer=progress_writer(_store, job_id, run.run_id),
        logger=logger,
        file_saver=(saver := FileSaver(_store, CONFIG.bucket_name, job_id, run.run_id, claimed.files)),
    )
    started = time.monotonic()
    try:
        if budget_ms <= 0:
            raise JobTimeoutError(f"only {remaining_ms} ms were left before the Lambda timeout; not started")
        with time_limit(budget_ms / 1000):
            result = team_handler(message.payload, job_context)
    except JobLeaseLostError:
        logger.warning("the job was taken over by another run; dropping this one")
        _count("LeaseLost")
        return CONSUME
    except JobCancelledError as error:
        _record_duration(started)
        logger.info("the job handler stopped on a cancel request", extra={"reason": error_message(error)})
        return run.cancelled(error_message(error) or None)
    except Exception as error:
        _record_duration(started)
        final = isinstance(error, JobFailedError) or attempt >= CONFIG.max_receive_count
        if isinstance(error, JobFailedError):
            logger.warning("the job handler failed the job", extra={"error": error_message(error)})
        else:
            logger.exception("the job handler failed", extra={"attempt": attempt, "final": final})
        return run.fail(type(error).__name__, error_message(error), attempt=attempt, final=final)
    _record_duration(started)
    # The result's room in the item is what the file list leaves.
    return run.succeed(result, dataclasses.replace(claimed, files=saver.listing()))


def _claimed_payload(run: Run, message: messages.JobMessage) -> messages.JobMessage | Disposition:
    """The message with its claim-checked payload read from the bucket; or the job's end when it cannot be."""
    try:
        return read_payload(CONFIG.bucket_name, message)
    except objects.ObjectStoreError:
        logger.exception("could not read the payload from the bucket; the message will be delivered again")
        return REDELIVER
    except PayloadError as error:
        return run.fail(error.error_type, error_message(error), final=True)


def _claim(run: Run, message_id: str, *, last_delivery: bool) -> Job | Disposition:
    """The job, now held by this run; or what becomes of the message when it cannot be had."""
    now = utc_now()
    lease_until = epoch_millis(now) + run.context.get_remaining_time_in_millis()
    try:
        claim = _store.claim(
            run.job_id, run.run_id, lease_until, now, message_id=message_id, last_delivery=last_delivery
        )
    except JobStoreError:
        logger.exception("could not claim the job; the message will be delivered again")
        return REDELIVER
    if claim.status is ClaimStatus.CLAIMED and claim.job is not None:
        return claim.job
    if claim.status is ClaimStatus.BUSY:
        logger.info("another run holds the job under a live lease; the message will be delivered again")
        _count("JobsDeferred")
        return REDELIVER
    if claim.status is ClaimStatus.DEFERRED and claim.job is not None:
        wait = max(1, retry_wait_seconds(claim.job, now))
        logger.info(
            "the job's retry is not due yet; delivering the message again then", extra={"wait_s": wait}
        )
        _count("JobsDeferred")
        return Disposition(consume=False, visible_in=wait)
    if claim.status is ClaimStatus.CANCELLED:
        logger.info("job cancelled before it ran: its owner asked to cancel it")
        _count("JobsCancelled")
        return CONSUME
    logger.info(
        "dropping the message: the job is finished, gone, or another message's",
        extra={"claim": claim.status.value},
    )
    _count("DuplicateDeliveries")
    return CONSUME


def _load_team_handler() -> TeamHandler:
    """Import ``ASYNC_JOB_HANDLER`` once (a failed import is tried again with the next job)."""
    global _team_handler
    if _team_handler is None:
        _team_handler = import_handler(CONFIG.handler)
    return _team_handler


def _receive_count(record: dict[str, Any]) -> int:
    try:
        return max(1, int((record.get("attributes") or {}).get("ApproximateReceiveCount", 1)))
    except (TypeError, ValueError):
        return 1


def _record_duration(started: float) -> None:
    metrics.add_metric(
        name="JobDuration", unit=MetricUnit.Milliseconds, value=(time.monotonic() - started) * 1000
    )


def _count(name: str) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
