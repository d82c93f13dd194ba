"""A client of AsyncJobApi's HTTP API, deployed (SigV4, Cognito, API keys) or local (``async-job local``).

Standard library only; botocore is imported when ``SigV4Auth`` first signs. Importing this package imports
neither aws-cdk-lib nor the Lambda handlers.

Examples
--------
>>> from async_job_client import JobClient
>>> client = JobClient("https://abc123.execute-api.eu-west-1.amazonaws.com/prod")  # SigV4, botocore's chain
>>> result = client.run({"seconds": 30}, timeout=300)
"""

from async_job_client.auth import PRINCIPAL_HEADER, ApiKey, Auth, BearerToken, LocalCaller, SigV4Auth
from async_job_client.client import JobClient, default_auth
from async_job_client.errors import (
    ApiError,
    ClientError,
    JobCancelled,
    JobFailed,
    TransportError,
    WaitTimeout,
)
from async_job_client.models import TERMINAL_STATUSES, Job, JobFile, JobPage, Progress
from async_job_client.retry import RetryPolicy

__all__ = [
    "PRINCIPAL_HEADER",
    "TERMINAL_STATUSES",
    "ApiError",
    "ApiKey",
    "Auth",
    "BearerToken",
    "ClientError",
    "Job",
    "JobCancelled",
    "JobClient",
    "JobFailed",
    "JobFile",
    "JobPage",
    "LocalCaller",
    "Progress",
    "RetryPolicy",
    "SigV4Auth",
    "TransportError",
    "WaitTimeout",
    "default_auth",
]
