"""What every job type of an API shares: the runtime layer and the submit, status and dead-letter functions."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jsii
from aws_cdk import Duration, Fn, IResolvable, IResolveContext, Stack, Token
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from async_job_construct import defaults
from async_job_construct.bucket import JobBucket
from async_job_construct.functions import FunctionFactory
from async_job_construct.props import ApiProps
from async_job_construct.push import JobPush, PushOptions, webhook_environment
from async_job_construct.runtime_assets import RuntimeAssets
from lambda_handlers.contract import OWNER_INDEX, Env, JobTypeKey, Role

if TYPE_CHECKING:
    from async_job_construct.job_type import JobType

__all__ = ["SharedFunctions", "service_name"]

#: The functions that may take longer than the API's own (which answer API Gateway within 10 s).
_TIMEOUTS = {
    Role.DEAD_LETTER: defaults.DEAD_LETTER_FUNCTION_TIMEOUT,
    Role.WEBSOCKET_PUSH: defaults.WEBSOCKET_PUSH_FUNCTION_TIMEOUT,
}


@jsii.implements(IResolvable)
class _JobTypesDocument:
    """``Env.JOB_TYPES``: JSON of every type's settings by name, rendered when the template is."""

    def __init__(self, scope: Construct, job_types: Sequence[JobType]) -> None:
        self._scope = scope
        self._job_types = job_types
        self.creation_stack: list[str] = []

    def resolve(self, context: IResolveContext) -> Any:
        document = {
            job_type.name: {
                JobTypeKey.QUEUE_URL: job_type.queue.queue_url,
                JobTypeKey.MAX_PAYLOAD_BYTES: job_type.max_payload_bytes,
                JobTypeKey.MAX_RECEIVE_COUNT: job_type.max_receive_count,
            }
            for job_type in self._job_types
        }
        return Stack.of(self._scope).to_json_string(document)

    def to_string(self) -> str:
        return "JobTypesDocument"


def service_name(api: Construct) -> str:
    """``POWERTOOLS_SERVICE_NAME`` of every function of ``api``: its stack and path, unique in the account and
    region (metrics are dimensioned by it and the job type, so two APIs never share a series)."""
    stack = Stack.of(api)
    relative = api.node.path.removeprefix(stack.node.path + "/")
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", relative)
    if Token.is_unresolved(stack.stack_name):
        return Fn.join("-", [stack.stack_name, name])
    return f"{stack.stack_name}-{name}"


