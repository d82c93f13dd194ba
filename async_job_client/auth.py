"""How a request says who sends it: SigV4 (IAM), a bearer token (Cognito), an API key, or the local caller header.

Each auth object adds its headers to one request just before it is sent, on every attempt (a SigV4 signature
carries its time, so a retry is signed again). botocore is imported only by ``SigV4Auth``, when it first signs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

__all__ = ["PRINCIPAL_HEADER", "ApiKey", "Auth", "BearerToken", "LocalCaller", "SigV4Auth", "region_of"]

#: The local runtime's caller header (the value of ``lambda_handlers.contract.PRINCIPAL_HEADER``, copied so that
#: the client imports nothing of the runtime; tests/client checks the two are equal).
PRINCIPAL_HEADER: Final = "X-Async-Job-Principal"

_EXECUTE_API_HOST: Final = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")


class Auth(Protocol):
    """Adds the headers that authenticate one request."""

    def headers(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> dict[str, str]:
        """The request's headers with this auth's added (``headers`` is not changed)."""
        ...


def region_of(url: str) -> str | None:
    """The region of an ``execute-api`` URL (``https://{id}.execute-api.{region}.amazonaws.com/...``), else None.

    Examples
    --------
    >>> region_of("https://abc123.execute-api.eu-west-1.amazonaws.com/prod")
    'eu-west-1'
    """
    found = _EXECUTE_API_HOST.match((urlsplit(url).hostname or "").lower())
    return found[1] if found else None


class SigV4Auth:
    """IAM authorization: every request signed with SigV4 for the ``execute-api`` service.

    Parameters
    ----------
    region
        Default: parsed from the API's URL (``{id}.execute-api.{region}.amazonaws.com``), else the botocore
        session's region; a custom domain needs it given.
    credentials
        A botocore ``Credentials`` object. Default: the standard botocore chain (environment, profile, SSO,
        container and instance roles), resolved on first use and refreshed as botocore refreshes it.
    service
        Default: ``execute-api``.

    Examples
    --------
    >>> client = JobClient("https://abc123.execute-api.eu-west-1.amazonaws.com/prod", auth=SigV4Auth())
    """

    def __init__(
        self, region: str | None = None, credentials: Any = None, service: str = "execute-api"
    ) -> None:
        self.region = region
        self.service = service
        self._credentials = credentials

    def _resolve(self, url: str) -> tuple[Any, str]:
        import botocore.session  # lazily: bearer, API-key and local callers need no botocore

        session = None
        if self._credentials is None:
            session = botocore.session.Session()
            self._credentials = session.get_credentials()
            if self._credentials is None:
                raise ValueError(
                    "SigV4Auth found no AWS credentials in the standard chain (environment, profile, SSO, "
                    "instance role): configure them, or pass credentials= or another auth"
                )
        region = self.region or region_of(url)
        if region is None:
            session = session or botocore.session.Session()
            region = session.get_config_variable("region")
        if not region:
            raise ValueError(
                f"SigV4Auth cannot tell the region of {url!r} (not an execute-api URL): pass region="
            )
        return self._credentials, region

    def headers(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> dict[str, str]:
        from botocore.auth import SigV4Auth as BotocoreSigV4Auth
        from botocore.awsrequest import AWSRequest

        credentials, region = self._resolve(url)
        request = AWSRequest(method=method, url=url, data=body or b"", headers=dict(headers))
        BotocoreSigV4Auth(credentials, self.service, region).add_auth(request)
        return dict(request.headers.items())

    def presign(self, url: str, expires: int = 60) -> str:
        """``url`` (a ``GET``) with a SigV4 signature in its query string, valid ``expires`` seconds (botocore's
        ``SigV4QueryAuth``): how a WebSocket ``$connect`` under IAM authorization is signed.

        Examples
        --------
        >>> SigV4Auth().presign("https://abc123.execute-api.eu-west-1.amazonaws.com/prod")
        'https://abc123.execute-api.eu-west-1.amazonaws.com/prod?X-Amz-Algorithm=AWS4-HMAC-SHA256&...'
        """
        from botocore.auth import SigV4QueryAuth
        from botocore.awsrequest import AWSRequest

        credentials, region = self._resolve(url)
        request = AWSRequest(method="GET", url=url)
        SigV4QueryAuth(credentials, self.service, region, expires=expires).add_auth(request)
        return str(request.url)


class BearerToken:
    """``Authorization: Bearer <token>`` (a Cognito user pool or a custom authorizer's token).

    Parameters
    ----------
    token
        The token, or a callable returning it, called before every request (to refresh an expiring token).
    scheme
        Default: ``Bearer``. Cognito user-pool authorizers take the bare ID token: pass ``scheme=""``.
    """

    def __init__(self, token: str | Callable[[], str], scheme: str = "Bearer") -> None:
        self.token = token
        self.scheme = scheme

    def headers(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> dict[str, str]:
        token = self.token() if callable(self.token) else self.token
        return {**headers, "Authorization": f"{self.scheme} {token}" if self.scheme else token}


class ApiKey:
    """``x-api-key: <key>`` (an API with ``api_key_required``); combine with another auth through ``also``."""

    def __init__(self, key: str, also: Auth | None = None) -> None:
        self.key = key
        self.also = also

    def headers(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> dict[str, str]:
        added = {**headers, "x-api-key": self.key}
        return added if self.also is None else self.also.headers(method, url, added, body)


class LocalCaller:
    """The local runtime's caller: ``X-Async-Job-Principal: <principal>`` (``async-job local`` only).

    Parameters
    ----------
    principal
        Default: ``local-user``, the local runtime's default caller.
    """

    def __init__(self, principal: str = "local-user") -> None:
        self.principal = principal

    def headers(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> dict[str, str]:
        return {**headers, PRINCIPAL_HEADER: self.principal}
