"""Bad input, table-driven, against the real functions with real-looking API Gateway proxy events.

Each bad request gets its documented 4xx as ``application/problem+json`` (status, type slug), leaves nothing
behind (no item, no message), and the function keeps serving: the next valid request succeeds. Unknown routes
are API Gateway's own answer and are not the functions' to test.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest

from lambda_handlers.config import MAX_PAYLOAD_BYTES_LIMIT
from tests.unit.handlers.conftest import Aws
from tests.unit.handlers.events import (
    FakeLambdaContext,
    body,
    delete_event,
    get_event,
    post_event,
    rest_event,
)
from tests.unit.handlers.test_status import given_job
from tests.unit.handlers.test_submit import assert_problem

KIB = 1024
DEEP = 100_000  # nesting levels: far past Python's recursion limit


@dataclass(frozen=True)
class Bad:
    """A bad request to one function, and the problem it must get."""

    function: str  # "submit" or "status"
    event: Callable[[], dict[str, Any]]
    status: int
    slug: str
    detail: str = ""  # a fragment the detail must hold, if any


def post(text: str | bytes | None, **kwargs: Any) -> Callable[[], dict[str, Any]]:
    return lambda: rest_event("POST", body=text, **kwargs)


def post_base64(raw: str) -> Callable[[], dict[str, Any]]:
    def event() -> dict[str, Any]:
        made = rest_event("POST", body="{}")
        made["body"], made["isBase64Encoded"] = raw, True
        return made

    return event


def job_path(raw_id: str | None, method: str = "GET") -> Callable[[], dict[str, Any]]:
    return lambda: (get_event if method == "GET" else delete_event)(raw_id)


def method(name: str, function: str) -> Callable[[], dict[str, Any]]:
    if function == "submit":
        return lambda: rest_event(name, body="{}")
    return lambda: {**get_event(str(uuid.uuid4())), "httpMethod": name}


BAD: dict[str, Bad] = {
    # -------------------------------------------------------------------------------------- JSON
    "malformed-trailing-comma": Bad("submit", post('{"report": "Q3",}'), 400, "invalid-json", "line 1"),
    "malformed-truncated": Bad("submit", post('{"a": [1, 2'), 400, "invalid-json"),
    "malformed-single-quotes": Bad("submit", post("{'a': 1}"), 400, "invalid-json"),
    "malformed-trailing-data": Bad("submit", post('{"a": 1} {"b": 2}'), 400, "invalid-json", "Extra data"),
    "malformed-nan": Bad("submit", post('{"x": NaN}'), 400, "invalid-json", "NaN"),
    "empty": Bad("submit", post(""), 400, "empty-body"),
    "empty-whitespace": Bad("submit", post(" \r\n\t "), 400, "empty-body"),
    "empty-null-body": Bad("submit", post(None), 400, "empty-body"),
    "huge": Bad(
        "submit", post('{"s": "' + "x" * MAX_PAYLOAD_BYTES_LIMIT + '"}'), 413, "payload-too-large", "limit"
    ),
    "array": Bad("submit", post("[1, 2, 3]"), 400, "body-not-object", "an array"),
    "array-empty": Bad("submit", post("[]"), 400, "body-not-object"),
    "scalar-number": Bad("submit", post("42"), 400, "body-not-object", "scalar"),
    "scalar-string": Bad("submit", post('"job"'), 400, "body-not-object"),
    "scalar-null": Bad("submit", post("null"), 400, "body-not-object"),
    "scalar-true": Bad("submit", post("true"), 400, "body-not-object"),
    "deep-arrays-100k": Bad(
        "submit", post("[" * DEEP + "]" * DEEP), 400, "invalid-json", "nested too deeply"
    ),
    "deep-objects-100k": Bad(
        "submit", post('{"a":' * DEEP + "1" + "}" * DEEP), 400, "invalid-json", "nested too deeply"
    ),
    "deep-in-an-object": Bad(
        "submit", post('{"a": ' + "[" * DEEP + "]" * DEEP + "}"), 400, "invalid-json", "nested too deeply"
    ),
    "deep-unclosed": Bad("submit", post("[" * DEEP), 400, "invalid-json"),
    # ---------------------------------------------------------------------------------- unicode
    "bom": Bad("submit", post('\ufeff{"a": 1}'), 400, "invalid-json", "BOM"),
    "lone-high-surrogate-escape": Bad("submit", post('{"s": "\\ud800"}'), 400, "invalid-json", "surrogate"),
    "lone-low-surrogate-escape": Bad("submit", post('{"s": "a\\uDFFFb"}'), 400, "invalid-json", "surrogate"),
    "reversed-surrogate-pair": Bad(
        "submit", post('{"s": "\\ude00\\ud83d"}'), 400, "invalid-json", "surrogate"
    ),
    "lone-surrogate-in-a-name": Bad("submit", post('{"\\ud800": 1}'), 400, "invalid-json", "surrogate"),
    "lone-surrogate-deep-in-a-list": Bad(
        "submit", post('{"a": [[1, {"b": ["ok", "\\udbff"]}]]}'), 400, "invalid-json", "surrogate"
    ),
    "lone-surrogate-raw": Bad("submit", post('{"s": "\ud800"}'), 400, "invalid-json", "UTF-8"),
    "nul-raw-in-a-string": Bad("submit", post('{"s": "a\x00b"}'), 400, "invalid-json", "control character"),
    "nul-raw-outside": Bad("submit", post('\x00{"a": 1}'), 400, "invalid-json"),
    "latin-1-bytes": Bad(
        "submit",
        post('{"city": "Zürich"}'.encode("latin-1"), base64_encoded=True),
        400,
        "invalid-json",
        "UTF-8",
    ),
    "overlong-utf8": Bad(
        "submit", post(b'{"s": "\xc0\xaf"}', base64_encoded=True), 400, "invalid-json", "UTF-8"
    ),
    "not-base64": Bad("submit", post_base64("{not base64!}"), 400, "invalid-json", "base64"),
    # ----------------------------------------------------------------------------- content types
    "content-type-missing": Bad("submit", post("{}", content_type=None), 415, "unsupported-media-type"),
    "content-type-text": Bad("submit", post("{}", content_type="text/plain"), 415, "unsupported-media-type"),
    "content-type-form": Bad(
        "submit", post("a=1", content_type="application/x-www-form-urlencoded"), 415, "unsupported-media-type"
    ),
    "content-type-multipart": Bad(
        "submit", post("{}", content_type="multipart/form-data; boundary=x"), 415, "unsupported-media-type"
    ),
    "content-type-utf16": Bad(
        "submit", post("{}", content_type="application/json; charset=utf-16"), 415, "unsupported-media-type"
    ),
    "content-type-empty": Bad("submit", post("{}", content_type=""), 415, "unsupported-media-type"),
    "content-type-10-kib": Bad(
        "submit", post("{}", content_type="application/" + "x" * 10 * KIB), 415, "unsupported-media-type"
    ),
    # -------------------------------------------------------------------------- idempotency keys
    "key-10-kib": Bad("submit", lambda: post_event("{}", "k" * 10 * KIB), 400, "invalid-idempotency-key"),
    "key-empty": Bad("submit", lambda: post_event("{}", ""), 400, "invalid-idempotency-key"),
    "key-nul": Bad("submit", lambda: post_event("{}", "a\x00b"), 400, "invalid-idempotency-key"),
    "key-rtl-mark": Bad("submit", lambda: post_event("{}", "abc\u200f"), 400, "invalid-idempotency-key"),
    "key-emoji": Bad("submit", lambda: post_event("{}", "\U0001f600"), 400, "invalid-idempotency-key"),
    "key-bad-quoting": Bad("submit", lambda: post_event("{}", '"abc'), 400, "invalid-idempotency-key"),
    "key-crlf-injection": Bad(
        "submit", lambda: post_event("{}", "k\r\nX-Admin: 1"), 400, "invalid-idempotency-key"
    ),
    # ------------------------------------------------------------------------------------- ids
    "id-path-traversal": Bad("status", job_path("../../etc/passwd"), 400, "invalid-job-id"),
    "id-sql-injection": Bad("status", job_path("' OR 1=1 --"), 400, "invalid-job-id"),
    "id-nosql-injection": Bad("status", job_path('{"$ne": null}'), 400, "invalid-job-id"),
    "id-percent-nul": Bad("status", job_path("%00"), 400, "invalid-job-id"),
    "id-nul": Bad("status", job_path("4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21\x00"), 400, "invalid-job-id"),
    "id-10-kib": Bad("status", job_path("a" * 10 * KIB), 400, "invalid-job-id"),
    "id-uppercase": Bad("status", job_path("4F0C5A0E-3B7D-4D0F-9A57-0F1C2F8B9E21"), 400, "invalid-job-id"),
    "id-fullwidth-digits": Bad(
        "status", job_path("\uff14f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21"), 400, "invalid-job-id"
    ),
    "id-rtl-override": Bad(
        "status", job_path("\u202e4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21"), 400, "invalid-job-id"
    ),
    "id-key-item": Bad("status", job_path("idem#" + "0" * 64), 400, "invalid-job-id"),
    "id-missing": Bad("status", job_path(None), 400, "invalid-job-id"),
    "id-delete-sql-injection": Bad("status", job_path("' OR 1=1 --", "DELETE"), 400, "invalid-job-id"),
    "id-delete-10-kib": Bad("status", job_path("a" * 10 * KIB, "DELETE"), 400, "invalid-job-id"),
    # ---------------------------------------------------------------------------------- methods
    "method-put-jobs": Bad("submit", method("PUT", "submit"), 405, "method-not-allowed"),
    "method-get-on-submit": Bad("submit", method("GET", "submit"), 405, "method-not-allowed"),
    "method-patch-job": Bad("status", method("PATCH", "status"), 405, "method-not-allowed"),
    "method-post-job": Bad("status", method("POST", "status"), 405, "method-not-allowed"),
    "method-lowercase": Bad("status", method("get", "status"), 405, "method-not-allowed"),
}


@pytest.fixture
def functions(
    aws: Aws, entry_points: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> dict[str, ModuleType]:
    """The submit and status functions, submit accepting the largest payload it can (so deep nesting reaches
    the JSON parser instead of stopping at the size limit)."""
    monkeypatch.setenv("ASYNC_JOB_MAX_PAYLOAD_BYTES", str(MAX_PAYLOAD_BYTES_LIMIT))
    return {
        "submit": entry_points("lambda_handlers.submit"),
        "status": entry_points("lambda_handlers.status"),
    }


def test_the_table_is_large() -> None:
    assert len(BAD) >= 20


@pytest.mark.parametrize("case", list(BAD.values()), ids=list(BAD))
def test_bad_input_gets_its_problem_and_the_function_keeps_serving(
    functions: dict[str, ModuleType], aws: Aws, lambda_context: FakeLambdaContext, case: Bad
) -> None:
    # GIVEN a job of Alice's, so that a valid read has something to find
    existing = given_job(aws)

    # WHEN the bad request is handled
    response = functions[case.function].handler(case.event(), lambda_context)

    # THEN it gets its documented problem, with no trace of the inside, and nothing is recorded or sent
    problem = assert_problem(response, case.status, case.slug)
    assert case.detail in problem["detail"]
    assert len(response["body"]) < 2 * KIB
    assert aws.item_count() == 1
    assert aws.queue_depth(aws.queue_url) == 0
    # AND the same function instance serves the next valid request
    if case.function == "submit":
        follow_up = functions["submit"].handler(post_event('{"ok": true}'), lambda_context)
        assert follow_up["statusCode"] == 202
    else:
        follow_up = functions["status"].handler(get_event(existing), lambda_context)
        assert follow_up["statusCode"] == 200
        assert body(follow_up)["id"] == existing


GOOD: dict[str, str] = {
    "u+ffff": '{"s": "a\uffffb"}',
    "u+fffe": '{"s": "\ufffe"}',
    "nul-escaped": '{"s": "a\\u0000b"}',
    "rtl-marks": '{"s": "\u200fabc\u202edef\u202c"}',
    "emoji-raw": '{"s": "\U0001f600 \U0001f9d1\u200d\U0001f4bb"}',
    "emoji-escaped-pair": '{"s": "\\ud83d\\ude00"}',
    "escaped-backslash-before-u": '{"s": "\\\\ud800"}',
    "bom-inside-a-string": '{"s": "\ufeff"}',
    "combining-marks": '{"s": "e\u0301\u0301\u0301"}',
    "nesting-just-allowed": '{"a": ' + "[" * 500 + "]" * 500 + "}",
}


@pytest.mark.parametrize("text", list(GOOD.values()), ids=list(GOOD))
def test_valid_unicode_edge_cases_are_accepted_and_travel_unchanged(
    functions: dict[str, ModuleType], aws: Aws, lambda_context: FakeLambdaContext, text: str
) -> None:
    response = functions["submit"].handler(post_event(text), lambda_context)

    assert response["statusCode"] == 202
    (message,) = aws.receive()
    assert json.loads(message["Body"])["payload"] == json.loads(text)


@pytest.mark.parametrize(
    "key", ["../", "../../etc/passwd", "' OR 1=1 --", "%00", "idem#x", "${jndi:ldap://x}"]
)
def test_injection_looking_keys_are_just_keys(
    functions: dict[str, ModuleType], aws: Aws, lambda_context: FakeLambdaContext, key: str
) -> None:
    # GIVEN / WHEN a key that looks like an attack is used twice
    first = functions["submit"].handler(post_event("{}", key), lambda_context)
    second = functions["submit"].handler(post_event("{}", key), lambda_context)

    # THEN it is only a key: hashed into its item's id, replayed as any other
    assert (first["statusCode"], second["statusCode"]) == (202, 202)
    assert body(first)["id"] == body(second)["id"]
    assert aws.item_count() == 2


def test_an_oversized_unrelated_header_is_ignored(
    functions: dict[str, ModuleType], aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    event = post_event("{}", headers={"X-Padding": "p" * 10 * KIB})

    assert functions["submit"].handler(event, lambda_context)["statusCode"] == 202


def test_a_base64_body_that_decodes_to_deep_json_is_refused(
    functions: dict[str, ModuleType], aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    raw = base64.b64encode(("[" * DEEP + "]" * DEEP).encode()).decode()

    response = functions["submit"].handler(post_base64(raw)(), lambda_context)

    assert_problem(response, 400, "invalid-json")
