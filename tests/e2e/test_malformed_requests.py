"""Malformed input at the local API Gateway: every one gets a 4xx problem, and the server keeps serving.

Wire-level cases (framing, request line, headers, stalls) go through raw sockets, the rest through
``http.client``. After each malformed request a normal request on a fresh connection must still succeed.
Stalled requests are sent to a second runtime (the e2e app's kept cloud assembly, no synthesis) whose request
timeout is short, so that they end in well under a second.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from async_job_local.client import HttpResponse
from tests.e2e.conftest import CliProcess, E2eRuntime, free_port

PROBLEM = "application/problem+json"
#: The stalled-request runtime's request timeout, and how long a test waits for its answer at most.
SHORT_REQUEST_TIMEOUT = 0.5
ANSWER_WITHIN = 5.0
KNOWN_JOB = "00000000-0000-4000-8000-000000000000"


@dataclass(frozen=True)
class Wire:
    """Where an API listens, for raw-socket clients."""

    host: str
    port: int
    jobs_path: str

    @classmethod
    def of(cls, runtime: E2eRuntime) -> Wire:
        split = urlsplit(runtime.jobs_url)
        return cls(split.hostname or "127.0.0.1", int(split.port or 80), split.path)


@dataclass(frozen=True)
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def problem(self, status: int) -> dict[str, object]:
        """The body as an RFC 9457 problem of ``status``, checked."""
        assert self.status == status, (self.status, self.headers, self.body[:500])
        assert self.headers.get("content-type") == PROBLEM, self.headers
        document: dict[str, object] = json.loads(self.body)
        assert {"type", "title", "status", "detail"} <= document.keys(), document
        assert document["status"] == status, document
        assert str(document["type"]).startswith("urn:async-job:problem:"), document
        assert document["title"], document
        assert document["detail"], document
        return document


def raw_exchange(
    wire: Wire, data: bytes, *, half_close: bool = False, stall: bool = False, timeout: float = 15.0
) -> RawAnswer:
    """Send ``data`` on a new connection (then shut the write side if ``half_close``) and read one answer.

    ``stall``: keep the connection open without sending more, as a stalled upload does. A dropped connection
    or no answer within ``timeout`` fails the test.
    """
    with socket.create_connection((wire.host, wire.port), timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(sock, method="POST")
        try:
            response.begin()
            body = response.read()
        except (http.client.RemoteDisconnected, ConnectionResetError) as error:
            pytest.fail(f"the server dropped the connection without an answer: {error!r}")
        except TimeoutError:
            pytest.fail(f"no answer within {timeout} s (stall={stall})")
        headers = {name.lower(): value for name, value in response.getheaders()}
        return RawAnswer(response.status, headers, body)


def request_bytes(wire: Wire, *lines: str, body: bytes = b"") -> bytes:
    """A request of raw header ``lines`` (the first is the request line) to the wire's host."""
    head = "\r\n".join([*lines, f"Host: {wire.host}:{wire.port}", "", ""])
    return head.encode("latin-1") + body


def assert_still_serving(runtime: E2eRuntime) -> None:
    """A normal request on a fresh connection: a status read that the status function answers."""
    client = runtime.client()
    try:
        response = client.status(str(uuid.uuid4()))
    finally:
        client.close()
    assert response.status == 404, (response.status, response.body)
    assert response.json()["type"] == "urn:async-job:problem:job-not-found"


def problem_of(response: HttpResponse, status: int) -> dict[str, object]:
    assert response.status == status, (response.status, response.body[:500])
    assert response.content_type == PROBLEM, response.headers
    document: dict[str, object] = response.json()
    assert {"type", "title", "status", "detail"} <= document.keys(), document
    assert document["status"] == status, document
    return document


@pytest.fixture(scope="module")
def wire(e2e: E2eRuntime) -> Wire:
    return Wire.of(e2e)


@pytest.fixture(scope="module")
def impatient(e2e: E2eRuntime, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2eRuntime]:
    """The e2e app again, from its kept cloud assembly, with a short request timeout."""
    cli = CliProcess(
        "--app",
        str(e2e.assembly),
        "--port",
        str(free_port()),
        "--request-timeout",
        str(SHORT_REQUEST_TIMEOUT),
        "--concurrency",
        "1",
        "--api-concurrency",
        "1",
        "--no-function-logs",
    )
    try:
        yield E2eRuntime(cli, e2e.assembly, Path(tmp_path_factory.mktemp("impatient")) / "none.log")
    finally:
        cli.stop()


