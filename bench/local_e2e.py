#!/usr/bin/env python3
"""Benchmark of the local runtime end to end: N jobs at a steady rate, over loopback HTTP, until each ends.

It starts ``async-job local`` on a CDK app of its own (this file is both the app, with ``--cdk-app``, and the
job handler module, ``bench_jobs.handle``: it reports progress once and returns), submits ``--jobs`` jobs at
``--rate`` per second from a pool of keep-alive connections, polls every accepted job until it is terminal,
then prints the POST latency (p50/p99), the submission rate reached, the jobs per second end to end, and as
its last line ``jobs=<n> lost=<n> succeeded=<n>`` (lost: accepted jobs that did not reach a terminal state
before ``--deadline`` seconds after the last submission). It stops by itself and uses loopback only.

    .venv/bin/python bench/local_e2e.py --jobs 1000 --rate 10

Before measuring, ``--warmup`` jobs are submitted at once so that the API functions' execution environments
exist (their cold starts would otherwise be the POST p99 of the first burst). The CPU time the runtime and
its environments spent per job is printed too (Linux). On a 2-core machine the runtime sustains about 12-15
jobs/s (moto's CPU is most of it); above that the queue backs up.

Exit code 0 when every job was accepted and succeeded, else 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}


# ----------------------------------------------------------------------------------------- the job handler


def handle(payload: dict[str, Any], job: Any) -> dict[str, Any]:
    """The benchmark's job: one progress report, then the payload's number back."""
    job.report_progress(50, "halfway")
    return {"n": payload.get("n")}


# ------------------------------------------------------------------------------------------- the CDK app


def synth_app() -> None:
    """Act as the CDK app (``--cdk-app``): one stack whose AsyncJobApi runs ``bench_jobs.handle``."""
    import aws_cdk as cdk
    from aws_cdk import aws_lambda as lambda_

    from async_job_construct import AsyncJobApi

    code = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    try:
        shutil.copyfile(HERE, code / "bench_jobs.py")  # the asset is staged into the assembly at synth
        app = cdk.App()
        stack = cdk.Stack(app, "AsyncJobBench")
        AsyncJobApi(
            stack,
            "Bench",
            handler="bench_jobs.handle",
            code=lambda_.Code.from_asset(str(code)),
            timeout=cdk.Duration.seconds(30),
            poll_interval=cdk.Duration.seconds(1),
        )
        app.synth()
    finally:
        shutil.rmtree(code, ignore_errors=True)


# -------------------------------------------------------------------------------------------- the bench


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _epoch(timestamp: str) -> float:
    """Seconds since the epoch of an ISO-8601 UTC timestamp such as ``2026-11-23T10:00:00.000Z``."""
    return dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


class Tracker:
    """Which accepted jobs have ended, found with a bounded number of reads.

    Jobs mostly end in the order they were submitted, so each sweep reads the oldest unfinished jobs that are
    due and stops at the first one still running: about one read per job plus one every ``pause`` seconds,
    instead of one per unfinished job per interval (which would load the runtime more as it falls behind).
    """

    def __init__(self, client: Any, poll_interval: float, pause: float = 0.05) -> None:
        self.client = client
        self.poll_interval = poll_interval
        self.pause = pause
        self.lock = threading.Lock()
        self.pending: dict[str, float] = {}  # job id -> next read at (insertion order: submission order)
        self.finished: dict[str, dict[str, Any]] = {}
        self.submitted: dict[str, float] = {}  # job id -> epoch seconds, when the 202 came back
        self.observed: dict[str, float] = {}  # job id -> epoch seconds, when it was seen terminal

    def add(self, job_id: str) -> None:
        with self.lock:
            self.submitted[job_id] = time.time()
            self.pending[job_id] = time.monotonic() + self.poll_interval / 2

    def span(self, job_id: str) -> tuple[float, float]:
        """(created, ended) epoch seconds: the job's own timestamps, else when the bench saw them."""
        document = self.finished[job_id]
        if "createdAt" in document and "updatedAt" in document:
            return _epoch(document["createdAt"]), _epoch(document["updatedAt"])
        return self.submitted[job_id], self.observed[job_id]

    def _read(self, job_id: str) -> bool:
        try:
            document = self.client.status(job_id).json()
        except (OSError, ValueError):
            return False  # the runtime is gone or answered garbage: not finished, as far as we know
        if document.get("status") not in TERMINAL:
            return False
        with self.lock:
            self.finished[job_id] = document
            self.observed[job_id] = time.time()
            self.pending.pop(job_id, None)
        return True

    def sweep(self) -> None:
        with self.lock:
            due = [job_id for job_id, at in self.pending.items() if at <= time.monotonic()]
        for job_id in due:
            if not self._read(job_id):
                with self.lock:
                    self.pending[job_id] = time.monotonic() + self.poll_interval
                return

    def follow(self, until: threading.Event, deadline: float) -> None:
        """Sweep until ``until`` is set and nothing is pending, or ``deadline`` (monotonic) passes."""
        while time.monotonic() < deadline:
            with self.lock:
                idle = not self.pending
            if idle and until.is_set():
                return
            self.sweep()
            time.sleep(self.pause)

    def final_check(self) -> None:
        """Read every job still pending once more."""
        with self.lock:
            remaining = list(self.pending)
        for job_id in remaining:
            self._read(job_id)


