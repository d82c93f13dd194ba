"""Webhooks: which callback URLs are allowed, how a delivery is signed, and one delivery over HTTPS.

**Allowed URLs** (``CallbackPolicy``): ``https`` only (``http`` too under the local runtime), no user info or
fragment, at most 2,048 characters, and a host the construct allows (``webhook_allowed_hosts``: exact names, or
``*.example.com`` for its subdomains). At delivery the host is resolved and every address must be public (no
loopback, private, link-local or reserved range: no SSRF into the VPC or the metadata service); the connection
goes to the address that was checked, so a DNS answer cannot change between check and use. Redirects are not
followed.

**Signature** (the Standard Webhooks scheme): ``webhook-id`` (the job id: the same on every retry, so receivers
dedupe), ``webhook-timestamp`` (this attempt's epoch seconds) and ``webhook-signature``: ``v1,`` and the base64
HMAC-SHA256 of ``{id}.{timestamp}.{body}`` under the secret. The secret is the Secrets Manager value; as a
Standard Webhooks library takes it: ``whsec_`` + base64 of that value (a value that starts with ``whsec_`` is
used as it is).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import ipaddress
import json
import socket
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from lambda_handlers.contract import Env

__all__ = [
    "DELIVERY_TIMEOUT_SECONDS",
    "CallbackPolicy",
    "Delivery",
    "InvalidCallbackError",
    "deliver",
    "policy_from_environ",
    "signature",
    "signing_key",
    "standard_secret",
]

#: The longest callback URL.
MAX_URL_CHARS: Final = 2_048
#: Seconds a receiver has to answer.
DELIVERY_TIMEOUT_SECONDS: Final = 10.0
_USER_AGENT: Final = "async-job-construct-webhooks/1"
_HOST_RE_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-.")


class InvalidCallbackError(ValueError):
    """A callback URL this API will not call; the message says why and what is allowed."""


@dataclass(frozen=True)
class CallbackPolicy:
    """Which callback URLs the API calls.

    Parameters
    ----------
    allowed_hosts
        Exact host names, or ``*.example.com`` for any subdomain of ``example.com``. Empty: no webhooks.
    local
        Under the local runtime: ``http`` and loopback addresses are allowed too (receivers on this machine).

    Examples
    --------
    >>> CallbackPolicy(("hooks.example.com",)).check("https://hooks.example.com/jobs")
    'https://hooks.example.com/jobs'
    """

    allowed_hosts: Sequence[str]
    local: bool = False

    def check(self, url: str) -> str:
        """``url`` if this API may call it.

        Raises
        ------
        InvalidCallbackError
            The URL is malformed, not https, or its host is not allowed.
        """
        if not self.allowed_hosts:
            raise InvalidCallbackError(
                "This API takes no callback URLs (its webhook_allowed_hosts is empty)."
            )
        if len(url) > MAX_URL_CHARS or not url.isascii() or any(c.isspace() for c in url):
            raise InvalidCallbackError(
                f"A callback URL is at most {MAX_URL_CHARS} ASCII characters, no spaces."
            )
        try:
            split = urlsplit(url)
            host = (split.hostname or "").lower()
            _ = split.port
        except ValueError as error:
            raise InvalidCallbackError(f"The callback URL is malformed: {error}.") from None
        schemes = ("https", "http") if self.local else ("https",)
        if split.scheme not in schemes:
            raise InvalidCallbackError(
                f"A callback URL must use {' or '.join(schemes)} (given {split.scheme!r})."
            )
        if split.username is not None or split.password is not None or split.fragment:
            raise InvalidCallbackError("A callback URL may hold no user info and no fragment.")
        if not host or not set(host) <= _HOST_RE_CHARS | {":"} or not self._allows(host):
            raise InvalidCallbackError(
                f"The callback URL's host {host[:100]!r} is not one this API calls; allowed: "
                f"{', '.join(self.allowed_hosts)}."
            )
        return url

    def _allows(self, host: str) -> bool:
        for allowed in self.allowed_hosts:
            allowed = allowed.lower()
            if allowed.startswith("*.") and host.endswith(allowed[1:]) and len(host) > len(allowed) - 1:
                return True
            if host == allowed:
                return True
        return False

    def address(self, host: str, port: int) -> str:
        """The address to connect to: the host's first address, every one of which must be public.

        Raises
        ------
        InvalidCallbackError
            The host does not resolve, or resolves to an address that is not public (under the local runtime,
            loopback is allowed).
        """
        try:
            answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as error:
            raise InvalidCallbackError(f"The callback host {host!r} does not resolve: {error}.") from None
        addresses = [str(answer[4][0]) for answer in answers]
        for address in addresses:
            ip = ipaddress.ip_address(address)
            if not (ip.is_global or (self.local and ip.is_loopback)):
                raise InvalidCallbackError(
                    f"The callback host {host!r} resolves to {ip}, which is not public."
                )
        return addresses[0]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt's outcome: the receiver's status code (None: no answer) and what went wrong."""

    status: int | None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        """Whether the receiver accepted it (2xx)."""
        return self.status is not None and 200 <= self.status < 300


