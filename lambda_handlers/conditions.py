"""The condition fragments of the status table's writes, each named once with its one-line meaning.

Each is a piece of a DynamoDB condition or update expression; ``#s`` is ``status``, ``#o`` is ``owner``, and the
time placeholders (``:now``, ``:nowSec``, ``:nowMs``, ``:expires``) are filled in by
``StatusTable.update``. ``lambda_handlers.transitions`` holds the same rules as pure functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from lambda_handlers.models import JobStatus

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

__all__ = [
    "ALIVE",
    "CANCEL",
    "FENCE",
    "KEY_FREE",
    "NOT_CANCELLED",
    "OWN_MESSAGE",
    "RUNNABLE",
    "TAKEABLE",
    "TAKEABLE_VALUES",
    "UNTOUCHED",
]

#: The job is still there: not deleted, not past its expiry (TTL deletion lags up to days).
ALIVE: Final = "attribute_exists(pk) AND (attribute_not_exists(expiresAt) OR expiresAt > :nowSec)"
#: Held by no live run: QUEUED, or RUNNING under a lease that ran out.
TAKEABLE: Final = (
    "(#s = :queued OR (#s = :running AND (attribute_not_exists(leaseUntil) OR leaseUntil < :nowMs)))"
)
#: May run now (with ``OWN_MESSAGE``: ``transitions.decide_claim`` is CLAIM): held by no live run, and not
#: waiting out a retry's backoff (``:retryBy`` is now plus the early tolerance).
RUNNABLE: Final = (
    "((#s = :queued AND (attribute_not_exists(retryAt) OR retryAt <= :retryBy)) OR "
    "(#s = :running AND (attribute_not_exists(leaseUntil) OR leaseUntil < :nowMs)))"
)
#: Not bound to another message than :mid.
OWN_MESSAGE: Final = "(attribute_not_exists(messageId) OR messageId = :mid)"
#: The values ``TAKEABLE`` and ``RUNNABLE`` use.
TAKEABLE_VALUES: Final[dict[str, AttributeValueTypeDef]] = {
    ":queued": {"S": JobStatus.QUEUED.value},
    ":running": {"S": JobStatus.RUNNING.value},
}
#: Ends a job CANCELLED, to expire ``ttl_seconds`` from now, and drops what a run held.
CANCEL: Final = (
    "SET #s = :cancelled, updatedAt = :now, expiresAt = :expires "
    "REMOVE runId, leaseUntil, cancelRequested, retryAt"
)
#: Ends a job FAILED for good with ``:type`` and ``:message``, to expire ``ttl_seconds`` from now, and drops what a
#: run held and its progress (the dead-letter consumer; a long type's sweep).
FAIL: Final = (
    "SET #s = :failed, errorType = :type, errorMessage = :message, updatedAt = :now, "
    "expiresAt = :expires REMOVE runId, leaseUntil, retryAt, progressPercent, progressMessage"
)
#: QUEUED and never claimed (so no worker has its message).
UNTOUCHED: Final = "#s = :queued AND attempts = :zero"
#: Held by this run.
FENCE: Final = "#s = :running AND runId = :run"
#: Nobody asked to cancel the job.
NOT_CANCELLED: Final = "attribute_not_exists(cancelRequested)"
#: A key item that is absent or past its expiry (then it may be overwritten: its job has expired too).
KEY_FREE: Final = "(attribute_not_exists(pk) OR expiresAt <= :nowSec)"
