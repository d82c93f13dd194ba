"""The job as ``GET /jobs/{id}`` shows it: its resource, and a presigned link for each file it saved.

One function, so that the status function's ``200`` and the WebSocket's ``subscribed`` and ``job`` frames
(``lambda_handlers.updates``) carry the same JSON.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from lambda_handlers import objects
from lambda_handlers.models import Job, format_timestamp, utc_now

__all__ = ["file_links", "job_resource"]


def job_resource(job: Job, self_url: str, bucket_name: str | None) -> dict[str, Any]:
    """``job.to_resource(self_url)``, with ``files`` (each with a link) when it saved any.

    Examples
    --------
    >>> job_resource(job, "https://api.example.com/prod/jobs/" + job.job_id, "jobs-bucket")["status"]
    'SUCCEEDED'
    """
    resource = job.to_resource(self_url)
    files = file_links(job, bucket_name)
    if files:
        resource["files"] = files
    return resource


def file_links(job: Job, bucket_name: str | None) -> list[dict[str, Any]]:
    """The job's files, each with a presigned download link (``urlExpiresAt``: when the link stops working)."""
    if not job.files or bucket_name is None:
        return []
    expires = format_timestamp(utc_now() + dt.timedelta(seconds=objects.LINK_SECONDS))
    links = []
    for entry in json.loads(job.files):
        saved = objects.SavedFile.from_json(entry)
        key = objects.file_key(job.job_id, saved.name)
        links.append(
            {
                **saved.to_json(),
                "url": objects.link(bucket_name, key, filename=saved.name),
                "urlExpiresAt": expires,
            }
        )
    return links
