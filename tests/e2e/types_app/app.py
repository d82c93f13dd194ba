#!/usr/bin/env python3
"""A CDK app with one ``AsyncJobApi`` and two job types, each with its own handler, for the end-to-end tests.

Served by ``async-job local --app tests/e2e/types_app/app.py``: ``POST /reports`` and ``POST /thumbs``, every
job read at ``/jobs/{id}``.
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_

from async_job_construct import AsyncJobApi

JOBS = Path(__file__).resolve().parent / "jobs"


def build_app() -> cdk.App:
    """One stack, one AsyncJobApi, types ``reports`` (``types_jobs.report``) and ``thumbs`` (``types_jobs.thumb``)."""
    app = cdk.App()
    stack = cdk.Stack(app, "AsyncJobTypes")
    media = AsyncJobApi(stack, "Media")
    code = lambda_.Code.from_asset(str(JOBS))
    media.add_job_type("reports", handler="types_jobs.report", code=code, timeout=cdk.Duration.seconds(5))
    media.add_job_type(
        "thumbs", handler="types_jobs.thumb", code=code, timeout=cdk.Duration.seconds(5), max_concurrency=2
    )
    return app


if __name__ == "__main__":
    build_app().synth()
