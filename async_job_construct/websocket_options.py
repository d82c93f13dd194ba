"""The options of an API's WebSocket (``AsyncJobApi(websocket=JobWebSocketOptions(...))``), resolved and checked."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from aws_cdk import aws_lambda as lambda_

from async_job_construct.auth import JobApiAuthKind
from async_job_construct.validation import PropValueError, check_int_range

__all__ = ["JobWebSocketOptions", "ResolvedWebSocket"]

_STAGE_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,128}")
_IDENTITY_SOURCE: Final = re.compile(
    r"route\.request\.(header|querystring)\.[A-Za-z0-9_.-]+|stageVariables\.\w+"
)


@dataclass(frozen=True, kw_only=True)
class JobWebSocketOptions:
    """How the WebSocket of an ``AsyncJobApi`` is built (``websocket=JobWebSocketOptions(...)``, or ``True``).

    Examples
    --------
    >>> AsyncJobApi(self, "Jobs", handler="m.f", code=code, websocket=True)
    >>> AsyncJobApi(self, "Jobs", handler="m.f", code=code, auth=JobApiAuth.cognito([pool]),
    ...             websocket=JobWebSocketOptions(authorizer_function=verify_token,
    ...                                           identity_source=["route.request.querystring.token"]))
    """

    #: A Lambda REQUEST authorizer of ``$connect`` (it returns an IAM policy and ``principalId``, the owner).
    #: Default: IAM (SigV4) with ``JobApiAuth.iam()``; required with ``JobApiAuth.cognito`` and ``.custom``, as
    #: a WebSocket API takes no Cognito or token authorizer. ``principalId`` must be the identity the REST API
    #: records as owner (a Cognito token's ``sub``), or the caller cannot follow its jobs.
    authorizer_function: lambda_.IFunction | None = None
    #: Where the authorizer's token is (all must be present, else ``401`` without running it). Default:
    #: ``["route.request.header.Authorization"]``; browsers, which cannot set headers on a WebSocket, use
    #: ``["route.request.querystring.token"]``. Only with ``authorizer_function``.
    identity_source: Sequence[str] | None = None
    #: The stage (the last segment of the ``wss://`` URL). Default: ``prod``.
    stage_name: str | None = None
    #: Messages and connects per second, and bursts, of the stage. Default: the REST API's
    #: (``throttling_rate_limit``, ``throttling_burst_limit``: 100 and 200).
    throttling_rate_limit: int | None = None
    throttling_burst_limit: int | None = None
    #: Point-in-time recovery of the connections table. Default: false (its items live 2 hours at most).
    point_in_time_recovery: bool | None = None

    def resolve(self, *, auth: JobApiAuthKind, rate_limit: int, burst_limit: int) -> ResolvedWebSocket:
        """Every default resolved and every value checked (``PropValueError`` naming the prop and the fix)."""
        if self.authorizer_function is not None:
            if not hasattr(
                self.authorizer_function, "function_arn"
            ):  # IFunction is a protocol: no isinstance
                raise PropValueError(
                    "websocket.authorizer_function",
                    repr(self.authorizer_function),
                    "must be a Lambda function",
                    "Pass a lambda_.IFunction (your REQUEST authorizer).",
                )
        elif auth in (JobApiAuthKind.CUSTOM, JobApiAuthKind.COGNITO):
            raise PropValueError(
                "websocket.authorizer_function",
                None,
                f"is required with auth {auth.value}: a WebSocket API authorises $connect with IAM or a Lambda "
                "REQUEST authorizer only (it takes no Cognito user pool or token authorizer)",
                "Pass websocket=JobWebSocketOptions(authorizer_function=fn), fn verifying the token (the "
                "Authorization header, or ?token= with identity_source=['route.request.querystring.token']) and "
                "returning principalId = the owner the REST API records (a Cognito token's sub); see "
                "docs/websockets.md.",
            )
        if self.identity_source is not None:
            if self.authorizer_function is None:
                raise PropValueError(
                    "websocket.identity_source",
                    repr(list(self.identity_source)),
                    "applies to a Lambda authorizer only",
                    "Pass authorizer_function too, or drop identity_source (IAM signs the request itself).",
                )
            for source in self.identity_source:
                if not isinstance(source, str) or not _IDENTITY_SOURCE.fullmatch(source):
                    raise PropValueError(
                        "websocket.identity_source",
                        repr(source),
                        "must name request parts as API Gateway does",
                        "Pass e.g. 'route.request.header.Authorization' or 'route.request.querystring.token'.",
                    )
        stage_name = "prod" if self.stage_name is None else self.stage_name
        if not isinstance(stage_name, str) or not _STAGE_NAME.fullmatch(stage_name):
            raise PropValueError(
                "websocket.stage_name",
                repr(stage_name),
                "must be 1 to 128 letters, digits, '-' or '_'",
                "Pass e.g. 'prod' (the default).",
            )
        rate = rate_limit if self.throttling_rate_limit is None else self.throttling_rate_limit
        burst = burst_limit if self.throttling_burst_limit is None else self.throttling_burst_limit
        check_int_range("websocket.throttling_rate_limit", rate, 1, 10000)
        check_int_range("websocket.throttling_burst_limit", burst, 1, 5000)
        return ResolvedWebSocket(
            authorizer_function=self.authorizer_function,
            identity_source=(
                ("route.request.header.Authorization",)
                if self.identity_source is None
                else tuple(self.identity_source)
            ),
            stage_name=stage_name,
            throttling_rate_limit=rate,
            throttling_burst_limit=burst,
            point_in_time_recovery=bool(self.point_in_time_recovery),
            auth=auth,
        )


@dataclass(frozen=True, kw_only=True)
class ResolvedWebSocket:
    """``JobWebSocketOptions`` with every default resolved (``api.websocket.options``)."""

    authorizer_function: lambda_.IFunction | None
    identity_source: tuple[str, ...]
    stage_name: str
    throttling_rate_limit: int
    throttling_burst_limit: int
    point_in_time_recovery: bool
    #: The REST API's authorization kind (IAM, or a Lambda authorizer: ``$connect``'s).
    auth: JobApiAuthKind
