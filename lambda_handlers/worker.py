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

What a record becomes is decided once, as a ``Disposition``; ``handler`` only carries it out.

The outcome of a run (result, failure, cancellation) is written with bounded retries inside the invocation
(``OUTCOME_WRITE_MAX_SECONDS``, never past the Lambda deadline): the run's lease lasts until that deadline, so
no other run can take the job meanwhile, and a handler that succeeded is not run again because one write
failed. Only when DynamoDB refuses every try until then does the message come back (and the handler may run
again: docs/faults.md, "Delivery semantics").
"""

from __future__ import annotations

import dataclasses
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
from lambda_handlers.contract import JOB_TYPE_DIMENSION
from lambda_handlers.deadline import safety_margin_ms, time_limit
from lambda_handlers.job import (
    PROGRESS_MESSAGE_MAX_CHARS,
    JobCancelledError,
    JobContext,
    JobFailedError,
    JobLeaseLostError,
    JobTimeoutError,
    ProgressAck,
)
from lambda_handlers.models import ITEM_MAX_BYTES, Job, JobStatus, epoch_millis, item_size, utc_now
from lambda_handlers.observability import MetricUnit, logger, metrics, tracer
from lambda_handlers.store import ClaimStatus, JobStore, JobStoreError, WriteOutcome
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

#: A team's job handler: ``function(payload, job) -> JSON-serialisable result``.
TeamHandler = Callable[[dict[str, Any], JobContext], Any]

#: Longest error message kept.
ERROR_MESSAGE_MAX_CHARS: Final = 2_000
#: The longest a run keeps trying to write its outcome while DynamoDB fails (never past the Lambda deadline).
OUTCOME_WRITE_MAX_SECONDS: Final = 120.0
#: Time kept back from the Lambda deadline to answer the batch after the last write.
_ANSWER_RESERVE_MS: Final = 500
#: The first pause between two tries of an outcome write; it doubles up to ``_WRITE_PAUSE_MAX_SECONDS``.
_WRITE_PAUSE_SECONDS: Final = 0.05
_WRITE_PAUSE_MAX_SECONDS: Final = 5.0
#: What progress may add to an item after the claim: both attributes, the longest message in UTF-8.
_PROGRESS_BYTES: Final = len("progressPercent") + 21 + len("progressMessage") + 4 * PROGRESS_MESSAGE_MAX_CHARS

CONFIG: Final = config.load(config.WorkerConfig)
_store: Final = JobStore(CONFIG.table_name, ttl_seconds=CONFIG.ttl_seconds)
# One worker runs one job type: every metric of every invocation is in that type's series.
metrics.set_default_dimensions(**{JOB_TYPE_DIMENSION: CONFIG.job_type})
_team_handler: TeamHandler | None = None
#: The jitter's source (tests put a seeded one in its place).
_random = random.Random()


class HandlerImportError(Exception):
    """``ASYNC_JOB_HANDLER`` cannot be imported, or does not name a function."""


@dataclass(frozen=True, slots=True)
class Disposition:
    """What becomes of one record's message: consumed, or delivered again (now or after ``visible_in``)."""

    #: Delete the message (the record is not reported).
    consume: bool
    #: Seconds until SQS delivers the message again (``ChangeMessageVisibility``); None: the visibility
    #: timeout it has.
    visible_in: int | None = None


#: The job is done with this message.
CONSUME: Final = Disposition(consume=True)
#: Deliver the message again after its visibility timeout.
REDELIVER: Final = Disposition(consume=False)


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


def _delay(record: dict[str, Any], seconds: int) -> None:
    """Make the record's message visible again only after ``seconds``; on failure it keeps its timeout."""
    try:
        clients.sqs().change_message_visibility(
            QueueUrl=_queue_url(record.get("eventSourceARN")),
            ReceiptHandle=str(record.get("receiptHandle")),
            VisibilityTimeout=seconds,
        )
    except Exception:  # whatever went wrong, the record is reported: nothing here may fail the batch
        logger.warning(
            "could not delay the retry; the message comes back after the visibility timeout",
            exc_info=True,
            extra={"job_id": _job_id_of(record)},
        )
        _count("BackoffErrors")
        return
    logger.info("retry delayed", extra={"job_id": _job_id_of(record), "delay_s": seconds})


