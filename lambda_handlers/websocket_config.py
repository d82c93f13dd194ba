"""The WebSocket's settings: the connection and push functions' variables, and the two the REST functions read.

Read and validated once, when a function starts, as ``lambda_handlers.config`` does for the others (a missing or
invalid variable fails the cold start with a ``ConfigError`` naming it and the fix). ``AsyncJobApi(websocket=...)``
sets all of them (``docs/websockets.md``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Self

from lambda_handlers.config import ConfigError, _operators, _required, _Settings
from lambda_handlers.contract import Env

__all__ = ["ConnectionConfig", "PushConfig", "connections_table", "updates_link"]

_FIX: Final = (
    "AsyncJobApi(websocket=...) sets it; when running the function yourself, set it in its environment."
)


@dataclass(frozen=True, slots=True)
class ConnectionConfig(_Settings):
    """Settings of ``lambda_handlers.websocket`` (the routes ``$connect``, ``$disconnect``, ``subscribe``, ...).

    Examples
    --------
    >>> load(ConnectionConfig).connections_table
    'Jobs-WebSocketConnections'
    """

    #: ``ASYNC_JOB_CONNECTIONS_TABLE``: the connections and their subscriptions.
    connections_table: str
    #: ``ASYNC_JOB_JOBS_URL``: the REST API's ``/jobs`` URL (a job's ``links.self`` is ``{jobs_url}/{id}``).
    jobs_url: str
    #: ``ASYNC_JOB_OPERATORS`` (optional JSON list): identities that may follow every job, as they read every one.
    operators: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Self:
        """Read and validate the connection function's variables."""
        return cls(
            **cls._common(environ),
            connections_table=_table(environ, Env.CONNECTIONS_TABLE),
            jobs_url=_url(environ, Env.JOBS_URL, ("https://", "http://")),
            operators=_operators(environ),
        )


@dataclass(frozen=True, slots=True)
class PushConfig(_Settings):
    """Settings of ``lambda_handlers.websocket_push`` (the status table's stream, to the connections).

    Examples
    --------
    >>> load(PushConfig).endpoint
    'https://abc123.execute-api.eu-west-1.amazonaws.com/prod'
    """

    #: ``ASYNC_JOB_CONNECTIONS_TABLE``: the connections and their subscriptions.
    connections_table: str
    #: ``ASYNC_JOB_WEBSOCKET_ENDPOINT``: the stage's ``@connections`` management endpoint.
    endpoint: str
    #: ``ASYNC_JOB_JOBS_URL``: the REST API's ``/jobs`` URL.
    jobs_url: str

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Self:
        """Read and validate the push function's variables."""
        return cls(
            **cls._common(environ),
            connections_table=_table(environ, Env.CONNECTIONS_TABLE),
            endpoint=_url(environ, Env.WEBSOCKET_ENDPOINT, ("https://", "http://")),
            jobs_url=_url(environ, Env.JOBS_URL, ("https://", "http://")),
        )


def updates_link(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{"Link": '<wss://...>; rel="updates"'}`` when ``ASYNC_JOB_WEBSOCKET_URL`` is set, else ``{}``.

    Examples
    --------
    >>> updates_link({"ASYNC_JOB_WEBSOCKET_URL": "wss://abc.execute-api.eu-west-1.amazonaws.com/prod"})
    {'Link': '<wss://abc.execute-api.eu-west-1.amazonaws.com/prod>; rel="updates"'}
    """
    environ = os.environ if environ is None else environ
    if not environ.get(Env.WEBSOCKET_URL, "").strip():
        return {}
    url = _url(environ, Env.WEBSOCKET_URL, ("wss://", "ws://"))
    return {"Link": f'<{url}>; rel="updates"'}


def connections_table(environ: Mapping[str, str] | None = None) -> str | None:
    """``ASYNC_JOB_CONNECTIONS_TABLE`` (the submit function reads the owner's watch in it), or None unset."""
    environ = os.environ if environ is None else environ
    if not environ.get(Env.CONNECTIONS_TABLE, "").strip():
        return None
    return _table(environ, Env.CONNECTIONS_TABLE)


def _table(environ: Mapping[str, str], name: str) -> str:
    value = _required(environ, name)
    if any(c.isspace() for c in value):
        raise ConfigError(f"{name} must be a DynamoDB table name or ARN (given {value!r}). {_FIX}")
    return value


def _url(environ: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str:
    value = _required(environ, name)
    if not value.startswith(schemes) or any(c.isspace() or c in "<>" for c in value):
        raise ConfigError(
            f"{name} must be a {' or '.join(s[:-3] for s in schemes)} URL (given {value!r}). {_FIX}"
        )
    return value.rstrip("/")
