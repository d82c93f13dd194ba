"""AWS Signature Version 4 (``AWS4-HMAC-SHA256``), verified as API Gateway verifies it under IAM authorization.

Written from AWS's specification ("Create a signed AWS API request": the canonical request, the string to sign,
the signing key), standard library only. The local runtime (``async-job local --sigv4-credentials FILE``)
verifies every request to a route with IAM authorization against the credentials it is given, so that a
client's signing is checked by a verifier other than the signer.

What is checked: the ``Authorization`` header's form; that ``host`` and the request's date (``x-amz-date``, else
``date``) are signed; the credential scope (its date is the request's, its region the runtime's, its service
``execute-api``, it ends in ``aws4_request``); the access key (one of the file's); the session token of a
temporary credential; the request time (within 5 minutes of now, both ways, as AWS allows); a signed
``x-amz-content-sha256`` against the body; the signature itself. A presigned request (the signature in the
query string: ``X-Amz-Algorithm``, ``X-Amz-Credential``, ``X-Amz-Date``, ``X-Amz-Expires``,
``X-Amz-SignedHeaders``, ``X-Amz-Signature``, as botocore's ``SigV4QueryAuth`` writes it; how a WebSocket
client signs its ``$connect``) is checked the same way, its expiry too (``verify_presigned``). What is not: IAM
policies (every known credential may call every route), SigV4a.

A rejection is API Gateway's answer: a gateway response type, a status, AWS's message (the
``(response type, status, message, extra)`` tuple of :mod:`async_job_local.request_checks`).

Examples
--------
>>> verifier = SigV4Verifier([LocalCredential("AKIDLOCAL", "secret", "arn:aws:iam::123456789012:user/alice")],
...                          region="us-east-1")
>>> verifier.verify(SignedRequest("GET", "/prod/jobs/1", "", headers, b"")).arn
'arn:aws:iam::123456789012:user/alice'
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, unquote

__all__ = [
    "ALGORITHM",
    "EXECUTE_API",
    "MAX_CLOCK_SKEW",
    "CredentialsFileError",
    "LocalCredential",
    "SigV4Verifier",
    "SignatureRejectedError",
    "SignedRequest",
    "Signer",
    "canonical_query",
    "canonical_request",
    "canonical_uri",
    "load_credentials",
    "principal_account",
    "signing_key",
    "verify_presigned",
    "verify_signature",
]

ALGORITHM: Final = "AWS4-HMAC-SHA256"
#: The service name API Gateway's signatures are scoped to.
EXECUTE_API: Final = "execute-api"
#: How far the request time may be from now, either way (AWS: "within 5 minutes of the timestamp").
MAX_CLOCK_SKEW: Final = dt.timedelta(minutes=5)
_TERMINATOR: Final = "aws4_request"
_AMZ_DATE: Final = "%Y%m%dT%H%M%SZ"
_UNSIGNED_PAYLOAD: Final = "UNSIGNED-PAYLOAD"
#: RFC 3986 unreserved characters besides letters and digits: never percent-encoded in a canonical request.
_UNRESERVED: Final = "-_.~"
_SIGNATURE: Final = re.compile(r"[0-9a-f]{64}")

#: API Gateway's answers (type, status, message). ``x-amzn-ErrorType`` tells which: an unknown access key is
#: ``AccessDeniedException`` (ACCESS_DENIED); a bad, incomplete or expired signature ``InvalidSignatureException``
#: / ``IncompleteSignatureException`` (INVALID_SIGNATURE); no signature ``MissingAuthenticationTokenException``.
_MISSING: Final = ("MISSING_AUTHENTICATION_TOKEN", 403, "Missing Authentication Token")
_INVALID_TOKEN: Final = "The security token included in the request is invalid."
_MISMATCH: Final = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)

#: The principals a credential may belong to: an IAM user or the root user, an STS assumed-role or federated
#: session. Groups: partition, service, account, resource.
_PRINCIPAL_ARN: Final = re.compile(
    r"arn:(aws|aws-cn|aws-us-gov):(iam|sts)::(\d{12}):"
    r"(root|user/(?:[\w+=,.@-]+/)*[\w+=,.@-]+|assumed-role/[\w+=,.@-]+/[\w+=,.@-]+|federated-user/[\w+=,.@-]+)"
)
_ARN_FORMS: Final = (
    "arn:aws:iam::123456789012:user/alice, arn:aws:iam::123456789012:root, "
    "arn:aws:sts::123456789012:assumed-role/RoleName/session or arn:aws:sts::123456789012:federated-user/name"
)


class SignatureRejectedError(Exception):
    """The request's signature does not authenticate it: API Gateway's answer in ``rejection``.

    Example
    -------
    >>> SignatureRejectedError("MISSING_AUTHENTICATION_TOKEN", 403, "Missing Authentication Token").rejection
    ('MISSING_AUTHENTICATION_TOKEN', 403, 'Missing Authentication Token', None)
    """

    def __init__(self, response_type: str, status: int, message: str) -> None:
        super().__init__(message)
        self.response_type = response_type
        self.status = status
        self.message = message

    @property
    def rejection(self) -> tuple[str, int, str, Mapping[str, str] | None]:
        """The ``(response type, status, message, extra)`` that the server renders as the gateway response."""
        return self.response_type, self.status, self.message, None


class CredentialsFileError(ValueError):
    """A credentials file that cannot be used: the message names the file, the entry and the fix."""


def principal_account(arn: str) -> str:
    """The account id of a principal's ARN; ``ValueError`` for an ARN no credential can belong to.

    Example
    -------
    >>> principal_account("arn:aws:sts::123456789012:assumed-role/Deployer/ci")
    '123456789012'
    """
    found = _PRINCIPAL_ARN.fullmatch(arn)
    if found is None or (found[2] == "sts") != found[4].startswith(("assumed-role/", "federated-user/")):
        raise ValueError(
            f"{arn!r} is not the ARN of an IAM user or an STS session: use one like {_ARN_FORMS}"
        )
    return found[3]


@dataclass(frozen=True)
class LocalCredential:
    """A credential the local runtime knows: who signs with ``access_key_id`` and its secret.

    Parameters
    ----------
    access_key_id, secret_access_key
        The key pair (any text locally; ``AKIA...``/``ASIA...`` look like AWS's).
    arn
        The principal: ``arn:aws:iam::<account>:user/<name>``, ``...:root``, or an STS session
        (``arn:aws:sts::<account>:assumed-role/<role>/<session>``, ``...:federated-user/<name>``).
    session_token
        Default: None, a long-term key. A temporary credential's token: requests must carry it in
        ``X-Amz-Security-Token``.

    Example
    -------
    >>> LocalCredential("AKIDLOCAL", "secret", "arn:aws:iam::123456789012:user/alice").account_id
    '123456789012'
    """

    access_key_id: str
    secret_access_key: str = field(repr=False)
    arn: str
    session_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        key_id, secret = self.access_key_id, self.secret_access_key
        if not isinstance(key_id, str) or not re.fullmatch(r"[!-.0-~]+", key_id):
            raise ValueError(f"accessKeyId must be printable ASCII without spaces or '/' (given {key_id!r})")
        if not isinstance(secret, str) or not secret or secret != secret.strip():
            raise ValueError("secretAccessKey must be a non-empty string without surrounding spaces")
        if self.session_token is not None and (
            not isinstance(self.session_token, str) or not self.session_token
        ):
            raise ValueError("sessionToken must be a non-empty string, or absent for a long-term key")
        principal_account(self.arn)

    @property
    def account_id(self) -> str:
        """The account of ``arn``."""
        return principal_account(self.arn)


@dataclass(frozen=True)
class Signer:
    """Who signed a request: the credential's principal, as API Gateway puts it in ``requestContext.identity``.

    Attributes
    ----------
    arn, access_key_id, account_id
        ``identity.userArn``, ``identity.accessKey``, ``identity.accountId``.

    Example
    -------
    >>> signer = Signer("arn:aws:sts::123456789012:assumed-role/Deployer/ci", "ASIALOCAL", "123456789012")
    >>> signer.caller.startswith("AROA"), signer.caller.endswith(":ci")
    (True, True)
    """

    arn: str
    access_key_id: str
    account_id: str

    @property
    def caller(self) -> str:
        """``identity.caller`` and ``identity.user``: the principal's unique id, as AWS forms it (``AIDA...``
        for a user, ``AROA...:<session>`` for an assumed role, the account for root, ``<account>:<name>`` for a
        federated user). The unique id is made up locally, stable per ARN."""
        resource = self.arn.split(":", 5)[5]
        if resource == "root":
            return self.account_id
        if resource.startswith("federated-user/"):
            return f"{self.account_id}:{resource.split('/', 1)[1]}"
        if resource.startswith("assumed-role/"):
            role, session = resource.split("/")[1:3]
            return f"{_unique_id('AROA', f'{self.account_id}:{role}')}:{session}"
        return _unique_id("AIDA", self.arn)


def _unique_id(prefix: str, seed: str) -> str:
    digest = base64.b32encode(hashlib.sha256(seed.encode()).digest()).decode()
    return prefix + digest[:17]


@dataclass(frozen=True)
class SignedRequest:
    """A request as received: what its signature covers.

    Attributes
    ----------
    method
        ``GET``.
    path, query
        The request target's path and query string as sent (still percent-encoded).
    headers
        Every header field, ``(name, value)`` in the order received (``Message.items()``).
    body
        The body's bytes.
    """

    method: str
    path: str
    query: str
    headers: Sequence[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The values of header ``name`` (any case) joined with ``,``, or None when absent."""
        values = [value for key, value in self.headers if key.lower() == name]
        return ",".join(values) if values else None