def run(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(ROOT))
    from async_job_local.client import JobClient
    from bench._local_runtime import LocalRuntimeProcess

    started_runtime = time.monotonic()
    runtime = LocalRuntimeProcess(
        HERE, "AsyncJobBench/Bench", concurrency=args.concurrency, endpoint_url=args.endpoint_url
    )
    print(f"local runtime up in {time.monotonic() - started_runtime:.1f} s: {runtime.jobs_url}", flush=True)
    client = JobClient(runtime.jobs_url, timeout=60)
    try:
        if args.warmup:
            # Grow the API functions' pools (their cold starts) before measuring: a steady state, not a first burst.
            with ThreadPoolExecutor(max_workers=args.connections) as pool:
                warm = list(pool.map(lambda n: client.submit({"n": -n}), range(args.warmup)))
            warm_ids = [r.json()["id"] for r in warm if r.status == 202]
            warm_tracker = Tracker(client, args.poll_interval)
            for job_id in warm_ids:
                warm_tracker.add(job_id)
            everything_added = threading.Event()
            everything_added.set()
            warm_tracker.follow(everything_added, time.monotonic() + 60)
            print(f"warm-up: {len(warm_ids)} jobs, {len(warm_tracker.finished)} ended", flush=True)
        before = runtime.cpu_seconds()
        lost, succeeded = _measure(args, client)
        after = runtime.cpu_seconds()
        if before is not None and after is not None:
            print(
                f"runtime CPU per job: {(after[0] - before[0]) / args.jobs * 1000:.1f} ms in the runtime process "
                f"(moto, HTTP, pollers), {(after[1] - before[1]) / args.jobs * 1000:.1f} ms in the functions' "
                "environments"
            )
        print(f"jobs={args.jobs} lost={lost} succeeded={succeeded}", flush=True)
        return 0 if succeeded == args.jobs else 1
    finally:
        runtime.stop()


def _measure(args: argparse.Namespace, client: Any) -> tuple[int, int]:
    """Submit the jobs at the rate, follow them, print the figures; return (lost, succeeded)."""
    lock = threading.Lock()
    post_latencies: list[float] = []
    rejected: list[int] = []
    tracker = Tracker(client, args.poll_interval)
    submissions_done = threading.Event()

    def submit(number: int) -> None:
        sent = time.monotonic()
        try:
            response = client.submit({"n": number})
        except OSError:
            with lock:
                rejected.append(0)  # no answer at all
            return
        latency = time.monotonic() - sent
        with lock:
            post_latencies.append(latency)
            if response.status != 202:
                rejected.append(response.status)
        if response.status == 202:
            tracker.add(response.json()["id"])

    follower = threading.Thread(target=tracker.follow, args=(submissions_done, float("inf")), daemon=True)
    interval = 1.0 / args.rate
    t0 = time.monotonic()
    follower.start()
    with ThreadPoolExecutor(max_workers=args.connections) as pool:
        for number in range(args.jobs):
            delay = t0 + number * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(submit, number)
    submitted_in = time.monotonic() - t0
    submissions_done.set()
    follower.join(args.deadline)
    tracker.final_check()

    accepted = args.jobs - len(rejected)
    documents = list(tracker.finished.values())
    succeeded = [job_id for job_id, d in tracker.finished.items() if d["status"] == "SUCCEEDED"]
    lost = accepted - len(documents)
    # The jobs' own timestamps (createdAt, updatedAt): exact whatever the polling lag.
    spans = {job_id: tracker.span(job_id) for job_id in tracker.finished}
    end_to_end = [spans[job_id][1] - spans[job_id][0] for job_id in succeeded]
    first = min((created for created, _ in spans.values()), default=0.0)
    last = max((ended for _, ended in spans.values()), default=first)
    print(
        f"submitted {args.jobs} jobs in {submitted_in:.1f} s ({args.jobs / submitted_in:.1f}/s; target {args.rate:g}/s)"
    )
    print(
        f"POST latency: p50 {_percentile(post_latencies, 0.50) * 1000:.1f} ms, "
        f"p99 {_percentile(post_latencies, 0.99) * 1000:.1f} ms, max {max(post_latencies) * 1000:.1f} ms"
    )
    print(
        f"end to end (createdAt -> updatedAt of SUCCEEDED): p50 {_percentile(end_to_end, 0.50):.2f} s, "
        f"p99 {_percentile(end_to_end, 0.99):.2f} s"
    )
    print(
        f"throughput: {len(succeeded) / max(last - first, 1e-9):.1f} jobs/s end to end over {last - first:.1f} s"
    )
    if rejected:
        print(f"rejected submissions: {len(rejected)} (statuses {sorted(set(rejected))})")
    if len(documents) > len(succeeded):
        print(f"jobs that ended FAILED or CANCELLED: {len(documents) - len(succeeded)}")
    return lost, len(succeeded)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1000, help="jobs to submit (default: 1000)")
    parser.add_argument("--rate", type=float, default=10.0, help="submissions per second (default: 10)")
    parser.add_argument(
        "--deadline",
        type=float,
        default=120.0,
        help="seconds after the last submission for every job to end (default: 120)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=4, help="worker pollers of the runtime (default: 4)"
    )
    parser.add_argument(
        "--connections", type=int, default=8, help="concurrent submitting connections (default: 8)"
    )
    parser.add_argument(
        "--poll-interval", type=float, default=1.0, help="seconds between reads of one job (default: 1)"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=16,
        help="jobs submitted at once before measuring, to start the API functions' environments (default: 16)",
    )
    parser.add_argument("--endpoint-url", help="run the runtime on this endpoint instead of embedded moto")
    parser.add_argument("--cdk-app", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cdk_app:
        synth_app()
        return 0
    if args.jobs < 1 or args.rate <= 0:
        parser.error("--jobs and --rate must be positive")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
