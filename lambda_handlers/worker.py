"""The job queue's consumer: claim each job, run the team's handler on it, record the outcome.

Records are handled one after the other. Each record ends in one of three ways:

- consumed (the message is deleted): the job succeeded, failed for good, was cancelled, or was finished,
  missing or owned by another run already (a duplicate delivery);
- retried after a backoff: the attempt failed and may be retried. The message's visibility is set to a delay
  drawn with full jitter from ``[1, min(max, base * 2 ** (attempt - 1))]`` seconds (``ChangeMessageVisibility``)
  and the record is reported in ``batchItemFailures``, so SQS delivers it again after that delay;
- reported in ``batchItemFailures`` as it is (SQS delivers it again after the visibility timeout): another run
  holds the job under a live lease, or an AWS call failed. So does a retry whose visibility change failed.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import math
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from lambda_handlers import clients, config, messages
from lambda_handlers.deadline import safety_margin_ms, time_limit
from lambda_handlers.job import (
    JobCancelledError,
    JobContext,
    JobFailedError,
    JobLeaseLostError,
    JobTimeoutError,
    ProgressAck,
)
from lambda_handlers.models import Job, epoch_millis, utc_now
from lambda_handlers.observability import MetricUnit, logger, metrics, tracer
from lambda_handlers.store import ClaimStatus, JobStore, JobStoreError, WriteOutcome

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = [
    "CONFIG",
    "ERROR_MESSAGE_MAX_CHARS",
    "RESULT_MAX_BYTES",
    "HandlerImportError",
    "TeamHandler",
    "backoff_seconds",
    "handler",
]

#: A team's job handler: ``function(payload, job) -> JSON-serialisable result``.
TeamHandler = Callable[[dict[str, Any], JobContext], Any]

#: Largest result kept, as UTF-8 JSON (a DynamoDB item holds at most 400 KB).
RESULT_MAX_BYTES: Final = 350_000
#: Longest error message kept.
ERROR_MESSAGE_MAX_CHARS: Final = 2_000

CONFIG: Final = config.load(config.WorkerConfig)
_store: Final = JobStore(CONFIG.table_name)
_team_handler: TeamHandler | None = None
#: The jitter's source (tests put a seeded one in its place).
_random = random.Random()


class HandlerImportError(Exception):
    """``ASYNC_JOB_HANDLER`` cannot be imported, or does not name a function."""


@dataclass(frozen=True, slots=True)
class _Retry:
    """A recorded retryable failure of attempt ``attempt``: deliver the message again after a backoff."""

    attempt: int


#: What became of one record: consumed (True), delivered again after the visibility timeout (False), or
#: delivered again after a backoff (``_Retry``).
_Outcome = bool | _Retry


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
        outcome = _handle_record(record, context)
        if isinstance(outcome, _Retry):
            _back_off(record, outcome.attempt)
        if outcome is not True:
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def backoff_seconds(attempt: int, base: int, maximum: int, rng: random.Random | None = None) -> int:
    """The delay before retrying after failed attempt ``attempt``: "full jitter" over a doubling, capped range.

    A whole number of seconds drawn uniformly from ``[0, min(maximum, base * 2 ** (attempt - 1))]``, rounded up
    and at least 1 (the visibility timeout SQS takes is whole seconds, and 0 would retry at once).

    Parameters
    ----------
    attempt
        The attempt that failed, from 1.
    base
        The first attempt's cap, seconds (``ASYNC_JOB_RETRY_BASE_SECONDS``).
    maximum
        The cap of every attempt, seconds (``ASYNC_JOB_RETRY_MAX_SECONDS``).
    rng
        The random source; None for the module's.

    Examples
    --------
    >>> 1 <= backoff_seconds(3, base=10, maximum=900) <= 40
    True
    """
    ceiling = min(maximum, base * (1 << min(max(attempt, 1) - 1, 32)))
    drawn = (rng or _random).uniform(0, ceiling)
    return min(max(1, math.ceil(drawn)), max(ceiling, 1))


def _back_off(record: dict[str, Any], attempt: int) -> None:
    """Make the record's message visible again only after the backoff; on failure it keeps its timeout."""
    delay = backoff_seconds(attempt, CONFIG.retry_base_seconds, CONFIG.retry_max_seconds)
    try:
        clients.sqs().change_message_visibility(
            QueueUrl=_queue_url(record.get("eventSourceARN")),
            ReceiptHandle=str(record.get("receiptHandle")),
            VisibilityTimeout=delay,
        )
    except Exception:  # whatever went wrong, the record is reported: nothing here may fail the batch
        logger.warning(
            "could not delay the retry; the message comes back after the visibility timeout",
            exc_info=True,
            extra={"job_id": _job_id_of(record)},
        )
        _count("BackoffErrors")
        return
    logger.info("retry delayed", extra={"job_id": _job_id_of(record), "attempt": attempt, "delay_s": delay})