def result_budget_bytes(claimed: Job) -> int:
    """How many bytes of result JSON fit the job's item (DynamoDB's 400 KB, less everything else it holds).

    Counts the item as ``complete`` leaves it (the claimed job, SUCCEEDED, without run, lease and error) with
    the most that progress reports may add meanwhile.

    Examples
    --------
    >>> 380_000 < result_budget_bytes(claimed_job) < ITEM_MAX_BYTES
    True
    """
    done = dataclasses.replace(
        claimed,
        status=JobStatus.SUCCEEDED,
        result="",
        run_id=None,
        lease_until=None,
        error_type=None,
        error_message=None,
        cancel_requested=False,
        progress_percent=None,
        progress_message=None,
    )
    return ITEM_MAX_BYTES - item_size(done.to_item()) - _PROGRESS_BYTES


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


def _handle_record(record: dict[str, Any], context: LambdaContext) -> Disposition:
    """Handle one record; return what becomes of its message."""
    try:
        message = messages.decode(record.get("body"))
    except messages.MessageError as error:
        logger.error("dropping a message that is not a job message", extra={"reason": str(error)})
        _count("MalformedMessages")
        return CONSUME
    logger.append_keys(job_id=message.job_id)
    try:
        return _run(message, record, context)
    except Exception:
        logger.exception("the record failed unexpectedly; it will be delivered again")
        return REDELIVER
    finally:
        logger.remove_keys(["job_id"])


