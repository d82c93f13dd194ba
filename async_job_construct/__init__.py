"""async-job-construct: the asynchronous request-reply pattern for long-running Lambda handlers, as a CDK construct."""

from async_job_construct.async_job_api import AsyncJobApi
from async_job_construct.auth import JobApiAuth, JobApiAuthKind
from async_job_construct.job_type import JobType
from async_job_construct.validation import PropValueError

__all__ = ["AsyncJobApi", "JobApiAuth", "JobApiAuthKind", "JobType", "PropValueError"]
