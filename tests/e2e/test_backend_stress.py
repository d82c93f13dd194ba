"""The runtime under concurrent submissions with Idempotency-Keys: what an unserialised moto used to break.

moto answers the runtime's functions from many threads at once. Unserialised, a transaction that fails on
purpose (every idempotent replay is one) put back a copy of the table taken before it, erasing the jobs and
updates other requests wrote meanwhile: jobs answered ``202`` then ``404`` forever, jobs left ``RUNNING`` or
``QUEUED`` with an empty queue, two job ids for one key. These tests storm one runtime with replays and read
everything back. Each is bounded to ~20 s on a loaded 2-core machine.

The table holds some fifty other items meanwhile, as a live one would: moto copies the whole table for each
transaction, so the more it holds, the wider the window in which an unserialised moto erased other writes (and,
serialised, the longer every other request waits behind each replay: ~20 ms at this size, more when loaded).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from async_job_local.client import TERMINAL_STATUSES, HttpResponse, JobClient
from tests.e2e.conftest import E2eRuntime

THREADS = 12
#: Accepted answers to a request with an Idempotency-Key: the job, or "another request holds the key now".
KEYED_STATUSES = {202, 409}
KEY_IN_USE = "urn:async-job:problem:idempotency-key-in-use"
#: Enough for a ~1 s job on a loaded machine, with the storm's requests ahead of its worker.
JOB_DEADLINE_SECONDS = 20.0
#: How a job fails when the machine is too loaded for the e2e app's 3 s timeout (nothing to do with races).
OVERLOADED = {"JobTimeoutError", "DeadLettered"}
#: Other items in the table while a test runs (removed after it).
CROWD = 50


@pytest.fixture(autouse=True)
def crowded(e2e: E2eRuntime) -> Iterator[None]:
    """The e2e table with ``CROWD`` unrelated items in it, for the duration of a test."""
    dynamodb: Any = boto3.client(
        "dynamodb",
        endpoint_url=e2e.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    (table,) = dynamodb.list_tables()["TableNames"]
    keys = [{"pk": {"S": f"crowd#{uuid.uuid4()}"}} for _ in range(CROWD)]
    for start in range(0, CROWD, 25):
        batch = [
            {"PutRequest": {"Item": {**key, "note": {"S": "x" * 64}}}} for key in keys[start : start + 25]
        ]
        dynamodb.batch_write_item(RequestItems={table: batch})
    yield
    for start in range(0, CROWD, 25):
        batch = [{"DeleteRequest": {"Key": key}} for key in keys[start : start + 25]]
        dynamodb.batch_write_item(RequestItems={table: batch})


def _submit_keyed(client: JobClient, key: str, payload: dict[str, Any]) -> HttpResponse:
    return client.request(
        "POST",
        client.jobs_url,
        json.dumps(payload).encode(),
        {"Content-Type": "application/json", "Idempotency-Key": key},
    )


def _in_threads(count: int, work: Callable[[int], list[Any]]) -> list[Any]:
    """Run ``work(index)`` in ``count`` threads released together; return all their results, flattened."""
    start = threading.Barrier(count)

    def run(index: int) -> list[Any]:
        start.wait()
        return work(index)

    with ThreadPoolExecutor(count) as pool:
        return [result for results in pool.map(run, range(count)) for result in results]


def _tail(e2e: E2eRuntime) -> str:
    """The last lines of the functions' logs, for an assertion's message."""
    return e2e.function_logs(last=20)


def _went_back(turns: list[tuple[str, HttpResponse, HttpResponse]]) -> list[tuple[str, str, str]]:
    """Where one thread's answers (in the order it got them) show a job going back: (job, before, after)."""
    last: dict[str, tuple[int, bool, str]] = {}
    backwards = []
    for _, *answers in turns:
        for answer in answers:
            if answer.status not in (200, 202):
                continue
            job = answer.json()
            now = (int(job["attempts"]), job["status"] in TERMINAL_STATUSES, job["status"])
            before = last.get(job["id"])
            if before is not None and (now[0] < before[0] or (before[1] and not now[1])):
                backwards.append((job["id"], f"{before[2]}/{before[0]}", f"{now[2]}/{now[0]}"))
            last[job["id"]] = now
    return backwards