# ------------------------------------------------------------------------------------------- framing


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        pytest.param(["Content-Length: abc"], "Content-Length", id="content-length-not-a-number"),
        pytest.param(["Content-Length: -5"], "Content-Length", id="content-length-negative"),
        pytest.param(["Content-Length: +2"], "Content-Length", id="content-length-signed"),
        pytest.param(
            ["Content-Length: 2", "Content-Length: 3"], "Content-Length", id="content-lengths-differ"
        ),
        pytest.param(
            ["Content-Length: 2", "Transfer-Encoding: chunked"],
            "Transfer-Encoding",
            id="content-length-and-chunked",
        ),
        pytest.param(["Transfer-Encoding: gzip"], "Transfer-Encoding", id="unsupported-transfer-coding"),
    ],
)
def test_a_bad_body_length_is_a_400_problem(
    e2e: E2eRuntime, wire: Wire, headers: list[str], fragment: str
) -> None:
    data = request_bytes(
        wire, f"POST {wire.jobs_path} HTTP/1.1", "Content-Type: application/json", *headers, body=b"{}"
    )

    answer = raw_exchange(wire, data, half_close=True)

    assert fragment in str(answer.problem(400)["detail"])
    assert answer.headers.get("connection") == "close"
    assert_still_serving(e2e)


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param(b"zz\r\n{}\r\n0\r\n\r\n", id="chunk-size-not-hex"),
        pytest.param(b"-2\r\n{}\r\n0\r\n\r\n", id="chunk-size-negative"),
        pytest.param(b"2\r\n{}XX0\r\n\r\n", id="chunk-data-not-followed-by-crlf"),
        pytest.param(b"2\r\n{}\r\n", id="no-last-chunk"),
        pytest.param(b"8\r\n{}", id="chunk-shorter-than-its-size"),
    ],
)
def test_a_bad_chunked_body_is_a_400_problem(e2e: E2eRuntime, wire: Wire, chunks: bytes) -> None:
    data = request_bytes(
        wire,
        f"POST {wire.jobs_path} HTTP/1.1",
        "Content-Type: application/json",
        "Transfer-Encoding: chunked",
        body=chunks,
    )

    answer = raw_exchange(wire, data, half_close=True)

    assert "chunk" in str(answer.problem(400)["detail"]).lower()
    assert_still_serving(e2e)


def test_a_body_shorter_than_its_content_length_is_a_400_problem(e2e: E2eRuntime, wire: Wire) -> None:
    data = request_bytes(
        wire,
        f"POST {wire.jobs_path} HTTP/1.1",
        "Content-Type: application/json",
        "Content-Length: 100",
        body=b'{"n": 1}',
    )

    answer = raw_exchange(wire, data, half_close=True)  # the client sent all it will send

    assert "100" in str(answer.problem(400)["detail"])
    assert_still_serving(e2e)


def test_a_well_formed_chunked_body_is_accepted(e2e: E2eRuntime, wire: Wire) -> None:
    body = b'{"mode": "ok", "steps": 1, "delay": 0}'
    data = request_bytes(
        wire,
        f"POST {wire.jobs_path} HTTP/1.1",
        "Content-Type: application/json",
        "Transfer-Encoding: chunked",
        "Connection: close",
        body=f"{len(body):x};ext=1\r\n".encode() + body + b"\r\n0\r\nTrailer: x\r\n\r\n",
    )

    assert raw_exchange(wire, data).status == 202


def test_a_body_over_ten_megabytes_is_a_413_problem_without_reading_it(e2e: E2eRuntime, wire: Wire) -> None:
    data = request_bytes(
        wire,
        f"POST {wire.jobs_path} HTTP/1.1",
        "Content-Type: application/json",
        f"Content-Length: {10 * 1024 * 1024 + 1}",
    )

    raw_exchange(wire, data).problem(413)
    assert_still_serving(e2e)


# -------------------------------------------------------------------------------------------- stalls


