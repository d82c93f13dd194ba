"""The client against a scripted loopback server: retries, one Idempotency-Key, Retry-After, problems, auth."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from botocore.credentials import Credentials

from async_job_client import (
    PRINCIPAL_HEADER,
    ApiError,
    ApiKey,
    BearerToken,
    JobCancelled,
    JobClient,
    JobFailed,
    LocalCaller,
    RetryPolicy,
    SigV4Auth,
    TransportError,
    WaitTimeout,
)
from async_job_client.auth import region_of
from async_job_client.client import default_auth
from tests.client.scripted import RESET, Answer, Recorded, ScriptedServer, job

ROOT = Path(__file__).resolve().parents[2]
PROBLEM = "application/problem+json"


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    yield scripted
    scripted.close()


class Sleeps(list[float]):
    """Records the client's pauses instead of sleeping them."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client_of(server: ScriptedServer, sleeps: Sleeps, **kwargs: object) -> JobClient:
    return JobClient(server.url, auth=LocalCaller("alice"), sleep=sleeps, **kwargs)  # type: ignore[arg-type]


def test_submit_retried_after_429_sends_one_idempotency_key_on_every_attempt(server: ScriptedServer) -> None:
    server.answer(
        Answer(429, {"title": "Too Many Requests"}, content_type=PROBLEM),
        Answer(429, {"title": "Too Many Requests"}, {"Retry-After": "0"}, content_type=PROBLEM),
        Answer(202, job(), {"Location": "http://x/prod/jobs/1", "Retry-After": "5"}),
    )
    sleeps = Sleeps()

    submitted = client_of(server, sleeps).submit({"n": 1})

    assert submitted.status == "QUEUED"
    assert submitted.retry_after == 5.0
    assert submitted.location == "http://x/prod/jobs/1"
    keys = {request.headers["idempotency-key"] for request in server.requests}
    assert len(server.requests) == 3
    assert len(keys) == 1
    assert re.fullmatch(r"[0-9a-f-]{36}", keys.pop())
    assert [request.path for request in server.requests] == ["/prod/jobs"] * 3
    assert {request.body for request in server.requests} == {b'{"n":1}'}
    assert sleeps[0] <= 0.5  # full jitter on the first backoff (base 0.5 s)
    assert sleeps[1] == 0.0  # Retry-After obeyed


def test_each_submit_call_gets_its_own_key_unless_given(server: ScriptedServer) -> None:
    server.answer(Answer(202, job()), Answer(202, job()), Answer(202, job()))
    client = client_of(server, Sleeps())

    client.submit({}, type="reports")
    client.submit({})
    client.submit({}, idempotency_key="my-key")

    keys = [request.headers["idempotency-key"] for request in server.requests]
    assert keys[0] != keys[1]
    assert keys[2] == "my-key"
    assert server.requests[0].path == "/prod/reports"


def test_503_retry_after_is_obeyed_and_capped(server: ScriptedServer) -> None:
    server.answer(
        Answer(503, {"title": "Service Unavailable"}, {"Retry-After": "2"}, content_type=PROBLEM),
        Answer(503, {"title": "Service Unavailable"}, {"Retry-After": "3600"}, content_type=PROBLEM),
        Answer(202, job()),
    )
    sleeps = Sleeps()

    client_of(server, sleeps).submit({})

    assert sleeps == [2.0, 60.0]


def test_connection_reset_is_retried_with_the_same_key(server: ScriptedServer) -> None:
    server.answer(RESET, RESET, Answer(202, job()))

    client_of(server, Sleeps()).submit({"x": 1})

    assert len(server.requests) == 3
    assert len({request.headers["idempotency-key"] for request in server.requests}) == 1


def test_5xx_is_retried_up_to_max_attempts_then_raised_with_its_problem(server: ScriptedServer) -> None:
    problem = {"type": "urn:async-job:problem:internal-error", "title": "Internal error", "status": 500}
    server.answer(*[Answer(500, problem, content_type=PROBLEM)] * 3)
    sleeps = Sleeps()

    with pytest.raises(ApiError) as raised:
        client_of(server, sleeps, retry=RetryPolicy(max_attempts=3, base_delay=1, max_delay=1.5)).get("id")

    assert raised.value.status == 500
    assert raised.value.type == "urn:async-job:problem:internal-error"
    assert len(server.requests) == 3
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 1  # capped exponential, full jitter
    assert 0 <= sleeps[1] <= 1.5