@dataclass(frozen=True)
class _Authorization:
    """The parts of an ``Authorization: AWS4-HMAC-SHA256 ...`` header."""

    access_key_id: str
    date: str
    region: str
    service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{self.terminator}"


# ------------------------------------------------------------------------------------------------ credentials


def load_credentials(path: str | Path) -> dict[str, LocalCredential]:
    """The credentials of a JSON file, by access key id.

    The file is a list of ``{"accessKeyId", "secretAccessKey", "arn", "sessionToken"?}`` objects. Raises
    ``CredentialsFileError`` naming the file, the entry and the fix: an unreadable file, JSON that is not such
    a list, a missing or unknown key, a bad ARN, an access key id given twice.

    Example
    -------
    >>> load_credentials("local-credentials.json")["AKIDLOCAL"].arn
    'arn:aws:iam::123456789012:user/alice'
    """
    where = Path(path)
    example = '[{"accessKeyId": "AKIDLOCAL", "secretAccessKey": "...", "arn": "arn:aws:iam::123456789012:user/alice"}]'
    try:
        entries = json.loads(where.read_text(encoding="utf-8"))
    except OSError as error:
        raise CredentialsFileError(
            f"{where}: cannot read the credentials file: {error.strerror or error}"
        ) from None
    except ValueError as error:
        raise CredentialsFileError(f"{where}: not JSON ({error}); write a list such as {example}") from None
    if not isinstance(entries, list) or not entries:
        raise CredentialsFileError(
            f"{where}: expected a non-empty JSON list of credentials, such as {example}"
        )
    credentials: dict[str, LocalCredential] = {}
    for index, entry in enumerate(entries):
        credential = _credential(where, index, entry)
        if credential.access_key_id in credentials:
            raise CredentialsFileError(
                f"{where}: entry {index}: accessKeyId {credential.access_key_id!r} is also entry "
                f"{list(credentials).index(credential.access_key_id)}'s: give each credential its own key id"
            )
        credentials[credential.access_key_id] = credential
    return credentials


