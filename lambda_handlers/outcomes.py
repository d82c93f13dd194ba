"""What the status table's writes come back with: each a value, because a lost condition is an expected outcome.

A duplicate delivery, a run that was taken over, a job cancelled meanwhile: ``JobStore`` answers each with one
of these (``docs/design.md``, "State machine"); only AWS failures raise (``JobStoreError``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lambda_handlers.models import Job

__all__ = [
    "CancelOutcome",
    "CancelStatus",
    "ClaimOutcome",
    "ClaimStatus",
    "DeadLetterOutcome",
    "DeadLetterResult",
    "WriteOutcome",
]


class ClaimStatus(Enum):
    """What ``JobStore.claim`` found."""

    #: The job is this run's now: run it.
    CLAIMED = "CLAIMED"
    #: The job is finished (a duplicate delivery): drop the message.
    FINISHED = "FINISHED"
    #: No such job, or past its expiry (an orphan message): drop the message.
    GONE = "GONE"
    #: Another run holds the job under a live lease: leave the message for later.
    BUSY = "BUSY"
    #: The job's owner had asked to cancel it: it is CANCELLED now, without running: drop the message.
    CANCELLED = "CANCELLED"
    #: The job belongs to another message of its own: this one is a duplicate: drop it.
    DUPLICATE = "DUPLICATE"
    #: The job's own message came back before its retry's backoff ended: deliver it again when it ends.
    DEFERRED = "DEFERRED"


@dataclass(frozen=True, slots=True)
class ClaimOutcome:
    """The result of ``JobStore.claim``.

    Attributes
    ----------
    status
        What was found (and so what to do with the message).
    job
        CLAIMED: the job as this run holds it now (``attempts`` counted, ``runId`` set); FINISHED, BUSY,
        DUPLICATE, DEFERRED and CANCELLED: the job as found; GONE: None.
    """

    status: ClaimStatus
    job: Job | None = None


class WriteOutcome(Enum):
    """The result of a write fenced by the run id (``complete``, ``record_failure``, ``report_progress``,
    ``cancel_run``)."""

    #: The write was made.
    APPLIED = "APPLIED"
    #: This run no longer holds the job (taken over, or finished elsewhere): nothing was written.
    FENCED_OUT = "FENCED_OUT"
    #: ``report_progress`` only: the progress was written, and the owner asks to cancel the job.
    CANCEL_REQUESTED = "CANCEL_REQUESTED"
    #: ``record_failure`` of a retryable failure only: the owner had asked to cancel the job, so instead of
    #: being retried it is CANCELLED now.
    CANCELLED = "CANCELLED"


class CancelStatus(Enum):
    """What ``JobStore.cancel`` (``DELETE /jobs/{id}``) did."""

    #: The job was QUEUED (or held by a run that is dead): it is CANCELLED now and will not run.
    CANCELLED = "CANCELLED"
    #: A run holds the job: it is asked to stop (``cancelRequested``), and ends CANCELLED when it does.
    REQUESTED = "REQUESTED"
    #: The job is finished already: nothing was changed.
    FINISHED = "FINISHED"
    #: No such job for this owner (absent, past its expiry, or someone else's): nothing was changed.
    NOT_FOUND = "NOT_FOUND"


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    """The result of ``JobStore.cancel``: what was done, and the job as it is now (None for NOT_FOUND)."""

    status: CancelStatus
    job: Job | None = None


class DeadLetterOutcome(Enum):
    """The result of ``JobStore.mark_dead_lettered``."""

    #: The job is FAILED with error type ``DeadLettered`` now.
    MARKED = "MARKED"
    #: The job belongs to another, live message of its own: this one was a duplicate; nothing to do.
    DUPLICATE = "DUPLICATE"
    #: The job's owner had asked to cancel it: it is CANCELLED now.
    CANCELLED = "CANCELLED"
    #: The job was finished already: nothing to do.
    FINISHED = "FINISHED"
    #: No such job, or past its expiry: nothing to do.
    GONE = "GONE"
    #: A run still holds the job under a live lease: look again later.
    BUSY = "BUSY"


@dataclass(frozen=True, slots=True)
class DeadLetterResult:
    """The result of ``JobStore.dead_letter``: what was done, and the job (as written, or as found; None: GONE)."""

    outcome: DeadLetterOutcome
    job: Job | None = None
