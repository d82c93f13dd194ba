"""The job state machine's decisions, as pure functions of the job as read and the delivery at hand.

Each function answers one question the runtime asks of a job (may this message run it? what becomes of a
dead-lettered message?). The store (``lambda_handlers.store``) writes the answer as one conditional UpdateItem
whose condition is the same rule in DynamoDB's words; when that condition fails, DynamoDB returns the item as it
was, and the store asks the function here again on it. So the rule lives in two forms, this one and the
condition, and ``tests/unit/handlers/test_transitions.py`` holds them to each other.

See ``docs/design.md`` ("State machine") and ``docs/faults.md`` for the guarantees these decisions give.
"""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Final

from lambda_handlers.models import Job, JobStatus, epoch_millis

__all__ = [
    "RETRY_EARLY_TOLERANCE_MS",
    "ClaimDecision",
    "DeadLetterDecision",
    "decide_claim",
    "decide_dead_letter",
    "retry_wait_seconds",
]

#: How early a retry may start before its ``retryAt``: SQS makes the message visible again in whole seconds,
#: counted from a moment after the failure was written, and hosts' clocks differ by a little. A retry deferred
#: for less would only cost a receive (and so an attempt's worth of the redrive count).
RETRY_EARLY_TOLERANCE_MS: Final = 2_000


class ClaimDecision(Enum):
    """What a delivery of a job's message may do with the job."""

    #: Take the job and run it.
    CLAIM = "CLAIM"
    #: The job is finished (a late duplicate): drop the message.
    FINISHED = "FINISHED"
    #: No such job, or past its expiry (an orphan message): drop the message.
    GONE = "GONE"
    #: Another run holds the job under a live lease: deliver the message again later.
    BUSY = "BUSY"
    #: This is the job's own message, early for its retry (its backoff was not applied): deliver it again
    #: when the backoff ends.
    DEFER = "DEFER"
    #: Another message of the job waits out the job's backoff; this one is a duplicate: drop it.
    DUPLICATE = "DUPLICATE"
    #: The owner asked to cancel the job and no run holds it: end it CANCELLED without running it.
    CANCEL = "CANCEL"


class DeadLetterDecision(Enum):
    """What becomes of a job whose message (``message_id``) was dead-lettered."""

    #: The job's own message is gone without an outcome: the job ends FAILED (``DeadLettered``).
    MARK = "MARK"
    #: As MARK, but its owner had asked to cancel it: the job ends CANCELLED.
    CANCEL = "CANCEL"
    #: The job is finished: drop the message.
    FINISHED = "FINISHED"
    #: No such job, or past its expiry: drop the message.
    GONE = "GONE"
    #: A run holds the job under a live lease and may still finish it: look again later.
    BUSY = "BUSY"
    #: The job belongs to another, live message of its own (this one was a duplicate): drop it.
    DUPLICATE = "DUPLICATE"


def decide_claim(
    job: Job | None, message_id: str | None, now: dt.datetime, *, last_delivery: bool = False
) -> ClaimDecision:
    """Whether the delivery of message ``message_id`` may run ``job`` now, and what to do if not.

    A ``message_id`` of None (a claim tied to no message) is never a duplicate. On the ``last_delivery`` of
    the message (SQS dead-letters it after this receive) an early retry is claimed, not deferred: deferring
    would lose the message, and with it the job's remaining attempts.

    Examples
    --------
    >>> decide_claim(queued_job, "m-1", utc_now())
    <ClaimDecision.CLAIM: 'CLAIM'>
    >>> decide_claim(None, "m-1", utc_now())
    <ClaimDecision.GONE: 'GONE'>
    """
    if job is None or job.is_expired(now):
        return ClaimDecision.GONE
    if job.status.is_terminal:
        return ClaimDecision.FINISHED
    if job.message_id is not None and message_id is not None and job.message_id != message_id:
        return ClaimDecision.DUPLICATE
    if not job.is_takeable(now):
        return ClaimDecision.BUSY
    if job.cancel_requested:
        return ClaimDecision.CANCEL
    if job.status is JobStatus.QUEUED and not last_delivery and retry_wait_seconds(job, now) > 0:
        return ClaimDecision.DEFER
    return ClaimDecision.CLAIM


def decide_dead_letter(job: Job | None, message_id: str | None, now: dt.datetime) -> DeadLetterDecision:
    """What becomes of ``job`` now that its message ``message_id`` was dead-lettered.

    A message that is not the one the job last ran from is a duplicate while the job is unfinished: the job's
    own message is still in the queue (waiting out a backoff, or coming back after a crash), and decides.

    Examples
    --------
    >>> decide_dead_letter(crashed_job, crashed_job.message_id, utc_now())
    <DeadLetterDecision.MARK: 'MARK'>
    """
    if job is None or job.is_expired(now):
        return DeadLetterDecision.GONE
    if job.status.is_terminal:
        return DeadLetterDecision.FINISHED
    if job.message_id is not None and job.message_id != message_id:
        return DeadLetterDecision.DUPLICATE
    if not job.is_takeable(now):
        return DeadLetterDecision.BUSY
    if job.cancel_requested:
        return DeadLetterDecision.CANCEL
    return DeadLetterDecision.MARK


def retry_wait_seconds(job: Job, now: dt.datetime) -> int:
    """Whole seconds (rounded up) until ``job``'s retry may start; 0 when it may start now.

    Examples
    --------
    >>> retry_wait_seconds(job_waiting_out_a_10_s_backoff, utc_now())
    10
    """
    if job.retry_at is None:
        return 0
    left_ms = job.retry_at - RETRY_EARLY_TOLERANCE_MS - epoch_millis(now)
    return max(0, -(-left_ms // 1000))