_FILE_KEYS: Final = {"accessKeyId", "secretAccessKey", "arn", "sessionToken"}


def _credential(where: Path, index: int, entry: Any) -> LocalCredential:
    prefix = f"{where}: entry {index}"
    if not isinstance(entry, dict):
        raise CredentialsFileError(f"{prefix}: expected an object with accessKeyId, secretAccessKey and arn")
    missing = sorted({"accessKeyId", "secretAccessKey", "arn"} - entry.keys())
    unknown = sorted(entry.keys() - _FILE_KEYS)
    if missing or unknown:
        problems = [f"missing {', '.join(missing)}"] if missing else []
        problems += [f"unknown key(s) {', '.join(unknown)}"] if unknown else []
        raise CredentialsFileError(
            f"{prefix}: {'; '.join(problems)}: an entry has accessKeyId, secretAccessKey, arn and optionally "
            "sessionToken"
        )
    try:
        return LocalCredential(
            access_key_id=entry["accessKeyId"],
            secret_access_key=entry["secretAccessKey"],
            arn=entry["arn"],
            session_token=entry.get("sessionToken"),
        )
    except (TypeError, ValueError) as error:
        raise CredentialsFileError(f"{prefix} ({entry.get('accessKeyId')!r}): {error}") from None


# ------------------------------------------------------------------------------------------ canonical request