class SharedFunctions:
    """The API's own functions and the runtime layer, wired to each job type as it is added.

    Examples
    --------
    >>> shared = SharedFunctions(api, functions, assets, table=table, ...)
    >>> shared.wire(job_type)
    """

    def __init__(
        self,
        scope: Construct,
        functions: FunctionFactory,
        assets: RuntimeAssets,
        props: ApiProps,
        *,
        table: dynamodb.ITable,
        owns_table: bool,
        objects: JobBucket,
        push: PushOptions,
    ) -> None:
        self._table = table
        self._objects = objects
        # The item grants leave the table's key to the caller (the queues' grants include theirs).
        self._table_key = props.encryption_key if owns_table else None
        runtime, architecture = props.runtime, props.architecture
        #: What every function of the API is told: the table, the metrics' identity, the TTL.
        self.common_environment: Mapping[str, str] = {
            Env.TABLE_NAME: table.table_name,
            Env.BUCKET_NAME: objects.bucket.bucket_name,
            "POWERTOOLS_SERVICE_NAME": service_name(scope),
            "POWERTOOLS_METRICS_NAMESPACE": props.metrics_namespace,
            # Every function that ends a job sets its expiry: job_ttl from the end.
            Env.TTL_SECONDS: str(int(props.job_ttl.to_seconds())),
            # Unless AWS calls are traced, the runtime builds no X-Ray tracer at all (a third of its cold start).
            **({} if props.tracing and props.trace_aws_calls else {"POWERTOOLS_TRACE_DISABLED": "true"}),
        }
        # The runtime is pure Python, so one layer serves every worker: its compatible runtimes and architectures
        # are set on the L1 and extended per job type (the L2 would refuse a worker outside its first list).
        self.runtime_layer = lambda_.LayerVersion(
            scope,
            "RuntimeLayer",
            code=lambda_.Code.from_asset(str(assets.layer_dir)),
            description="async-job-construct runtime (lambda_handlers) for the worker",
        )
        self._layer_runtimes: list[str] = []
        self._layer_architectures: list[str] = []
        self.extend_runtime_layer(runtime, architecture)
        self._functions = functions
        self._code = lambda_.Code.from_asset(str(assets.function_dir))
        self._runtime, self._architecture = runtime, architecture

        def create_in(
            where: Construct, id: str, role: str, handler: str, variables: Mapping[str, str]
        ) -> lambda_.Function:
            return self.create_function(
                where,
                id,
                role=role,
                handler=handler,
                variables=variables,
                timeout=_TIMEOUTS.get(role, defaults.SHARED_FUNCTION_TIMEOUT),
            )

        def create(id: str, role: str, handler: str, variables: Mapping[str, str]) -> lambda_.Function:
            return create_in(scope, id, role, handler, variables)

        #: Makes one more function of the API in a scope of its own (the WebSocket's): code, runtime, settings.
        self.create_api_function = create_in

        retry_after = str(int(props.poll_interval.to_seconds()))
        self.submit_function = create(
            "SubmitFunction",
            Role.SUBMIT,
            "lambda_handlers.submit.handler",
            {
                Env.RETRY_AFTER_SECONDS: retry_after,
                Env.IDEMPOTENCY_KEY_REQUIRED: "true" if props.idempotency_key_required else "false",
            },
        )
        self.status_function = create(
            "StatusFunction",
            Role.STATUS,
            "lambda_handlers.status.handler",
            {
                Env.RETRY_AFTER_SECONDS: retry_after,
                **({Env.OPERATORS: json.dumps(list(props.operators))} if props.operators else {}),
            },
        )
        self.dead_letter_function = create(
            "DeadLetterFunction", Role.DEAD_LETTER, "lambda_handlers.dead_letter.handler", {}
        )
        # Put (alone or in TransactWriteItems with the idempotency key), Delete to undo a job that could not be
        # enqueued, Get to answer an idempotent replay.
        self._grant_items(self.submit_function, "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:GetItem")
        # read, cancel; and list: Query on the owner index alone (not on the table, nor on other indexes).
        self._grant_items(self.status_function, "dynamodb:GetItem", "dynamodb:UpdateItem")
        iam.Grant.add_to_principal(
            grantee=self.status_function,
            actions=["dynamodb:Query"],
            resource_arns=[f"{table.table_arn}/index/{OWNER_INDEX}"],
        )
        # Get to decide on the job as it is, Update to end it.
        self._grant_items(self.dead_letter_function, "dynamodb:GetItem", "dynamodb:UpdateItem")
        if props.encryption_key is not None:
            # CloudWatch Logs encrypts the log groups with the key; an imported key's policy must allow it.
            props.encryption_key.grant_encrypt_decrypt(
                iam.ServicePrincipal(f"logs.{Stack.of(scope).region}.amazonaws.com")
            )
        for function in (self.submit_function, self.status_function, self.dead_letter_function):
            self._grant_table_key(function)
        # Claim checks in; links out (a presigned URL carries the status function's own right to read).
        objects.grant_payload_write(self.submit_function)
        objects.grant_results_read(self.status_function)
        #: Job events on the table's stream, and webhooks (``async_job_construct.push``).
        self.push = JobPush(scope, push, table=table, create=create)
        for name, value in webhook_environment(push.webhook_allowed_hosts).items():
            self.submit_function.add_environment(name, value)
            if self.push.webhook_function is not None:
                self.push.webhook_function.add_environment(name, value)
        if self.push.webhook_function is not None:
            # Get the job to deliver, Update its delivery state.
            self._grant_items(self.push.webhook_function, "dynamodb:GetItem", "dynamodb:UpdateItem")
            self._grant_table_key(self.push.webhook_function)
        self._job_types: list[JobType] = []
        # Rendered at synth, so that it names every type, also those added after the functions.
        job_types = Token.as_string(_JobTypesDocument(scope, self._job_types))
        self.submit_function.add_environment(Env.JOB_TYPES, job_types)
        self.dead_letter_function.add_environment(Env.JOB_TYPES, job_types)

    def grant_items(self, function: lambda_.IFunction, *actions: str) -> None:
        """Item ``actions`` on the status table alone, and its key (the WebSocket's functions)."""
        self._grant_items(function, *actions)
        if isinstance(function, lambda_.Function):
            self._grant_table_key(function)

    def create_function(
        self,
        scope: Construct,
        id: str,
        *,
        role: str,
        handler: str,
        variables: Mapping[str, str],
        timeout: Duration,
        runtime: lambda_.Runtime | None = None,
        architecture: lambda_.Architecture | None = None,
        job_type: str | None = None,
    ) -> lambda_.Function:
        """One of the API's own functions (the runtime's code, no team code): the common environment and
        ``variables``, on the API's runtime and architecture unless given."""
        return self._functions.create(
            scope,
            id,
            role=role,
            code=self._code,
            handler=handler,
            timeout=timeout,
            memory_size=defaults.API_FUNCTION_MEMORY_SIZE,
            runtime=self._runtime if runtime is None else runtime,
            architecture=self._architecture if architecture is None else architecture,
            environment={**self.common_environment, **variables},
            job_type=job_type,
        )

    def grant_starter(self, starter: lambda_.Function, queue: sqs.IQueue) -> None:
        """What a long type's starter does to the table (read a job to skip a finished one, end it FAILED) and
        to its queue besides consuming it (send a held-back job's message again on its last receive)."""
        self._grant_items(starter, "dynamodb:GetItem", "dynamodb:UpdateItem")
        self._grant_table_key(starter)
        queue.grant(starter, "sqs:SendMessage")
        if queue.encryption_master_key is not None:
            queue.encryption_master_key.grant(starter, "kms:GenerateDataKey", "kms:Decrypt")

    def grant_stop_execution(self, durable_worker: lambda_.IFunction) -> None:
        """Let the status function stop the executions of ``durable_worker`` (cancel of a long type's job).

        Durable executions are authorized on their own ARN, ``<function ARN>:<version>/durable-execution/...``:
        ``<function ARN>:*`` is every version's, and nothing of another function.
        """
        iam.Grant.add_to_principal(
            grantee=self.status_function,
            actions=["lambda:StopDurableExecution"],
            resource_arns=[f"{durable_worker.function_arn}:*"],
        )

    def _grant_items(self, function: lambda_.IFunction, *actions: str) -> None:
        """Item ``actions`` on the table alone: ``table.grant`` would add ``index/*`` for a table with indexes."""
        iam.Grant.add_to_principal(
            grantee=function, actions=list(actions), resource_arns=[self._table.table_arn]
        )

    def _grant_table_key(self, function: lambda_.Function) -> None:
        if self._table_key is not None:
            self._table_key.grant(
                function, "kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"
            )

    def grant_worker(self, worker: lambda_.Function, *, durable: bool = False) -> None:
        """What every worker does to the table (update its jobs) and the bucket (read payloads, write results);
        a durable worker also reads its job (its claim is replayed, not returned again)."""
        if durable:
            self._grant_items(worker, "dynamodb:GetItem", "dynamodb:UpdateItem")
        else:
            self._grant_items(worker, "dynamodb:UpdateItem")
        self._grant_table_key(worker)
        self._objects.grant_payload_read(worker)
        self._objects.grant_results_write(worker)

    def wire(self, job_type: JobType) -> None:
        """Connect a new type to the submit and dead-letter functions and the runtime layer."""
        job_type.queue.grant(self.submit_function, "sqs:SendMessage")
        if job_type.queue.encryption_master_key is not None:
            job_type.queue.encryption_master_key.grant(
                self.submit_function, "kms:GenerateDataKey", "kms:Decrypt"
            )
        self._job_types.append(job_type)
        self.dead_letter_function.add_event_source(job_type.dead_letter_event_source())

    def extend_runtime_layer(self, runtime: lambda_.Runtime, architecture: lambda_.Architecture) -> None:
        """Declare the runtime layer compatible with ``runtime`` and ``architecture`` (of a new worker)."""
        cfn_layer = self.runtime_layer.node.default_child
        assert isinstance(cfn_layer, lambda_.CfnLayerVersion)
        if runtime.name not in self._layer_runtimes:
            self._layer_runtimes.append(runtime.name)
            cfn_layer.compatible_runtimes = list(self._layer_runtimes)
        if architecture.name not in self._layer_architectures:
            self._layer_architectures.append(architecture.name)
            cfn_layer.compatible_architectures = list(self._layer_architectures)
