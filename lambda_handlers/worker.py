"""The job queue's consumer: claim each job, run the team's handler on it, record the outcome.

Records are handled one after the other. Each record ends in one of two ways:

- consumed (the message is deleted): the job succeeded, failed for good, or was finished, missing or owned
  by another run already (a duplicate delivery);
- reported in ``batchItemFailures`` (SQS delivers it again after the visibility timeout): the attempt failed
  and may be retried, another run holds the job under a live lease, or an AWS call failed.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from lambda_handlers import config, messages
from lambda_handlers.deadline import safety_margin_ms, time_limit
from lambda_handlers.job import JobContext, JobFailedError, JobLeaseLostError, JobTimeoutError
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


class HandlerImportError(Exception):
    """``ASYNC_JOB_HANDLER`` cannot be imported, or does not name a function."""


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
        if not _handle_record(record, context):
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def _handle_record(record: dict[str, Any], context: LambdaContext) -> bool:
    """Handle one record; return whether its message is consumed (False: SQS must deliver it again)."""
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


def _run(message: messages.JobMessage, attempt: int, context: LambdaContext) -> bool:
    """Claim the job, run the team's handler on it, record the outcome; return whether the message is consumed."""
    job_id = message.job_id
    run_id = uuid.uuid4().hex
    claimed = _claim(job_id, run_id, context)
    if not isinstance(claimed, Job):
        return claimed
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
    except Exception as error:
        _record_duration(started)
        final = isinstance(error, JobFailedError) or attempt >= CONFIG.max_receive_count
        if isinstance(error, JobFailedError):
            logger.warning("the job handler failed the job", extra={"error": _error_message(error)})
        else:
            logger.exception("the job handler failed", extra={"attempt": attempt, "final": final})
        return _fail(job_id, run_id, type(error).__name__, _error_message(error), final=final)
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
    logger.info("dropping the message: the job is finished or gone", extra={"claim": claim.status.value})
    _count("DuplicateDeliveries")
    return True


def _succeed(job_id: str, run_id: str, result: object) -> bool:
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
    try:
        outcome = _store.complete(job_id, run_id, result_json)
    except JobStoreError:
        logger.exception("could not record the result; the message will be delivered again")
        return False
    if outcome is WriteOutcome.FENCED_OUT:
        logger.warning("the result was not recorded: another run took the job over")
        _count("LeaseLost")
        return True
    logger.info("job succeeded")
    _count("JobsSucceeded")
    return True


def _fail(job_id: str, run_id: str, error_type: str, message: str, *, final: bool) -> bool:
    """Record a failed attempt; return whether the message is consumed (a final failure)."""
    try:
        outcome = _store.record_failure(job_id, run_id, error_type, message, final)
    except JobStoreError:
        logger.exception("could not record the failure; the message will be delivered again")
        return False
    if outcome is WriteOutcome.FENCED_OUT:
        logger.warning("the failure was not recorded: another run took the job over")
        _count("LeaseLost")
        return True
    if final:
        logger.warning("job failed", extra={"error_type": error_type})
        _count("JobsFailed")
        return True
    logger.info("attempt failed; the job will be retried", extra={"error_type": error_type})
    _count("JobsRetried")
    return False


def _progress_writer(job_id: str, run_id: str) -> Callable[[float, str | None], bool]:
    def write(percent: float, message: str | None) -> bool:
        try:
            outcome = _store.report_progress(job_id, run_id, percent, message)
        except JobStoreError:
            # Progress is advisory: a failed write must not fail the job.
            logger.warning("could not record progress", exc_info=True)
            return True
        return outcome is WriteOutcome.APPLIED

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