@pytest.mark.parametrize(
    ("head", "body"),
    [
        pytest.param(["Content-Type: application/json", "Content-Length: 100"], b'{"n": 1', id="body"),
        pytest.param(
            ["Content-Type: application/json", "Transfer-Encoding: chunked"], b"40\r\n{", id="chunked-body"
        ),
    ],
)
def test_a_stalled_upload_is_a_408_problem(impatient: E2eRuntime, head: list[str], body: bytes) -> None:
    wire = Wire.of(impatient)
    data = request_bytes(wire, f"POST {wire.jobs_path} HTTP/1.1", *head, body=body)
    started = time.monotonic()

    answer = raw_exchange(wire, data, stall=True, timeout=ANSWER_WITHIN)

    assert SHORT_REQUEST_TIMEOUT <= time.monotonic() - started < ANSWER_WITHIN
    assert str(SHORT_REQUEST_TIMEOUT) in str(answer.problem(408)["detail"])
    assert answer.headers.get("connection") == "close"
    assert_still_serving(impatient)


def test_stalled_headers_are_a_408_problem(impatient: E2eRuntime) -> None:
    wire = Wire.of(impatient)
    data = f"GET {wire.jobs_path}/{KNOWN_JOB} HTTP/1.1\r\nHost: x\r\n".encode()  # no blank line: unfinished

    raw_exchange(wire, data, stall=True, timeout=ANSWER_WITHIN).problem(408)
    assert_still_serving(impatient)


def test_an_idle_kept_alive_connection_outlives_the_request_timeout(impatient: E2eRuntime) -> None:
    split = urlsplit(impatient.jobs_url)
    connection = http.client.HTTPConnection(split.hostname or "", split.port, timeout=10)
    try:
        for attempt in range(2):
            if attempt:
                time.sleep(SHORT_REQUEST_TIMEOUT * 2)  # idle between requests is not a stalled request
            connection.request("GET", f"{split.path}/{uuid.uuid4()}")
            response = connection.getresponse()
            response.read()
            assert response.status == 404
    finally:
        connection.close()


# ------------------------------------------------------------------------------ request line, headers


@pytest.mark.parametrize(
    ("data", "status"),
    [
        pytest.param(b"GARBAGE\r\n\r\n", 400, id="one-word-request-line"),
        pytest.param(b"GET / HTTP/1.1 extra\r\n\r\n", 400, id="four-word-request-line"),
        pytest.param(b"GET /\r\n", 400, id="no-http-version"),
        pytest.param(b"GET / HTTP/x.y\r\n\r\n", 400, id="bad-http-version"),
        pytest.param(b"G(T / HTTP/1.1\r\n\r\n", 400, id="method-not-a-token"),
        pytest.param(b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414, id="request-line-over-64-KiB"),
        pytest.param(
            b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n", 431, id="header-over-64-KiB"
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(150)) + b"\r\n",
            431,
            id="over-100-headers",
        ),
    ],
)
def test_what_the_server_itself_rejects_is_a_problem_not_an_html_page(
    e2e: E2eRuntime, wire: Wire, data: bytes, status: int
) -> None:
    answer = raw_exchange(wire, data)

    document = answer.problem(status)
    assert str(document["type"]).startswith("urn:async-job:problem:local-"), document
    assert b"<html" not in answer.body.lower()
    assert_still_serving(e2e)


def test_a_method_no_route_has_gets_api_gateways_403_problem(e2e: E2eRuntime, wire: Wire) -> None:
    data = request_bytes(wire, f"PROPFIND {wire.jobs_path} HTTP/1.1", "Content-Length: 0")

    document = raw_exchange(wire, data).problem(403)

    assert document["type"] == "urn:async-job:problem:gateway-MISSING_AUTHENTICATION_TOKEN"
    assert_still_serving(e2e)


def test_empty_lines_before_a_request_are_ignored(e2e: E2eRuntime, wire: Wire) -> None:
    data = b"\r\n\r\n" + request_bytes(
        wire, f"GET {wire.jobs_path}/{uuid.uuid4()} HTTP/1.1", "Connection: close"
    )

    assert raw_exchange(wire, data).status == 404


# ------------------------------------------------------------------------------------------------ body


