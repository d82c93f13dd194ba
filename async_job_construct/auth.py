"""How callers authenticate to an ``AsyncJobApi``, and so who owns a job."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import TYPE_CHECKING

from aws_cdk import aws_apigateway as apigateway
from constructs import Construct

if TYPE_CHECKING:  # imported for annotations only: aws_cognito is a large module to load for every synth
    from aws_cdk import aws_cognito as cognito

__all__ = ["JobApiAuth", "JobApiAuthKind"]


class JobApiAuthKind(Enum):
    """The kind of authorization a ``JobApiAuth`` configures."""

    IAM = "IAM"
    COGNITO = "COGNITO"
    CUSTOM = "CUSTOM"
    NONE = "NONE"


class JobApiAuth:
    """The authorization of the job routes, and where the job's owner comes from.

    ========  ==================================================  ======================================
    kind      caller proves                                       owner recorded
    ========  ==================================================  ======================================
    IAM       a SigV4 signature (``grant_invoke`` to allow)       the caller's IAM ARN (``userArn``)
    COGNITO   a Cognito user pool token (``Authorization``)       the token's ``sub``
    CUSTOM    whatever your Lambda authorizer checks              the authorizer's ``principalId``
    NONE      nothing (a synth warning; pair with ``api_key``)    the API key id, else ``anonymous``
    ========  ==================================================  ======================================

    Example
    -------
    >>> AsyncJobApi(self, "Jobs", handler="m.f", code=code, auth=JobApiAuth.cognito([user_pool]))
    """

    def __init__(
        self,
        kind: JobApiAuthKind,
        *,
        user_pools: Sequence[cognito.IUserPool] = (),
        authorizer: apigateway.IAuthorizer | None = None,
        scopes: Sequence[str] = (),
    ) -> None:
        self.kind = kind
        self.user_pools = tuple(user_pools)
        self.authorizer = authorizer
        self.scopes = tuple(scopes)

    @staticmethod
    def iam() -> JobApiAuth:
        """SigV4-signed requests (the default). Allow a caller with ``AsyncJobApi.grant_invoke``."""
        return JobApiAuth(JobApiAuthKind.IAM)

    @staticmethod
    def cognito(user_pools: Sequence[cognito.IUserPool], *, scopes: Sequence[str] = ()) -> JobApiAuth:
        """Cognito user pool tokens in the ``Authorization`` header; ``scopes`` requires OAuth scopes too."""
        if not user_pools:
            raise ValueError(
                "auth: JobApiAuth.cognito needs at least one user pool (given none). "
                "Pass the pools whose tokens may call the API."
            )
        return JobApiAuth(JobApiAuthKind.COGNITO, user_pools=user_pools, scopes=scopes)

    @staticmethod
    def custom(authorizer: apigateway.IAuthorizer) -> JobApiAuth:
        """Your own Lambda authorizer (``apigateway.TokenAuthorizer`` or ``RequestAuthorizer``)."""
        return JobApiAuth(JobApiAuthKind.CUSTOM, authorizer=authorizer)

    @staticmethod
    def none() -> JobApiAuth:
        """No authorization: anyone who can reach the API may submit. Synth warns; use with ``api_key``."""
        return JobApiAuth(JobApiAuthKind.NONE)

    def method_options(self, scope: Construct) -> apigateway.MethodOptions:
        """The method options that enforce this authorization (creates the Cognito authorizer in ``scope``)."""
        if self.kind is JobApiAuthKind.IAM:
            return apigateway.MethodOptions(authorization_type=apigateway.AuthorizationType.IAM)
        if self.kind is JobApiAuthKind.COGNITO:
            authorizer = apigateway.CognitoUserPoolsAuthorizer(
                scope, "Authorizer", cognito_user_pools=list(self.user_pools)
            )
            return apigateway.MethodOptions(
                authorization_type=apigateway.AuthorizationType.COGNITO,
                authorizer=authorizer,
                authorization_scopes=list(self.scopes) or None,
            )
        if self.kind is JobApiAuthKind.CUSTOM:
            return apigateway.MethodOptions(
                authorization_type=apigateway.AuthorizationType.CUSTOM, authorizer=self.authorizer
            )
        return apigateway.MethodOptions(authorization_type=apigateway.AuthorizationType.NONE)
