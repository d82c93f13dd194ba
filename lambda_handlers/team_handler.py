"""What both workers (a short type's queue consumer, a long type's durable worker) do around the team's handler:
import it, read a claim-checked payload, and write what it records through its ``JobContext`` (progress, files),
each write fenced by the run id.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from typing import Any

from lambda_handlers import messages, objects
from lambda_handlers.contract import MAX_FILES
from lambda_handlers.job import JobContext, JobLeaseLostError, ProgressAck
from lambda_handlers.observability import logger
from lambda_handlers.store import JobStore, JobStoreError, WriteOutcome

__all__ = [
    "FileSaver",
    "HandlerImportError",
    "PayloadError",
    "TeamHandler",
    "check_payload",
    "import_handler",
    "progress_writer",
    "read_payload",
]

#: A team's job handler: ``function(payload, job) -> JSON-serialisable result``.
TeamHandler = Callable[[dict[str, Any], JobContext], Any]


class HandlerImportError(Exception):
    """``ASYNC_JOB_HANDLER`` cannot be imported, or does not name a function."""


class PayloadError(Exception):
    """The job's payload is gone or is not the one recorded: the job fails for good, with ``error_type``."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def import_handler(spec: str) -> TeamHandler:
    """Import the team's handler ``module.function``.

    Raises
    ------
    HandlerImportError
        The module cannot be imported (the message has the import's error), or has no such function.

    Examples
    --------
    >>> import_handler("reports.generate")
    <function generate at 0x...>
    """
    module_name, _, function_name = spec.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise HandlerImportError(
            f"cannot import module {module_name!r} of the job handler {spec!r}: {type(error).__name__}: {error}"
        ) from error
    function = getattr(module, function_name, None)
    if not callable(function):
        raise HandlerImportError(
            f"module {module_name!r} has no function {function_name!r} (the job handler {spec!r})"
        )
    return function  # type: ignore[no-any-return]


def read_payload(bucket: str | None, message: messages.JobMessage) -> messages.JobMessage:
    """The message with its claim-checked payload read from the bucket (a message without one as it is).

    Raises
    ------
    PayloadError
        The payload is gone (``PayloadNotFound``), or is not a JSON object (``PayloadMismatch``).
    objects.ObjectStoreError
        S3 failed (try again later).

    Examples
    --------
    >>> read_payload("jobs-bucket", messages.decode(body)).payload
    {'account': 'acme'}
    """
    if message.payload_ref is None:
        return message
    try:
        if bucket is None:
            raise objects.ObjectStoreError("the worker has no bucket (ASYNC_JOB_BUCKET_NAME)", missing=True)
        text = objects.get_text(bucket, str(message.payload_ref))
    except objects.ObjectStoreError as error:
        if not error.missing:
            raise
        raise PayloadError("PayloadNotFound", f"The job's payload is gone: {error}") from error
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise PayloadError("PayloadMismatch", "The stored payload is not a JSON object.")
    return messages.JobMessage(job_id=message.job_id, payload=payload, payload_text=text)


def check_payload(message: messages.JobMessage, payload_sha256: str | None) -> None:
    """Check the message's payload against the digest recorded at submit (when both are known).

    Raises
    ------
    PayloadError
        ``PayloadMismatch``: the message carries another payload than the job's.

    Examples
    --------
    >>> check_payload(message, claimed.payload_sha256)
    """
    if (
        message.payload_text is not None
        and payload_sha256 is not None
        and messages.payload_digest(message.payload_text) != payload_sha256
    ):
        raise PayloadError(
            "PayloadMismatch", "The message's payload does not match the payload recorded for this job."
        )


class FileSaver:
    """``job.save_file`` of a run: the file into the bucket, then the job's file list, fenced by the run id.

    Examples
    --------
    >>> saver = FileSaver(store, "jobs-bucket", job_id, run_id, claimed.files)
    >>> saver("report.csv", b"a,b\\n", "text/csv")
    """

    def __init__(
        self, store: JobStore, bucket: str | None, job_id: str, run_id: str, files: str | None
    ) -> None:
        self.store = store
        self.bucket = bucket
        self.job_id = job_id
        self.run_id = run_id
        listed = json.loads(files) if files else []
        self.files = {entry["name"]: objects.SavedFile.from_json(entry) for entry in listed}

    def listing(self) -> str | None:
        """The file list as the item keeps it (``files``), or None before any file."""
        if not self.files:
            return None
        return json.dumps([file.to_json() for file in self.files.values()], separators=(",", ":"))

    def __call__(self, name: str, data: bytes, content_type: str) -> None:
        if self.bucket is None:
            raise RuntimeError("job.save_file needs the API's bucket (ASYNC_JOB_BUCKET_NAME is not set)")
        if name not in self.files and len(self.files) >= MAX_FILES:
            raise ValueError(f"a job keeps at most {MAX_FILES} files")
        objects.put(self.bucket, objects.file_key(self.job_id, name), data, content_type)
        self.files[name] = objects.SavedFile(name, len(data), content_type)
        if self.store.record_files(self.job_id, self.run_id, str(self.listing())) is not WriteOutcome.APPLIED:
            raise JobLeaseLostError(
                f"job {self.job_id} is no longer held by this run; the file was not listed"
            )
        logger.info("file saved", extra={"file": name, "bytes": len(data)})


def progress_writer(store: JobStore, job_id: str, run_id: str) -> Callable[[float, str | None], ProgressAck]:
    """``JobContext``'s progress writer for a run: a fenced write that also learns of a cancel request.

    Examples
    --------
    >>> JobContext(job_id, progress_writer=progress_writer(store, job_id, run_id))
    """

    def write(percent: float, message: str | None) -> ProgressAck:
        try:
            outcome = store.report_progress(job_id, run_id, percent, message)
        except JobStoreError:
            # Progress is advisory: a failed write must not fail the job.
            logger.warning("could not record progress", exc_info=True)
            return ProgressAck.HELD
        if outcome is WriteOutcome.CANCEL_REQUESTED:
            return ProgressAck.CANCEL_REQUESTED
        return ProgressAck.HELD if outcome is WriteOutcome.APPLIED else ProgressAck.LOST

    return write
