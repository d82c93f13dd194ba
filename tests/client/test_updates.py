"""The client's live updates without a server: the ``Link`` header, the order of a job's states, how each auth
opens the WebSocket (a SigV4 presign checked by the local runtime's verifier, not by botocore), and that
``push=False`` or a missing link polls."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from botocore.credentials import Credentials

from async_job_client import ApiKey, BearerToken, Job, JobClient, LocalCaller, Progress, SigV4Auth
from async_job_client.client import updates_link
from async_job_client.updates import connection_request
from async_job_local.sigv4 import LocalCredential, SignedRequest, verify_presigned
from tests.client.scripted import Answer, ScriptedServer, job

WSS = "wss://abc123defg.execute-api.eu-west-1.amazonaws.com/prod"


def test_the_updates_link_is_read_from_a_link_header() -> None:
    assert updates_link(f'<{WSS}>; rel="updates"') == WSS
    assert updates_link(f'<https://x/jobs?page=2>; rel="next", <{WSS}>; rel=updates') == WSS
    assert updates_link(f'<{WSS}>; title="x"; rel="alternate updates"') == WSS
    assert updates_link('<https://x/jobs?page=2>; rel="next"') is None
    assert updates_link(None) is None


def test_a_later_state_is_newer_and_the_same_state_is_not() -> None:
    queued = Job("j", "QUEUED", updated_at="2026-12-01T10:00:00.000Z")
    running = Job("j", "RUNNING", updated_at="2026-12-01T10:00:01.000Z")
    at_half = Job("j", "RUNNING", progress=Progress(50), updated_at="2026-12-01T10:00:02.000Z")
    done = Job("j", "SUCCEEDED", updated_at="2026-12-01T10:00:03.000Z")
    assert running.is_newer_than(queued)
    assert at_half.is_newer_than(running)
    assert done.is_newer_than(at_half)
    assert not at_half.is_newer_than(done)
    assert not at_half.is_newer_than(
        Job("j", "RUNNING", progress=Progress(50), updated_at=at_half.updated_at)
    )
    # a terminal state is never followed by an older one, whatever the clocks say
    assert not Job("j", "RUNNING", updated_at="2027-01-01T00:00:00.000Z").is_newer_than(done)


def test_each_auth_opens_the_websocket_its_way() -> None:
    assert connection_request(WSS, LocalCaller("alice")) == (WSS, {"X-Async-Job-Principal": "alice"})
    assert connection_request(WSS, BearerToken("t0k")) == (WSS, {"Authorization": "Bearer t0k"})
    assert connection_request(WSS, ApiKey("k3y")) == (WSS, {"x-api-key": "k3y"})
    assert connection_request(WSS, ApiKey("k3y", also=BearerToken("t0k"))) == (
        WSS,
        {"x-api-key": "k3y", "Authorization": "Bearer t0k"},
    )


def test_sigv4_presigns_the_connect_url_as_the_verifier_accepts() -> None:
    # GIVEN alice's credentials
    auth = SigV4Auth(credentials=Credentials("AKIDALICE", "alice-secret", "session-1"))

    # WHEN the connect URL is made
    url, headers = connection_request(WSS, auth)

    # THEN it is the wss URL with a presigned query that an independent verifier accepts
    split = urlsplit(url)
    assert split.scheme == "wss"
    assert headers == {}
    assert "X-Amz-Signature=" in split.query
    alice = LocalCredential("AKIDALICE", "alice-secret", "arn:aws:iam::123456789012:user/alice", "session-1")
    request = SignedRequest("GET", split.path, split.query, [("Host", split.netloc)], b"")
    signer = verify_presigned(
        request, {alice.access_key_id: alice}, region="eu-west-1", now=dt.datetime.now(dt.UTC)
    )
    assert signer.arn == alice.arn


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    yield scripted
    scripted.close()


def _linked(status: str, websocket: str, updated_at: str) -> Answer:
    return Answer(200, job(status, updatedAt=updated_at), {"Link": f'<{websocket}>; rel="updates"'})


def test_push_false_polls_though_the_api_links_a_websocket(server: ScriptedServer) -> None:
    # GIVEN an API whose answers link a WebSocket (nothing listens there)
    websocket = f"ws://127.0.0.1:{_free_port()}/prod"
    server.answer(
        _linked("RUNNING", websocket, "2026-12-01T10:00:01.000Z"),
        _linked("SUCCEEDED", websocket, "2026-12-01T10:00:02.000Z"),
    )
    client = JobClient(server.url, auth=LocalCaller("alice"), push=False, sleep=lambda _: None)

    # WHEN a client with push off waits
    finished = client.wait(job()["id"])

    # THEN it read the job twice and never connected
    assert finished.status == "SUCCEEDED"
    assert finished.updates_url == websocket
    assert [request.method for request in server.requests] == ["GET", "GET"]
    assert client.updates_connections == 0


def test_a_websocket_that_cannot_be_reached_falls_back_to_a_read_at_once(server: ScriptedServer) -> None:
    # GIVEN an API that links a WebSocket nothing listens on
    websocket = f"ws://127.0.0.1:{_free_port()}/prod"
    server.answer(
        _linked("RUNNING", websocket, "2026-12-01T10:00:01.000Z"),
        _linked("SUCCEEDED", websocket, "2026-12-01T10:00:02.000Z"),
    )
    pauses: list[float] = []
    shown: list[str] = []
    client = JobClient(server.url, auth=LocalCaller("alice"), sleep=pauses.append)

    # WHEN it waits with push on
    finished = client.wait(job()["id"], on_progress=lambda j: shown.append(j.status))

    # THEN the failed connection was replaced by a GET at once (no pause before it), which found the end
    assert finished.status == "SUCCEEDED"
    assert client.updates_connections == 1
    assert [request.method for request in server.requests] == ["GET", "GET"]
    assert pauses == []
    assert shown == ["RUNNING", "SUCCEEDED"]
