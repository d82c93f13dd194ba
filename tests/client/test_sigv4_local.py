"""The real client's SigV4 signing, checked by the local runtime's verifier (``async-job local --sigv4-credentials``).

The e2e app's job routes use IAM authorization (the construct's default): with the option, every request to them
must be signed by a credential of the file, and the job's owner is the signer.
"""

from __future__ import annotations

import http.client
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from botocore.credentials import Credentials

from async_job_client import ApiError, JobClient, LocalCaller, SigV4Auth
from tests.e2e.conftest import E2E_APP, ROOT, CliProcess, E2eRuntime, free_port

#: The embedded backend's region (no --region): the region signatures are scoped to.
REGION = "us-east-1"
ALICE = {
    "accessKeyId": "AKIDLOCALALICE",
    "secretAccessKey": "alice-secret",
    "arn": "arn:aws:iam::111122223333:user/alice",
}
BOB = {
    "accessKeyId": "ASIALOCALBOB",
    "secretAccessKey": "bob-secret",
    "arn": "arn:aws:sts::111122223333:assumed-role/Reader/bob",
    "sessionToken": "bob-session-token",
}
PROBLEM = "urn:async-job:problem:gateway-"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2eRuntime]:
    work = tmp_path_factory.mktemp("sigv4-local")
    credentials = work / "credentials.json"
    credentials.write_text(json.dumps([ALICE, BOB]))
    log_file = work / "functions.log"
    cli = CliProcess(
        "--app",
        str(E2E_APP.relative_to(ROOT)),
        "--port",
        str(free_port()),
        "--output",
        str(work / "cdk.out"),
        "--concurrency",
        "1",
        "--log-file",
        str(log_file),
        "--sigv4-credentials",
        str(credentials),
    )
    try:
        yield E2eRuntime(cli, work / "cdk.out", log_file)
    finally:
        cli.stop()


@pytest.fixture(scope="module")
def base_url(runtime: E2eRuntime) -> str:
    return runtime.jobs_url.removesuffix("/jobs")


def signed(base_url: str, entry: dict[str, str], secret: str | None = None) -> JobClient:
    credentials = Credentials(
        entry["accessKeyId"], secret or entry["secretAccessKey"], entry.get("sessionToken")
    )
    return JobClient(base_url, auth=SigV4Auth(region=REGION, credentials=credentials), timeout=15)


def test_the_startup_output_says_signatures_are_verified(runtime: E2eRuntime) -> None:
    assert "SigV4 signatures of 2 credential(s)" in runtime.cli.output
    assert f"region {REGION}" in runtime.cli.output


def test_a_signed_client_submits_and_waits_and_owns_its_job(base_url: str) -> None:
    alice = signed(base_url, ALICE)

    submitted = alice.submit({"mode": "ok", "steps": 2, "delay": 0.2})
    finished = alice.wait(submitted.id, timeout=60)

    assert finished.status == "SUCCEEDED"
    with pytest.raises(ApiError) as other_signer:
        signed(base_url, BOB).get(submitted.id)
    assert (other_signer.value.status, other_signer.value.type) == (
        404,
        "urn:async-job:problem:job-not-found",
    )


def test_a_session_credential_signs_with_its_token(base_url: str) -> None:
    bob = signed(base_url, BOB)

    submitted = bob.submit({"mode": "ok", "steps": 1})

    assert bob.get(submitted.id).id == submitted.id


def test_a_wrong_secret_is_refused_as_an_invalid_signature(base_url: str) -> None:
    with pytest.raises(ApiError) as raised:
        signed(base_url, ALICE, secret="not-the-secret").submit({"mode": "ok"})

    assert (raised.value.status, raised.value.type) == (403, PROBLEM + "INVALID_SIGNATURE")
    assert "does not match the signature you provided" in (raised.value.detail or "")


def test_an_unknown_access_key_is_refused(base_url: str) -> None:
    stranger = {"accessKeyId": "AKIDSTRANGER", "secretAccessKey": "s"}

    with pytest.raises(ApiError) as raised:
        signed(base_url, stranger).get(str(uuid.uuid4()))

    assert (raised.value.status, raised.value.type) == (403, PROBLEM + "ACCESS_DENIED")


def test_the_principal_header_is_no_way_around_the_signature(base_url: str) -> None:
    # The caller header that names a caller without the option is refused: no signature, no call.
    with pytest.raises(ApiError) as raised:
        JobClient(base_url, auth=LocalCaller(ALICE["arn"]), timeout=15).submit({"mode": "ok"})

    assert (raised.value.status, raised.value.type) == (403, PROBLEM + "MISSING_AUTHENTICATION_TOKEN")


def test_a_signed_request_naming_another_principal_is_the_signers(base_url: str) -> None:
    alice = signed(base_url, ALICE)
    submitted = alice.submit({"mode": "ok", "steps": 1})
    as_bob = SigV4Auth(
        region=REGION,
        credentials=Credentials(BOB["accessKeyId"], BOB["secretAccessKey"], BOB["sessionToken"]),
    )
    url = f"{base_url}/jobs/{submitted.id}"
    headers = as_bob.headers("GET", url, {"X-Async-Job-Principal": ALICE["arn"]}, None)

    status, _ = _send("GET", url, headers)

    assert status == 404  # Bob's request, whatever the header says: Alice's job is not his


def _send(method: str, url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    split = urlsplit(url)
    connection = http.client.HTTPConnection(split.hostname or "127.0.0.1", split.port, timeout=15)
    try:
        connection.request(method, split.path, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def test_credentials_file_errors_stop_the_cli_before_it_synthesizes(tmp_path: Path) -> None:
    broken = tmp_path / "credentials.json"
    broken.write_text(json.dumps([ALICE, ALICE]))
    cli = CliProcess(
        "--app",
        str(E2E_APP.relative_to(ROOT)),
        "--port",
        str(free_port()),
        "--sigv4-credentials",
        str(broken),
    )

    code = cli.wait(30)

    assert code == 2
    assert f"{broken}: entry 1: accessKeyId 'AKIDLOCALALICE' is also entry 0's" in cli.output
    assert "synthesizing" not in cli.output