def canonical_uri(path: str) -> str:
    """The canonical URI of a request path as sent (non-S3 services): dot segments and empty segments
    removed, then each segment URI-encoded once more (so twice in all, as AWS requires).

    Examples
    --------
    >>> canonical_uri("/prod/jobs/a%20b")
    '/prod/jobs/a%2520b'
    >>> canonical_uri("/prod/./x/../jobs//")
    '/prod/jobs/'
    """
    kept: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if kept:
                kept.pop()
        elif segment not in ("", "."):
            kept.append(segment)
    trailing = "/" if path.endswith("/") and kept else ""
    return quote("/" + "/".join(kept) + trailing, safe="/" + _UNRESERVED)


def canonical_query(query: str) -> str:
    """The canonical query string: each name and value decoded, then URI-encoded (RFC 3986 unreserved
    characters kept), sorted by encoded name then value; a name without ``=`` has an empty value.

    Example
    -------
    >>> canonical_query("b=2&a=x%20y&a=1&flag")
    'a=1&a=x%20y&b=2&flag='
    """
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((_encode(name), _encode(value)))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _encode(text: str) -> str:
    return quote(unquote(text), safe=_UNRESERVED)


def _canonical_headers(request: SignedRequest, names: Iterable[str]) -> str:
    """``name:value`` lines of the signed headers: values trimmed, inner runs of spaces collapsed, repeated
    fields joined with ``,``; each line ends with a newline."""
    lines = []
    for name in names:
        values = [" ".join(value.split()) for key, value in request.headers if key.lower() == name]
        lines.append(f"{name}:{','.join(values)}\n")
    return "".join(lines)


