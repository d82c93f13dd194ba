"""Submit a job and wait for its result with ``async_job_client`` (the README's three lines).

Run it against a deployed stage (SigV4, botocore's credential chain) or ``async-job local``::

    JOBS_API_URL=http://127.0.0.1:3000/<stack>-<api> python examples/client/run_job.py
"""

import os

from async_job_client import JobClient

client = JobClient(os.environ["JOBS_API_URL"])  # the stage URL: SigV4 for AWS, the local caller on 127.0.0.1
result = client.run({"seconds": 3}, timeout=600)  # or raises JobFailed, JobCancelled, WaitTimeout
print(result)
