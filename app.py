#!/usr/bin/env python3
"""Sample app: one stack with an AsyncJobApi whose handler runs about a minute, past API Gateway's 29 s, and a
long job type (``archive``: a Lambda durable execution longer than its per-invocation limit)."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from async_job_construct import AsyncJobApi

HERE = Path(__file__).resolve().parent
SAMPLE_CODE = str(HERE / "sample_jobs")


class SampleJobsStack(cdk.Stack):
    """The sample stack: report generation as an asynchronous job API."""

    def __init__(self, scope: Construct, id: str, **kwargs: object) -> None:
        super().__init__(scope, id, **kwargs)  # type: ignore[arg-type]
        self.jobs = AsyncJobApi(
            self,
            "Reports",
            handler="report.generate",
            code=lambda_.Code.from_asset(SAMPLE_CODE),
            timeout=cdk.Duration.minutes(5),
            # A fresh account has no role for API Gateway to write the stage's logs with; the sample brings one.
            cloud_watch_role=True,
            # Live job updates over a WebSocket API: `-c websocket=true` (scripts/run passes it, so the local
            # demo's progress is pushed); off by default, so the deployed sample has none.
            websocket=self.node.try_get_context("websocket") in (True, "true"),
        )
        # A long type: each job is a durable execution of up to 2 hours, run in invocations of at most 10 s
        # (shortened for the demo: the sample archive runs ~25 s in all, so it needs several invocations).
        self.archive = self.jobs.add_job_type(
            "archive",
            handler="archive.build",
            code=lambda_.Code.from_asset(SAMPLE_CODE),
            timeout=cdk.Duration.hours(2),
            invocation_timeout=cdk.Duration.seconds(10),
        )
        cdk.Validations.of(self.jobs.api.deployment_stage).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions::AwsSolutions-APIG3",
                reason="Sample stack: IAM-authenticated and throttled; a WAF web ACL costs from USD 5 a month. "
                "Production stacks pass web_acl_arn.",
            )
        )
        cdk.CfnOutput(
            self, "JobsUrl", value=self.jobs.url, description="POST a JSON object here (SigV4-signed)"
        )


def build_app(outdir: str | None = None, context: dict[str, object] | None = None) -> cdk.App:
    """Build the sample app (the tests synthesize it through this); ``context`` adds to cdk.json's."""
    # The CLI passes cdk.json's feature flags itself; reading them here makes `python app.py` (tests, the local
    # runtime) synthesize the very template `cdk synth` does.
    app = cdk.App(
        outdir=outdir, context={**json.loads((HERE / "cdk.json").read_text())["context"], **(context or {})}
    )
    SampleJobsStack(app, "AsyncJobSample")
    return app


if __name__ == "__main__":
    build_app().synth()
