"""lambda_handlers.messages: the job message format, byte for byte."""

from __future__ import annotations

import hashlib
import json

import pytest

from lambda_handlers.messages import MessageError, decode, encode, payload_digest, sqs_safe

JOB_ID = "4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21"


def test_embeds_the_payload_text_as_is_and_reads_it_back() -> None:
    text = '{ "b" : 1.50,\n "a": "é" }'

    body = encode(JOB_ID, text)
    message = decode(body)

    assert body == f'{{"v":1,"jobId":"{JOB_ID}","payload":{text}}}'
    assert (message.job_id, message.payload, message.payload_text) == (JOB_ID, {"b": 1.5, "a": "é"}, text)
    assert payload_digest(text) == hashlib.sha256(text.encode()).hexdigest()


def test_reads_a_message_written_by_someone_else_without_its_payload_text() -> None:
    message = decode(json.dumps({"v": 1, "jobId": JOB_ID, "payload": {"a": 1}}, indent=2))

    assert message.payload == {"a": 1}
    assert message.payload_text is None


@pytest.mark.parametrize(
    "body",
    [None, "", "{", "[]", '{"jobId": "x"}', f'{{"v": 1.0, "jobId": "{JOB_ID}", "payload": {{}}}}'],
)
def test_refuses_what_is_not_a_job_message(body: str | None) -> None:
    with pytest.raises(MessageError):
        decode(body)


def test_escapes_only_what_sqs_rejects() -> None:
    text = '{"a": "x\uffffy\ufffe", "b": "\u00e9\U0001f600"}'

    safe = sqs_safe(text)

    assert "\uffff" not in safe
    assert "\ufffe" not in safe
    assert json.loads(safe) == json.loads(text)
    plain = '{"b": "\u00e9"}'
    assert sqs_safe(plain) is plain