def _queue_url(queue_arn: object) -> str:
    """The URL of the queue with ARN ``arn:aws:sqs:<region>:<account>:<name>``, on the SQS client's endpoint.

    Examples
    --------
    >>> _queue_url("arn:aws:sqs:eu-west-1:123456789012:Jobs-Queue")
    'https://sqs.eu-west-1.amazonaws.com/123456789012/Jobs-Queue'
    """
    parts = queue_arn.split(":") if isinstance(queue_arn, str) else []
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs" or not parts[4] or not parts[5]:
        raise ValueError(f"not an SQS queue ARN: {queue_arn!r}")
    return f"{clients.sqs().meta.endpoint_url}/{parts[4]}/{parts[5]}"


def _job_id_of(record: dict[str, Any]) -> str | None:
    try:
        return messages.decode(record.get("body")).job_id
    except messages.MessageError:
        return None


def _handle_record(record: dict[str, Any], context: LambdaContext) -> _Outcome:
    """Handle one record; return whether its message is consumed, or when it should come back."""
    try:
        message = messages.decode(record.get("body"))
    except messages.MessageError as error:
        logger.error("dropping a message that is not a job message", extra={"reason": str(error)})
        _count("MalformedMessages")
        return True
    logger.append_keys(job_id=message.job_id)
    try:
        return _run(message, _receive_count(record), context)
    except Exception:
        logger.exception("the record failed unexpectedly; it will be delivered again")
        return False
    finally:
        logger.remove_keys(["job_id"])


