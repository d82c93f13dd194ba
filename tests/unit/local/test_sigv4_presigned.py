"""SigV4 signatures presigned in the query string (how a WebSocket ``$connect`` is signed), verified as API
Gateway verifies them: URLs presigned by botocore's ``SigV4QueryAuth`` (an implementation that is not ours)."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from async_job_local.sigv4 import LocalCredential, SignatureRejectedError, SignedRequest, verify_presigned

REGION = "us-east-1"
ALICE = LocalCredential("AKIDALICE", "alice-secret", "arn:aws:iam::123456789012:user/alice")
SESSION = LocalCredential(
    "ASIASESSION", "session-secret", "arn:aws:sts::123456789012:assumed-role/Ops/ci", session_token="tok"
)
KNOWN = {ALICE.access_key_id: ALICE, SESSION.access_key_id: SESSION}
URL = "http://127.0.0.1:3001/prod"


def presigned(
    credentials: Credentials, url: str = URL, expires: int = 60, region: str = REGION
) -> SignedRequest:
    request = AWSRequest(method="GET", url=url)
    SigV4QueryAuth(credentials, "execute-api", region, expires=expires).add_auth(request)
    split = urlsplit(request.url)
    return SignedRequest("GET", split.path, split.query, [("Host", split.netloc)], b"")


def verify(request: SignedRequest, now: dt.datetime | None = None) -> str:
    return verify_presigned(request, KNOWN, region=REGION, now=now or dt.datetime.now(dt.UTC)).arn


def test_a_url_presigned_by_botocore_is_verified_and_names_its_signer() -> None:
    assert verify(presigned(Credentials("AKIDALICE", "alice-secret"))) == ALICE.arn
    assert verify(presigned(Credentials("ASIASESSION", "session-secret", "tok"))) == SESSION.arn
    assert verify(presigned(Credentials("AKIDALICE", "alice-secret"), url=URL + "?token=x")) == ALICE.arn


@pytest.mark.parametrize(
    ("request_of", "response_type", "message"),
    [
        (
            lambda: SignedRequest("GET", "/prod", "", [("Host", "127.0.0.1:3001")], b""),
            "MISSING_AUTHENTICATION_TOKEN",
            "Missing",
        ),
        (lambda: presigned(Credentials("AKIDNOBODY", "x")), "ACCESS_DENIED", "security token"),
        (
            lambda: presigned(Credentials("ASIASESSION", "session-secret", "other")),
            "ACCESS_DENIED",
            "security token",
        ),
        (lambda: presigned(Credentials("AKIDALICE", "wrong")), "INVALID_SIGNATURE", "does not match"),
        (
            lambda: presigned(Credentials("AKIDALICE", "alice-secret"), region="eu-west-1"),
            "INVALID_SIGNATURE",
            "region",
        ),
    ],
)
def test_fails_if_the_presigned_request_is_not_a_known_signers(
    request_of: object, response_type: str, message: str
) -> None:
    with pytest.raises(SignatureRejectedError) as rejected:
        verify(request_of())  # type: ignore[operator]
    assert rejected.value.response_type == response_type
    assert rejected.value.status == 403
    assert message in rejected.value.message


def test_fails_if_the_presigned_url_has_expired_or_was_changed() -> None:
    signed = presigned(Credentials("AKIDALICE", "alice-secret"), expires=30)
    with pytest.raises(SignatureRejectedError, match="Signature expired"):
        verify(signed, now=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=90))
    moved = SignedRequest("GET", "/other", signed.query, signed.headers, b"")
    with pytest.raises(SignatureRejectedError, match="does not match"):
        verify(moved)
    other_host = SignedRequest("GET", signed.path, signed.query, [("Host", "127.0.0.1:9999")], b"")
    with pytest.raises(SignatureRejectedError, match="does not match"):
        verify(other_host)
