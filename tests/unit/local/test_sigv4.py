"""The local SigV4 verifier: AWS's published example, botocore-signed requests, and every tampering refused."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from async_job_local.api_spec import RouteSpec
from async_job_local.request_checks import gateway_rejection, signature_check
from async_job_local.sigv4 import (
    CredentialsFileError,
    LocalCredential,
    SignatureRejectedError,
    SignedRequest,
    Signer,
    SigV4Verifier,
    canonical_query,
    canonical_uri,
    load_credentials,
    verify_signature,
)
from lambda_handlers.contract import PRINCIPAL_HEADER

REGION = "eu-west-1"
HOST = "127.0.0.1:3000"
ALICE = LocalCredential("AKIDALICE", "alice-secret", "arn:aws:iam::111122223333:user/alice")
ROLE = LocalCredential(
    "ASIAROLE", "role-secret", "arn:aws:sts::444455556666:assumed-role/Deployer/ci", session_token="tok-123"
)
CREDENTIALS = {c.access_key_id: c for c in (ALICE, ROLE)}


def sign(
    method: str = "GET",
    path: str = "/prod/jobs/42",
    query: str = "",
    body: bytes = b"",
    *,
    credential: LocalCredential = ALICE,
    secret: str | None = None,
    region: str = REGION,
    service: str = "execute-api",
    headers: Mapping[str, str] | None = None,
) -> SignedRequest:
    """A request signed by botocore (what async_job_client.SigV4Auth sends), as the server receives it."""
    url = f"http://{HOST}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    creds = Credentials(
        credential.access_key_id, secret or credential.secret_access_key, credential.session_token
    )
    SigV4Auth(creds, service, region).add_auth(request)
    received = [("Host", HOST), *request.headers.items()]
    return SignedRequest(method, path, query, received, body)


def verify(request: SignedRequest, now: dt.datetime | None = None) -> Signer:
    return verify_signature(request, CREDENTIALS, region=REGION, now=now or dt.datetime.now(dt.UTC))


def rejected(request: SignedRequest, now: dt.datetime | None = None) -> SignatureRejectedError:
    with pytest.raises(SignatureRejectedError) as raised:
        verify(request, now)
    return raised.value


def replace_header(request: SignedRequest, name: str, value: str | None) -> SignedRequest:
    kept = [(key, v) for key, v in request.headers if key.lower() != name.lower()]
    headers = kept if value is None else [*kept, (name, value)]
    return SignedRequest(request.method, request.path, request.query, headers, request.body)


def test_aws_published_example_verifies() -> None:
    # GIVEN the example of AWS's "Signature Version 4 signing process" (IAM ListUsers, 2015-08-30)
    example = LocalCredential(
        "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "arn:aws:iam::123456789012:user/example"
    )
    authorization = (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, "
        "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
    )
    headers = [
        ("Host", "iam.amazonaws.com"),
        ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
        ("X-Amz-Date", "20150830T123600Z"),
        ("Authorization", authorization),
    ]
    request = SignedRequest("GET", "/", "Action=ListUsers&Version=2010-05-08", headers, b"")
    when = dt.datetime(2015, 8, 30, 12, 36, tzinfo=dt.UTC)

    # WHEN it is verified at its own time THEN its signer is the example's
    signer = verify_signature(request, {"AKIDEXAMPLE": example}, region="us-east-1", now=when, service="iam")
    assert signer == Signer("arn:aws:iam::123456789012:user/example", "AKIDEXAMPLE", "123456789012")

    # AND one changed signature digit is refused
    tampered = replace_header(request, "Authorization", authorization[:-1] + "8")
    with pytest.raises(SignatureRejectedError) as raised:
        verify_signature(tampered, {"AKIDEXAMPLE": example}, region="us-east-1", now=when, service="iam")
    assert raised.value.response_type == "INVALID_SIGNATURE"


@pytest.mark.parametrize(
    ("method", "path", "query", "body"),
    [
        ("GET", "/prod/jobs/42", "", b""),
        ("GET", "/prod/jobs", "status=RUNNING&limit=10&limit=2&next=a%2Fb%20c&flag", b""),
        ("POST", "/prod/reports", "", b'{"seconds": 2, "name": "caf\xc3\xa9"}'),
        ("POST", "/prod/jobs", "dry-run=true", b"\x00\xffbinary"),
        ("DELETE", "/prod/jobs/a%20b%3Ac", "", b""),
        ("GET", "/prod/jobs/~user_1.x-y", "a=~-_.", b""),
    ],
)
def test_botocore_signed_requests_verify(method: str, path: str, query: str, body: bytes) -> None:
    request = sign(method, path, query, body, headers={"Content-Type": "application/json"})

    assert verify(request) == Signer(ALICE.arn, "AKIDALICE", "111122223333")


def test_a_session_credential_verifies_with_its_token() -> None:
    signer = verify(sign(credential=ROLE))

    assert signer.arn == ROLE.arn
    assert signer.account_id == "444455556666"
    assert signer.caller.startswith("AROA")
    assert signer.caller.endswith(":ci")


def test_a_missing_authorization_header_is_a_missing_authentication_token() -> None:
    request = replace_header(sign(), "Authorization", None)

    assert rejected(request).rejection == (
        "MISSING_AUTHENTICATION_TOKEN",
        403,
        "Missing Authentication Token",
        None,
    )


def test_a_wrong_signature_is_answered_with_aws_message_and_the_canonical_request() -> None:
    error = rejected(sign(secret="not-alice-secret"))

    assert (error.response_type, error.status) == ("INVALID_SIGNATURE", 403)
    assert error.message.startswith(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
        "Access Key and signing method."
    )
    assert "GET\n/prod/jobs/42\n" in error.message


def _tamper_body(request: SignedRequest) -> SignedRequest:
    return SignedRequest(request.method, request.path, request.query, request.headers, request.body + b" ")


def _tamper_path(request: SignedRequest) -> SignedRequest:
    return SignedRequest(request.method, "/prod/jobs/43", request.query, request.headers, request.body)


def _tamper_query(request: SignedRequest) -> SignedRequest:
    return SignedRequest(request.method, request.path, "limit=11", request.headers, request.body)


def _tamper_method(request: SignedRequest) -> SignedRequest:
    return SignedRequest("PUT", request.path, request.query, request.headers, request.body)


def _tamper_signed_header(request: SignedRequest) -> SignedRequest:
    return replace_header(request, "Content-Type", "text/plain")


def _add_signed_header_twice(request: SignedRequest) -> SignedRequest:
    return SignedRequest(
        request.method, request.path, request.query, [*request.headers, ("Content-Type", "x")], request.body
    )


@pytest.mark.parametrize(
    "tamper",
    [
        _tamper_body,
        _tamper_path,
        _tamper_query,
        _tamper_method,
        _tamper_signed_header,
        _add_signed_header_twice,
    ],
)
def test_every_tampering_with_what_is_signed_is_refused(tamper: Any) -> None:
    request = sign(
        "POST", "/prod/jobs/42", "limit=10", b'{"a": 1}', headers={"Content-Type": "application/json"}
    )
    assert verify(request).arn == ALICE.arn

    error = rejected(tamper(request))

    assert (error.response_type, error.status) == ("INVALID_SIGNATURE", 403)
    assert "does not match the signature you provided" in error.message


def test_an_unsigned_header_may_change() -> None:
    request = sign()

    assert verify(replace_header(request, "User-Agent", "curl/8")).arn == ALICE.arn


@pytest.mark.parametrize(
    ("region", "service", "message"),
    [
        ("us-east-1", "execute-api", "Credential should be scoped to a valid region"),
        (REGION, "lambda", "Credential should be scoped to correct service: 'execute-api'."),
    ],
)
def test_a_credential_scoped_to_another_region_or_service_is_refused(
    region: str, service: str, message: str
) -> None:
    error = rejected(sign(region=region, service=service))

    assert (error.response_type, error.status) == ("INVALID_SIGNATURE", 403)
    assert message in error.message


@pytest.mark.parametrize(
    ("skew", "message"),
    [
        (dt.timedelta(minutes=6), "Signature expired: "),
        (dt.timedelta(minutes=-6), "Signature not yet current: "),
    ],
)
def test_a_request_time_more_than_five_minutes_from_now_is_refused(skew: dt.timedelta, message: str) -> None:
    request = sign()

    error = rejected(request, now=dt.datetime.now(dt.UTC) + skew)

    assert (error.response_type, error.status) == ("INVALID_SIGNATURE", 403)
    assert error.message.startswith(message)
    assert "5 min.)" in error.message


def test_a_request_time_within_five_minutes_verifies() -> None:
    request = sign()

    assert verify(request, now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=4)).arn == ALICE.arn
    assert verify(request, now=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=4)).arn == ALICE.arn


def test_a_scope_date_other_than_the_request_date_is_refused() -> None:
    request = sign()
    authorization = dict(request.headers)["Authorization"]
    today = dict(request.headers)["X-Amz-Date"][:8]
    moved = replace_header(request, "Authorization", authorization.replace(f"/{today}/", "/20200101/"))

    error = rejected(moved)

    assert error.response_type == "INVALID_SIGNATURE"
    assert "Date in Credential scope does not match" in error.message


def test_a_signature_without_host_among_its_signed_headers_is_refused() -> None:
    request = sign()
    authorization = dict(request.headers)["Authorization"]
    without_host = replace_header(request, "Authorization", authorization.replace("host;", ""))

    error = rejected(without_host)

    assert error.response_type == "INVALID_SIGNATURE"
    assert "'Host' or ':authority' must be a 'SignedHeader'" in error.message


def test_a_request_without_a_date_is_refused() -> None:
    error = rejected(replace_header(sign(), "X-Amz-Date", None))

    assert error.response_type == "INVALID_SIGNATURE"
    assert "either a 'X-Amz-Date' or a 'Date' header" in error.message


@pytest.mark.parametrize("token", [None, "tok-999", "tok-123 "])
def test_a_session_credential_without_its_exact_token_is_refused(token: str | None) -> None:
    request = replace_header(sign(credential=ROLE), "X-Amz-Security-Token", token)

    assert rejected(request).rejection[:3] == (
        "ACCESS_DENIED",
        403,
        "The security token included in the request is invalid.",
    )


def test_a_long_term_key_with_a_session_token_is_refused() -> None:
    request = replace_header(sign(), "X-Amz-Security-Token", "anything")

    assert rejected(request).response_type == "ACCESS_DENIED"


def test_an_unknown_access_key_is_refused_as_an_invalid_security_token() -> None:
    stranger = LocalCredential("AKIDSTRANGER", "s", "arn:aws:iam::111122223333:user/mallory")

    assert rejected(sign(credential=stranger)).rejection[:3] == (
        "ACCESS_DENIED",
        403,
        "The security token included in the request is invalid.",
    )


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        ("Bearer abc.def", "Authorization header requires 'Credential' parameter."),
        ("AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00", "requires 'Credential' parameter."),
        (
            "AWS4-HMAC-SHA256 Credential=AKIDALICE/20250101, SignedHeaders=host, Signature=00",
            "Credential should be",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=A/B/C/D/E, SignedHeaders=host;x-amz-date",
            "requires 'Signature' parameter.",
        ),
    ],
)
def test_a_malformed_authorization_header_is_refused(authorization: str, message: str) -> None:
    error = rejected(replace_header(sign(), "Authorization", authorization))

    assert (error.response_type, error.status) == ("INVALID_SIGNATURE", 403)
    assert message in error.message


def test_a_content_sha256_header_must_state_the_bodys_hash() -> None:
    good = hashlib.sha256(b"{}").hexdigest()
    signed = sign("POST", body=b"{}", headers={"X-Amz-Content-SHA256": good})
    assert verify(signed).arn == ALICE.arn

    lying = sign("POST", body=b"{}", headers={"X-Amz-Content-SHA256": hashlib.sha256(b"[]").hexdigest()})
    unsigned = sign("POST", body=b"{}", headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})

    assert "does not match what was computed" in rejected(lying).message
    assert "UNSIGNED-PAYLOAD" in rejected(unsigned).message


def test_canonical_forms_follow_aws_rules() -> None:
    assert canonical_uri("/prod/jobs/a%20b") == "/prod/jobs/a%2520b"
    assert canonical_uri("/prod/./a/../jobs//") == "/prod/jobs/"
    assert canonical_uri("") == "/"
    assert canonical_query("b=2&a=x%20y&a=1&flag&c=%7e") == "a=1&a=x%20y&b=2&c=~&flag="


# ---------------------------------------------------------------------------------------------- credentials


def write(tmp_path: Path, entries: Any) -> Path:
    path = tmp_path / "credentials.json"
    path.write_text(entries if isinstance(entries, str) else json.dumps(entries))
    return path


def test_load_credentials_reads_long_term_and_session_credentials(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            {"accessKeyId": "AKIDALICE", "secretAccessKey": "s1", "arn": ALICE.arn},
            {"accessKeyId": "ASIAROLE", "secretAccessKey": "s2", "arn": ROLE.arn, "sessionToken": "tok"},
        ],
    )

    loaded = load_credentials(path)

    assert list(loaded) == ["AKIDALICE", "ASIAROLE"]
    assert loaded["ASIAROLE"].session_token == "tok"
    assert loaded["AKIDALICE"].account_id == "111122223333"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", r"credentials\.json: not JSON"),
        ({"accessKeyId": "A"}, r"credentials\.json: expected a non-empty JSON list"),
        ([], r"expected a non-empty JSON list"),
        (["AKID"], r"entry 0: expected an object"),
        ([{"accessKeyId": "A", "arn": ALICE.arn}], r"entry 0: missing secretAccessKey"),
        (
            [{"accessKeyId": "A", "secretAccessKey": "s", "arn": ALICE.arn, "role": "x"}],
            r"unknown key\(s\) role",
        ),
        (
            [{"accessKeyId": "A", "secretAccessKey": "s", "arn": "arn:aws:iam::1234:user/bob"}],
            r"entry 0 \('A'\): 'arn:aws:iam::1234:user/bob' is not the ARN of an IAM user or an STS session: use",
        ),
        (
            [{"accessKeyId": "A", "secretAccessKey": "s", "arn": "arn:aws:iam::111122223333:role/Deployer"}],
            r"is not the ARN of an IAM user or an STS session",
        ),
        (
            [
                {"accessKeyId": "A", "secretAccessKey": "s", "arn": ALICE.arn},
                {"accessKeyId": "A", "secretAccessKey": "t", "arn": ROLE.arn},
            ],
            r"entry 1: accessKeyId 'A' is also entry 0's: give each credential its own key id",
        ),
        (
            [{"accessKeyId": "A B", "secretAccessKey": "s", "arn": ALICE.arn}],
            r"entry 0 .*accessKeyId must be",
        ),
        ([{"accessKeyId": "A", "secretAccessKey": "", "arn": ALICE.arn}], r"secretAccessKey must be"),
        (
            [{"accessKeyId": "A", "secretAccessKey": "s", "arn": ALICE.arn, "sessionToken": 3}],
            r"sessionToken",
        ),
    ],
)
def test_fails_if_the_credentials_file_is_malformed(tmp_path: Path, content: Any, message: str) -> None:
    path = write(tmp_path, content)

    with pytest.raises(CredentialsFileError, match=message) as raised:
        load_credentials(path)
    assert str(path) in str(raised.value)


def test_fails_if_the_credentials_file_is_missing(tmp_path: Path) -> None:
    with pytest.raises(CredentialsFileError, match=r"missing\.json: cannot read the credentials file"):
        load_credentials(tmp_path / "missing.json")


# --------------------------------------------------------------------------------------------- the gateway


def iam_route(authorization: str = "AWS_IAM") -> RouteSpec:
    return RouteSpec(
        resource_path="/jobs/{id}", http_method="GET", authorization_type=authorization, function="S"
    )


def test_signature_check_verifies_iam_routes_only() -> None:
    verifier = SigV4Verifier(CREDENTIALS.values(), region=REGION)
    unsigned = SignedRequest("GET", "/prod/jobs/42", "", [("Host", HOST), (PRINCIPAL_HEADER, "alice")], b"")

    assert signature_check(iam_route(), verifier, sign()) == Signer(ALICE.arn, "AKIDALICE", "111122223333")
    assert signature_check(iam_route(), verifier, unsigned) == (
        "MISSING_AUTHENTICATION_TOKEN",
        403,
        "Missing Authentication Token",
        None,
    )
    assert signature_check(iam_route("NONE"), verifier, unsigned) is None
    assert signature_check(iam_route(), None, unsigned) is None


def test_an_empty_principal_header_is_no_rejection_once_signatures_are_verified() -> None:
    message = Message()
    message[PRINCIPAL_HEADER] = " "

    assert gateway_rejection(iam_route(), message, "", b"", default_principal="local-user") is not None
    assert (
        gateway_rejection(iam_route(), message, "", b"", default_principal="local-user", signed=True) is None
    )
