"""The dead-letter queue's consumer: fail the jobs whose messages were dead-lettered.

A message lands in the dead-letter queue when its job's attempts never recorded an outcome (the worker crashed,
ran out of memory, or hit the Lambda timeout before it could stop the handler), or kept finding the job held by
another run. This consumer marks such a job FAILED with error type ``DeadLettered`` (CANCELLED when its owner had
asked to cancel it), unless a run still holds it under a live lease (then the record is reported as a batch
item failure, to be looked at again later) or the job belongs to another message of its own that is still in
the queue (this one was a duplicate: dropped; the job's own message decides).

One consumer serves every job type's dead-letter queue: the error message counts the job's own type's
attempts (``ASYNC_JOB_TYPES``), and each record's metrics go to its job's type's series at once
(``observability.emit_now``); a malformed message's to ``jobType`` ``(unknown)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from lambda_handlers import config, messages
from lambda_handlers.contract import UNKNOWN_JOB_TYPE
from lambda_handlers.observability import emit_now, logger, tracer
from lambda_handlers.store import DeadLetterOutcome, JobStore, JobStoreError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["CONFIG", "handler"]

CONFIG: Final = config.load(config.DeadLetterConfig)
_store: Final = JobStore(CONFIG.table_name, ttl_seconds=CONFIG.ttl_seconds)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, list[dict[str, str]]]:
    """Mark each record's job dead-lettered; report the records to look at again later.

    Examples
    --------
    >>> handler({"Records": [dead_letter_record]}, context)
    {'batchItemFailures': []}
    """
    failures: list[dict[str, str]] = []
    for record in event.get("Records") or []:
        if not _handle_record(record):
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def _handle_record(record: dict[str, Any]) -> bool:
    """Handle one record; return whether its message is consumed."""
    try:
        message = messages.decode(record.get("body"))
    except messages.MessageError as error:
        logger.error(
            "dropping a dead-lettered message that is not a job message", extra={"reason": str(error)}
        )
        emit_now("MalformedMessages", UNKNOWN_JOB_TYPE)
        return True
    logger.append_keys(job_id=message.job_id)
    try:
        return _mark(message.job_id, str(record.get("messageId") or "") or None)
    except Exception:
        logger.exception("the record failed unexpectedly; it will be delivered again")
        return False
    finally:
        logger.remove_keys(["job_id"])


def _mark(job_id: str, message_id: str | None) -> bool:
    try:
        result = _store.dead_letter(job_id, message_id=message_id, max_attempts=CONFIG.max_receive_counts)
    except JobStoreError:
        logger.exception("could not mark the job; the message will be delivered again")
        return False
    outcome = result.outcome
    job_type = UNKNOWN_JOB_TYPE if result.job is None else result.job.job_type
    if outcome is DeadLetterOutcome.BUSY:
        logger.info("a run still holds the job under a live lease; looking again later")
        return False
    if outcome is DeadLetterOutcome.MARKED:
        logger.warning("job failed: its message was dead-lettered", extra={"job_type": job_type})
        emit_now("JobsDeadLettered", job_type)
    elif outcome is DeadLetterOutcome.CANCELLED:
        logger.info(
            "job cancelled: its message was dead-lettered and its owner had asked to cancel it",
            extra={"job_type": job_type},
        )
        emit_now("JobsCancelled", job_type)
    else:
        logger.info(
            "dead-lettered message of a finished or missing job, or a duplicate of a live one; dropped",
            extra={"outcome": outcome.value},
        )
    return True
