"""Two workers racing on one job's conditional writes, in two processes, straight against the status table.

Both get the same job's SQS record at the same moment (released together once both have imported the worker);
the conditional claim lets exactly one run the handler; the other finds the job held under a live lease and
reports the record as a batch item failure (SQS would deliver it again later, when it finds the job finished).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from tests.faults.conftest import FaultsRuntime, wait_until

RACE_WORKER = Path(__file__).resolve().parent / "race_worker.py"


def _worker_environment(faults: FaultsRuntime) -> dict[str, str]:
    runtime = faults.runtime
    assert runtime is not None, "the race test needs the runtime in this process"
    api = runtime.api()
    worker = runtime.functions[(api.spec.stack.stack_name, api.spec.roles["worker"])]
    owner = f"arn:aws:iam::{runtime.account_id}:user/local-user"
    return {
        **worker.environment,
        "PYTHONPATH": os.pathsep.join(str(path) for path in worker.sys_path),
        "RACE_OWNER": owner,
        "RACE_QUEUE_ARN": runtime.queue(api).arn,
        # More than the function's 3 s: the race is about the claim, and a loaded machine can spend a second
        # on a cold client and the claim, which would leave the 1 s handler too little time.
        "RACE_TIMEOUT_S": str(max(worker.timeout, 10)),
    }


def test_two_concurrent_workers_exactly_one_claim_succeeds(faults: FaultsRuntime, tmp_path: Path) -> None:
    # GIVEN a QUEUED job (recorded as POST /jobs does, but with no message: only the two workers below see it)
    env = _worker_environment(faults)
    job_id = str(uuid.uuid4())
    payload = json.dumps({"mode": "ok", "delay": 1, "dir": str(faults.side_channel)})
    created = subprocess.run(
        [sys.executable, str(RACE_WORKER), "create", job_id, payload],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert created.returncode == 0, created.stderr

    # WHEN two worker processes get its record at the same moment
    go_file = tmp_path / "go"
    racers = [
        subprocess.Popen(
            [sys.executable, str(RACE_WORKER), "run", job_id, payload, str(go_file)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for racer in racers:
            assert racer.stdout is not None
            assert wait_until(racer.stdout.readline, 60, "a worker to be ready").strip() == "ready"
        go_file.touch()
        responses = [
            json.loads(racer.communicate(timeout=30)[0].strip().splitlines()[-1]) for racer in racers
        ]
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.wait(10)

    # THEN exactly one claimed and ran it (consumed: no batch item failure); the other was turned away
    failures = sorted(len(response["batchItemFailures"]) for response in responses)
    assert failures == [0, 1], (responses, faults.client().status(job_id).json())
    assert len(faults.executions(job_id)) == 1, (responses, faults.client().status(job_id).json())
    assert faults.completions(job_id) == 1, (responses, faults.client().status(job_id).json())
    job = faults.wait_terminal(job_id, timeout=10)
    assert job["status"] == "SUCCEEDED", job
    assert job["attempts"] == 1, job
