#!/usr/bin/env python3
"""A second CDK app for the end-to-end tests: its own handler, short timeouts, so failure paths end in seconds.

Served by ``async-job local --app tests/e2e/e2e_app/app.py`` like any other app using ``AsyncJobApi``.
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from e2e_settings import (
    GREETING,
    MAX_PAYLOAD_BYTES,
    MAX_RECEIVE_COUNT,
    OBJECTS_MAX_PAYLOAD_BYTES,
    OBJECTS_TYPE,
    POLL_INTERVAL_SECONDS,
    TIMEOUT_SECONDS,
    VISIBILITY_TIMEOUT_SECONDS,
    WEBHOOK_HOST,
)

from async_job_construct import AsyncJobApi

JOBS = Path(__file__).resolve().parent / "jobs"


def build_app() -> cdk.App:
    """One stack, one AsyncJobApi running ``e2e_jobs.run`` (type ``jobs``) and ``e2e_jobs.objects`` (type
    ``objects``: large payloads, results and files)."""
    app = cdk.App()
    stack = cdk.Stack(app, "AsyncJobE2E")
    api = AsyncJobApi(
        stack,
        "Jobs",
        handler="e2e_jobs.run",
        code=lambda_.Code.from_asset(str(JOBS)),
        timeout=cdk.Duration.seconds(TIMEOUT_SECONDS),
        visibility_timeout=cdk.Duration.seconds(VISIBILITY_TIMEOUT_SECONDS),
        max_receive_count=MAX_RECEIVE_COUNT,
        max_payload_bytes=MAX_PAYLOAD_BYTES,
        poll_interval=cdk.Duration.seconds(POLL_INTERVAL_SECONDS),
        environment={"E2E_GREETING": GREETING},
        webhook_allowed_hosts=[WEBHOOK_HOST],
    )
    api.add_job_type(
        OBJECTS_TYPE,
        handler="e2e_jobs.objects",
        code=lambda_.Code.from_asset(str(JOBS)),
        timeout=cdk.Duration.seconds(30),
        max_payload_bytes=OBJECTS_MAX_PAYLOAD_BYTES,
    )
    return app


if __name__ == "__main__":
    build_app().synth()
