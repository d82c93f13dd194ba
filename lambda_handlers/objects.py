"""The API's bucket: where a job's large result, its files and a large payload are kept, and the links to them.

Layout (``contract.JOB_OBJECTS_PREFIX``, ``contract.PAYLOAD_OBJECTS_PREFIX``)::

    jobs/<id>/result.json     the result, when it is larger than the status item has room for
    jobs/<id>/files/<name>    the files the handler saved (``job.save_file``)
    payloads/<id>.json        a payload over ``CLAIM_CHECK_BYTES`` (the message carries its key)

The bucket's lifecycle rules expire ``jobs/`` objects ``job_ttl`` (+1 day) after they are written, as the job
expires, and ``payloads/`` objects once an unfinished job would have expired. Links are presigned GET URLs
that expire after ``LINK_SECONDS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from lambda_handlers import clients
from lambda_handlers.contract import FILE_NAME, JOB_OBJECTS_PREFIX, MAX_FILES, PAYLOAD_OBJECTS_PREFIX

__all__ = [
    "FILE_NAME",
    "LINK_SECONDS",
    "MAX_FILES",
    "ObjectStoreError",
    "SavedFile",
    "file_key",
    "get_text",
    "link",
    "payload_key",
    "put",
    "result_key",
]

#: How long a presigned link stays valid, seconds.
LINK_SECONDS: Final = 300


class ObjectStoreError(Exception):
    """S3 could not be reached or refused a request (``missing``: the object does not exist)."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


@dataclass(frozen=True, slots=True)
class SavedFile:
    """A file a handler saved: its name, size and content type (its key is ``file_key(job_id, name)``)."""

    name: str
    size: int
    content_type: str

    def to_json(self) -> dict[str, Any]:
        """As the status item keeps it (``files``, JSON text of a list of these)."""
        return {"name": self.name, "size": self.size, "contentType": self.content_type}

    @classmethod
    def from_json(cls, value: Any) -> SavedFile:
        """The file a ``to_json`` value describes."""
        return cls(str(value["name"]), int(value["size"]), str(value["contentType"]))


def result_key(job_id: str) -> str:
    """The key of a job's result.

    Examples
    --------
    >>> result_key("4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21")
    'jobs/4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21/result.json'
    """
    return f"{JOB_OBJECTS_PREFIX}{job_id}/result.json"


def file_key(job_id: str, name: str) -> str:
    """The key of a job's file ``name`` (already checked against ``FILE_NAME``)."""
    return f"{JOB_OBJECTS_PREFIX}{job_id}/files/{name}"


def payload_key(job_id: str) -> str:
    """The key of a job's claim-checked payload."""
    return f"{PAYLOAD_OBJECTS_PREFIX}{job_id}.json"


def put(bucket: str, key: str, data: bytes, content_type: str) -> None:
    """Write an object (SSE as the bucket's default encryption says).

    Raises
    ------
    ObjectStoreError
        S3 failed.
    """
    try:
        clients.s3().put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
    except (BotoCoreError, ClientError) as error:
        raise ObjectStoreError(f"PutObject of {key} failed: {error}") from error


def get_text(bucket: str, key: str) -> str:
    """An object's UTF-8 text.

    Raises
    ------
    ObjectStoreError
        S3 failed, or (``missing``) there is no such object (it expired, or was never written).
    """
    try:
        body = clients.s3().get_object(Bucket=bucket, Key=key)["Body"]
        return str(body.read().decode("utf-8"))
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        raise ObjectStoreError(
            f"GetObject of {key} failed: {error}", missing=code in ("NoSuchKey", "404")
        ) from error
    except (BotoCoreError, UnicodeDecodeError) as error:
        raise ObjectStoreError(f"GetObject of {key} failed: {error}") from error


def link(bucket: str, key: str, *, filename: str | None = None) -> str:
    """A presigned GET URL of an object, valid ``LINK_SECONDS`` (computed locally: no request to S3).

    ``filename`` makes a browser save it under that name (``Content-Disposition: attachment``).

    Examples
    --------
    >>> link("jobs-bucket", result_key(job_id)).startswith("https://jobs-bucket.s3.")
    True
    """
    params: dict[str, str] = {"Bucket": bucket, "Key": key}
    if filename is not None:
        params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
    return str(clients.s3().generate_presigned_url("get_object", Params=params, ExpiresIn=LINK_SECONDS))
