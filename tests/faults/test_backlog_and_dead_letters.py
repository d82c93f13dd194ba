"""Issue 9's faults on the running local runtime: a duplicate dead-lettered while its job waits out a backoff,
and a job whose ``job_ttl`` passed while it waited in a backlog. Each is read the way its owner reads it.
"""

from __future__ import annotations

import datetime as dt
import uuid

from lambda_handlers.messages import payload_digest
from lambda_handlers.models import Job, utc_now
from lambda_handlers.store import JobStore
from tests.faults.conftest import FaultsRuntime, message_body, wait_until

#: The construct's default job_ttl (the faults app keeps it).
JOB_TTL_SECONDS = 7 * 86_400
#: A caller given as an IAM ARN: the local gateway passes it through as the owner the functions record.
OWNER = "arn:aws:iam::123456789012:user/backlogged"


def test_a_duplicate_dead_lettered_while_the_job_waits_out_its_backoff_changes_nothing(
    faults: FaultsRuntime,
) -> None:
    # GIVEN a job whose first attempt failed: it waits out a 1-2 s backoff, QUEUED with lastError
    job_id, payload = faults.submit("transient", failures=1)
    client = faults.client()

    def backing_off() -> bool:
        job = client.status(job_id).json()
        return job["status"] == "QUEUED" and "lastError" in job

    wait_until(backing_off, 20, "the first attempt to fail", interval=0.02)

    # WHEN a duplicate of its message is dead-lettered meanwhile (attempts are left)
    faults.aws("sqs").send_message(
        QueueUrl=faults.dead_letter_queue_url, MessageBody=message_body(job_id, payload)
    )
    wait_until(
        lambda: faults.queue_depth(faults.dead_letter_queue_url) == 0,
        10,
        "the dead-letter consumer to take it",
    )

    # THEN the job is not FAILED: its own message runs the retry, which succeeds (a loaded machine may need
    # one attempt more: the 3 s timeout)
    job = faults.wait_terminal(job_id)
    assert job["status"] == "SUCCEEDED", job
    assert job["attempts"] >= 2, job
    assert faults.completions(job_id) == 1


def test_a_job_that_waited_in_a_backlog_past_its_job_ttl_still_runs_and_ends_readable(
    faults: FaultsRuntime,
) -> None:
    # GIVEN a job accepted longer ago than job_ttl whose message only now reaches the queue (a backlog)
    job_id = str(uuid.uuid4())
    payload = {"mode": "ok", "dir": str(faults.side_channel)}
    body = message_body(job_id, payload)
    text = body[body.index('"payload":') + len('"payload":') : -1]
    accepted = utc_now() - dt.timedelta(seconds=JOB_TTL_SECONDS + 3600)
    job = Job.new(
        job_id,
        owner=OWNER,
        payload_sha256=payload_digest(text),
        now=accepted,
        ttl_seconds=JOB_TTL_SECONDS,
    )
    JobStore(faults.table_name, faults.aws("dynamodb")).create(job)
    owner = faults.client(principal=OWNER)
    assert owner.status(job_id).json()["status"] == "QUEUED"

    # WHEN the worker gets its message
    faults.aws("sqs").send_message(QueueUrl=faults.queue_url, MessageBody=body)

    # THEN it runs once and ends SUCCEEDED, readable by its owner (not dropped as "gone")
    done = owner.wait(job_id, poll_interval=0.25, timeout=60)
    assert done["status"] == "SUCCEEDED", done
    assert done["attempts"] == 1, done
    assert faults.completions(job_id) == 1
