"""The REST API of an ``AsyncJobApi``: stage, gateway responses as problems, the request model, the routes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Final

from aws_cdk import Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from async_job_construct.auth import JobApiAuth, JobApiAuthKind
from async_job_construct.compliance import (
    acknowledge_cloud_watch_role,
    acknowledge_method_authorization,
    skip_checkov,
)
from async_job_construct.metadata import mark
from lambda_handlers.contract import JOBS_PATH, LIST_QUERY_PARAMETERS, Role

__all__ = ["ACCESS_LOG_FIELDS", "GATEWAY_PROBLEMS", "GatewayOptions", "JobGateway", "logging_account"]

#: The stage's access log line (JSON), with the latencies a job API is judged by.
ACCESS_LOG_FIELDS: Final = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "ip": "$context.identity.sourceIp",
    "caller": "$context.identity.caller",
    "user": "$context.identity.user",
    "principalId": "$context.authorizer.principalId",
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "integrationStatus": "$context.integrationStatus",
    "errorType": "$context.error.responseType",
}


class _Needs(Enum):
    """What a gateway response type needs to be answered at all (besides an authorization kind)."""

    NOTHING = "nothing"
    API_KEY = "an API key (api_key_required)"
    WEB_ACL = "a web ACL (web_acl_arn)"


@dataclass(frozen=True)
class _GatewayProblem:
    """One of API Gateway's own answers, as an RFC 9457 problem (a ``GatewayResponse``).

    ``status`` is the one status API Gateway answers the type with; it is set on the response and in the body.
    None where the status varies (``DEFAULT_4XX``: 400 or 403; ``DEFAULT_5XX``, which covers
    ``INTEGRATION_FAILURE``: 500 when Lambda refuses the invocation, 502 for a function error): a gateway
    response template is not VTL (plain ``$context`` substitution, no ``#if``, no status variable), so the body
    cannot say it, and pinning one would change what clients receive. ``detail`` is a template expression: a
    JSON string constant or ``$context.error.messageString`` (API Gateway quotes and escapes that one only).
    """

    response_type: apigateway.ResponseType
    status: int | None
    slug: str
    title: str
    detail: str = "$context.error.messageString"
    #: The authorization kinds under which API Gateway can answer this type.
    auth: frozenset[JobApiAuthKind] = frozenset(JobApiAuthKind)
    needs: _Needs = _Needs.NOTHING


_REJECTED: Final = "Request rejected by the API gateway"
_FAILED: Final = "The API gateway failed to handle the request"
_SIGNED: Final = frozenset({JobApiAuthKind.IAM})
_AUTHORIZED: Final = frozenset({JobApiAuthKind.IAM, JobApiAuthKind.COGNITO, JobApiAuthKind.CUSTOM})
_TOKENS: Final = frozenset({JobApiAuthKind.COGNITO, JobApiAuthKind.CUSTOM})


def _rejected(
    response_type: apigateway.ResponseType,
    status: int,
    auth: frozenset[JobApiAuthKind] = frozenset(JobApiAuthKind),
    needs: _Needs = _Needs.NOTHING,
) -> _GatewayProblem:
    title = _FAILED if status >= 500 else _REJECTED
    return _GatewayProblem(
        response_type, status, f"gateway-{response_type.response_type}", title, auth=auth, needs=needs
    )


#: API Gateway's own answers, as RFC 9457 problems, one ``GatewayResponse`` each where the API can give it (the
#: local runtime reads them from the template). A type whose status API Gateway fixes gets its own response,
#: so that its problem carries ``status``; the others (and those this API cannot give: BAD_REQUEST_PARAMETERS,
#: as the only required parameter is the path's id; QUOTA_EXCEEDED, as the usage plan sets no quota;
#: UNSUPPORTED_MEDIA_TYPE, which needs a strict passthrough that Lambda proxy integrations do not have;
#: INTEGRATION_TIMEOUT, as the API's functions time out at 10 s, before API Gateway's 29 s) fall back to the
#: DEFAULT_4XX and DEFAULT_5XX problems. Default statuses: AWS's "Gateway response types for API Gateway".
GATEWAY_PROBLEMS: Final = (
    _GatewayProblem(
        apigateway.ResponseType.BAD_REQUEST_BODY,
        400,
        "invalid-json",
        "Invalid JSON",
        # A constant: API Gateway does not JSON-escape $context.error.validationErrorString (parser messages
        # hold double quotes), so quoting it into the template would answer invalid JSON. The request model asks
        # for any JSON value, so this answers a body that is not JSON only; the submit function answers
        # body-not-object for JSON that is not an object (a gateway response cannot tell the two apart).
        '"The body is not JSON (RFC 8259: UTF-8 text, no NaN or Infinity); API Gateway rejected it before any '
        'function ran."',
    ),
    _rejected(apigateway.ResponseType.MISSING_AUTHENTICATION_TOKEN, 403),
    _rejected(apigateway.ResponseType.ACCESS_DENIED, 403, _AUTHORIZED),
    _rejected(apigateway.ResponseType.INVALID_SIGNATURE, 403, _SIGNED),
    _rejected(apigateway.ResponseType.EXPIRED_TOKEN, 403, _SIGNED),
    _rejected(apigateway.ResponseType.UNAUTHORIZED, 401, _TOKENS),
    _rejected(apigateway.ResponseType.AUTHORIZER_FAILURE, 500, frozenset({JobApiAuthKind.CUSTOM})),
    _rejected(
        apigateway.ResponseType.AUTHORIZER_CONFIGURATION_ERROR, 500, frozenset({JobApiAuthKind.CUSTOM})
    ),
    _rejected(apigateway.ResponseType.INVALID_API_KEY, 403, needs=_Needs.API_KEY),
    _rejected(apigateway.ResponseType.WAF_FILTERED, 403, needs=_Needs.WEB_ACL),
    _rejected(apigateway.ResponseType.THROTTLED, 429),
    _rejected(apigateway.ResponseType.REQUEST_TOO_LARGE, 413),
    _GatewayProblem(
        apigateway.ResponseType.DEFAULT_4_XX, None, "gateway-$context.error.responseType", _REJECTED
    ),
    _GatewayProblem(
        apigateway.ResponseType.DEFAULT_5_XX, None, "gateway-$context.error.responseType", _FAILED
    ),
)

#: Where the first AsyncJobApi of a stack with cloud_watch_role=True keeps API Gateway's account settings.
_ACCOUNT_ATTRIBUTE: Final = "_async_job_api_gateway_account"


@dataclass(frozen=True)
class GatewayOptions:
    """The API-level props the gateway is built from."""

    auth: JobApiAuth
    api_key_required: bool
    tracing: bool
    throttling_rate_limit: int
    throttling_burst_limit: int
    cors: apigateway.CorsOptions | None
    web_acl_arn: str | None
    cloud_watch_role: bool


class JobGateway:
    """The REST API with ``GET /jobs`` and ``GET``/``DELETE /jobs/{id}`` (``add_status_routes``) and ``POST /{name}`` per job type.

    Examples
    --------
    >>> gateway = JobGateway(api_construct, options, access_log_group=access_logs)
    >>> gateway.add_submit_route("reports", submit_function)
    >>> gateway.add_status_routes(status_function)
    """

    def __init__(
        self,
        scope: Construct,
        options: GatewayOptions,
        *,
        access_log_group: logs.ILogGroup,
    ) -> None:
        self._options = options
        account = _shared_account(scope) if options.cloud_watch_role else None
        api = apigateway.RestApi(
            scope,
            "Api",
            description=f"Asynchronous job API of {scope.node.path}",
            endpoint_types=[apigateway.EndpointType.REGIONAL],
            cloud_watch_role=options.cloud_watch_role and account is None,
            deploy_options=apigateway.StageOptions(
                tracing_enabled=options.tracing,
                throttling_rate_limit=options.throttling_rate_limit,
                throttling_burst_limit=options.throttling_burst_limit,
                logging_level=apigateway.MethodLoggingLevel.ERROR,
                metrics_enabled=True,
                access_log_destination=apigateway.LogGroupLogDestination(access_log_group),
                access_log_format=apigateway.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS)),
            ),
            default_method_options=options.auth.method_options(scope),
            default_cors_preflight_options=options.cors,
        )
        self.api = api
        mark(api, api=scope, role=Role.API)
        if options.cloud_watch_role:
            if account is None:
                setattr(Stack.of(scope), _ACCOUNT_ATTRIBUTE, api.node.find_child("Account"))
                acknowledge_cloud_watch_role(api)
            else:  # one AWS::ApiGateway::Account per stack: this stage waits for the first API's
                api.deployment_stage.node.add_dependency(account)
        skip_checkov(
            api.deployment_stage,
            "CKV_AWS_120",
            "A job-status API must not cache: a cached GET would hide progress and completion.",
        )
        self._add_problems()
        # API Gateway rejects a body that is not JSON before any Lambda runs (BAD_REQUEST_BODY, invalid-json).
        # The model asks for no type: JSON that is not an object reaches the submit function, whose
        # body-not-object problem says so; one gateway response cannot answer both (see GATEWAY_PROBLEMS).
        self._body_model = api.add_model(
            "JobRequest",
            content_type="application/json",
            schema=apigateway.JsonSchema(
                schema=apigateway.JsonSchemaVersion.DRAFT4,
                description="Any JSON value: the submit function requires an object",
            ),
        )
        self._validator = api.add_request_validator(
            "RequestValidator", validate_request_body=True, validate_request_parameters=True
        )
        self.jobs_resource: apigateway.Resource = api.root.add_resource(JOBS_PATH)
        self._acknowledged = 0

        self.usage_plan: apigateway.UsagePlan | None = None
        if options.api_key_required:
            self.usage_plan = api.add_usage_plan(
                "UsagePlan",
                description=f"API keys that may call {scope.node.path}",
                throttle=apigateway.ThrottleSettings(
                    rate_limit=options.throttling_rate_limit, burst_limit=options.throttling_burst_limit
                ),
                api_stages=[apigateway.UsagePlanPerApiStage(api=api, stage=api.deployment_stage)],
            )
        if options.web_acl_arn is not None:
            from aws_cdk import aws_wafv2 as wafv2  # only with this option: its module is large to import

            wafv2.CfnWebACLAssociation(
                scope,
                "WebAclAssociation",
                resource_arn=api.deployment_stage.stage_arn,
                web_acl_arn=options.web_acl_arn,
            )

    def _add_problems(self) -> None:
        available: Mapping[_Needs, bool] = {
            _Needs.NOTHING: True,
            _Needs.API_KEY: self._options.api_key_required,
            _Needs.WEB_ACL: self._options.web_acl_arn is not None,
        }
        for problem in GATEWAY_PROBLEMS:
            if self._options.auth.kind not in problem.auth or not available[problem.needs]:
                continue  # API Gateway never answers this type for this API: no resource for it
            body: dict[str, object] = {
                "type": f"urn:async-job:problem:{problem.slug}",
                "title": problem.title,
            }
            if problem.status is not None:
                body["status"] = problem.status
            self.api.add_gateway_response(
                f"Problem{problem.response_type.response_type}",
                type=problem.response_type,
                status_code=None if problem.status is None else str(problem.status),
                # The template is keyed by the default content type; the header below is what the client sees.
                templates={"application/json": json.dumps(body)[:-1] + f', "detail": {problem.detail}}}'},
                response_headers={"Content-Type": "'application/problem+json'"},
            )

    def add_status_routes(self, status_function: lambda_.IFunction) -> None:
        """``GET /jobs`` (the caller's jobs), ``GET``/``DELETE /jobs/{id}`` and ``GET /jobs/{id}/result`` to the
        status function (jobs of every type)."""
        #: ``/jobs/{id}``, created after ``POST /jobs`` (the deployment's logical id hashes them in order).
        self.job_resource: apigateway.Resource = self.jobs_resource.add_resource("{id}")
        status_integration = apigateway.LambdaIntegration(status_function, allow_test_invoke=False)
        self.jobs_resource.add_method(
            "GET",
            status_integration,
            api_key_required=self._options.api_key_required,
            request_parameters={
                f"method.request.querystring.{name}": False for name in LIST_QUERY_PARAMETERS
            },
            request_validator=self._validator,
        )
        for method in ("GET", "DELETE"):
            self.job_resource.add_method(
                method,
                status_integration,
                api_key_required=self._options.api_key_required,
                request_parameters={"method.request.path.id": True},
                request_validator=self._validator,
            )
        #: ``/jobs/{id}/result``: a SUCCEEDED job's result (inline, or a redirect into the bucket).
        self.result_resource: apigateway.Resource = self.job_resource.add_resource("result")
        self.result_resource.add_method(
            "GET",
            status_integration,
            api_key_required=self._options.api_key_required,
            request_parameters={"method.request.path.id": True},
            request_validator=self._validator,
        )
        self._acknowledge_new_methods()

    def add_submit_route(self, name: str, submit_function: lambda_.IFunction) -> apigateway.Method:
        """``POST /{name}`` to the submit function (``POST /jobs`` for the default type)."""
        # The type named like the jobs collection (the single-handler form's ``jobs``) is submitted at ``POST /jobs``.
        resource = self.jobs_resource if name == JOBS_PATH else self.api.root.add_resource(name)
        method = resource.add_method(
            "POST",
            apigateway.LambdaIntegration(submit_function, allow_test_invoke=False),
            api_key_required=self._options.api_key_required,
            request_models={"application/json": self._body_model},
            request_validator=self._validator,
        )
        self._acknowledge_new_methods()
        return method

    def _acknowledge_new_methods(self) -> None:
        methods = self.api.methods
        acknowledge_method_authorization(methods[self._acknowledged :], self._options.auth.kind)
        self._acknowledged = len(methods)


def logging_account(scope: Construct) -> apigateway.CfnAccount | None:
    """API Gateway's account settings (its logging role) made by an AsyncJobApi of this stack, if any: a
    WebSocket stage that logs waits for it too."""
    return _shared_account(scope)


def _shared_account(scope: Construct) -> apigateway.CfnAccount | None:
    """The ``AWS::ApiGateway::Account`` an earlier AsyncJobApi of this stack created, if any."""
    account = getattr(Stack.of(scope), _ACCOUNT_ATTRIBUTE, None)
    return account if isinstance(account, apigateway.CfnAccount) else None