def test_501_and_4xx_are_not_retried(server: ScriptedServer) -> None:
    server.answer(Answer(501, {"title": "Not Implemented"}, content_type=PROBLEM))

    with pytest.raises(ApiError, match="HTTP 501") as raised:
        client_of(server, Sleeps()).get("id")

    assert raised.value.status == 501
    assert len(server.requests) == 1


def test_problem_document_becomes_api_error_fields(server: ScriptedServer) -> None:
    problem = {
        "type": "urn:async-job:problem:idempotency-key-reused",
        "title": "Idempotency key reused",
        "status": 422,
        "detail": "this key was used with another body",
        "extension": 7,
    }
    server.answer(Answer(422, problem, content_type=PROBLEM))

    with pytest.raises(ApiError) as raised:
        client_of(server, Sleeps()).submit({"a": 1}, idempotency_key="k")

    error = raised.value
    assert (error.status, error.type, error.title, error.detail) == (
        422,
        "urn:async-job:problem:idempotency-key-reused",
        "Idempotency key reused",
        "this key was used with another body",
    )
    assert error.problem["extension"] == 7
    assert error.headers["content-type"] == PROBLEM
    assert len(server.requests) == 1


def test_gateway_problem_without_status_takes_the_status_line(server: ScriptedServer) -> None:
    server.answer(Answer(403, {"type": "urn:async-job:problem:gateway-ACCESS_DENIED", "title": "Forbidden"}))

    with pytest.raises(ApiError) as raised:
        client_of(server, Sleeps()).cancel("id")

    assert raised.value.status == 403
    assert server.requests[0].method == "DELETE"


def test_no_server_raises_transport_error_after_max_attempts() -> None:
    scripted = ScriptedServer()
    url = scripted.url
    scripted.close()  # the port refuses connections now
    sleeps = Sleeps()

    with pytest.raises(TransportError, match="3 attempt"):
        JobClient(url, sleep=sleeps, retry=RetryPolicy(max_attempts=3)).get("id")

    assert len(sleeps) == 2


def test_wait_pauses_as_retry_after_says_within_floor_and_cap(server: ScriptedServer) -> None:
    server.answer(
        Answer(200, job("RUNNING"), {"Retry-After": "0"}),
        Answer(200, job("RUNNING", progress={"percent": 50, "message": "half"}), {"Retry-After": "100"}),
        Answer(200, job("RUNNING"), {"Retry-After": "2"}),
        Answer(200, job("SUCCEEDED", result={"ok": True})),
    )
    sleeps = Sleeps()
    seen: list[tuple[str, float | None]] = []

    finished = client_of(server, sleeps).wait(
        "id", on_progress=lambda j: seen.append((j.status, j.progress and j.progress.percent))
    )

    assert finished.result == {"ok": True}
    assert sleeps == [0.5, 30.0, 2.0]  # the floor, the cap, as advised
    assert seen == [("RUNNING", None), ("RUNNING", 50.0), ("RUNNING", None), ("SUCCEEDED", None)]
    assert [request.path for request in server.requests] == ["/prod/jobs/id"] * 4


def test_wait_times_out_with_the_last_job_read(server: ScriptedServer) -> None:
    server.answer(*[Answer(200, job("RUNNING"), {"Retry-After": "0.1"})] * 20)
    client = JobClient(server.url, min_poll=0.1)
    started = time.monotonic()

    with pytest.raises(WaitTimeout) as raised:
        client.wait("id", timeout=0.35)

    assert raised.value.job.status == "RUNNING"
    assert time.monotonic() - started < 2
    assert 3 <= len(server.requests) <= 6


def test_run_returns_the_result(server: ScriptedServer) -> None:
    server.answer(Answer(202, job(), {"Retry-After": "1"}), Answer(200, job("SUCCEEDED", result=[1, 2])))
    sleeps = Sleeps()

    assert client_of(server, sleeps).run({"go": True}) == [1, 2]
    assert sleeps == [1.0]  # the 202's Retry-After before the first read


def test_run_raises_job_failed_carrying_the_error(server: ScriptedServer) -> None:
    error = {"type": "RuntimeError", "message": "boom"}
    server.answer(Answer(202, job()), Answer(200, job("FAILED", error=error)))

    with pytest.raises(JobFailed, match="RuntimeError: boom") as raised:
        client_of(server, Sleeps()).run({})

    assert raised.value.error == error
    assert raised.value.job.status == "FAILED"


def test_run_raises_job_cancelled(server: ScriptedServer) -> None:
    server.answer(Answer(202, job()), Answer(200, job("CANCELLED")))

    with pytest.raises(JobCancelled):
        client_of(server, Sleeps()).run({})


