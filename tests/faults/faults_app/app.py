#!/usr/bin/env python3
"""The fault-injection tests' CDK app: a handler whose payload picks a fault, and short timeouts.

Served by the local runtime like any other app using ``AsyncJobApi`` (see tests/faults/conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from faults_settings import (
    MAX_RECEIVE_COUNT,
    POLL_INTERVAL_SECONDS,
    RETRY_BASE_SECONDS,
    RETRY_MAX_SECONDS,
    TIMEOUT_SECONDS,
    VISIBILITY_TIMEOUT_SECONDS,
)

from async_job_construct import AsyncJobApi

JOBS = Path(__file__).resolve().parent / "jobs"


def build_app() -> cdk.App:
    """One stack, one AsyncJobApi running ``fault_jobs.run``."""
    app = cdk.App()
    stack = cdk.Stack(app, "AsyncJobFaults")
    AsyncJobApi(
        stack,
        "Jobs",
        handler="fault_jobs.run",
        code=lambda_.Code.from_asset(str(JOBS)),
        timeout=cdk.Duration.seconds(TIMEOUT_SECONDS),
        visibility_timeout=cdk.Duration.seconds(VISIBILITY_TIMEOUT_SECONDS),
        max_receive_count=MAX_RECEIVE_COUNT,
        poll_interval=cdk.Duration.seconds(POLL_INTERVAL_SECONDS),
        retry_base_delay=cdk.Duration.seconds(RETRY_BASE_SECONDS),
        retry_max_delay=cdk.Duration.seconds(RETRY_MAX_SECONDS),
    )
    return app


if __name__ == "__main__":
    build_app().synth()
