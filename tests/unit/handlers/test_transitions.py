"""The state machine's decisions (``lambda_handlers.transitions``) and the store's conditions agree.

The store writes each decision as one conditional UpdateItem; when the condition fails it asks the pure function
on the item DynamoDB returns. Both forms of each rule are run here on the same job states, so they cannot drift.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest

from lambda_handlers.models import Job, JobStatus, epoch_millis, utc_now
from lambda_handlers.store import ClaimStatus, DeadLetterOutcome
from lambda_handlers.transitions import (
    ClaimDecision,
    DeadLetterDecision,
    decide_claim,
    decide_dead_letter,
    retry_wait_seconds,
)
from tests.unit.handlers.conftest import Aws

NOW = utc_now()
OWN, OTHER = "message-own", "message-other"
LIVE = epoch_millis(NOW) + 600_000
DEAD = epoch_millis(NOW) - 1_000
LATER = epoch_millis(NOW) + 120_000
EARLIER = epoch_millis(NOW) - 1_000


def job(**changes: object) -> Job:
    base = Job.new(str(uuid.uuid4()), owner="alice", payload_sha256="ab", now=NOW, ttl_seconds=3600)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


STATES = {
    "queued-new": job(),
    "queued-retry-due": job(attempts=1, message_id=OWN, retry_at=EARLIER),
    "queued-retry-waiting": job(attempts=1, message_id=OWN, retry_at=LATER),
    "running-live": job(status=JobStatus.RUNNING, attempts=1, message_id=OWN, run_id="r", lease_until=LIVE),
    "running-dead": job(status=JobStatus.RUNNING, attempts=1, message_id=OWN, run_id="r", lease_until=DEAD),
    "succeeded": job(status=JobStatus.SUCCEEDED, attempts=1, message_id=OWN, result="1"),
    "cancel-requested-dead": job(
        status=JobStatus.RUNNING,
        attempts=1,
        message_id=OWN,
        run_id="r",
        lease_until=DEAD,
        cancel_requested=True,
    ),
    "expired": job(expires_at=int(NOW.timestamp()) - 1),
}
CLAIM_STATUS = {
    ClaimDecision.CLAIM: ClaimStatus.CLAIMED,
    ClaimDecision.FINISHED: ClaimStatus.FINISHED,
    ClaimDecision.GONE: ClaimStatus.GONE,
    ClaimDecision.BUSY: ClaimStatus.BUSY,
    ClaimDecision.DEFER: ClaimStatus.DEFERRED,
    ClaimDecision.DUPLICATE: ClaimStatus.DUPLICATE,
    ClaimDecision.CANCEL: ClaimStatus.CANCELLED,
}
DEAD_LETTER_OUTCOME = {
    DeadLetterDecision.MARK: DeadLetterOutcome.MARKED,
    DeadLetterDecision.CANCEL: DeadLetterOutcome.CANCELLED,
    DeadLetterDecision.FINISHED: DeadLetterOutcome.FINISHED,
    DeadLetterDecision.GONE: DeadLetterOutcome.GONE,
    DeadLetterDecision.BUSY: DeadLetterOutcome.BUSY,
    DeadLetterDecision.DUPLICATE: DeadLetterOutcome.DUPLICATE,
}


@pytest.mark.parametrize(
    ("state", "message", "expected"),
    [
        ("queued-new", OWN, ClaimDecision.CLAIM),
        ("queued-retry-due", OWN, ClaimDecision.CLAIM),
        ("queued-retry-due", OTHER, ClaimDecision.DUPLICATE),
        ("queued-retry-waiting", OWN, ClaimDecision.DEFER),
        ("queued-retry-waiting", OTHER, ClaimDecision.DUPLICATE),
        ("running-live", OWN, ClaimDecision.BUSY),
        ("running-live", OTHER, ClaimDecision.DUPLICATE),
        ("running-dead", OWN, ClaimDecision.CLAIM),
        ("succeeded", OTHER, ClaimDecision.FINISHED),
        ("cancel-requested-dead", OWN, ClaimDecision.CANCEL),
        ("expired", OWN, ClaimDecision.GONE),
    ],
)
def test_a_claim_does_what_decide_claim_says(
    aws: Aws, state: str, message: str, expected: ClaimDecision
) -> None:
    given = STATES[state]
    assert decide_claim(given, message, NOW) is expected

    aws.dynamodb.put_item(TableName=aws.table_name, Item=given.to_item())
    outcome = aws.store.claim(given.job_id, "new-run", LIVE, NOW, message_id=message)

    assert outcome.status is CLAIM_STATUS[expected]


@pytest.mark.parametrize(
    ("state", "message", "expected"),
    [
        ("queued-new", OWN, DeadLetterDecision.MARK),
        ("queued-retry-waiting", OWN, DeadLetterDecision.MARK),
        ("queued-retry-waiting", OTHER, DeadLetterDecision.DUPLICATE),
        ("running-live", OWN, DeadLetterDecision.BUSY),
        ("running-dead", OWN, DeadLetterDecision.MARK),
        ("running-dead", OTHER, DeadLetterDecision.DUPLICATE),
        ("succeeded", OWN, DeadLetterDecision.FINISHED),
        ("cancel-requested-dead", OWN, DeadLetterDecision.CANCEL),
        ("expired", OWN, DeadLetterDecision.GONE),
    ],
)
def test_a_dead_lettered_message_does_what_decide_dead_letter_says(
    aws: Aws, state: str, message: str, expected: DeadLetterDecision
) -> None:
    given = STATES[state]
    assert decide_dead_letter(given, message, NOW) is expected

    aws.dynamodb.put_item(TableName=aws.table_name, Item=given.to_item())
    outcome = aws.store.mark_dead_lettered(given.job_id, NOW, message_id=message, max_attempts=3)

    assert outcome is DEAD_LETTER_OUTCOME[expected]
    found = aws.store.get(given.job_id, NOW)
    if expected is DeadLetterDecision.MARK:
        assert found is not None
        assert (found.status, found.error_type) == (JobStatus.FAILED, "DeadLettered")
    elif expected is not DeadLetterDecision.CANCEL and found is not None:
        assert found.status is given.status


def test_a_claim_without_a_message_is_never_a_duplicate() -> None:
    assert decide_claim(STATES["queued-retry-due"], None, NOW) is ClaimDecision.CLAIM


def test_a_retry_may_start_a_little_early_but_not_more() -> None:
    waiting = STATES["queued-retry-waiting"]

    assert retry_wait_seconds(waiting, NOW) == 118  # 120 s, less the 2 s tolerance
    assert retry_wait_seconds(waiting, NOW + dt.timedelta(seconds=118)) == 0
    assert retry_wait_seconds(STATES["queued-new"], NOW) == 0


def test_the_last_delivery_claims_an_early_retry_instead_of_deferring_it(aws: Aws) -> None:
    waiting = STATES["queued-retry-waiting"]
    assert decide_claim(waiting, OWN, NOW, last_delivery=True) is ClaimDecision.CLAIM

    aws.dynamodb.put_item(TableName=aws.table_name, Item=waiting.to_item())
    outcome = aws.store.claim(waiting.job_id, "new-run", LIVE, NOW, message_id=OWN, last_delivery=True)

    assert outcome.status is ClaimStatus.CLAIMED
