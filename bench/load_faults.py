#!/usr/bin/env python3
"""Load with faults: thousands of jobs through the local runtime, a share of them failing on purpose, reconciled.

It starts ``async-job local`` on a CDK app of its own (this file is both the app, with ``--cdk-app``, and the
job handler module, ``load_fault_jobs.handle``; timeout 3 s, visibility timeout 4 s, 3 attempts, retry backoff
1-2 s), submits ``--jobs`` jobs at ``--rate`` per second from ``--clients`` threads, with this mix of faults:

    70% ok              return at once                                  -> SUCCEEDED
    10% transient       raise on the first execution, then return       -> SUCCEEDED (2 attempts)
     5% fail            raise on every execution                        -> FAILED (RuntimeError, 3 attempts)
     5% crash_once      os._exit(137) on the first execution            -> SUCCEEDED (after the visibility timeout)
     5% timeout         sleep past the timeout                          -> FAILED (JobTimeoutError)
     5% cancel          run 1.5 s reporting progress; DELETE /jobs/{id} -> CANCELLED (SUCCEEDED if it won the race)
                        0.5 s after the 202

then reads every accepted job over HTTP (``GET /jobs/{id}``) until it is terminal or ``--deadline`` seconds have
passed since the last submission, and reconciles with a side channel the handler writes itself: each execution
that returns appends its job id to a per-run file. Lost: accepted jobs not terminal by the deadline. Double
completions: job ids appended more than once. Reruns after success: executions that started after an execution
of the same job had returned (the plumbing running a handler that already succeeded). It also checks that each
SUCCEEDED job appears there exactly once and that no FAILED or CANCELLED one does, and that each job ended in
its mode's expected state.

``--submit-mode`` chooses how jobs are submitted:

    plain         one POST per job, no Idempotency-Key
    keyed         one POST per job with a fresh Idempotency-Key, then the same POST again at once (a client
                  whose answer was lost): both must answer 202 with the same job
    replay-storm  as keyed, and ``--replays`` more replays of the same request from other threads while the job
                  is queued or runs: every answer must be 202 with that job (or 409 while the first request is
                  being recorded)

A replay that answers another job id, or anything but 202/409, counts in ``replay_mismatches``.

While it runs, the job queue's depth is sampled every 5 s (moto slows down as a queue deepens: keep the rate
below what the runtime drains, about 12 plain jobs/s on 2 cores; faults add attempts). Loopback only; every
loop is bounded in count and time. The last line is:

    mode=<m> jobs=<n> lost=<n> double_completions=<n> reruns_after_success=<n> replay_mismatches=<n>
    succeeded=<n> failed=<n> cancelled=<n>

    .venv/bin/python bench/load_faults.py --jobs 2000 --rate 7
    .venv/bin/python bench/load_faults.py --jobs 2000 --rate 7 --submit-mode keyed
    .venv/bin/python bench/load_faults.py --jobs 2000 --rate 5 --submit-mode replay-storm

Exit code 0 when nothing was lost, nothing completed twice and every job ended as its mode expects; else 1.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}
#: The mix: mode -> share of the jobs.
MIX = {"ok": 70, "transient": 10, "fail": 5, "crash_once": 5, "timeout": 5, "cancel": 5}
#: What each mode should end as (a cancel that lost the race to the handler ends SUCCEEDED).
EXPECTED = {
    "ok": {"SUCCEEDED"},
    "transient": {"SUCCEEDED"},
    "fail": {"FAILED"},
    "crash_once": {"SUCCEEDED"},
    "timeout": {"FAILED"},
    "cancel": {"CANCELLED", "SUCCEEDED"},
}
CANCEL_AFTER_SECONDS = 0.5


# ----------------------------------------------------------------------------------------- the job handler


def _append(path: Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())  # one short O_APPEND write: atomic between processes
    finally:
        os.close(fd)


def handle(payload: dict[str, Any], job: Any) -> dict[str, Any]:
    """The bench's job: behave as ``payload["mode"]`` says (see the module's docstring)."""
    from lambda_handlers.job import JobCancelledError

    directory = Path(payload["dir"])
    mode = payload["mode"]
    marker = directory / "runs" / job.job_id
    first = not marker.exists()
    marker.touch()
    if (directory / "done" / job.job_id).exists():  # an execution of this job has already returned
        _append(directory / "reruns", job.job_id)
    if mode == "transient" and first:
        raise RuntimeError("transient failure")
    if mode == "fail":
        raise RuntimeError("always failing")
    if mode == "crash_once" and first:
        os._exit(137)
    if mode == "timeout":
        time.sleep(30)
    if mode == "cancel":
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            job.report_progress(50)
            if job.cancel_requested:
                raise JobCancelledError("stopped on request")
            time.sleep(0.1)
    (directory / "done" / job.job_id).touch()
    _append(directory / "completions", job.job_id)
    return {"mode": mode}


# ------------------------------------------------------------------------------------------- the CDK app


def synth_app() -> None:
    """Act as the CDK app (``--cdk-app``): one stack whose AsyncJobApi runs ``load_fault_jobs.handle``."""
    import aws_cdk as cdk
    from aws_cdk import aws_lambda as lambda_

    from async_job_construct import AsyncJobApi

    code = Path(tempfile.mkdtemp(prefix="load-faults-jobs-"))
    try:
        shutil.copyfile(HERE, code / "load_fault_jobs.py")  # the asset is staged into the assembly at synth
        app = cdk.App()
        stack = cdk.Stack(app, "AsyncJobLoadFaults")
        AsyncJobApi(
            stack,
            "Jobs",
            handler="load_fault_jobs.handle",
            code=lambda_.Code.from_asset(str(code)),
            timeout=cdk.Duration.seconds(3),
            visibility_timeout=cdk.Duration.seconds(4),
            max_receive_count=3,
            poll_interval=cdk.Duration.seconds(1),
            retry_base_delay=cdk.Duration.seconds(1),
            retry_max_delay=cdk.Duration.seconds(2),
        )
        app.synth()
    finally:
        shutil.rmtree(code, ignore_errors=True)


# -------------------------------------------------------------------------------------------- the bench


class DepthSampler:
    """The job queue's depth (visible + in flight), sampled every ``interval`` seconds until stopped."""

    def __init__(self, endpoint_url: str, interval: float = 5.0) -> None:
        import boto3

        self.sqs = boto3.client(
            "sqs",
            endpoint_url=endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.url = next(u for u in self.sqs.list_queues()["QueueUrls"] if "DeadLetter" not in u)
        self.interval = interval
        self.samples: list[int] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                attributes = self.sqs.get_queue_attributes(
                    QueueUrl=self.url,
                    AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
                )["Attributes"]
            except Exception:  # a missed sample is no reason to stop the bench
                continue
            self.samples.append(sum(int(v) for v in attributes.values()))

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)


