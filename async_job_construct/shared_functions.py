"""What every job type of an API shares: the runtime layer and the submit, status and dead-letter functions."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from aws_cdk import Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from async_job_construct import defaults
from async_job_construct.functions import FunctionFactory
from async_job_construct.runtime_assets import RuntimeAssets
from lambda_handlers.contract import Env, Role

if TYPE_CHECKING:
    from async_job_construct.job_type import JobType

__all__ = ["SharedFunctions"]


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
        *,
        table: dynamodb.ITable,
        table_key: kms.IKey | None,
        encryption_key: kms.IKey | None,
        runtime: lambda_.Runtime,
        architecture: lambda_.Architecture,
        environment: Mapping[str, str],
        retry_after_seconds: int,
        idempotency_key_required: bool,
        operators: Sequence[str],
    ) -> None:
        self._table = table
        self._table_key = table_key
        self.runtime_layer = lambda_.LayerVersion(
            scope,
            "RuntimeLayer",
            code=lambda_.Code.from_asset(str(assets.layer_dir)),
            compatible_runtimes=[runtime],
            compatible_architectures=[architecture],
            description="async-job-construct runtime (lambda_handlers) for the worker",
        )
        self._layer_runtimes = [runtime.name]
        self._layer_architectures = [architecture.name]
        code = lambda_.Code.from_asset(str(assets.function_dir))

        def create(id: str, role: str, handler: str, variables: Mapping[str, str]) -> lambda_.Function:
            return functions.create(
                scope,
                id,
                role=role,
                code=code,
                handler=handler,
                timeout=(
                    defaults.DEAD_LETTER_FUNCTION_TIMEOUT
                    if role == Role.DEAD_LETTER
                    else defaults.SHARED_FUNCTION_TIMEOUT
                ),
                memory_size=defaults.API_FUNCTION_MEMORY_SIZE,
                runtime=runtime,
                architecture=architecture,
                environment={**environment, **variables},
            )

        retry_after = str(retry_after_seconds)
        self.submit_function = create(
            "SubmitFunction",
            Role.SUBMIT,
            "lambda_handlers.submit.handler",
            {
                Env.RETRY_AFTER_SECONDS: retry_after,
                Env.IDEMPOTENCY_KEY_REQUIRED: "true" if idempotency_key_required else "false",
            },
        )
        self.status_function = create(
            "StatusFunction",
            Role.STATUS,
            "lambda_handlers.status.handler",
            {
                Env.RETRY_AFTER_SECONDS: retry_after,
                **({Env.OPERATORS: json.dumps(list(operators))} if operators else {}),
            },
        )
        self.dead_letter_function = create(
            "DeadLetterFunction", Role.DEAD_LETTER, "lambda_handlers.dead_letter.handler", {}
        )
        # Put (alone or in TransactWriteItems with the idempotency key), Delete to undo a job that could not be
        # enqueued, Get to answer an idempotent replay.
        table.grant(self.submit_function, "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:GetItem")
        table.grant(self.status_function, "dynamodb:GetItem", "dynamodb:UpdateItem")  # read, cancel
        # Get to decide on the job as it is, Update to end it.
        table.grant(self.dead_letter_function, "dynamodb:GetItem", "dynamodb:UpdateItem")
        if encryption_key is not None:
            # CloudWatch Logs encrypts the log groups with the key; an imported key's policy must allow it.
            encryption_key.grant_encrypt_decrypt(
                iam.ServicePrincipal(f"logs.{Stack.of(scope).region}.amazonaws.com")
            )
        for function in (self.submit_function, self.status_function, self.dead_letter_function):
            self._grant_table_key(function)

    def _grant_table_key(self, function: lambda_.Function) -> None:
        # table.grant() leaves the table's key to the caller; the queues' grants include theirs.
        if self._table_key is not None:
            self._table_key.grant(
                function, "kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"
            )

    def grant_worker(self, worker: lambda_.Function) -> None:
        """What every worker does to the table: update its jobs."""
        self._table.grant(worker, "dynamodb:UpdateItem")
        self._grant_table_key(worker)

    def wire(self, job_type: JobType) -> None:
        """Connect a new type to the submit and dead-letter functions and the runtime layer."""
        job_type.queue.grant(self.submit_function, "sqs:SendMessage")
        if job_type.queue.encryption_master_key is not None:
            job_type.queue.encryption_master_key.grant(
                self.submit_function, "kms:GenerateDataKey", "kms:Decrypt"
            )
        self.submit_function.add_environment(Env.QUEUE_URL, job_type.queue.queue_url)
        self.submit_function.add_environment(Env.MAX_PAYLOAD_BYTES, str(job_type.max_payload_bytes))
        self.dead_letter_function.add_environment(Env.MAX_RECEIVE_COUNT, str(job_type.max_receive_count))
        self.dead_letter_function.add_event_source(job_type.dead_letter_event_source())
        self._extend_runtime_layer(job_type.runtime, job_type.architecture)

    def _extend_runtime_layer(self, runtime: lambda_.Runtime, architecture: lambda_.Architecture) -> None:
        """The runtime is pure Python: declare the layer compatible with every worker's runtime and arch."""
        cfn_layer = self.runtime_layer.node.default_child
        assert isinstance(cfn_layer, lambda_.CfnLayerVersion)
        if runtime.name not in self._layer_runtimes:
            self._layer_runtimes.append(runtime.name)
            cfn_layer.compatible_runtimes = list(self._layer_runtimes)
        if architecture.name not in self._layer_architectures:
            self._layer_architectures.append(architecture.name)
            cfn_layer.compatible_architectures = list(self._layer_architectures)
