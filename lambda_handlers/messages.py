"""The job message on the queue: ``{"v":1,"jobId":"<uuid4>","payload":<the request's JSON object>}``, or, for a
payload over ``contract.CLAIM_CHECK_BYTES``, ``{"v":1,"jobId":"<uuid4>","payloadRef":"payloads/<uuid4>.json"}``:
a claim check, the key of the payload in the API's bucket.

The submit function writes the request's JSON text into the message as it came (it is valid JSON already), so
the worker sees exactly the bytes the caller sent, and ``payloadSha256`` in the table is their digest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Final

from lambda_handlers.models import is_job_id

__all__ = ["JobMessage", "MessageError", "decode", "encode", "encode_reference", "payload_digest", "sqs_safe"]

VERSION: Final = 1
_PREFIX: Final = '{"v":1,"jobId":"'
_MIDDLE: Final = '","payload":'
# SQS accepts #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF. Valid UTF-8 JSON text can hold no other
# character but the noncharacters U+FFFE and U+FFFF, and only inside strings, where an escape means the same.
_SQS_UNSAFE: Final = {0xFFFE: "\\ufffe", 0xFFFF: "\\uffff"}


class MessageError(ValueError):
    """A queue message is not a job message (not JSON, wrong version, no valid job id or payload)."""


@dataclass(frozen=True, slots=True)
class JobMessage:
    """A decoded job message.

    Attributes
    ----------
    job_id
        The job's id.
    payload
        The request's JSON object.
    payload_text
        The payload's JSON text exactly as enqueued (to check against ``payloadSha256``); None when the message
        was not written by ``encode`` (re-serialised by hand), so its bytes cannot be recovered.
    payload_ref
        A claim check's key of the payload in the bucket (``payload`` is then empty until it is read); else None.
    """

    job_id: str
    payload: dict[str, Any]
    payload_text: str | None
    payload_ref: str | None = None


def sqs_safe(payload_text: str) -> str:
    """``payload_text`` with the two characters SQS rejects (U+FFFE, U+FFFF) written as JSON escapes.

    Both can occur in valid JSON only inside strings, where ``\\ufffe`` means the same character; any other
    text comes back unchanged (the same object).

    Examples
    --------
    >>> sqs_safe('{"a": "\\ufffe"}') == '{"a": "\\\\ufffe"}'
    True
    """
    if "\ufffe" in payload_text or "\uffff" in payload_text:
        return payload_text.translate(_SQS_UNSAFE)
    return payload_text


def payload_digest(payload_text: str) -> str:
    """The hex SHA-256 of the payload's UTF-8 bytes (the table's ``payloadSha256``).

    Examples
    --------
    >>> payload_digest("{}")
    '44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a'
    """
    return hashlib.sha256(payload_text.encode("utf-8")).hexdigest()


def encode(job_id: str, payload_text: str) -> str:
    """The message body for a job; ``payload_text`` must be a JSON object's text, safe for SQS (``sqs_safe``).

    Examples
    --------
    >>> encode("4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21", '{"n": 1}')
    '{"v":1,"jobId":"4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21","payload":{"n": 1}}'
    """
    return f"{_PREFIX}{job_id}{_MIDDLE}{payload_text}}}"


def encode_reference(job_id: str, key: str) -> str:
    """The message body of a claim-checked job: the payload is at ``key`` in the API's bucket.

    Examples
    --------
    >>> encode_reference("4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21", "payloads/4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21.json")
    '{"v":1,"jobId":"4f0c5a0e-...","payloadRef":"payloads/4f0c5a0e-....json"}'
    """
    return json.dumps({"v": VERSION, "jobId": job_id, "payloadRef": key}, separators=(",", ":"))


def decode(body: object) -> JobMessage:
    """Read a message body written by ``encode``.

    Raises
    ------
    MessageError
        The body is not a version-1 job message.

    Examples
    --------
    >>> decode(record["body"]).job_id
    '4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21'
    """
    if not isinstance(body, str):
        raise MessageError(f"the message body is not text (got {type(body).__name__})")
    try:
        message = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise MessageError(f"the message body is not JSON: {error}") from None
    if not isinstance(message, dict):
        raise MessageError("the message body is not a JSON object")
    version = message.get("v")
    if type(version) is not int or version != VERSION:
        raise MessageError(f"unsupported message version {version!r} (this runtime reads version {VERSION})")
    job_id = message.get("jobId")
    if not is_job_id(job_id):
        raise MessageError(f"jobId {job_id!r} is not a job id")
    reference = message.get("payloadRef")
    if "payload" not in message and isinstance(reference, str) and reference.endswith(f"/{job_id}.json"):
        return JobMessage(job_id=job_id, payload={}, payload_text=None, payload_ref=reference)
    payload = message.get("payload")
    if not isinstance(payload, dict):
        raise MessageError("payload is not a JSON object")
    head = f"{_PREFIX}{job_id}{_MIDDLE}"
    payload_text = body[len(head) : -1] if body.startswith(head) and body.endswith("}") else None
    return JobMessage(job_id=job_id, payload=payload, payload_text=payload_text)
