"""The API's Lambda functions: each with its own role, log group and the layers it needs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jsii
from aws_cdk import CfnResource, Duration, IResolvable, IResolveContext, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from async_job_construct.compliance import acknowledge_tracing, skip_checkov, skip_function_checks
from async_job_construct.metadata import mark
from async_job_construct.powertools import check_powertools_layer_version, public_layer_arn

__all__ = ["FunctionFactory", "FunctionOptions"]


@dataclass(frozen=True)
class FunctionOptions:
    """What the API decides for every function it creates."""

    log_retention: logs.RetentionDays
    removal_policy: RemovalPolicy
    encryption_key: kms.IKey | None
    tracing: bool
    #: The team's Powertools layer for every function; None: the public layer for each runtime and architecture.
    powertools_layer: lambda_.ILayerVersion | None
    #: Which public layer: a layer version, or "latest"/a release through SSM; None: the pinned one.
    powertools_layer_version: int | str | None = None


@jsii.implements(IResolvable)
class _DependsOnAllButRole:
    """A function's ``DependsOn``, resolved at synth: everything it depends on except its own role.

    CDK makes a function depend on its role and the role's policy; the role dependency is redundant (its
    ``Role: Fn::GetAtt`` already orders it, cfn-lint W3005) and the policy one is the one that matters. Read at
    synth, so dependencies a user adds later (``worker_function.node.add_dependency(x)``) are kept.
    """

    def __init__(self, function: lambda_.CfnFunction, role: iam.CfnRole) -> None:
        self._function = function
        self._role = role
        self.creation_stack: list[str] = []

    def resolve(self, context: IResolveContext) -> Any:
        stack = Stack.of(self._function)
        role = stack.get_logical_id(self._role)
        return sorted(
            {
                stack.get_logical_id(d)
                for d in self._function.obtain_dependencies()
                if isinstance(d, CfnResource)
            }
            - {role}
        )

    def to_string(self) -> str:
        return "DependsOnAllButRole"


class FunctionFactory:
    """Builds the functions of one API and remembers them (for grants and acknowledgments).

    Examples
    --------
    >>> functions = FunctionFactory(api, options)
    >>> functions.create(api, "StatusFunction", role=Role.STATUS, code=code, handler="m.f", ...)
    """

    def __init__(self, api: Construct, options: FunctionOptions) -> None:
        self._api = api
        self._options = options
        self._powertools: dict[tuple[str, str], lambda_.ILayerVersion] = {}
        self._powertools_version = check_powertools_layer_version(
            api, options.powertools_layer_version, powertools_layer=options.powertools_layer
        )
        self.functions: list[lambda_.Function] = []

    def powertools_layer(
        self, runtime: lambda_.Runtime, architecture: lambda_.Architecture
    ) -> lambda_.ILayerVersion:
        """The Powertools layer for ``runtime`` and ``architecture`` (the team's, or the public one)."""
        if self._options.powertools_layer is not None:
            return self._options.powertools_layer
        python = runtime.name.replace(".", "")  # python3.14 -> python314
        arch = "arm64" if architecture.name == lambda_.Architecture.ARM_64.name else "x86_64"
        key = (python, arch)
        if key not in self._powertools:
            id = "PowertoolsLayer" if not self._powertools else f"PowertoolsLayer-{python}-{arch}"
            self._powertools[key] = lambda_.LayerVersion.from_layer_version_arn(
                self._api, id, public_layer_arn(self._api, runtime, arch, self._powertools_version)
            )
        return self._powertools[key]

    def log_group(self, scope: Construct, id: str) -> logs.LogGroup:
        """A log group retained and encrypted as the API decides."""
        log_group = logs.LogGroup(
            scope,
            id,
            retention=self._options.log_retention,
            removal_policy=self._options.removal_policy,
            encryption_key=self._options.encryption_key,
        )
        if self._options.encryption_key is None:
            skip_checkov(
                log_group,
                "CKV_AWS_158",
                "CloudWatch Logs encrypts log data at rest with its own keys; pass encryption_key for a CMK.",
            )
        return log_group

    def create(
        self,
        scope: Construct,
        id: str,
        *,
        role: str,
        code: lambda_.Code,
        handler: str,
        timeout: Duration,
        memory_size: int,
        environment: Mapping[str, str],
        runtime: lambda_.Runtime,
        architecture: lambda_.Architecture,
        layers: Sequence[lambda_.ILayerVersion] = (),
        job_type: str | None = None,
        durable_config: lambda_.DurableConfig | None = None,
        current_version_options: lambda_.VersionOptions | None = None,
    ) -> lambda_.Function:
        """A function with its own role and log group, marked as ``role`` of the API.

        With ``durable_config`` it is a durable function. Its role is still this one: CDK adds the AWS-managed
        AWSLambdaBasicDurableExecutionRolePolicy (checkpoints on every function) only to a role it creates; the
        caller grants the durable execution actions on this function alone.
        """
        log_group = self.log_group(scope, f"{id}Logs")
        # Our own role instead of Lambda's default, which carries the AWS-managed AWSLambdaBasicExecutionRole
        # (logs:CreateLogGroup and writes to every log group): this one writes to its own log group only.
        execution_role = iam.Role(
            scope,
            f"{id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{scope.node.path}/{id}: its log group, and what grant_* adds",
        )
        log_group.grant_write(execution_role)
        function = lambda_.Function(
            scope,
            id,
            runtime=runtime,
            architecture=architecture,
            code=code,
            handler=handler,
            timeout=timeout,
            memory_size=memory_size,
            environment=dict(environment),
            layers=[*layers, self.powertools_layer(runtime, architecture)],
            tracing=lambda_.Tracing.ACTIVE if self._options.tracing else lambda_.Tracing.DISABLED,
            log_group=log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            role=execution_role,
            durable_config=durable_config,
            current_version_options=current_version_options,
        )
        mark(function, api=self._api, role=role, job_type=job_type)
        skip_function_checks(function)
        if self._options.tracing:
            acknowledge_tracing(function)
        cfn_function = function.node.default_child
        cfn_role = execution_role.node.default_child
        assert isinstance(cfn_function, lambda_.CfnFunction)
        assert isinstance(cfn_role, iam.CfnRole)
        cfn_function.add_override("DependsOn", _DependsOnAllButRole(cfn_function, cfn_role))
        self.functions.append(function)
        return function
