"""Live job updates on the local runtime: the ws app (``AsyncJobApi(websocket=True)``) served in this process, its
WebSocket's real handlers (``lambda_handlers.websocket``, ``lambda_handlers.websocket_push``) run by the runtime.

A subscriber sees every progress report the handler wrote, in order, then the end; another caller's job is
refused with the 404 frame; ``JobClient.wait`` survives a connection the server cuts mid-job (it polls, then
reconnects); a connection leaves nothing in the connections table; nobody listening means no push invocation;
and a job followed by push costs far fewer requests than one polled (both printed, not a timed assertion).
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from async_job_client import ApiError, Job, JobClient, LocalCaller
from async_job_client.updates import JobUpdates
from async_job_local import FunctionLogs, LocalRuntime, load_assembly, synthesize
from async_job_local.websocket import LocalWebSocketApi
from lambda_handlers.contract import Role

ROOT = Path(__file__).resolve().parents[2]
WS_APP = Path(__file__).resolve().parent / "ws_app" / "app.py"
#: A job of ``steps`` reports ``delay`` s apart (every one written: the runtime writes at most one a second).
STEPS, DELAY = 4, 1.2
#: The measured job: about 12 s.
MEASURED_STEPS = 10
JOB_DEADLINE = 60.0


class Started:
    """The ws app's runtime, its WebSocket API and the functions' log."""

    def __init__(self, runtime: LocalRuntime, log: io.StringIO, work: Path) -> None:
        self.runtime = runtime
        self.api = runtime.api()
        self.websocket: LocalWebSocketApi = runtime.websocket(self.api)
        self.base_url = self.api.base_url
        self.log = log
        self.work = work

    def client(self, principal: str, **kwargs: Any) -> JobClient:
        return JobClient(self.base_url, auth=LocalCaller(principal), timeout=30, **kwargs)

    def job_payload(self, name: str) -> tuple[dict[str, Any], Path]:
        log = self.work / f"{name}.jsonl"
        return {"steps": STEPS, "delay": DELAY, "log": str(log)}, log

    def connections_items(self) -> list[dict[str, Any]]:
        table = self.runtime.attribute(self.api, self.api.spec.roles[Role.CONNECTIONS_TABLE])
        return list(self.runtime.backend.client("dynamodb").scan(TableName=table)["Items"])

    def push_invocations(self) -> int:
        push = next(f for (_, _), f in self.runtime.functions.items() if f.spec.role == Role.WEBSOCKET_PUSH)
        return sum(1 for line in self.log.getvalue().splitlines() if line.startswith(f"{push.name} | START "))

    def new_connection(self, before: set[str], timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            new = set(self.websocket.connection_ids) - before
            if new:
                return sorted(new)[0]
            time.sleep(0.02)
        raise AssertionError("no new WebSocket connection")


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Started]:
    work = tmp_path_factory.mktemp("ws")
    assembly = load_assembly(synthesize(str(WS_APP.relative_to(ROOT)), cwd=ROOT, outdir=work / "cdk.out"))
    log = io.StringIO()
    with LocalRuntime(assembly, port=0, concurrency=3, logs=FunctionLogs(log)) as runtime:
        yield Started(runtime, log, work)


def _reports(log: Path) -> list[tuple[float, str]]:
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return [(entry["percent"], entry["message"]) for entry in map(json.loads, lines)]


def _follow(updates: JobUpdates, job_id: str) -> list[Job]:
    """The subscribe snapshot and every pushed state up to the terminal one."""
    seen = [updates.subscribe(job_id)]
    deadline = time.monotonic() + JOB_DEADLINE
    while not seen[-1].done:
        assert time.monotonic() < deadline, f"no terminal state pushed; got {[j.status for j in seen]}"
        job = updates.next(timeout=deadline - time.monotonic())
        if job is not None:
            seen.append(job)
    return seen


def test_the_rest_answers_link_the_websocket(started: Started) -> None:
    job = started.client("alice").submit({"steps": 1, "delay": 0})
    assert job.updates_url == started.websocket.url
    assert started.client("alice").get(job.id).updates_url == started.websocket.url


def test_a_subscriber_sees_every_progress_report_in_order_then_the_end(started: Started) -> None:
    # GIVEN a job of alice's, and alice subscribed to it at once
    payload, log = started.job_payload("in-order")
    job = started.client("alice").submit(payload)
    with JobUpdates(started.websocket.url, LocalCaller("alice")) as updates:
        # WHEN she follows it to its end
        seen = _follow(updates, job.id)

    # THEN every report the handler wrote came, in order, then SUCCEEDED with the result
    written = _reports(log)
    assert len(written) == STEPS
    pushed = []
    for state in seen:
        if state.progress is not None:
            report = (state.progress.percent, state.progress.message)
            if not pushed or pushed[-1] != report:
                pushed.append(report)
    assert pushed == written, (
        [(state.status, state.progress, state.updated_at) for state in seen],
        started.log.getvalue()[-6000:],
    )
    assert [state.status for state in seen][-2:] != ["SUCCEEDED", "SUCCEEDED"]
    assert seen[-1].status == "SUCCEEDED"
    assert seen[-1].result == {"steps": STEPS}
    stamps = [state.updated_at or "" for state in seen]
    assert stamps == sorted(stamps)


def test_subscribing_to_another_callers_job_is_the_404_frame(started: Started) -> None:
    # GIVEN alice's job
    job = started.client("alice").submit({"steps": 1, "delay": 0})

    # WHEN bob subscribes to it, and to a job that does not exist
    with JobUpdates(started.websocket.url, LocalCaller("bob")) as updates:
        with pytest.raises(ApiError) as theirs:
            updates.subscribe(job.id)
        with pytest.raises(ApiError) as missing:
            updates.subscribe("6f1c3b52-0d7a-4e0e-9c55-2f4a1c6b8d90")

    # THEN both are the same 404 (no existence leak)
    assert theirs.value.status == missing.value.status == 404
    assert theirs.value.title == missing.value.title == "Job not found"
    assert theirs.value.problem["jobId"] == job.id


def test_wait_recovers_from_a_connection_cut_mid_job(started: Started) -> None:
    # GIVEN carol waiting for her job over the WebSocket
    payload, log = started.job_payload("cut")
    client = started.client("carol", min_poll=0.5)
    job = client.submit(payload)
    shown: list[Job] = []
    before = set(started.websocket.connection_ids)
    outcome: list[Job | BaseException] = []

    def wait() -> None:
        try:
            outcome.append(client.wait(job.id, timeout=JOB_DEADLINE, on_progress=shown.append, first=job))
        except BaseException as error:
            outcome.append(error)

    waiter = threading.Thread(target=wait)
    waiter.start()

    # WHEN the server cuts her connection after the first pushed report
    connection = started.new_connection(before)
    deadline = time.monotonic() + JOB_DEADLINE
    while not any(state.progress is not None for state in shown) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.websocket.drop(connection)
    waiter.join(JOB_DEADLINE)

    # THEN wait still returns the finished job, having read it and reconnected; no state went backwards
    (finished,) = outcome
    assert isinstance(finished, Job), finished
    assert finished.status == "SUCCEEDED"
    assert client.updates_connections >= 2
    # the submit, the connections, and at least the GET at the cut
    assert client.requests_sent >= 1 + client.updates_connections + 1
    assert connection not in started.websocket.connection_ids
    assert all(later.is_newer_than(earlier) for earlier, later in itertools.pairwise(shown))
    assert len(_reports(log)) == STEPS


def test_after_disconnect_the_connections_table_keeps_nothing_of_it(started: Started) -> None:
    # GIVEN dave connected and subscribed to a running job
    job = started.client("dave").submit({"steps": 3, "delay": 1.0})
    before = set(started.websocket.connection_ids)
    with JobUpdates(started.websocket.url, LocalCaller("dave")) as updates:
        connection = started.new_connection(before)
        updates.subscribe(job.id)
        held = [item for item in started.connections_items() if connection in json.dumps(item)]
    # WHEN he disconnects: THEN $disconnect deletes every item of the connection
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = [item for item in started.connections_items() if connection in json.dumps(item)]
        if not left:
            break
        time.sleep(0.1)
    assert len(held) >= 2, held  # the connection and its subscription were there
    assert left == []
    started.client("dave").wait(job.id, timeout=JOB_DEADLINE)


def test_nobody_listening_means_no_push_invocation(started: Started) -> None:
    # GIVEN nobody subscribed (after the other tests' pushes are done)
    time.sleep(1.0)
    before = started.push_invocations()

    # WHEN a job runs to its end, polled only
    client = started.client("erin", push=False)
    job = client.submit({"steps": 2, "delay": 0.2})
    client.wait(job.id, timeout=JOB_DEADLINE)
    time.sleep(1.5)  # the stream poller reads every 0.25 s

    # THEN the push function did not run
    assert started.push_invocations() == before


def _delay_after_end(job: Job, seen_at: dt.datetime) -> float:
    ended = dt.datetime.fromisoformat(str(job.updated_at).replace("Z", "+00:00"))
    return (seen_at - ended).total_seconds()


def test_push_costs_far_fewer_requests_than_polling(started: Started) -> None:
    # GIVEN three clients of the same kind of job, run side by side: one following the push, one polling as the
    # API's Retry-After says, one polling every second (what a delay of about a second takes without push)
    clients = {
        "push": started.client("measure-push"),
        "poll (Retry-After)": started.client("measure-poll", push=False),
        "poll (every 1 s)": started.client("measure-poll-1s", push=False, min_poll=1.0, max_poll=1.0),
    }
    results: dict[str, tuple[int, float]] = {}

    def measure(name: str, client: JobClient) -> None:
        job = client.submit({"steps": MEASURED_STEPS, "delay": DELAY})
        client.requests_sent = 0  # the submit is the same for all
        finished = client.wait(job.id, timeout=JOB_DEADLINE, first=job)
        results[name] = (client.requests_sent, _delay_after_end(finished, dt.datetime.now(dt.UTC)))

    threads = [threading.Thread(target=measure, args=item) for item in clients.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOB_DEADLINE)

    # THEN push needs fewer requests (printed for the closing note; the delays are printed, not asserted)
    print(
        f"\nlive updates, a {MEASURED_STEPS * DELAY:.1f} s job (requests after the submit, delay after the end):"
    )
    for name, (requests, delay) in results.items():
        extra = ""
        if name == "push":
            push = clients["push"]
            extra = f" ({push.updates_connections} WebSocket connection, {push.frames_received} frames)"
        print(f"  {name:<20} {requests:>3} request(s){extra}, delay {delay:.3f} s")
    assert set(results) == set(clients)
    assert results["push"][0] < results["poll (Retry-After)"][0]
    assert results["push"][0] * 5 <= results["poll (every 1 s)"][0]


def test_the_clis_progress_follows_the_push(started: Started) -> None:
    # GIVEN the job client's CLI, polling only as Retry-After says were it not for the push
    payload, log = started.job_payload("cli")
    command = [str(Path(sys.executable).parent / "async-job"), "submit", started.base_url]
    command += ["--data", json.dumps(payload), "--wait", "--no-progress", "--principal", "cli-user"]

    # WHEN it submits and waits
    done = subprocess.run(command, capture_output=True, text=True, timeout=JOB_DEADLINE, cwd=ROOT)

    # THEN it printed a line for every progress report, in order, and exited 0 with the result
    assert done.returncode == 0, done.stderr
    shown = [line.split("  ", 1)[1] for line in done.stderr.splitlines() if " RUNNING  " in line]
    assert shown == [f"{percent:g}% {message}" for percent, message in _reports(log)], done.stderr
    assert "SUCCEEDED" in done.stdout


def test_local_submit_follows_the_job_over_the_websocket(started: Started) -> None:
    # GIVEN the ws app's assembly (no synthesis), served by `async-job local --submit` in a process of its own
    payload, log = started.job_payload("local-submit")
    command = [
        str(Path(sys.executable).parent / "async-job"),
        "local",
        "--app",
        str(started.work / "cdk.out"),
    ]
    command += [
        # port 0: the runtime binds every port itself (the gateway's, the WebSocket's and its @connections'), so
        # no port picked here can be taken meanwhile
        "--port",
        "0",
        "--no-function-logs",
        "--submit",
        json.dumps(payload),
        "--exit-when-done",
    ]

    # WHEN it runs the job
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=ROOT)

    # THEN it says the progress is pushed, shows every report in order, and ends SUCCEEDED
    assert done.returncode == 0, done.stdout + done.stderr
    served = re.search(r"WebSocket: (ws://127\.0\.0\.1:\d+/prod)", done.stdout)
    assert served is not None, done.stdout
    assert f"pushed over {served[1]}" in done.stdout
    bars = [
        line.split("RUNNING", 1)[1].strip() for line in done.stdout.splitlines() if "%  RUNNING   " in line
    ]
    assert bars == [message for _, message in _reports(log)], done.stdout
    assert "SUCCEEDED after" in done.stdout