# --- auth -------------------------------------------------------------------------------------------------------

REGION = "eu-west-1"
CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token-example")
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<scope>\d{8}/[^/]+/[^/]+/aws4_request), "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$"
)


def sigv4_signature(request: Recorded, secret_key: str, scope: str, signed_headers: list[str]) -> str:
    """The signature after the SigV4 specification (canonical request, string to sign, derived key), not botocore."""
    split = urlsplit(request.path)
    canonical_headers = "".join(f"{h}:{' '.join(request.headers[h].split())}\n" for h in signed_headers)
    canonical_request = "\n".join(
        [
            request.method,
            quote(split.path, safe="/-_.~"),
            "&".join(sorted(split.query.split("&"))) if split.query else "",
            canonical_headers,
            ";".join(signed_headers),
            hashlib.sha256(request.body).hexdigest(),
        ]
    )
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            request.headers["x-amz-date"],
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = f"AWS4{secret_key}".encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def check_signed(request: Recorded, region: str = REGION) -> None:
    match = _AUTHORIZATION.match(request.headers["authorization"])
    assert match, request.headers["authorization"]
    assert match["key"] == CREDENTIALS.access_key
    date, signed_region, service, _ = match["scope"].split("/")
    assert (signed_region, service) == (region, "execute-api")
    signed = match["signed"].split(";")
    assert {"host", "x-amz-date", "x-amz-security-token"} <= set(signed)
    assert request.headers["x-amz-security-token"] == CREDENTIALS.token
    stamp = dt.datetime.strptime(request.headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    assert stamp.strftime("%Y%m%d") == date
    assert abs(dt.datetime.now(dt.UTC) - stamp) < dt.timedelta(minutes=5)
    assert match["signature"] == sigv4_signature(request, CREDENTIALS.secret_key, match["scope"], signed)


def test_sigv4_signs_every_attempt_of_submit_get_and_cancel(server: ScriptedServer) -> None:
    server.answer(
        Answer(503, {}, {"Retry-After": "0"}),
        Answer(202, job()),
        Answer(200, job("RUNNING")),
        Answer(200, job("CANCELLED")),
    )
    client = JobClient(server.url, auth=SigV4Auth(region=REGION, credentials=CREDENTIALS), sleep=Sleeps())

    client.submit({"a": "b"})
    client.get("4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21")
    client.cancel("4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21")

    assert [request.method for request in server.requests] == ["POST", "POST", "GET", "DELETE"]
    for request in server.requests:
        check_signed(request)
    assert "idempotency-key" in _AUTHORIZATION.match(server.requests[0].headers["authorization"])["signed"]  # type: ignore[index]


def test_signature_check_refuses_a_tampered_body(server: ScriptedServer) -> None:
    server.answer(Answer(202, job()))
    JobClient(server.url, auth=SigV4Auth(region=REGION, credentials=CREDENTIALS)).submit({"a": 1})
    sent = server.requests[0]
    tampered = Recorded(sent.method, sent.path, sent.headers, b'{"a":2}')

    with pytest.raises(AssertionError):
        check_signed(tampered)


@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://abc123.execute-api.eu-west-1.amazonaws.com/prod", "eu-west-1"),
        ("https://abc123.execute-api.cn-north-1.amazonaws.com.cn/prod", "cn-north-1"),
        ("https://jobs.example.com/prod", None),
    ],
)
def test_region_is_read_from_an_execute_api_url(url: str, region: str | None) -> None:
    assert region_of(url) == region


def test_sigv4_without_a_region_for_a_custom_domain_fails_naming_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    auth = SigV4Auth(credentials=CREDENTIALS)

    with pytest.raises(ValueError, match="pass region="):
        auth.headers("GET", "https://jobs.example.com/prod/jobs/x", {}, None)


def test_bearer_token_callable_is_asked_on_every_request(server: ScriptedServer) -> None:
    server.answer(Answer(200, job()), Answer(200, job()))
    tokens = iter(["t1", "t2"])
    client = JobClient(server.url, auth=BearerToken(lambda: next(tokens)))

    client.get("a")
    client.get("b")

    assert [request.headers["authorization"] for request in server.requests] == ["Bearer t1", "Bearer t2"]


def test_api_key_and_local_caller_headers(server: ScriptedServer) -> None:
    server.answer(Answer(200, job()), Answer(200, job()))

    JobClient(server.url, auth=ApiKey("k-123", also=BearerToken("tok"))).get("a")
    JobClient(server.url, auth=LocalCaller("bob")).get("a")

    first, second = server.requests
    assert (first.headers["x-api-key"], first.headers["authorization"]) == ("k-123", "Bearer tok")
    assert second.headers[PRINCIPAL_HEADER.lower()] == "bob"


