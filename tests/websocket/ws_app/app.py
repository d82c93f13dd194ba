#!/usr/bin/env python3
"""A CDK app with one ``AsyncJobApi`` and its WebSocket on (``websocket=True``), for the live-updates tests.

Served by ``async-job local --app tests/websocket/ws_app/app.py``: jobs at ``POST /jobs``, their updates at the
WebSocket URL the runtime prints (and links in ``Link: <...>; rel="updates"``).
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_

from async_job_construct import AsyncJobApi

JOBS = Path(__file__).resolve().parent / "jobs"


def build_app() -> cdk.App:
    """One stack, one AsyncJobApi running ``ws_jobs.run``, with the WebSocket of live updates."""
    app = cdk.App()
    stack = cdk.Stack(app, "AsyncJobWs")
    AsyncJobApi(
        stack,
        "Jobs",
        handler="ws_jobs.run",
        code=lambda_.Code.from_asset(str(JOBS)),
        timeout=cdk.Duration.seconds(60),
        websocket=True,
    )
    return app


if __name__ == "__main__":
    build_app().synth()
