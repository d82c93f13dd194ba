"""Large results, saved files and large payloads through the API's bucket, on the real local runtime.

The e2e app's ``objects`` job type (``e2e_jobs.objects``) takes bodies up to 4 MiB, saves the files a payload
names and returns a result of the size it asks for. Every byte is checked after the trip: a 5 MB result through
``GET /jobs/{id}/result`` (its ``303`` to a presigned link fetched with curl and with the client), a 3 MB payload
reaching its handler unchanged, a file listed and downloaded.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from async_job_client import ApiError, JobClient, LocalCaller
from tests.e2e.conftest import E2E_APP, ROOT, CliProcess, E2eRuntime, free_port
from tests.e2e.e2e_app.e2e_settings import OBJECTS_TYPE

FIVE_MB = 5 * 1000 * 1000


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("objects-e2e")
    cli = CliProcess(
        "--app",
        str(E2E_APP.relative_to(ROOT)),
        "--port",
        str(free_port()),
        "--output",
        str(work / "cdk.out"),
        "--log-file",
        str(work / "functions.log"),
    )
    try:
        runtime = E2eRuntime(cli, work / "cdk.out", work / "functions.log")
        yield runtime.jobs_url.removesuffix("/jobs")
    finally:
        cli.stop()


@pytest.fixture
def jobs(base_url: str) -> JobClient:
    return JobClient(base_url, auth=LocalCaller("objects-tester"), timeout=60)


def _get_without_redirect(url: str) -> tuple[int, dict[str, str], bytes]:
    class Keep(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    request = urllib.request.Request(url, headers={"X-Async-Job-Principal": "objects-tester"})
    try:
        with urllib.request.build_opener(Keep()).open(request, timeout=60) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers.items()), error.read()


def test_a_5_mb_result_is_fetched_through_result_byte_for_byte(jobs: JobClient) -> None:
    expected = json.dumps("x" * (FIVE_MB - 2)).encode()

    submitted = jobs.submit({"result_bytes": FIVE_MB}, type=OBJECTS_TYPE)
    finished = jobs.wait(submitted.id, timeout=120)

    assert finished.status == "SUCCEEDED", finished.error
    assert not finished.result_inline
    assert finished.result_url is not None
    # The API answers 303 to a presigned link; curl fetches it without any credentials of the API
    status, headers, body = _get_without_redirect(finished.result_url)
    assert status == 303
    assert body == b""
    curl = shutil.which("curl")
    assert curl is not None, "curl is needed to fetch the presigned link as a user would"
    fetched = subprocess.run(
        [curl, "-sS", "--fail", headers["Location"]], capture_output=True, timeout=60, check=True
    )
    assert hashlib.sha256(fetched.stdout).hexdigest() == hashlib.sha256(expected).hexdigest()
    assert len(fetched.stdout) == FIVE_MB
    # AND the client does the same: result() follows the redirect, run() returns the whole result
    assert jobs.result(submitted.id) == "x" * (FIVE_MB - 2)


def test_run_returns_a_result_kept_in_the_bucket(jobs: JobClient) -> None:
    result = jobs.run({"result_bytes": 600_000}, type=OBJECTS_TYPE, timeout=120)

    assert result == "x" * 599_998


def test_a_3_mb_payload_reaches_its_handler_unchanged(jobs: JobClient) -> None:
    payload = {"rows": [f"row {index:07d} " + "p" * 90 for index in range(30_000)]}
    sent = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    assert len(sent) > 3_000_000

    result = jobs.run(payload, type=OBJECTS_TYPE, timeout=120)

    assert result == {"payloadSha256": hashlib.sha256(sent).hexdigest(), "payloadBytes": len(sent)}


def test_a_saved_file_is_listed_and_downloaded(jobs: JobClient) -> None:
    text = "account,total\nacme,12\n" * 1000

    submitted = jobs.submit({"files": {"report.csv": text}}, type=OBJECTS_TYPE)
    finished = jobs.wait(submitted.id, timeout=120)

    assert finished.status == "SUCCEEDED", finished.error
    (listed,) = finished.files
    assert (listed.name, listed.size, listed.content_type) == ("report.csv", len(text), "text/plain")
    assert jobs.download(listed) == text.encode()
    with urllib.request.urlopen(listed.url, timeout=60) as response:  # a plain GET of the link, as a browser
        assert response.read() == text.encode()
        assert "report.csv" in response.headers.get("Content-Disposition", "")


def test_result_of_an_unfinished_job_is_a_409(jobs: JobClient) -> None:
    submitted = jobs.submit({"mode": "sleep", "seconds": 1.5})

    with pytest.raises(ApiError) as raised:
        jobs.result(submitted.id)

    assert (raised.value.status, raised.value.type) == (409, "urn:async-job:problem:job-not-succeeded")