def run(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(ROOT))
    from async_job_local.client import JobClient
    from bench._local_runtime import LocalRuntimeProcess

    side = Path(tempfile.mkdtemp(prefix="load-faults-"))
    (side / "runs").mkdir()
    (side / "done").mkdir()
    completions_file = side / "completions"
    started = time.monotonic()
    runtime = LocalRuntimeProcess(HERE, "AsyncJobLoadFaults/Jobs", concurrency=args.concurrency)
    print(f"local runtime up in {time.monotonic() - started:.1f} s: {runtime.jobs_url}", flush=True)
    client = JobClient(runtime.jobs_url, timeout=60)
    sampler = DepthSampler(runtime.endpoint_url) if runtime.endpoint_url else None
    rng = random.Random(args.seed)
    modes = rng.choices(list(MIX), weights=list(MIX.values()), k=args.jobs)
    lock = threading.Lock()
    accepted: dict[str, str] = {}  # job id -> mode
    rejected: collections.Counter[str] = collections.Counter()
    deletes: collections.Counter[int] = collections.Counter()
    replies: collections.Counter[str] = collections.Counter()
    mismatches: list[str] = []
    replayers = ThreadPoolExecutor(max_workers=2 * args.clients)
    try:

        def post(body: bytes, key: str | None) -> tuple[int, str | None]:
            headers = {"Content-Type": "application/json"}
            if key is not None:
                headers["Idempotency-Key"] = key
            response = client.request("POST", client.jobs_url, body, headers)
            job_id = response.json().get("id") if response.status == 202 else None
            return response.status, job_id

        def replay(body: bytes, key: str, job_id: str) -> None:
            try:
                status, replayed = post(body, key)
            except OSError as error:
                status, replayed = 0, type(error).__name__
            with lock:
                replies[str(status)] += 1
                if status == 409:
                    return
                if status != 202 or replayed != job_id:
                    mismatches.append(f"{job_id}: {status} {replayed}")

        def submit(mode: str) -> None:
            key = None if args.submit_mode == "plain" else str(uuid.uuid4())
            body = json.dumps({"mode": mode, "dir": str(side)}).encode()
            try:
                status, job_id = post(body, key)
            except OSError as error:
                with lock:
                    rejected[type(error).__name__] += 1
                return
            if status != 202 or job_id is None:
                with lock:
                    rejected[str(status)] += 1
                return
            with lock:
                accepted[job_id] = mode
            if key is not None:
                replay(body, key, job_id)  # the same request again at once, as a client whose answer was lost
                if args.submit_mode == "replay-storm":
                    for number in range(args.replays):
                        replayers.submit(_later, number * 0.2, replay, body, key, job_id)
            if mode == "cancel":
                time.sleep(CANCEL_AFTER_SECONDS)
                try:
                    status = client.request("DELETE", client.job_url(job_id)).status
                except OSError:
                    status = 0
                with lock:
                    deletes[status] += 1

        t0 = time.monotonic()
        interval = 1.0 / args.rate
        with ThreadPoolExecutor(max_workers=args.clients) as pool:
            for number, mode in enumerate(modes):
                delay = t0 + number * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(submit, mode)
        submitted_in = time.monotonic() - t0
        replayers.shutdown(wait=True)
        print(
            f"submitted {args.jobs} jobs in {submitted_in:.1f} s ({args.jobs / submitted_in:.1f}/s, "
            f"target {args.rate:g}/s) from {args.clients} client threads; accepted {len(accepted)}",
            flush=True,
        )

        # Reconcile: read each accepted job until it is terminal, or the deadline passes.
        deadline = time.monotonic() + args.deadline
        final: dict[str, dict[str, Any]] = {}
        pending = list(accepted)

        def read(job_id: str) -> None:
            try:
                response = client.status(job_id)
            except OSError:
                return
            if response.status == 200 and response.json().get("status") in TERMINAL:
                with lock:
                    final[job_id] = response.json()

        sweeps = 0
        while pending and time.monotonic() < deadline and sweeps < 1000:
            sweeps += 1
            with ThreadPoolExecutor(max_workers=4) as pool:
                list(pool.map(read, pending))
            pending = [job_id for job_id in pending if job_id not in final]
            if pending:
                time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
        elapsed = time.monotonic() - t0
    finally:
        replayers.shutdown(wait=False, cancel_futures=True)
        if sampler is not None:
            sampler.stop()
        runtime.stop()

    completions = (
        collections.Counter(completions_file.read_text().split()) if completions_file.exists() else {}
    )
    reruns = (side / "reruns").read_text().split() if (side / "reruns").exists() else []
    states = collections.Counter(document["status"] for document in final.values())
    double = sorted(job_id for job_id, count in completions.items() if count > 1)
    succeeded_ids = [job_id for job_id, d in final.items() if d["status"] == "SUCCEEDED"]
    not_once = [job_id for job_id in succeeded_ids if completions.get(job_id, 0) != 1]
    stray = [job_id for job_id, d in final.items() if d["status"] != "SUCCEEDED" and completions.get(job_id)]
    unexpected = collections.Counter(
        f"{accepted[job_id]}->{d['status']}"
        for job_id, d in final.items()
        if d["status"] not in EXPECTED[accepted[job_id]]
    )
    by_mode: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for job_id, document in final.items():
        by_mode[accepted[job_id]][document["status"]] += 1
    lost = len(accepted) - len(final)

    print(f"elapsed: {elapsed:.1f} s from the first submission to the last job seen terminal")
    if sampler is not None and sampler.samples:
        print(
            f"job queue depth (every 5 s): max {max(sampler.samples)}, "
            f"mean {sum(sampler.samples) / len(sampler.samples):.1f}"
        )
    for mode in MIX:
        print(f"  {mode:<11} {sum(by_mode[mode].values()):>5} jobs: {dict(sorted(by_mode[mode].items()))}")
    if deletes:
        print(f"DELETE answers: {dict(sorted(deletes.items()))}")
    if rejected:
        print(f"rejected submissions: {dict(rejected)}")
    if replies:
        print(f"replay answers: {dict(sorted(replies.items()))}")
    if mismatches:
        print(f"replays answered otherwise: {mismatches[:10]}")
    print(
        f"reconciliation: SUCCEEDED without exactly one completion {len(not_once)}; FAILED/CANCELLED with a "
        f"completion {len(stray)}; unexpected terminal states {sum(unexpected.values())} {dict(unexpected)}"
    )
    if double:
        print(f"completed twice: {double[:10]}")
    for job_id, document in list(final.items()):
        if document["status"] not in EXPECTED[accepted[job_id]]:
            error = document.get("error") or {}
            print(
                f"  unexpected: {accepted[job_id]} {job_id} {document['status']} attempts={document['attempts']} "
                f"{error.get('type')}: {str(error.get('message'))[:160]}"
            )
    print(
        f"mode={args.submit_mode} jobs={len(accepted)} lost={lost} double_completions={len(double)} "
        f"reruns_after_success={len(reruns)} replay_mismatches={len(mismatches)} "
        f"succeeded={states['SUCCEEDED']} failed={states['FAILED']} cancelled={states['CANCELLED']}",
        flush=True,
    )
    shutil.rmtree(side, ignore_errors=True)
    healthy = not (lost or double or not_once or stray or unexpected or rejected or mismatches or reruns)
    return 0 if healthy else 1


def _later(delay: float, function: Any, *args: Any) -> None:
    time.sleep(delay)
    function(*args)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=2000, help="jobs to submit (default: 2000)")
    parser.add_argument("--rate", type=float, default=7.0, help="submissions per second (default: 7)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads (default: 8)")
    parser.add_argument(
        "--deadline",
        type=float,
        default=180.0,
        help="seconds after the last submission for every job to end (default: 180)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=8, help="worker pollers of the runtime (default: 8)"
    )
    parser.add_argument("--seed", type=int, default=4, help="seed of the mix's random order (default: 4)")
    parser.add_argument(
        "--submit-mode",
        choices=("plain", "keyed", "replay-storm"),
        default="plain",
        help="how jobs are submitted (default: plain; see above)",
    )
    parser.add_argument(
        "--replays", type=int, default=5, help="replays per job in replay-storm mode (default: 5)"
    )
    parser.add_argument("--cdk-app", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cdk_app:
        synth_app()
        return 0
    if args.jobs < 1 or args.rate <= 0 or args.clients < 1 or args.deadline <= 0:
        parser.error("--jobs, --rate, --clients and --deadline must be positive")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