def policy_from_environ(environ: Mapping[str, str]) -> CallbackPolicy:
    """The policy the construct configured: ``ASYNC_JOB_WEBHOOK_ALLOWED_HOSTS`` (a JSON list; absent: no
    webhooks), and the local runtime's ``ASYNC_JOB_LOCAL_RUNTIME=1``.

    Raises
    ------
    ValueError
        The variable is not a JSON list of strings.
    """
    text = environ.get(Env.WEBHOOK_ALLOWED_HOSTS, "").strip()
    hosts = json.loads(text) if text else []
    if not isinstance(hosts, list) or not all(isinstance(host, str) and host for host in hosts):
        raise ValueError(
            f"ASYNC_JOB_WEBHOOK_ALLOWED_HOSTS must be a JSON list of host names (given {text[:100]!r})"
        )
    return CallbackPolicy(tuple(hosts), local=environ.get(Env.LOCAL_RUNTIME) == "1")


def standard_secret(secret_value: str) -> str:
    """The secret as Standard Webhooks libraries take it (``whsec_`` + base64).

    Examples
    --------
    >>> standard_secret("abc")
    'whsec_YWJj'
    """
    if secret_value.startswith("whsec_"):
        return secret_value
    return "whsec_" + base64.b64encode(secret_value.encode("utf-8")).decode("ascii")


def signing_key(secret_value: str) -> bytes:
    """The HMAC key of a Secrets Manager value (the bytes behind its ``standard_secret``)."""
    return base64.b64decode(standard_secret(secret_value).removeprefix("whsec_"))


def signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: ``v1,`` + base64 HMAC-SHA256 of ``{id}.{timestamp}.{body}``.

    Examples
    --------
    >>> signature(b"key", "msg_1", 1700000000, b"{}").startswith("v1,")
    True
    """
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")


def deliver(
    url: str,
    body: bytes,
    headers: dict[str, str],
    policy: CallbackPolicy,
    timeout: float = DELIVERY_TIMEOUT_SECONDS,
) -> Delivery:
    """POST ``body`` to ``url`` (checked again against ``policy``), connecting to the address that was checked.

    Examples
    --------
    >>> deliver("https://hooks.example.com/jobs", b"{}", signed_headers, policy).delivered
    True
    """
    try:
        policy.check(url)
        split = urlsplit(url)
        host = str(split.hostname)
        port = split.port or (443 if split.scheme == "https" else 80)
        address = policy.address(host, port)
    except InvalidCallbackError as error:
        return Delivery(None, str(error))
    connection: http.client.HTTPConnection = (
        _PinnedHttps(host, address, port, timeout)
        if split.scheme == "https"
        else _PinnedHttp(host, address, port, timeout)
    )
    path = split.path or "/"
    if split.query:
        path += "?" + split.query
    try:
        connection.request(
            "POST",
            path,
            body=body,
            headers={"Content-Type": "application/json", "User-Agent": _USER_AGENT, **headers},
        )
        response = connection.getresponse()
        response.read(64 * 1024)
        return Delivery(response.status, None if 200 <= response.status < 300 else f"HTTP {response.status}")
    except (OSError, http.client.HTTPException) as error:
        return Delivery(None, f"{type(error).__name__}: {error}"[:500])
    finally:
        connection.close()


class _PinnedHttp(http.client.HTTPConnection):
    """HTTP to ``address``, with ``host`` in the Host header."""

    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHttps(http.client.HTTPSConnection):
    """HTTPS to ``address``, verifying the certificate of ``host`` (SNI and hostname check)."""

    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]
