#!/usr/bin/env python3
"""A CDK app with one long job type (a Lambda durable function), short durations, for the end-to-end tests.

Served by ``async-job local --app tests/e2e/long_app/app.py``: ``POST /long`` runs ``long_jobs.run`` as a
durable execution whose whole run may last 30 minutes, in invocations of at most ``INVOCATION_SECONDS``.
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_

from async_job_construct import AsyncJobApi

JOBS = Path(__file__).resolve().parent / "jobs"
#: The per-invocation limit (the durable worker's Timeout): every test job runs longer than this in all.
INVOCATION_SECONDS = 4
#: Attempts of a failing step (and receives of a message the starter cannot start).
MAX_RECEIVE_COUNT = 2


def build_app() -> cdk.App:
    """One stack, one AsyncJobApi, one long type ``long`` (``long_jobs.run``, 30 minutes in all)."""
    app = cdk.App()
    stack = cdk.Stack(app, "AsyncJobLong")
    api = AsyncJobApi(stack, "Long")
    api.add_job_type(
        "long",
        handler="long_jobs.run",
        code=lambda_.Code.from_asset(str(JOBS)),
        timeout=cdk.Duration.minutes(30),
        invocation_timeout=cdk.Duration.seconds(INVOCATION_SECONDS),
        max_receive_count=MAX_RECEIVE_COUNT,
        retry_base_delay=cdk.Duration.seconds(1),
        retry_max_delay=cdk.Duration.seconds(1),
    )
    return app


if __name__ == "__main__":
    build_app().synth()
