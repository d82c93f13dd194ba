#!/usr/bin/env python3
"""Submit a job to the deployed API and follow it to its end, every request SigV4-signed.

    python call_api.py https://abc123.execute-api.eu-west-1.amazonaws.com/prod/jobs '{"accounts": ["acme"]}'

The API is IAM-authorized: the caller needs ``execute-api:Invoke`` on it (``jobs.grant_invoke(role)``; the
quickstart stack's ``CallerRoleArn`` output is such a role). Credentials come from the usual AWS configuration
(environment, ``AWS_PROFILE``, SSO, an instance role); the region from the URL. Needs only botocore (boto3 has it).
"""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
_REGION_IN_HOST = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")


def region_of(url: str) -> str | None:
    """The region in an API Gateway URL (``abc123.execute-api.eu-west-1.amazonaws.com``), or None."""
    match = _REGION_IN_HOST.search(urlsplit(url).hostname or "")
    return match.group(1) if match else None


def signed_request(
    method: str,
    url: str,
    body: bytes | None,
    *,
    credentials: Credentials | ReadOnlyCredentials,
    region: str,
) -> urllib.request.Request:
    """A urllib request carrying a SigV4 ``Authorization`` header for ``execute-api`` in ``region``."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    aws_request = AWSRequest(method=method, url=url, data=body, headers=headers)
    # Adds X-Amz-Date, X-Amz-Security-Token (temporary credentials) and Authorization to the headers.
    SigV4Auth(credentials, "execute-api", region).add_auth(aws_request)
    return urllib.request.Request(url, data=body, headers=dict(aws_request.headers.items()), method=method)


def call(
    method: str,
    url: str,
    payload: object = None,
    *,
    credentials: Credentials | ReadOnlyCredentials,
    region: str,
) -> tuple[int, dict[str, str], Any]:
    """Send one signed request; return its status, headers and JSON body (a problem+json on 4xx and 5xx)."""
    body = None if payload is None else json.dumps(payload).encode()
    request = signed_request(method, url, body, credentials=credentials, region=region)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers.items()), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), json.loads(error.read() or b"null")


def submit_and_wait(
    url: str,
    payload: object,
    *,
    credentials: Credentials | ReadOnlyCredentials | None = None,
    region: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """``POST`` the payload to ``url`` (a job type's URL, e.g. the ``JobsUrl`` output), then ``GET`` the job's
    ``Location`` as often as its ``Retry-After`` says until it is SUCCEEDED, FAILED or CANCELLED; return it."""
    session = botocore.session.Session()
    if credentials is None:
        found = session.get_credentials()
        if found is None:
            raise SystemExit("no AWS credentials found: set AWS_PROFILE, or run `aws sso login`")
        credentials = found.get_frozen_credentials()
    region = region or region_of(url) or session.get_config_variable("region")
    if not region:
        raise SystemExit(f"cannot tell the region of {url}: pass region=... or set AWS_REGION")
    status, headers, job = call("POST", url, payload, credentials=credentials, region=region)
    if status != 202 or not isinstance(job, dict):
        raise RuntimeError(f"POST {url} answered {status}: {job}")
    location = headers["Location"]
    while job["status"] not in TERMINAL:
        sleep(float(headers.get("Retry-After", "5")))
        status, headers, job = call("GET", location, credentials=credentials, region=region)
        if status != 200 or not isinstance(job, dict):
            raise RuntimeError(f"GET {location} answered {status}: {job}")
        progress = job.get("progress") or {}
        print(f"{job['status']:<9} {progress.get('percent', 0):>6.2f} % {progress.get('message') or ''}")
    return job


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    job = submit_and_wait(argv[0], json.loads(argv[1]))
    print(json.dumps(job, indent=2))
    return 0 if job["status"] == "SUCCEEDED" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
