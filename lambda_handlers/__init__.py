"""The runtime of ``async-job-construct``: the Lambda functions behind ``AsyncJobApi``, and the types a job
handler uses.

A team's handler needs only what is exported here::

    from lambda_handlers import JobCancelledError, JobContext, JobFailedError

    def generate(payload: dict, job: JobContext) -> dict:
        ...
        if job.cancel_requested:
            raise JobCancelledError("stopped on request")

Importing this package is cheap (standard library only): the functions' modules (``submit``, ``status``,
``worker``, ``dead_letter``, and a long job type's ``durable_worker`` and ``durable_start``) load boto3,
Powertools and the durable execution SDK themselves. ``job.step`` and ``job.wait`` make a handler that runs as a
short or as a long job type (``docs/long-jobs.md``).
"""

from lambda_handlers.job import (
    JobCancelledError,
    JobContext,
    JobFailedError,
    JobLeaseLostError,
    JobTimeoutError,
)

__all__ = ["JobCancelledError", "JobContext", "JobFailedError", "JobLeaseLostError", "JobTimeoutError"]