def _run(message: messages.JobMessage, record: dict[str, Any], context: LambdaContext) -> Disposition:
    """Claim the job, run the team's handler on it, record the outcome; return what becomes of the message."""
    job_id = message.job_id
    run = _Run(job_id, uuid.uuid4().hex, context)
    claimed = _claim(run, str(record.get("messageId") or ""))
    if not isinstance(claimed, Job):
        return claimed
    # The larger of the deliveries and the claims counts the attempt: the last delivery SQS makes before it
    # dead-letters the message is then the last attempt, whose failure is recorded as the job's error.
    attempt = max(_receive_count(record), claimed.attempts)
    logger.info("job claimed", extra={"attempt": attempt, "attempts": claimed.attempts, "run_id": run.run_id})
    if (
        message.payload_text is not None
        and claimed.payload_sha256 is not None
        and messages.payload_digest(message.payload_text) != claimed.payload_sha256
    ):
        return run.fail(
            "PayloadMismatch",
            "The message's payload does not match the payload recorded for this job.",
            final=True,
        )
    try:
        team_handler = _load_team_handler()
    except HandlerImportError as error:
        logger.exception("cannot load the job handler")
        return run.fail("HandlerImportError", _error_message(error), final=True)

    remaining_ms = context.get_remaining_time_in_millis()
    budget_ms = remaining_ms - safety_margin_ms(remaining_ms)
    job_context = JobContext(
        job_id,
        attempt=attempt,
        max_attempts=CONFIG.max_receive_count,
        time_limit=dt.timedelta(milliseconds=max(budget_ms, 0)),
        progress_writer=_progress_writer(job_id, run.run_id),
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
        return CONSUME
    except JobCancelledError as error:
        _record_duration(started)
        logger.info("the job handler stopped on a cancel request", extra={"reason": _error_message(error)})
        return run.cancelled(_error_message(error) or None)
    except Exception as error:
        _record_duration(started)
        final = isinstance(error, JobFailedError) or attempt >= CONFIG.max_receive_count
        if isinstance(error, JobFailedError):
            logger.warning("the job handler failed the job", extra={"error": _error_message(error)})
        else:
            logger.exception("the job handler failed", extra={"attempt": attempt, "final": final})
        return run.fail(type(error).__name__, _error_message(error), attempt=attempt, final=final)
    _record_duration(started)
    return run.succeed(result, claimed)


def _claim(run: _Run, message_id: str) -> Job | Disposition:
    """The job, now held by this run; or what becomes of the message when it cannot be had."""
    now = utc_now()
    lease_until = epoch_millis(now) + run.context.get_remaining_time_in_millis()
    try:
        claim = _store.claim(run.job_id, run.run_id, lease_until, now, message_id=message_id)
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


class _Run:
    """One run of a claimed job: writes its outcome, fenced by its run id, and decides the message's fate."""

    def __init__(self, job_id: str, run_id: str, context: LambdaContext) -> None:
        self.job_id = job_id
        self.run_id = run_id
        self.context = context

    def succeed(self, result: object, claimed: Job) -> Disposition:
        """Record the handler's result."""
        try:
            result_json = json.dumps(result, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError, RecursionError) as error:
            return self.fail(
                "ResultNotSerializable",
                _error_message(f"The handler's result is not JSON-serialisable: {error}"),
                final=True,
            )
        size = len(result_json.encode("utf-8"))
        budget = result_budget_bytes(claimed)
        if size > budget:
            return self.fail(
                "ResultTooLarge",
                f"The handler's result is {size} bytes of JSON; this job's status item has room for {budget} "
                f"(DynamoDB's {ITEM_MAX_BYTES}-byte item limit, less the job's other attributes). Store large "
                "results elsewhere (e.g. S3) and return a reference.",
                final=True,
            )
        try:
            outcome = self._write(
                "the result", lambda: _store.complete(self.job_id, self.run_id, result_json)
            )
        except JobStoreError as error:
            return self.fail(
                "ResultNotStored",
                _error_message(f"DynamoDB refused the handler's result: {error}"),
                final=True,
            )
        if outcome is None:
            return REDELIVER
        if outcome is not WriteOutcome.FENCED_OUT:
            logger.info("job succeeded")
            _count("JobsSucceeded")
        return CONSUME

    def fail(self, error_type: str, message: str, *, final: bool, attempt: int = 1) -> Disposition:
        """Record a failed attempt; a retry is delivered again after a backoff drawn for ``attempt``."""
        delay = (
            None if final else backoff_seconds(attempt, CONFIG.retry_base_seconds, CONFIG.retry_max_seconds)
        )
        retry_at = None if delay is None else epoch_millis(utc_now()) + delay * 1000
        try:
            outcome = self._write(
                "the failure",
                lambda: _store.record_failure(
                    self.job_id, self.run_id, error_type, message, final, retry_at_ms=retry_at
                ),
            )
        except JobStoreError:
            logger.exception("DynamoDB refused the failure; the message will be delivered again")
            return REDELIVER
        if outcome is None:
            return REDELIVER
        if outcome is WriteOutcome.FENCED_OUT:
            return CONSUME
        if outcome is WriteOutcome.CANCELLED:
            logger.info("the attempt failed and its owner asked to cancel the job: cancelled, not retried")
            _count("JobsCancelled")
            return CONSUME
        if delay is None:
            logger.warning("job failed", extra={"error_type": error_type})
            _count("JobsFailed")
            return CONSUME
        logger.info(
            "attempt failed; the job will be retried", extra={"error_type": error_type, "delay_s": delay}
        )
        _count("JobsRetried")
        return Disposition(consume=False, visible_in=delay)

    def cancelled(self, message: str | None) -> Disposition:
        """Record that the handler stopped on a cancel request."""
        try:
            outcome = self._write(
                "the cancellation", lambda: _store.cancel_run(self.job_id, self.run_id, message=message)
            )
        except JobStoreError:
            logger.exception("DynamoDB refused the cancellation; the message will be delivered again")
            return REDELIVER
        if outcome is None:
            return REDELIVER
        if outcome is not WriteOutcome.FENCED_OUT:
            logger.info("job cancelled")
            _count("JobsCancelled")
        return CONSUME

    def _write(self, what: str, write: Callable[[], WriteOutcome]) -> WriteOutcome | None:
        """Make an outcome write, trying a transient failure again with doubling pauses while time is left.

        Returns None when every try failed until ``OUTCOME_WRITE_MAX_SECONDS`` or the Lambda deadline (the
        message will be delivered again), else the outcome; a lost fence (FENCED_OUT: another run took the job
        over) is logged and counted here. A refusal that would repeat (``transient`` False) is raised.
        """
        give_up = time.monotonic() + OUTCOME_WRITE_MAX_SECONDS
        pause = _WRITE_PAUSE_SECONDS
        tries = 0
        while True:
            tries += 1
            try:
                outcome = write()
            except JobStoreError as error:
                if not error.transient:
                    raise
                left = min(
                    give_up - time.monotonic(),
                    (self.context.get_remaining_time_in_millis() - _ANSWER_RESERVE_MS) / 1000,
                )
                if left <= pause:
                    logger.exception(
                        f"could not record {what} in {tries} tries; the message will be delivered again"
                    )
                    _count("OutcomeWriteErrors")
                    return None
                logger.warning(
                    f"could not record {what}; trying again", extra={"try": tries, "pause_s": pause}
                )
                time.sleep(pause * (0.5 + _random.random() / 2))
                pause = min(pause * 2, _WRITE_PAUSE_MAX_SECONDS)
                continue
            if outcome is WriteOutcome.FENCED_OUT:
                logger.warning(f"{what} was not recorded: another run took the job over")
                _count("LeaseLost")
            return outcome


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
