"""Live job updates: an API Gateway WebSocket API beside the REST API (``AsyncJobApi(websocket=...)``).

A caller connects (authorised at ``$connect`` like the REST API: IAM by default, the team's Lambda REQUEST
authorizer for Cognito or custom auth), subscribes to one job or to all its own, and is sent every change of
them as it is written. ``ConnectionFunction`` serves the routes and keeps ``ConnectionsTable``; the push function
reads the status table's stream through a filter that lets through only the jobs someone watches, and posts
each change to the subscribed connections (``@connections``). docs/websockets.md has the protocol and the costs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Final

import jsii
from aws_cdk import Acknowledgment, Annotations, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from constructs import Construct

from async_job_construct.auth import JobApiAuthKind
from async_job_construct.compliance import skip_checkov
from async_job_construct.metadata import mark
from async_job_construct.validation import PropValueError
from async_job_construct.websocket_options import JobWebSocketOptions, ResolvedWebSocket
from lambda_handlers.contract import METADATA_KEY, OWNER_INDEX, Env, Role

__all__ = ["WEBSOCKET_ROUTES", "JobWebSocket", "JobWebSocketOptions", "ResolvedWebSocket", "push_filter"]

#: The routes of the WebSocket API (``route_selection_expression`` ``$request.body.action``).
WEBSOCKET_ROUTES: Final = ("$connect", "$disconnect", "subscribe", "unsubscribe", "$default")
#: The attribute on a job item that says someone follows it (epoch seconds), as the push's filter reads it.
WATCHED_ATTRIBUTE: Final = "watchedUntil"
_STAGE_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,128}")
_IDENTITY_SOURCE: Final = re.compile(
    r"route\.request\.(header|querystring)\.[A-Za-z0-9_.-]+|stageVariables\.\w+"
)
#: The stage's access log line (JSON): who connected, which route, what came of it.
ACCESS_LOG_FIELDS: Final = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "ip": "$context.identity.sourceIp",
    "caller": "$context.identity.caller",
    "user": "$context.identity.user",
    "principalId": "$context.authorizer.principalId",
    "connectionId": "$context.connectionId",
    "eventType": "$context.eventType",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "integrationStatus": "$context.integrationStatus",
    "integrationLatency": "$context.integrationLatency",
    "errorMessage": "$context.error.message",
}

#: What the connection and push functions do to the connections table's items (nothing else: no scan).
_CONNECTIONS_ACTIONS: Final = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
    "dynamodb:BatchWriteItem",
)
#: Makes one function of the API in ``scope``: ``create(scope, id, role, handler, variables)``.
CreateFunction = Callable[[Construct, str, str, str, Mapping[str, str]], lambda_.Function]


def push_filter() -> dict[str, object]:
    """The push's event source filter: inserts and changes of job items that someone watches.

    Examples
    --------
    >>> push_filter()["dynamodb"]
    {'NewImage': {'watchedUntil': {'N': [{'exists': True}]}}}
    """
    return {
        "eventName": ["INSERT", "MODIFY"],
        "dynamodb": {"NewImage": {WATCHED_ATTRIBUTE: {"N": [{"exists": True}]}}},
    }


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogSettings:
    """The stage's access log: a JSON line per event into the WebSocket's log group."""

    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._destination = apigwv2.LogGroupLogDestination(log_group)

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigateway.AccessLogFormat:
        return apigateway.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS))


class JobWebSocket(Construct):
    """The WebSocket API of an ``AsyncJobApi``: routes, stage, connections table, and the push on the stream.

    Built by ``AsyncJobApi(websocket=...)`` as ``api.websocket``; not meant to be built alone.

    Attributes
    ----------
    web_socket_api, stage, url, callback_url
        The ``apigwv2.WebSocketApi``, its ``WebSocketStage``, its ``wss://`` URL and its ``@connections`` endpoint.
    connections_table
        Connections and subscriptions (partition ``pk``, sort ``sk``; TTL ``expiresAt``).
    connection_function, push_function
        The routes' function and the stream consumer that posts updates.
    access_log_group
        The stage's access log.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        options: ResolvedWebSocket,
        table: dynamodb.ITable,
        jobs_url: str,
        operators: Sequence[str],
        encryption_key: kms.IKey | None,
        removal_policy: RemovalPolicy,
        create: CreateFunction,
        log_group: Callable[[Construct, str], logs.LogGroup],
        logging_account: Construct | None,
    ) -> None:
        super().__init__(scope, id)

        if table.table_stream_arn is None:
            raise PropValueError(
                "websocket",
                f"on an API whose table ({table.node.path}) has no stream",
                "needs the status table's stream: the push reads every change of a job from it",
                "Pass a table with stream=StreamViewType.NEW_AND_OLD_IMAGES (imported with table_stream_arn), "
                "or leave websocket off.",
            )
        #: The options, every default resolved.
        self.options = options
        self._key = encryption_key
        self.connections_table: dynamodb.Table = self._connections_table(encryption_key, removal_policy)
        mark(self.connections_table, api=scope, role=Role.CONNECTIONS_TABLE)

        self.connection_function: lambda_.Function = create(
            self,
            "ConnectionFunction",
            Role.CONNECTIONS,
            "lambda_handlers.websocket.handler",
            {
                Env.CONNECTIONS_TABLE: self.connections_table.table_name,
                Env.JOBS_URL: jobs_url,
                **({Env.OPERATORS: json.dumps(list(operators))} if operators else {}),
            },
        )
        integration = integrations.WebSocketLambdaIntegration("Integration", self.connection_function)
        authorizer: apigwv2.IWebSocketRouteAuthorizer | None
        if options.authorizer_function is not None:
            authorizer = authorizers.WebSocketLambdaAuthorizer(
                "Authorizer", options.authorizer_function, identity_source=list(options.identity_source)
            )
        elif options.auth is JobApiAuthKind.IAM:
            authorizer = authorizers.WebSocketIamAuthorizer()
        else:  # JobApiAuth.none(): the API warns already
            authorizer = None
        self.web_socket_api: apigwv2.WebSocketApi = apigwv2.WebSocketApi(
            self,
            "Api",
            description=f"Live job updates of {scope.node.path}",
            route_selection_expression="$request.body.action",
            connect_route_options=apigwv2.WebSocketRouteOptions(
                integration=integration, authorizer=authorizer
            ),
            disconnect_route_options=apigwv2.WebSocketRouteOptions(integration=integration),
            default_route_options=apigwv2.WebSocketRouteOptions(
                integration=integration, return_response=True
            ),
        )
        for action in ("subscribe", "unsubscribe"):
            self.web_socket_api.add_route(action, integration=integration, return_response=True)
        cfn_api = self.web_socket_api.node.default_child
        assert isinstance(cfn_api, apigwv2.CfnApi)
        cfn_api.add_metadata(METADATA_KEY, {"api": scope.node.path, "role": Role.WEBSOCKET_API})

        self.access_log_group: logs.LogGroup = log_group(self, "AccessLogs")
        self.stage: apigwv2.WebSocketStage = apigwv2.WebSocketStage(
            self,
            "Stage",
            web_socket_api=self.web_socket_api,
            stage_name=options.stage_name,
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=options.throttling_rate_limit, burst_limit=options.throttling_burst_limit
            ),
            access_log_settings=_AccessLogSettings(self.access_log_group),
        )
        cfn_stage = self.stage.node.default_child
        assert isinstance(cfn_stage, apigwv2.CfnStage)
        # Execution logs of failed route calls, as the REST stage has (needs API Gateway's account logging role).
        cfn_stage.add_property_override("DefaultRouteSettings.LoggingLevel", "ERROR")
        cfn_stage.add_property_override("DefaultRouteSettings.DataTraceEnabled", False)
        if logging_account is not None:
            self.stage.node.add_dependency(logging_account)
        #: ``wss://{api}.execute-api.{region}.amazonaws.com/{stage}``: where clients connect (the REST
        #: responses' ``Link: <...>; rel="updates"``).
        self.url: str = self.stage.url
        #: ``https://.../{stage}``: the ``@connections`` management endpoint the push posts to.
        self.callback_url: str = self.stage.callback_url

        self.push_function: lambda_.Function = create(
            self,
            "PushFunction",
            Role.WEBSOCKET_PUSH,
            "lambda_handlers.websocket_push.handler",
            {
                Env.CONNECTIONS_TABLE: self.connections_table.table_name,
                Env.WEBSOCKET_ENDPOINT: self.callback_url,
                Env.JOBS_URL: jobs_url,
            },
        )
        self.push_function.add_event_source(
            sources.DynamoEventSource(
                table,
                # Updates of the past are worth nothing to a connection that opens now.
                starting_position=lambda_.StartingPosition.LATEST,
                batch_size=10,
                # One batch per shard at a time: a job's updates are posted in the order they were written.
                parallelization_factor=1,
                retry_attempts=10,
                max_record_age=Duration.hours(1),
                report_batch_item_failures=True,
                filters=[lambda_.FilterCriteria.filter(push_filter())],
            )
        )
        self._grant(table)
        self._acknowledge()

    def _connections_table(self, key: kms.IKey | None, removal_policy: RemovalPolicy) -> dynamodb.Table:
        table = dynamodb.Table(
            self,
            "ConnectionsTable",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute="expiresAt",
            encryption=(
                dynamodb.TableEncryption.AWS_MANAGED
                if key is None
                else dynamodb.TableEncryption.CUSTOMER_MANAGED
            ),
            encryption_key=key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=self.options.point_in_time_recovery
            ),
            removal_policy=removal_policy,
        )
        if key is None:
            skip_checkov(
                table,
                "CKV_AWS_119",
                "Encrypted with the AWS-managed key (aws/dynamodb); pass encryption_key for a customer-managed key.",
            )
        if not self.options.point_in_time_recovery:
            reason = (
                "Connections and subscriptions live 2 hours at most (API Gateway's connection limit) and are "
                "rebuilt by the clients' reconnect; a restore would bring back dead connections. "
                "JobWebSocketOptions(point_in_time_recovery=True) turns it on."
            )
            skip_checkov(table, "CKV_AWS_28", reason)
            Validations.of(table).acknowledge(
                Acknowledgment(id="AwsSolutions::AwsSolutions-DDB3", reason=reason)
            )
        return table

    def _grant(self, table: dynamodb.ITable) -> None:
        """Least privilege: each function's table items, the status table's few actions, ``@connections``."""
        for function in (self.connection_function, self.push_function):
            self.connections_table.grant(function, *_CONNECTIONS_ACTIONS)
            if self._key is not None:
                self._key.grant(
                    function, "kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"
                )
        # Post to (and learn of gone) connections of this stage only.
        self.stage.grant_management_api_access(self.push_function)
        self._owner_index = f"{table.table_arn}/index/{OWNER_INDEX}"

    def grant_status_table(self, grant_items: Callable[..., None]) -> None:
        """The status-table actions (the API's ``SharedFunctions.grant_items``, which adds its key)."""
        # Read a job to check its owner; mark it watched (UpdateItem); list the owner's unfinished jobs.
        grant_items(self.connection_function, "dynamodb:GetItem", "dynamodb:UpdateItem")
        iam.Grant.add_to_principal(
            grantee=self.connection_function, actions=["dynamodb:Query"], resource_arns=[self._owner_index]
        )
        # Remove a watch that is over.
        grant_items(self.push_function, "dynamodb:UpdateItem")

    def grant_connect(self, grantee: iam.IGrantable) -> iam.Grant:
        """``execute-api:Invoke`` on ``$connect`` (IAM auth: who may connect; subscribing checks ownership)."""
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["execute-api:Invoke"],
            resource_arns=[self.web_socket_api.arn_for_execute_api_v2("$connect", self.options.stage_name)],
        )

    def _acknowledge(self) -> None:
        for route in self.web_socket_api.node.find_all():
            if not isinstance(route, apigwv2.WebSocketRoute) or route.route_key == "$connect":
                continue
            Validations.of(route).acknowledge(
                Acknowledgment(
                    id="AwsSolutions::AwsSolutions-APIG4",
                    reason="A WebSocket API authorises the connection at $connect (IAM or the Lambda "
                    "authorizer); its other routes carry that connection, and the route function checks "
                    "each job's owner.",
                ),
            )
        assert self.push_function.role is not None
        Validations.of(self.push_function.role).acknowledge(
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:"
                f"<AWS::AccountId>:<{_logical_placeholder(self.web_socket_api)}>/{self.options.stage_name}/*/"
                "@connections/*]",
                reason="A connection id is made by API Gateway when a client connects: the push may post to any "
                "connection of this one stage (the management API's resource is per connection).",
            )
        )
        if self.options.auth is JobApiAuthKind.NONE:
            Annotations.of(self).add_warning_v2(
                "async-job:websocket-no-auth",
                "websocket with auth JobApiAuth.none(): anyone may connect; every caller is 'anonymous' and "
                "follows every anonymous job.",
            )


def _logical_placeholder(api: Construct) -> str:
    """cdk-nag's name of the API's id in a finding's resource (``<LogicalId>``), resolved when the rule runs."""
    cfn = api.node.default_child
    assert cfn is not None
    return str(Stack.of(api).get_logical_id(cfn))  # type: ignore[arg-type]