def canonical_request(request: SignedRequest, signed_headers: Sequence[str], payload_hash: str) -> str:
    """The canonical request: method, URI, query, signed headers and their names, the payload's hash.

    Example
    -------
    >>> print(canonical_request(SignedRequest("GET", "/", "", [("Host", "example.com")], b""), ["host"],
    ...                         hashlib.sha256(b"").hexdigest()))
    GET
    /
    <BLANKLINE>
    host:example.com
    <BLANKLINE>
    host
    e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
    """
    return "\n".join(
        [
            request.method.upper(),
            canonical_uri(request.path),
            canonical_query(request.query),
            _canonical_headers(request, signed_headers),
            ";".join(signed_headers),
            payload_hash,
        ]
    )


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The key derived from the secret for one day, region and service (HMAC-SHA256 chain).

    Example
    -------
    >>> signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", "us-east-1", "iam").hex()[:8]
    'c4afb1cc'
    """
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, _TERMINATOR):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


# -------------------------------------------------------------------------------------------------- verifying


def _incomplete(message: str) -> SignatureRejectedError:
    return SignatureRejectedError("INVALID_SIGNATURE", 403, message)


def _parse_authorization(value: str) -> _Authorization:
    """The parts of ``AWS4-HMAC-SHA256 Credential=AKID/date/region/service/aws4_request, SignedHeaders=a;b,
    Signature=hex``; ``SignatureRejectedError`` (AWS's IncompleteSignatureException message) otherwise."""
    algorithm, _, rest = value.strip().partition(" ")
    parameters: dict[str, str] = {}
    for item in rest.split(","):
        name, separator, content = item.strip().partition("=")
        if separator and name not in parameters:
            parameters[name] = content.strip()
    required = ("Credential", "Signature", "SignedHeaders")
    missing = [name for name in required if not parameters.get(name)]
    if algorithm != ALGORITHM or missing:
        problems = [f"Authorization header requires '{name}' parameter." for name in missing or required]
        if algorithm != ALGORITHM:
            problems.insert(0, f"Unsupported Authorization algorithm (expected {ALGORITHM}).")
        raise _incomplete(" ".join(problems) + f" Authorization={value}")
    scope = parameters["Credential"].split("/")
    if len(scope) != 5 or not all(scope):
        raise _incomplete(
            f"Credential should be access-key-id/date/region/service/aws4_request (given "
            f"{parameters['Credential']!r}). Authorization={value}"
        )
    names = tuple(name.strip().lower() for name in parameters["SignedHeaders"].split(";"))
    key_id, date, region, service, terminator = scope
    return _Authorization(key_id, date, region, service, terminator, names, parameters["Signature"])


def _request_time(request: SignedRequest, authorization: _Authorization) -> dt.datetime:
    """The request time, from ``x-amz-date`` (else ``date``), which must be signed, as must ``host``."""
    amz_date = request.header("x-amz-date")
    date_header = "x-amz-date" if amz_date is not None else "date"
    value = amz_date if amz_date is not None else request.header("date")
    problems = []
    if "host" not in authorization.signed_headers:
        problems.append("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
    if value is None:
        problems.append(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    elif date_header not in authorization.signed_headers:
        problems.append(f"'{date_header}' must be a 'SignedHeader' in the AWS Authorization.")
    if problems:
        raise _incomplete(" ".join(problems))
    assert value is not None  # problems holds the missing date
    try:
        if date_header == "x-amz-date":
            return dt.datetime.strptime(value.strip(), _AMZ_DATE).replace(tzinfo=dt.UTC)
        when = email.utils.parsedate_to_datetime(value)
    except (ValueError, TypeError):
        raise _incomplete(
            f"Date must be in ISO-8601 'basic format' (YYYYMMDD'T'HHMMSS'Z') in X-Amz-Date, or an HTTP date in "
            f"Date. Got {value!r}."
        ) from None
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def _check_scope(authorization: _Authorization, when: dt.datetime, region: str, service: str) -> None:
    day = when.strftime("%Y%m%d")
    if authorization.date != day:
        raise _incomplete(
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{authorization.date}' != '{day}', from '{when.strftime(_AMZ_DATE)}'."
        )
    if authorization.region != region:
        raise _incomplete(
            f"Credential should be scoped to a valid region, not '{authorization.region}'. The local runtime "
            f"serves region '{region}'."
        )
    if authorization.service != service:
        raise _incomplete(f"Credential should be scoped to correct service: '{service}'.")
    if authorization.terminator != _TERMINATOR:
        raise _incomplete(
            f"Credential should be scoped with a valid terminator: '{_TERMINATOR}', not "
            f"'{authorization.terminator}'."
        )


def _check_clock(when: dt.datetime, now: dt.datetime) -> None:
    stamp, current = when.strftime(_AMZ_DATE), now.strftime(_AMZ_DATE)
    if when < now - MAX_CLOCK_SKEW:
        limit = (now - MAX_CLOCK_SKEW).strftime(_AMZ_DATE)
        raise _incomplete(f"Signature expired: {stamp} is now earlier than {limit} ({current} - 5 min.)")
    if when > now + MAX_CLOCK_SKEW:
        limit = (now + MAX_CLOCK_SKEW).strftime(_AMZ_DATE)
        raise _incomplete(
            f"Signature not yet current: {stamp} is still later than {limit} ({current} + 5 min.)"
        )


def _credential_of(
    request: SignedRequest,
    authorization: _Authorization,
    credentials: Mapping[str, LocalCredential],
    token: str | None = None,
) -> LocalCredential:
    """The credential of the access key; its session token, when it has one, must be the request's
    (``token``: a presigned request's ``X-Amz-Security-Token``; else the header's)."""
    credential = credentials.get(authorization.access_key_id)
    if credential is None:
        raise SignatureRejectedError("ACCESS_DENIED", 403, _INVALID_TOKEN)
    if token is None:
        token = request.header("x-amz-security-token")
    expected = credential.session_token
    if (token is None) != (expected is None) or (
        token is not None
        and expected is not None
        and not hmac.compare_digest(token.encode(), expected.encode())
    ):
        raise SignatureRejectedError("ACCESS_DENIED", 403, _INVALID_TOKEN)
    return credential


def _payload_hash(request: SignedRequest) -> str:
    """The hex SHA-256 of the body; a ``x-amz-content-sha256`` header must state it (the local runtime
    verifies every body: ``UNSIGNED-PAYLOAD`` is refused)."""
    computed = hashlib.sha256(request.body).hexdigest()
    stated = request.header("x-amz-content-sha256")
    if stated is None:
        return computed
    if stated.strip() == _UNSIGNED_PAYLOAD:
        raise _incomplete(
            "x-amz-content-sha256 is UNSIGNED-PAYLOAD: the local runtime verifies the body, sign its SHA-256."
        )
    if stated.strip().lower() != computed:
        raise _incomplete("The provided 'x-amz-content-sha256' header does not match what was computed.")
    return stated.strip()


def verify_signature(
    request: SignedRequest,
    credentials: Mapping[str, LocalCredential],
    *,
    region: str,
    now: dt.datetime,
    service: str = EXECUTE_API,
) -> Signer:
    """Who signed ``request``, or ``SignatureRejectedError`` with API Gateway's answer.

    No ``Authorization`` header: ``403 MISSING_AUTHENTICATION_TOKEN``. An unknown access key, or a session
    token that is missing, wrong or not the credential's: ``403 ACCESS_DENIED`` ("The security token included
    in the request is invalid."). An incomplete header, ``host`` or the date not signed, a wrong credential
    scope, a request time more than 5 minutes from ``now``, a wrong signature: ``403 INVALID_SIGNATURE`` with
    AWS's message (a wrong signature's shows the canonical request and string to sign computed here).

    Example
    -------
    >>> verify_signature(request, credentials, region="us-east-1", now=dt.datetime.now(dt.UTC)).arn
    'arn:aws:iam::123456789012:user/alice'
    """
    header = request.header("authorization")
    if header is None or not header.strip():
        raise SignatureRejectedError(*_MISSING)
    authorization = _parse_authorization(header)
    when = _request_time(request, authorization)
    _check_scope(authorization, when, region, service)
    credential = _credential_of(request, authorization, credentials)
    _check_clock(when, now)
    _check_signature(request, authorization, credential, when, _payload_hash(request), region, service)
    return Signer(
        arn=credential.arn, access_key_id=credential.access_key_id, account_id=credential.account_id
    )


def _check_signature(
    request: SignedRequest,
    authorization: _Authorization,
    credential: LocalCredential,
    when: dt.datetime,
    payload_hash: str,
    region: str,
    service: str,
) -> None:
    """Compute the signature of ``request`` and compare it with the one given (``INVALID_SIGNATURE`` if not)."""
    names = tuple(sorted(set(authorization.signed_headers)))
    canonical = canonical_request(request, names, payload_hash)
    to_sign = "\n".join(
        [
            ALGORITHM,
            when.strftime(_AMZ_DATE),
            authorization.scope,
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = signing_key(credential.secret_access_key, authorization.date, region, service)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    given = authorization.signature
    if not _SIGNATURE.fullmatch(given) or not hmac.compare_digest(expected.encode(), given.encode()):
        raise _incomplete(
            f"{_MISMATCH}\n\nThe Canonical String for this request should have been\n'{canonical}'\n\n"
            f"The String-to-Sign should have been\n'{to_sign}'\n"
        )


#: The query parameters of a presigned request (``X-Amz-Security-Token`` is optional, for a session).
_PRESIGNED_REQUIRED: Final = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)
#: The longest ``X-Amz-Expires`` AWS accepts (7 days).
MAX_PRESIGNED_EXPIRES: Final = 7 * 24 * 3600


def _query_parameters(query: str) -> dict[str, str]:
    parameters: dict[str, str] = {}
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name:
            parameters.setdefault(unquote(name), unquote(value))
    return parameters


def verify_presigned(
    request: SignedRequest,
    credentials: Mapping[str, LocalCredential],
    *,
    region: str,
    now: dt.datetime,
    service: str = EXECUTE_API,
) -> Signer:
    """Who presigned ``request`` (the signature in its query string), or ``SignatureRejectedError``.

    The canonical request is the request's, its query string without ``X-Amz-Signature``; its payload hash is
    the empty body's (botocore's ``SigV4QueryAuth``) or ``UNSIGNED-PAYLOAD``. No ``X-Amz-Signature``: ``403
    MISSING_AUTHENTICATION_TOKEN``; a parameter missing, a wrong scope, ``host`` not signed, a request past
    ``X-Amz-Date`` + ``X-Amz-Expires`` (or dated more than 5 minutes ahead), a wrong signature: ``403
    INVALID_SIGNATURE``; an unknown key or a wrong session token: ``403 ACCESS_DENIED``.

    Example
    -------
    >>> url = SigV4QueryAuth(credentials, "execute-api", "us-east-1")  # botocore, then request.url
    >>> verify_presigned(SignedRequest("GET", "/prod", query, [("Host", "127.0.0.1:3001")], b""),
    ...                  known, region="us-east-1", now=dt.datetime.now(dt.UTC)).arn
    'arn:aws:iam::123456789012:user/alice'
    """
    parameters = _query_parameters(request.query)
    if "X-Amz-Signature" not in parameters:
        raise SignatureRejectedError(*_MISSING)
    missing = [name for name in _PRESIGNED_REQUIRED if not parameters.get(name)]
    if missing:
        raise _incomplete(f"The presigned request lacks {', '.join(missing)} in its query string.")
    if parameters["X-Amz-Algorithm"] != ALGORITHM:
        raise _incomplete(f"Unsupported X-Amz-Algorithm (expected {ALGORITHM}).")
    scope = parameters["X-Amz-Credential"].split("/")
    if len(scope) != 5 or not all(scope):
        raise _incomplete(
            "X-Amz-Credential should be access-key-id/date/region/service/aws4_request (given "
            f"{parameters['X-Amz-Credential']!r})."
        )
    names = tuple(name.strip().lower() for name in parameters["X-Amz-SignedHeaders"].split(";"))
    key_id, date, region_of_scope, service_of_scope, terminator = scope
    authorization = _Authorization(
        key_id, date, region_of_scope, service_of_scope, terminator, names, parameters["X-Amz-Signature"]
    )
    if "host" not in names:
        raise _incomplete("'Host' must be a 'SignedHeader' in the presigned request.")
    try:
        when = dt.datetime.strptime(parameters["X-Amz-Date"], _AMZ_DATE).replace(tzinfo=dt.UTC)
        expires = int(parameters["X-Amz-Expires"])
    except ValueError:
        raise _incomplete(
            "X-Amz-Date must be in ISO-8601 'basic format' (YYYYMMDD'T'HHMMSS'Z') and X-Amz-Expires a number "
            f"of seconds (given {parameters['X-Amz-Date']!r}, {parameters['X-Amz-Expires']!r})."
        ) from None
    if not 0 < expires <= MAX_PRESIGNED_EXPIRES:
        raise _incomplete(f"X-Amz-Expires must be between 1 and {MAX_PRESIGNED_EXPIRES} (given {expires}).")
    _check_scope(authorization, when, region, service)
    credential = _credential_of(
        request, authorization, credentials, parameters.get("X-Amz-Security-Token", "") or None
    )
    if now > when + dt.timedelta(seconds=expires):
        raise _incomplete(
            f"Signature expired: {when.strftime(_AMZ_DATE)} + {expires} s is earlier than "
            f"{now.strftime(_AMZ_DATE)}."
        )
    if when > now + MAX_CLOCK_SKEW:
        raise _incomplete(f"Signature not yet current: {when.strftime(_AMZ_DATE)} is later than now + 5 min.")
    kept = "&".join(
        part for part in request.query.split("&") if unquote(part.partition("=")[0]) != "X-Amz-Signature"
    )
    unsigned = SignedRequest(request.method, request.path, kept, request.headers, request.body)
    try:
        _check_signature(
            unsigned, authorization, credential, when, hashlib.sha256(b"").hexdigest(), region, service
        )
    except SignatureRejectedError as mismatch:
        try:
            _check_signature(unsigned, authorization, credential, when, _UNSIGNED_PAYLOAD, region, service)
        except SignatureRejectedError:
            raise mismatch from None
    return Signer(
        arn=credential.arn, access_key_id=credential.access_key_id, account_id=credential.account_id
    )


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SigV4Verifier:
    """The credentials, region and clock requests are verified against (one per local runtime).

    Parameters
    ----------
    credentials
        The known credentials (``load_credentials``'s values, or any iterable of ``LocalCredential``).
    region
        The region signatures must be scoped to: the local runtime's.
    service
        Default: ``execute-api``.
    clock
        Default: the system clock (UTC). Tests pass a fixed time.

    Example
    -------
    >>> verifier = SigV4Verifier.from_file("local-credentials.json", region="us-east-1")
    >>> verifier.verify(request).arn
    'arn:aws:iam::123456789012:user/alice'
    """

    def __init__(
        self,
        credentials: Iterable[LocalCredential],
        *,
        region: str,
        service: str = EXECUTE_API,
        clock: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        self.credentials = {credential.access_key_id: credential for credential in credentials}
        self.region = region
        self.service = service
        self.clock = clock

    @classmethod
    def from_file(cls, path: str | Path, *, region: str) -> SigV4Verifier:
        """A verifier of the credentials in ``path`` (``CredentialsFileError`` when it cannot be used)."""
        return cls(load_credentials(path).values(), region=region)

    def verify(self, request: SignedRequest) -> Signer:
        """Who signed ``request`` (``verify_signature``), now."""
        return verify_signature(
            request, self.credentials, region=self.region, now=self.clock(), service=self.service
        )

    def verify_presigned(self, request: SignedRequest) -> Signer:
        """Who presigned ``request`` (``verify_presigned``: the signature in its query string), now."""
        return verify_presigned(
            request, self.credentials, region=self.region, now=self.clock(), service=self.service
        )
