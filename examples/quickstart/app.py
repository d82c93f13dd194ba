#!/usr/bin/env python3
"""A CDK app with one asynchronous job API: `POST /jobs` runs `generate` of jobs/reports.py on a worker Lambda."""

from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from async_job_construct import AsyncJobApi

JOBS_CODE = Path(__file__).resolve().parent / "jobs"  # reports.py; add a requirements.txt to bundle packages


class ReportsStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        jobs = AsyncJobApi(
            self,
            "Reports",
            handler="reports.generate",  # module.function in the code asset
            code=JOBS_CODE,  # your code folder (or any lambda_.Code); the job runtime comes as a layer
            timeout=cdk.Duration.minutes(10),  # one attempt's limit (default: 5 minutes)
            # API Gateway writes the stage's logs through an account-level role that a fresh account lacks.
            cloud_watch_role=True,
        )
        # The API is IAM-authorized (SigV4): whoever may assume this role may submit and poll jobs.
        caller = iam.Role(self, "Caller", assumed_by=iam.AccountRootPrincipal())
        jobs.grant_invoke(caller)
        cdk.CfnOutput(self, "JobsUrl", value=jobs.url, description="POST a JSON object here (SigV4-signed)")
        cdk.CfnOutput(self, "CallerRoleArn", value=caller.role_arn)


app = cdk.App()
ReportsStack(app, "QuickstartReports")
app.synth()
