"""examples/quickstart, the app the README shows: synthesized by the pinned CDK CLI as a user would (once per
module: synth is 5-30 s through jsii), its template checked, run end to end by `async-job local` from that very
cloud assembly, its handler called directly, and its SigV4 client checked against a recording HTTP server that
recomputes each signature from the AWS Signature Version 4 specification (not through botocore)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import importlib.util
import json
import os
import re
import socket
import subprocess
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from botocore.credentials import Credentials
from packaging.requirements import Requirement

from lambda_handlers import JobCancelledError, JobContext, JobFailedError
from lambda_handlers.contract import Env

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "examples" / "quickstart"
STACK = "QuickstartReports"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reports = load(QUICKSTART / "jobs" / "reports.py", "quickstart_reports")
call_api = load(QUICKSTART / "call_api.py", "quickstart_call_api")


# --- the app, synthesized -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Synth:
    outdir: Path
    template: dict[str, Any]

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in self.template["Resources"].items() if r["Type"] == kind}


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    cli = ROOT / "node_modules" / ".bin" / "cdk"
    assert cli.exists(), "the pinned CDK CLI is missing: run scripts/setup"
    outdir = tmp_path_factory.mktemp("quickstart") / "cdk.out"
    env = {
        **os.environ,
        # cdk.json says `python3 app.py`: the project's venv provides python3 (and async-job-construct).
        "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "CDK_DISABLE_VERSION_CHECK": "1",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    result = subprocess.run(
        [str(cli), "synth", "--quiet", "--no-notices", "--output", str(outdir)],
        cwd=QUICKSTART,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return Synth(outdir, json.loads((outdir / f"{STACK}.template.json").read_text()))


def test_quickstart_has_one_api_with_its_table_and_queues(synth: Synth) -> None:
    assert len(synth.of_type("AWS::ApiGateway::RestApi")) == 1
    assert len(synth.of_type("AWS::DynamoDB::Table")) == 1
    assert len(synth.of_type("AWS::SQS::Queue")) == 3  # the job queue, its DLQ, the events DLQ
    assert set(synth.template["Outputs"]) >= {"JobsUrl", "CallerRoleArn"}


def test_quickstart_worker_runs_the_examples_handler_from_its_jobs_folder(synth: Synth) -> None:
    workers = [
        f
        for f in synth.of_type("AWS::Lambda::Function").values()
        if Env.HANDLER in f["Properties"]["Environment"]["Variables"]
    ]
    assert len(workers) == 1
    (worker,) = workers
    assert worker["Properties"]["Environment"]["Variables"][Env.HANDLER] == "reports.generate"
    assert worker["Properties"]["Timeout"] == 600
    asset_hash = worker["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    staged = synth.outdir / f"asset.{asset_hash}"
    assert (staged / "reports.py").read_bytes() == (QUICKSTART / "jobs" / "reports.py").read_bytes()
    assert {"Ref": next(iter(synth.of_type("AWS::Lambda::LayerVersion")))} in worker["Properties"]["Layers"]


def test_quickstart_caller_role_may_invoke_the_api(synth: Synth) -> None:
    (caller_id,) = [k for k in synth.of_type("AWS::IAM::Role") if k.startswith("Caller")]
    policies = [
        p["Properties"]
        for p in synth.of_type("AWS::IAM::Policy").values()
        if {"Ref": caller_id} in p["Properties"]["Roles"]
    ]
    actions = {s["Action"] for p in policies for s in p["PolicyDocument"]["Statement"]}
    assert actions == {"execute-api:Invoke"}


def test_quickstart_runs_locally_from_its_cloud_assembly(synth: Synth, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "async-job"),
            "local",
            "--app",
            str(synth.outdir),
            "--port",
            str(port),
            "--submit",
            json.dumps({"accounts": ["acme", "globex"]}),
            "--exit-when-done",
        ],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "SUCCEEDED" in result.stdout
    assert (
        f'"totals": {{"acme": {reports._total("acme")}, "globex": {reports._total("globex")}}}'
        in result.stdout
    )


def test_quickstart_requirements_admit_this_version() -> None:
    lines = [
        line
        for line in (QUICKSTART / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    (requirement,) = [Requirement(line) for line in lines]
    assert requirement.name == "async-job-construct"
    assert requirement.specifier.contains(VERSION), f"{requirement} excludes {VERSION}: bump the example"


def test_quickstart_cdk_json_runs_app_py_with_python3() -> None:
    assert json.loads((QUICKSTART / "cdk.json").read_text())["app"] == "python3 app.py"


# --- the handler ------------------------------------------------------------------------------------------------


class RecordingJob(JobContext):
    """A JobContext that records progress and asks to cancel after ``cancel_after`` reports."""

    __slots__ = ("cancel_after", "reports")

    def __init__(self, cancel_after: int | None = None) -> None:
        super().__init__("4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21")
        self.reports: list[tuple[float, str | None]] = []
        self.cancel_after = cancel_after

    def report_progress(self, percent: float, message: str | None = None) -> None:
        self.reports.append((percent, message))

    @property
    def cancel_requested(self) -> bool:
        return self.cancel_after is not None and len(self.reports) >= self.cancel_after


def test_handler_reports_progress_per_account_and_returns_totals() -> None:
    job = RecordingJob()
    result = reports.generate({"accounts": ["acme", "globex"]}, job)
    assert result == {
        "accounts": 2,
        "totals": {"acme": reports._total("acme"), "globex": reports._total("globex")},
    }
    assert job.reports == [(50.0, "account 1/2"), (100.0, "account 2/2")]


@pytest.mark.parametrize("payload", [{}, {"accounts": []}, {"accounts": "acme"}, {"accounts": [1]}])
def test_handler_fails_the_job_at_once_on_a_bad_payload(payload: dict[str, Any]) -> None:
    with pytest.raises(JobFailedError, match=r"payload\.accounts must be a non-empty list of strings"):
        reports.generate(payload, RecordingJob())


def test_handler_stops_when_cancellation_is_requested() -> None:
    with pytest.raises(JobCancelledError, match="stopped after 1 of 3 accounts"):
        reports.generate({"accounts": ["a", "b", "c"]}, RecordingJob(cancel_after=1))


# --- call_api.py: SigV4 -----------------------------------------------------------------------------------------

REGION = "eu-west-1"
CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token-example")
JOB_ID = "4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21"
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<scope>\d{8}/[^/]+/[^/]+/aws4_request), "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$"
)


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes


def sigv4_signature(request: Recorded, secret_key: str, scope: str, signed_headers: list[str]) -> str:
    """The signature AWS computes for ``request``, after the SigV4 specification (docs.aws.amazon.com, "Create a
    signed AWS API request"): canonical request, string to sign, the derived signing key, HMAC-SHA256."""
    split = urlsplit(request.path)
    query = "&".join(sorted(split.query.split("&"))) if split.query else ""
    canonical_headers = "".join(f"{h}:{' '.join(request.headers[h].split())}\n" for h in signed_headers)
    canonical_request = "\n".join(
        [
            request.method,
            quote(split.path, safe="/-_.~"),
            query,
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
    for part in scope.split("/"):  # date, region, service, "aws4_request"
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def check_signed(request: Recorded, *, region: str = REGION) -> None:
    """Assert ``request`` carries a valid SigV4 signature for execute-api in ``region``, made just now."""
    match = _AUTHORIZATION.match(request.headers["authorization"])
    assert match, request.headers["authorization"]
    assert match["key"] == CREDENTIALS.access_key
    date, signed_region, service, _ = match["scope"].split("/")
    assert (signed_region, service) == (region, "execute-api")
    signed = match["signed"].split(";")
    assert {"host", "x-amz-date", "x-amz-security-token"} <= set(signed)
    assert signed == sorted(signed)
    assert request.headers["x-amz-security-token"] == CREDENTIALS.token
    stamp = dt.datetime.strptime(request.headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    assert stamp.strftime("%Y%m%d") == date
    assert abs(dt.datetime.now(dt.UTC) - stamp) < dt.timedelta(minutes=5)  # AWS refuses an older signature
    assert match["signature"] == sigv4_signature(request, CREDENTIALS.secret_key, match["scope"], signed)


class FakeJobApi(ThreadingHTTPServer):
    """Answers like the deployed API: POST /prod/jobs -> 202 + Location; GET -> RUNNING, then SUCCEEDED."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _FakeJobApiHandler)
        self.recorded: list[Recorded] = []
        self.polls = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/prod/jobs"


class _FakeJobApiHandler(BaseHTTPRequestHandler):
    server: FakeJobApi

    def _answer(self, status: int, job: dict[str, Any], **headers: str) -> None:
        body = json.dumps(job).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _record(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.recorded.append(Recorded(self.command, self.path, headers, body))

    def do_POST(self) -> None:
        self._record()
        if self.path != "/prod/jobs":  # as API Gateway answers a route the caller may not invoke
            problem = {
                "type": "urn:async-job:problem:gateway-ACCESS_DENIED",
                "title": "Forbidden",
                "status": 403,
            }
            self._answer(403, problem)
            return
        location = f"{self.server.url}/{JOB_ID}"
        self._answer(202, {"id": JOB_ID, "status": "QUEUED"}, Location=location, Retry_After="0")

    def do_GET(self) -> None:
        self._record()
        self.server.polls += 1
        if self.server.polls == 1:
            job = {"id": JOB_ID, "status": "RUNNING", "progress": {"percent": 50, "message": "account 1/2"}}
            self._answer(200, job, Retry_After="0")
        else:
            self._answer(200, {"id": JOB_ID, "status": "SUCCEEDED", "result": {"accounts": 2}})

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def fake_api() -> Iterator[FakeJobApi]:
    server = FakeJobApi()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def test_call_api_signs_the_submit_and_every_poll_for_execute_api(fake_api: FakeJobApi) -> None:
    sleeps: list[float] = []
    job = call_api.submit_and_wait(
        fake_api.url,
        {"accounts": ["acme", "globex"]},
        credentials=CREDENTIALS,
        region=REGION,
        sleep=sleeps.append,
    )
    assert job["status"] == "SUCCEEDED"
    assert sleeps == [0.0, 0.0]  # the Retry-After of each answer
    post, *polls = fake_api.recorded
    assert (post.method, post.path) == ("POST", "/prod/jobs")
    assert json.loads(post.body) == {"accounts": ["acme", "globex"]}
    assert "content-type" in post.headers["authorization"]  # the content type is signed too
    assert [(p.method, p.path) for p in polls] == [("GET", f"/prod/jobs/{JOB_ID}")] * 2
    for request in fake_api.recorded:
        check_signed(request)


def test_signature_check_refuses_a_tampered_request(fake_api: FakeJobApi) -> None:
    call_api.call("POST", fake_api.url, {"accounts": ["acme"]}, credentials=CREDENTIALS, region=REGION)
    (signed,) = fake_api.recorded
    check_signed(signed)
    tampered = Recorded(signed.method, signed.path, signed.headers, b'{"accounts": ["globex"]}')
    with pytest.raises(AssertionError):
        check_signed(tampered)
    with pytest.raises(AssertionError):
        check_signed(signed, region="us-east-1")


@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://abc123defg.execute-api.eu-west-1.amazonaws.com/prod/jobs", "eu-west-1"),
        ("https://abc123defg.execute-api.cn-north-1.amazonaws.com.cn/prod/jobs", "cn-north-1"),
        ("https://abc123defg.execute-api.us-gov-west-1.amazonaws.com/prod/jobs/x", "us-gov-west-1"),
        ("https://jobs.example.com/jobs", None),
        ("http://127.0.0.1:3000/jobs", None),
    ],
)
def test_call_api_reads_the_region_from_the_api_url(url: str, region: str | None) -> None:
    assert call_api.region_of(url) == region


def test_call_api_raises_naming_the_status_of_a_refused_submit(fake_api: FakeJobApi) -> None:
    with pytest.raises(RuntimeError, match=r"POST \S+/prod/denied answered 403: .*gateway-ACCESS_DENIED"):
        call_api.submit_and_wait(
            fake_api.url.replace("/jobs", "/denied"), {}, credentials=CREDENTIALS, region=REGION
        )
