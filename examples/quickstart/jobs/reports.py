"""The quickstart's job: a report over a list of accounts, one step per account, with progress.

Payload: ``{"accounts": ["acme", "globex"]}``. The worker calls ``generate(payload, job)``; what it returns is
the job's ``result``. Only the standard library and ``lambda_handlers`` (the runtime layer) are imported.
"""

from __future__ import annotations

import hashlib
from typing import Any

from lambda_handlers import JobCancelledError, JobContext, JobFailedError


def generate(payload: dict[str, Any], job: JobContext) -> dict[str, Any]:
    accounts = payload.get("accounts")
    if not isinstance(accounts, list) or not accounts or not all(isinstance(a, str) for a in accounts):
        # The job ends FAILED at once, with no retry; any other exception fails the attempt and is retried.
        raise JobFailedError("payload.accounts must be a non-empty list of strings")
    totals: dict[str, int] = {}
    for done, account in enumerate(accounts, start=1):
        totals[account] = _total(account)  # your work here: a query, a file to build, a model to run
        job.report_progress(100 * done / len(accounts), f"account {done}/{len(accounts)}")
        if job.cancel_requested:  # DELETE /jobs/{id} by the job's owner; learnt with each progress write
            raise JobCancelledError(f"stopped after {done} of {len(accounts)} accounts")
    return {"accounts": len(accounts), "totals": totals}


def _total(account: str) -> int:
    """A stand-in for real work: a number derived from the account's name."""
    return int.from_bytes(hashlib.sha256(account.encode()).digest()[:2], "big")
