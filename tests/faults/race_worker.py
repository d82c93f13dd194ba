"""One worker invocation in a process of its own, for the race test (run as a script, not imported by pytest).

    python race_worker.py create <job id> <payload JSON>       record the job QUEUED (as POST /jobs would)
    python race_worker.py run <job id> <payload JSON> <go file> invoke lambda_handlers.worker.handler once

The environment and ``PYTHONPATH`` are the worker function's, as the local runtime gives them. ``run`` imports
the worker (its cold start), prints ``ready``, waits for ``<go file>`` to exist (at most 30 s), then invokes the
handler with one SQS record of the job and prints its response as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

OWNER = os.environ.get("RACE_OWNER", "anonymous")


class Context:
    """The parts of Lambda's context object the worker reads."""

    function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "race-worker")
    memory_limit_in_mb = 128
    invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
    aws_request_id = str(uuid.uuid4())

    def __init__(self, timeout_s: float) -> None:
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def create(job_id: str, payload_text: str) -> None:
    from lambda_handlers import messages
    from lambda_handlers.models import Job, utc_now
    from lambda_handlers.store import JobStore

    job = Job.new(
        job_id,
        owner=OWNER,
        payload_sha256=messages.payload_digest(payload_text),
        now=utc_now(),
        ttl_seconds=3600,
    )
    JobStore(os.environ["ASYNC_JOB_TABLE_NAME"]).create(job)
    print(json.dumps({"created": job_id}))


def run(job_id: str, payload_text: str, go_file: Path) -> None:
    from lambda_handlers import messages, worker

    record: dict[str, Any] = {
        # One message delivered twice at once: SQS gives both deliveries the same message id.
        "messageId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"race-message/{job_id}")),
        "receiptHandle": uuid.uuid4().hex,
        "body": messages.encode(job_id, payload_text),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": os.environ["RACE_QUEUE_ARN"],
        "awsRegion": "us-east-1",
    }
    print("ready", flush=True)
    deadline = time.monotonic() + 30
    while not go_file.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    response = worker.handler({"Records": [record]}, Context(float(os.environ.get("RACE_TIMEOUT_S", "3"))))
    print(json.dumps(response), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "create":
        create(sys.argv[2], sys.argv[3])
    else:
        run(sys.argv[2], sys.argv[3], Path(sys.argv[4]))