def _run(message: messages.JobMessage, receive_count: int, context: LambdaContext) -> _Outcome:
    """Claim the job, run the team's handler on it, record the outcome; return what becomes of the message."""
    job_id = message.job_id
    run_id = uuid.uuid4().hex
    claimed = _claim(job_id, run_id, context)
    if not isinstance(claimed, Job):
        return claimed
    # The larger of the deliveries and the claims counts the attempt: a duplicate message (SQS delivers at
    # least once; an idempotent replay re-sends) then cannot give the job more attempts than allowed.
    attempt = max(receive_count, claimed.attempts)
    logger.info("job claimed", extra={"attempt": attempt, "attempts": claimed.attempts, "run_id": run_id})
    if (
        message.payload_text is not None
        and claimed.payload_sha256 is not None
        and messages.payload_digest(message.payload_text) != claimed.payload_sha256
    ):
        return _fail(
            job_id,
            run_id,
            "PayloadMismatch",
            "The message's payload does not match the payload recorded for this job.",
            final=True,
        )
    try:
        team_handler = _load_team_handler()
    except HandlerImportError as error:
        logger.exception("cannot load the job handler")
        return _fail(job_id, run_id, "HandlerImportError", _error_message(error), final=True)

    remaining_ms = context.get_remaining_time_in_millis()
    budget_ms = remaining_ms - safety_margin_ms(remaining_ms)
    job_context = JobContext(
        job_id,
        attempt=attempt,
        max_attempts=CONFIG.max_receive_count,
        time_limit=dt.timedelta(milliseconds=max(budget_ms, 0)),
        progress_writer=_progress_writer(job_id, run_id),
        logger=logger,
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
        return True
    except JobCancelledError as error:
        _record_duration(started)
        logger.info("the job handler stopped on a cancel request", extra={"reason": _error_message(error)})
        return _cancelled(job_id, run_id)
    except Exception as error:
        _record_duration(started)
        final = isinstance(error, JobFailedError) or attempt >= CONFIG.max_receive_count
        if isinstance(error, JobFailedError):
            logger.warning("the job handler failed the job", extra={"error": _error_message(error)})
        else:
            logger.exception("the job handler failed", extra={"attempt": attempt, "final": final})
        return _fail(
            job_id, run_id, type(error).__name__, _error_message(error), attempt=attempt, final=final
        )
    _record_duration(started)
    return _succeed(job_id, run_id, result)


def _claim(job_id: str, run_id: str, context: LambdaContext) -> Job | bool:
    """The job, now held by this run; or whether to consume the message when it cannot be had."""
    now = utc_now()
    try:
        claim = _store.claim(job_id, run_id, epoch_millis(now) + context.get_remaining_time_in_millis(), now)
    except JobStoreError:
        logger.exception("could not claim the job; the message will be delivered again")
        return False
    if claim.status is ClaimStatus.CLAIMED and claim.job is not None:
        return claim.job
    if claim.status is ClaimStatus.BUSY:
        logger.info("another run holds the job under a live lease; the message will be delivered again")
        _count("JobsDeferred")
        return False
    if claim.status is ClaimStatus.CANCELLED:
        logger.info("job cancelled before it ran: its owner asked to cancel it")
        _count("JobsCancelled")
        return True
    logger.info("dropping the message: the job is finished or gone", extra={"claim": claim.status.value})
    _count("DuplicateDeliveries")
    return True


def _fenced_write(what: str, write: Callable[[], WriteOutcome]) -> WriteOutcome | None:
    """Make a write fenced by this run's id, and log what a failure of it means for the message.

    Returns None when the store failed (the message will be delivered again), else the outcome; a lost fence
    (FENCED_OUT: another run took the job over) is logged and counted here, and consumes the message.
    """
    try:
        outcome = write()
    except JobStoreError:
        logger.exception(f"could not record {what}; the message will be delivered again")
        return None
    if outcome is WriteOutcome.FENCED_OUT:
        logger.warning(f"{what} was not recorded: another run took the job over")
        _count("LeaseLost")
    return outcome


def _cancelled(job_id: str, run_id: str) -> bool:
    """Record that the handler stopped on a cancel request; return whether the message is consumed."""
    outcome = _fenced_write("the cancellation", lambda: _store.cancel_run(job_id, run_id))
    if outcome is None:
        return False
    if outcome is not WriteOutcome.FENCED_OUT:
        logger.info("job cancelled")
        _count("JobsCancelled")
    return True


def _succeed(job_id: str, run_id: str, result: object) -> _Outcome:
    """Record the handler's result; return whether the message is consumed."""
    try:
        result_json = json.dumps(result, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        size = len(result_json.encode("utf-8"))
    except (TypeError, ValueError, RecursionError) as error:
        return _fail(
            job_id,
            run_id,
            "ResultNotSerializable",
            _error_message(f"The handler's result is not JSON-serialisable: {error}"),
            final=True,
        )
    if size > RESULT_MAX_BYTES:
        return _fail(
            job_id,
            run_id,
            "ResultTooLarge",
            f"The handler's result is {size} bytes of JSON; at most {RESULT_MAX_BYTES} are kept. Store large "
            "results elsewhere (e.g. S3) and return a reference.",
            final=True,
        )
    outcome = _fenced_write("the result", lambda: _store.complete(job_id, run_id, result_json))
    if outcome is None:
        return False
    if outcome is not WriteOutcome.FENCED_OUT:
        logger.info("job succeeded")
        _count("JobsSucceeded")
    return True


def _fail(
    job_id: str, run_id: str, error_type: str, message: str, *, final: bool, attempt: int = 1
) -> _Outcome:
    """Record a failed attempt; return what becomes of the message (a retry backs off by ``attempt``)."""
    outcome = _fenced_write(
        "the failure", lambda: _store.record_failure(job_id, run_id, error_type, message, final)
    )
    if outcome is None:
        return False
    if outcome is WriteOutcome.FENCED_OUT:
        return True
    if outcome is WriteOutcome.CANCELLED:
        logger.info("the attempt failed and its owner asked to cancel the job: cancelled, not retried")
        _count("JobsCancelled")
        return True
    if final:
        logger.warning("job failed", extra={"error_type": error_type})
        _count("JobsFailed")
        return True
    logger.info("attempt failed; the job will be retried", extra={"error_type": error_type})
    _count("JobsRetried")
    return _Retry(attempt)


def _progress_writer(job_id: str, run_id: str) -> Callable[[float, str | None], ProgressAck]:
    def write(percent: float, message: str | None) -> ProgressAck:
        try:
            outcome = _store.report_progress(job_id, run_id, percent, message)
        except JobStoreError:
            # Progress is advisory: a failed write must not fail the job.
            logger.warning("could not record progress", exc_info=True)
            return ProgressAck.HELD
        if outcome is WriteOutcome.CANCEL_REQUESTED:
            return ProgressAck.CANCEL_REQUESTED
        return ProgressAck.HELD if outcome is WriteOutcome.APPLIED else ProgressAck.LOST

    return write


def _load_team_handler() -> TeamHandler:
    """Import ``ASYNC_JOB_HANDLER`` once (a failed import is tried again with the next job)."""
    global _team_handler
    if _team_handler is None:
        module_name, _, function_name = CONFIG.handler.rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except Exception as error:
            raise HandlerImportError(
                f"cannot import module {module_name!r} of the job handler {CONFIG.handler!r}: "
                f"{type(error).__name__}: {error}"
            ) from error
        function = getattr(module, function_name, None)
        if not callable(function):
            raise HandlerImportError(
                f"module {module_name!r} has no function {function_name!r} (the job handler {CONFIG.handler!r})"
            )
        _team_handler = function
    return _team_handler


def _receive_count(record: dict[str, Any]) -> int:
    try:
        return max(1, int((record.get("attributes") or {}).get("ApproximateReceiveCount", 1)))
    except (TypeError, ValueError):
        return 1


def _error_message(error: BaseException | str) -> str:
    if isinstance(error, str):
        return error[:ERROR_MESSAGE_MAX_CHARS]
    try:
        text = str(error)
    except Exception:
        text = f"<{type(error).__name__} whose str() failed>"
    return text[:ERROR_MESSAGE_MAX_CHARS]


def _record_duration(started: float) -> None:
    metrics.add_metric(
        name="JobDuration", unit=MetricUnit.Milliseconds, value=(time.monotonic() - started) * 1000
    )


def _count(name: str) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