def _unexpected(answers: list[HttpResponse]) -> list[tuple[int, str]]:
    """The answers a keyed submission must never get: anything but 202, or a 409 other than key-in-use."""
    return [
        (answer.status, answer.body.decode(errors="replace")[:300])
        for answer in answers
        if answer.status not in KEYED_STATUSES
        or (answer.status == 409 and answer.json()["type"] != KEY_IN_USE)
    ]


def test_one_idempotency_key_sent_by_many_threads_at_once_makes_exactly_one_job(e2e: E2eRuntime) -> None:
    # GIVEN one Idempotency-Key and one body
    client = e2e.client()
    key = f"stress-{uuid.uuid4()}"
    payload = {"mode": "ok", "steps": 2, "delay": 0.2}

    # WHEN many threads submit them at the same moment, a few times each
    answers: list[HttpResponse] = _in_threads(
        THREADS, lambda _: [_submit_keyed(client, key, payload) for _ in range(3)]
    )

    # THEN every answer is 202 or 409 key-in-use, every 202 names the same job, and that job ends: SUCCEEDED, or
    # FAILED by timeouts on a machine too loaded for the 3 s timeout (as in the storm test below)
    assert _unexpected(answers) == [], _tail(e2e)
    ids = Counter(answer.json()["id"] for answer in answers if answer.status == 202)
    assert len(ids) == 1, f"one key made {len(ids)} jobs: {dict(ids)}\n{_tail(e2e)}"
    (job_id,) = ids
    job = client.wait(job_id, poll_interval=0.2, timeout=JOB_DEADLINE_SECONDS)
    assert job["status"] == "SUCCEEDED" or job["error"]["type"] in OVERLOADED, job
    assert _submit_keyed(client, key, payload).json()["id"] == job_id


def test_a_replay_storm_while_the_jobs_run_leaves_every_job_terminal_and_readable(e2e: E2eRuntime) -> None:
    # GIVEN several jobs, each submitted with a key of its own, running
    client = e2e.client()
    keyed = {
        f"storm-{number}-{uuid.uuid4()}": {"mode": "ok", "steps": 3, "delay": 0.1, "job": number}
        for number in range(4)
    }
    first = {key: _submit_keyed(client, key, payload) for key, payload in keyed.items()}
    assert {answer.status for answer in first.values()} == {202}, [a.body for a in first.values()]
    job_of = {key: answer.json()["id"] for key, answer in first.items()}
    keys = list(keyed)

    # WHEN many threads replay every key and read every job meanwhile
    def storm(index: int) -> list[list[tuple[str, HttpResponse, HttpResponse]]]:
        seen = []
        for turn in range(8):
            key = keys[(index + turn) % len(keys)]
            replay = _submit_keyed(client, key, keyed[key])
            seen.append((key, replay, client.status(job_of[key])))
        return [seen]

    by_thread: list[list[tuple[str, HttpResponse, HttpResponse]]] = _in_threads(THREADS, storm)
    seen = [turn for turns in by_thread for turn in turns]

    # THEN every replay answered its key's job (or 409 key-in-use), no read of an accepted job failed ...
    assert _unexpected([replay for _, replay, _ in seen]) == [], _tail(e2e)
    strays = [
        (key, replay.json()["id"])
        for key, replay, _ in seen
        if replay.status == 202 and replay.json()["id"] != job_of[key]
    ]
    assert strays == [], f"replays answered other jobs than their key's: {strays}\n{_tail(e2e)}"
    failed_reads = [(job_of[key], read.status) for key, _, read in seen if read.status != 200]
    assert failed_reads == [], f"reads of accepted jobs failed: {failed_reads}\n{_tail(e2e)}"
    # ... no thread saw a job go back in time (a rolled-back table: fewer attempts, or unfinished again) ...
    backwards = [step for turns in by_thread for step in _went_back(turns)]
    assert backwards == [], f"jobs went back in time: {backwards}\n{_tail(e2e)}"

    # ... and every job ends, readable: SUCCEEDED, or FAILED by timeouts on a machine too loaded for the 3 s
    # timeout (then its attempts timed out, or were killed at the deadline and dead-lettered)
    for key, job_id in job_of.items():
        job = client.wait(job_id, poll_interval=0.2, timeout=JOB_DEADLINE_SECONDS)
        assert job["status"] == "SUCCEEDED" or job["error"]["type"] in OVERLOADED, (key, job)
        assert client.status(job_id).status == 200