def test_json_nested_a_thousand_levels_deep_reaches_the_submit_functions_own_answer(e2e: E2eRuntime) -> None:
    # The gateway's body check used to fail with RecursionError here and drop the connection. At 2,000 bytes
    # these are over the e2e app's max_payload_bytes (1,024), so the function answers 413; under the default
    # limit (256 KiB) it answers 400 invalid-json ("nested too deeply": tests/contract, post-400-deep-json).
    for body in (b"[" * 1_000 + b"]" * 1_000, b'{"a":' * 1_000 + b"1" + b"}" * 1_000):
        document = problem_of(e2e.client().submit(body), 413)
        assert document["type"] == "urn:async-job:problem:payload-too-large", document
    assert_still_serving(e2e)


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param("application/json", id="checked-by-the-gateway-model"),
        pytest.param("application/vnd.jobs+json", id="checked-by-the-submit-function"),
    ],
)
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"text": "\xed\xa0\x80"}', id="utf8-encoded-surrogate"),
        pytest.param(b'{"text": "\xff"}', id="invalid-byte"),
        pytest.param(b'{"text": "caf\xe9"}', id="latin-1"),
    ],
)
def test_a_body_that_is_not_utf8_is_a_400_invalid_json_problem_not_a_changed_payload(
    e2e: E2eRuntime, body: bytes, content_type: str
) -> None:
    response = e2e.client().submit(body, content_type=content_type)

    document = problem_of(response, 400)
    assert document["type"] == "urn:async-job:problem:invalid-json", document
    assert "UTF-8" in str(document["detail"]), document
    assert response.header("Location") is None


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"n": 1e400}', id="1e400"),
        pytest.param(b'{"n": -1E400}', id="minus-1E400"),
        pytest.param(b'{"n": NaN}', id="NaN"),
        pytest.param(b'{"n": Infinity}', id="Infinity"),
    ],
)
def test_numbers_json_cannot_carry_are_a_400_invalid_json_problem(e2e: E2eRuntime, body: bytes) -> None:
    response = e2e.client().submit(body)

    assert problem_of(response, 400)["type"] == "urn:async-job:problem:invalid-json"
    assert response.header("Location") is None


@pytest.mark.parametrize("body", [b"{not json", b'{"a": 1', b"'single'", b"\x00"])
def test_a_body_that_is_not_json_gets_the_gateways_invalid_json_problem(e2e: E2eRuntime, body: bytes) -> None:
    document = problem_of(e2e.client().submit(body), 400)

    assert document["type"] == "urn:async-job:problem:invalid-json", document
    assert document["title"] == "Invalid JSON"


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"42", b"null"])
def test_json_that_is_not_an_object_is_a_400_body_not_object_problem(e2e: E2eRuntime, body: bytes) -> None:
    document = problem_of(e2e.client().submit(body), 400)

    assert document["type"] == "urn:async-job:problem:body-not-object", document


# -------------------------------------------------------------------------------------------- identity


@pytest.mark.parametrize("principal", ["", "   "])
def test_an_empty_principal_is_refused_not_taken_for_the_default_caller(
    e2e: E2eRuntime, principal: str
) -> None:
    default_caller = e2e.client(None)
    accepted = default_caller.submit({"mode": "ok", "steps": 1, "delay": 0})
    assert accepted.status == 202, accepted.body

    read = e2e.client(principal).status(accepted.json()["id"])
    submitted = e2e.client(principal).submit({"mode": "ok", "steps": 1, "delay": 0})

    for response in (read, submitted):
        document = problem_of(response, 403)
        assert document["type"] == "urn:async-job:problem:gateway-MISSING_AUTHENTICATION_TOKEN"
        assert "X-Async-Job-Principal" in str(document["detail"]), document
    assert default_caller.status(accepted.json()["id"]).status == 200  # no header: still the default caller


# ------------------------------------------------------------------------------------ gateway problems


def test_api_gateways_own_403_carries_its_status(e2e: E2eRuntime) -> None:
    base = e2e.jobs_url.removesuffix("/jobs")

    document = problem_of(e2e.client().request("GET", base + "/nothing/here"), 403)

    assert document["type"] == "urn:async-job:problem:gateway-MISSING_AUTHENTICATION_TOKEN"