def test_default_auth_is_local_for_loopback_and_sigv4_elsewhere() -> None:
    assert isinstance(default_auth("http://127.0.0.1:3000/prod"), LocalCaller)
    assert isinstance(default_auth("http://localhost:3000/prod"), LocalCaller)
    assert isinstance(default_auth("https://abc.execute-api.eu-west-1.amazonaws.com/prod"), SigV4Auth)


def test_principal_header_is_the_runtime_contracts() -> None:
    from lambda_handlers.contract import PRINCIPAL_HEADER as CONTRACT_HEADER

    assert PRINCIPAL_HEADER == CONTRACT_HEADER


def test_package_imports_neither_cdk_nor_runtime_nor_botocore() -> None:
    code = (
        "import sys, async_job_client, async_job_client.cli\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'aws_cdk', 'jsii', 'constructs', 'async_job_local', 'lambda_handlers', 'async_job_construct', 'botocore', 'rich', 'websockets'})\n"
        "print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.stdout.strip() == "[]"


# --- CLI without a server ---------------------------------------------------------------------------------------


def test_cli_help_lists_every_exit_code() -> None:
    from async_job_client.cli import EXIT_CODES, exit_codes_epilog

    text = exit_codes_epilog()
    assert len(set(EXIT_CODES)) == len(EXIT_CODES) == 8
    for code, meaning in EXIT_CODES.items():
        assert f"{code:>3}  {meaning}" in text


@pytest.mark.parametrize(
    "argv",
    [
        ["submit", "http://127.0.0.1:9/prod", "--data", "not json"],
        ["submit", "http://127.0.0.1:9/prod", "--data", "[1]"],
        ["submit", "http://127.0.0.1:9/prod", "--data", "@/nonexistent.json"],
        ["get", "http://127.0.0.1:9/prod", "x", "--auth", "bearer"],
        ["get", "ftp://host/prod", "x"],
        ["get"],
    ],
)
def test_cli_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from async_job_client.cli import main

    assert main(argv) == 2


def test_cli_json_output_of_an_api_error_is_its_problem(
    server: ScriptedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from async_job_client.cli import main

    server.answer(
        Answer(404, {"type": "urn:async-job:problem:job-not-found", "title": "Not found", "status": 404})
    )

    code = main(["get", server.url, "nope", "--output", "json"])

    assert code == 5
    assert json.loads(capsys.readouterr().out)["type"] == "urn:async-job:problem:job-not-found"


def test_run_of_a_60_s_job_at_the_default_retry_after_makes_13_requests() -> None:
    """The construct's default poll_interval (5 s) as Retry-After, a job that ends 60 s after its submit, time
    simulated (the client's pauses advance a clock the scripted API reads): 1 POST + reads at 5, 10, ... 60 s."""
    clock = [0.0]

    class ClockedServer(ScriptedServer):
        pass

    server = ClockedServer()
    try:
        server.answer(Answer(202, job(), {"Retry-After": "5"}))
        for now in range(5, 61, 5):
            status = "SUCCEEDED" if now >= 60 else "RUNNING"
            server.answer(
                Answer(200, job(status, result=now), {} if status == "SUCCEEDED" else {"Retry-After": "5"})
            )

        def sleep(seconds: float) -> None:
            clock[0] += seconds

        jobs = JobClient(server.url, auth=LocalCaller(), sleep=sleep)
        assert jobs.run({}) == 60
    finally:
        server.close()

    assert clock[0] == 60
    assert jobs.requests_sent == len(server.requests) == 13


def test_cli_draws_a_progress_bar_on_a_terminal(server: ScriptedServer) -> None:
    pytest.importorskip("rich")
    import pty

    server.answer(
        Answer(202, job(), {"Retry-After": "0"}),
        Answer(200, job("RUNNING", progress={"percent": 40, "message": "step 4/10"}), {"Retry-After": "0"}),
        Answer(200, job("SUCCEEDED", result={"ok": 1})),
    )
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI on a terminal
        os.environ["PYTHONPATH"] = str(ROOT)
        os.execv(
            sys.executable, [sys.executable, "-m", "async_job_client.cli", "submit", server.url, "--wait"]
        )
    output = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    text = output.decode(errors="replace")

    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "\x1b[" in text  # drawn, not printed line by line
    assert " 40% " in text
    assert "step 4/10" in text
    assert text.rstrip().endswith('SUCCEEDED  result: {"ok": 1}')
