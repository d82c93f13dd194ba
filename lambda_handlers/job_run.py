"""One run of a claimed job: its outcome writes, and what becomes of its message (a ``Disposition``).

The outcome of a run (result, failure, cancellation) is written with bounded retries inside the invocation
(``OUTCOME_WRITE_MAX_SECONDS``, never past the Lambda deadline): the run's lease lasts until that deadline, so
no other run can take the job meanwhile, and a handler that succeeded is not run again because one write
failed. Only when DynamoDB refuses every try until then does the message come back (and the handler may run
again: docs/faults.md, "Delivery semantics"). The backoff of a retry and the room left for a result are pure
arithmetic here, tested without a worker.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from lambda_handlers import messages, objects
from lambda_handlers.job import PROGRESS_MESSAGE_MAX_CHARS
from lambda_handlers.models import ITEM_MAX_BYTES, Job, JobStatus, epoch_millis, item_size, utc_now
from lambda_handlers.observability import MetricUnit, logger, metrics
from lambda_handlers.store import JobStore, JobStoreError, WriteOutcome

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = [
    "CONSUME",
    "ERROR_MESSAGE_MAX_CHARS",
    "OUTCOME_WRITE_MAX_SECONDS",
    "REDELIVER",
    "Disposition",
    "Run",
    "backoff_seconds",
    "error_message",
    "handle_job_record",
    "result_budget_bytes",
]

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
#: The jitter's source when a caller gives none.
_random = random.Random()


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


class Run:
    """One run of a claimed job: writes its outcome, fenced by its run id, and decides the message's fate.

    Parameters
    ----------
    job_id, run_id
        The job, and this run's fencing token.
    context
        The Lambda context (its deadline bounds the write retries).
    store
        The job store.
    retry_base_seconds, retry_max_seconds
        The backoff of a retryable failure (``backoff_seconds``).
    rng
        The jitter's source; None for the module's.
    bucket
        The API's bucket: a result too large for the item is kept there. None: such a result fails the job.

    Examples
    --------
    >>> Run(job_id, run_id, context, store, retry_base_seconds=10, retry_max_seconds=900).succeed({"rows": 1}, job)
    Disposition(consume=True, visible_in=None)
    """

    def __init__(
        self,
        job_id: str,
        run_id: str,
        context: LambdaContext,
        store: JobStore,
        *,
        retry_base_seconds: int,
        retry_max_seconds: int,
        rng: random.Random | None = None,
        bucket: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.job_id = job_id
        self.run_id = run_id
        self.context = context
        self.store = store
        self.retry_base_seconds = retry_base_seconds
        self.retry_max_seconds = retry_max_seconds
        self.rng = rng or _random

    def succeed(self, result: object, claimed: Job) -> Disposition:
        """Record the handler's result."""
        try:
            result_json = json.dumps(result, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError, RecursionError) as error:
            return self.fail(
                "ResultNotSerializable",
                error_message(f"The handler's result is not JSON-serialisable: {error}"),
                final=True,
            )
        data = result_json.encode("utf-8")
        budget = result_budget_bytes(claimed)
        result_ref = None
        if len(data) > budget and self.bucket is None:
            return self.fail(
                "ResultTooLarge",
                f"The handler's result is {len(data)} bytes of JSON; this job's status item has room for "
                f"{budget} (DynamoDB's {ITEM_MAX_BYTES}-byte item limit, less the job's other attributes) and "
                "the API has no bucket for larger results.",
                final=True,
            )
        if len(data) > budget:
            result_ref = objects.result_key(self.job_id)
            try:
                objects.put(str(self.bucket), result_ref, data, "application/json")
            except objects.ObjectStoreError as error:
                logger.exception("could not store the result in the bucket")
                return self.fail(
                    "ResultNotStored", error_message(f"S3 refused the result: {error}"), final=True
                )
        try:
            outcome = self._write(
                "the result",
                lambda: self.store.complete(self.job_id, self.run_id, result_json, result_ref=result_ref),
            )
        except JobStoreError as error:
            return self.fail(
                "ResultNotStored",
                error_message(f"DynamoDB refused the handler's result: {error}"),
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
            None
            if final
            else backoff_seconds(attempt, self.retry_base_seconds, self.retry_max_seconds, self.rng)
        )
        retry_at = None if delay is None else epoch_millis(utc_now()) + delay * 1000
        try:
            outcome = self._write(
                "the failure",
                lambda: self.store.record_failure(
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
                "the cancellation", lambda: self.store.cancel_run(self.job_id, self.run_id, message=message)
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
                time.sleep(pause * (0.5 + self.rng.random() / 2))
                pause = min(pause * 2, _WRITE_PAUSE_MAX_SECONDS)
                continue
            if outcome is WriteOutcome.FENCED_OUT:
                logger.warning(f"{what} was not recorded: another run took the job over")
                _count("LeaseLost")
            return outcome


def error_message(error: BaseException | str) -> str:
    """``error`` as the text kept in the job (``str(error)``, at most ``ERROR_MESSAGE_MAX_CHARS``).

    Examples
    --------
    >>> error_message(RuntimeError("boom"))
    'boom'
    """
    if isinstance(error, str):
        return error[:ERROR_MESSAGE_MAX_CHARS]
    try:
        text = str(error)
    except Exception:
        text = f"<{type(error).__name__} whose str() failed>"
    return text[:ERROR_MESSAGE_MAX_CHARS]


def handle_job_record(
    record: Mapping[str, Any], handle: Callable[[messages.JobMessage], Disposition]
) -> Disposition:
    """What becomes of one SQS record of a job queue: ``handle`` of its job message, with the job id as a log key.

    A body that is not a job message is dropped (counted as ``MalformedMessages``); an unexpected error of
    ``handle`` delivers the record again. The short worker and a long type's starter share this envelope.

    Examples
    --------
    >>> handle_job_record(record, lambda message: CONSUME)
    Disposition(consume=True, visible_in=None)
    """
    try:
        message = messages.decode(record.get("body"))
    except messages.MessageError as error:
        logger.error("dropping a message that is not a job message", extra={"reason": str(error)})
        _count("MalformedMessages")
        return CONSUME
    logger.append_keys(job_id=message.job_id)
    try:
        return handle(message)
    except Exception:
        logger.exception("the record failed unexpectedly; it will be delivered again")
        return REDELIVER
    finally:
        logger.remove_keys(["job_id"])


def _count(name: str) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
