"""A long job type's own resources: the durable worker and its version, the starter and the sweep's schedule.

A job type whose ``timeout`` is above 15 minutes runs each job as one Lambda durable execution. An SQS event
source would invoke the worker synchronously, which caps an execution at 15 minutes, so the type's queue feeds a
short *starter* instead: it starts one execution per job with an asynchronous ``Invoke`` on the worker's version
(named after the job: a second start of the same job returns the same execution), and a schedule runs its sweep,
which ends ``FAILED`` the jobs whose execution ended outside the runtime's code (docs/long-jobs.md).

Resources, in the type's scope (the API's for the type ``jobs``), by construct id:

- ``Worker`` (``AWS::Lambda::Function`` with ``DurableConfig``; its ``WorkerRole`` has no managed policy), its
  ``CurrentVersion...`` (``AWS::Lambda::Version``) and ``WorkerDurablePolicy`` (the checkpoint actions on its
  own executions);
- ``Starter`` (``AWS::Lambda::Function``, role ``starter``) with an SQS event source on the type's queue;
- ``StarterSchedule`` (``AWS::Events::Rule``, ``rate(5 minutes)``) targeting the starter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_cdk import Acknowledgment, CfnResource, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from async_job_construct import defaults
from lambda_handlers.contract import Env, Role

if TYPE_CHECKING:
    from async_job_construct.functions import FunctionFactory
    from async_job_construct.shared_functions import SharedFunctions

__all__ = ["DurableJobResources", "DurableWorkerProps", "acknowledge_executions", "create_durable_resources"]

_WORKER_HANDLER = "lambda_handlers.durable_worker.handler"
_STARTER_HANDLER = "lambda_handlers.durable_start.handler"
#: The starter's event source concurrency under a running-executions cap: few starters counting at once keep the
#: count close (the cap is approximate; ListDurableExecutionsByFunction is eventually consistent).
_CAPPED_STARTER_CONCURRENCY = 2


@dataclass(frozen=True)
class DurableWorkerProps:
    """A long type's resolved settings that its durable resources are made of."""

    job_type: str
    code: lambda_.Code
    timeout: Duration
    invocation_timeout: Duration
    memory_size: int
    runtime: lambda_.Runtime
    architecture: lambda_.Architecture
    layers: Sequence[lambda_.ILayerVersion]
    #: The worker's environment as a short worker's (the team's, the common and the type's variables).
    environment: Mapping[str, str]
    queue: sqs.IQueue
    batch_size: int
    max_running: int | None
    max_receive_count: int


@dataclass(frozen=True)
class DurableJobResources:
    """What ``create_durable_resources`` built."""

    worker: lambda_.Function
    version: lambda_.Version
    worker_policy: iam.Policy
    starter: lambda_.Function
    schedule: events.Rule


def _nag_arn(function: lambda_.IFunction) -> str:
    """The function's ARN as cdk-nag names it in a finding (``<Logical.Arn>`` for a function of the stack)."""
    resolved = Stack.of(function).resolve(function.function_arn)
    if isinstance(resolved, dict) and "Fn::GetAtt" in resolved:
        return f"<{resolved['Fn::GetAtt'][0]}.Arn>"
    return str(resolved)


def acknowledge_executions(policy: object, function: lambda_.IFunction, what: str) -> None:
    """``<function ARN>:*`` is how IAM names the durable executions of one function (every version's); cdk-nag
    reports it on the policy that holds the statement (a role's default policy: on the role)."""
    if isinstance(policy, Construct):
        Validations.of(policy).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions::AwsSolutions-IAM5[Resource::{_nag_arn(function)}:*]",
                reason=f"{what}: Lambda authorizes durable execution actions on the execution's ARN, "
                "<function ARN>:<version>/durable-execution/<name>/<id>; ':*' is the executions of this one "
                "function (each job has its own, named at run time), nothing of another function.",
            )
        )


def _reword_checkov_skip(resource: Construct, check: str, reason: str) -> None:
    """Give the checkov skip ``check`` of ``resource`` (every function has it) the reason that fits it."""
    cfn = resource.node.default_child
    assert isinstance(cfn, CfnResource)
    metadata = cfn.get_metadata("checkov")
    cfn.add_metadata(
        "checkov",
        {"skip": [{**skip, "comment": reason} if skip["id"] == check else skip for skip in metadata["skip"]]},
    )


def create_durable_resources(
    scope: Construct, functions: FunctionFactory, shared: SharedFunctions, props: DurableWorkerProps
) -> DurableJobResources:
    """Create a long type's durable worker, its version, the starter and its schedule, with their grants."""
    worker = functions.create(
        scope,
        "Worker",
        role=Role.WORKER,
        job_type=props.job_type,
        code=props.code,
        handler=_WORKER_HANDLER,
        timeout=props.invocation_timeout,
        memory_size=props.memory_size,
        runtime=props.runtime,
        architecture=props.architecture,
        layers=props.layers,
        environment={
            **props.environment,
            Env.EXECUTION_TIMEOUT_SECONDS: str(int(props.timeout.to_seconds())),
        },
        durable_config=lambda_.DurableConfig(
            execution_timeout=props.timeout, retention_period=defaults.DURABLE_RETENTION
        ),
        # A deploy makes a new version; executions running on the old one replay its code until they end, so it
        # is kept (CDK's default deletes it).
        current_version_options=lambda_.VersionOptions(removal_policy=RemovalPolicy.RETAIN),
    )
    shared.grant_worker(worker, durable=True)
    # A policy of its own, not the role's default one: the function depends on that (it must exist before the
    # function runs), and a statement naming the function's own ARN there would be a dependency cycle.
    executions = f"{worker.function_arn}:*"
    worker_policy = iam.Policy(
        scope,
        "WorkerDurablePolicy",
        statements=[
            iam.PolicyStatement(
                actions=["lambda:CheckpointDurableExecution", "lambda:GetDurableExecutionState"],
                resources=[executions],
            )
        ],
    )
    assert worker.role is not None
    worker_policy.attach_to_role(worker.role)
    acknowledge_executions(worker_policy, worker, "The durable worker checkpoints its own executions")
    # Executions run on a version (an execution ARN names a version, never an alias); the starter gets the
    # version only once the worker may checkpoint.
    version = worker.current_version
    version.node.add_dependency(worker_policy)

    variables = {
        Env.JOB_TYPE: props.job_type,
        Env.DURABLE_FUNCTION: version.function_arn,
        Env.SWEEP_WINDOW_SECONDS: str(
            int(props.timeout.to_seconds() + defaults.SWEEP_WINDOW_MARGIN.to_seconds())
        ),
        Env.MAX_RECEIVE_COUNT: str(props.max_receive_count),
        **({} if props.max_running is None else {Env.MAX_RUNNING: str(props.max_running)}),
    }
    starter = shared.create_function(
        scope,
        "Starter",
        role=Role.STARTER,
        job_type=props.job_type,
        handler=_STARTER_HANDLER,
        variables=variables,
        timeout=defaults.STARTER_FUNCTION_TIMEOUT,
        # The type's runtime (3.13+): its AWS SDK knows the durable execution API.
        runtime=props.runtime,
        architecture=props.architecture,
    )
    shared.grant_starter(starter, props.queue)
    version.grant_invoke(starter)
    iam.Grant.add_to_principal(
        grantee=starter,
        actions=["lambda:ListDurableExecutionsByFunction"],
        resource_arns=[worker.function_arn, executions],
    )
    iam.Grant.add_to_principal(
        grantee=starter, actions=["lambda:GetDurableExecution"], resource_arns=[executions]
    )
    acknowledge_executions(starter.role, worker, "The starter lists and reads the worker's executions")
    starter.add_event_source(
        event_sources.SqsEventSource(
            props.queue,
            batch_size=props.batch_size,
            max_concurrency=None if props.max_running is None else _CAPPED_STARTER_CONCURRENCY,
            report_batch_item_failures=True,
        )
    )
    schedule = events.Rule(
        scope,
        "StarterSchedule",
        description=f"{scope.node.path}: the starter's sweep of durable executions that ended without their job",
        schedule=events.Schedule.rate(defaults.SWEEP_INTERVAL),
        # A sweep delivered late is replaced by the next one.
        targets=[targets.LambdaFunction(starter, max_event_age=defaults.SWEEP_INTERVAL, retry_attempts=2)],
    )
    _reword_checkov_skip(
        starter,
        "CKV_AWS_116",
        "Invoked by an SQS event source (a job it cannot start reaches the queue's dead-letter queue and ends "
        "FAILED) and asynchronously by its schedule: a lost sweep is repeated by the next one 5 minutes later, so "
        "a Lambda DLQ would hold nothing to act on.",
    )
    shared.grant_stop_execution(worker)
    acknowledge_executions(
        shared.status_function.role, worker, "The status function stops a cancelled job's execution"
    )
    return DurableJobResources(worker, version, worker_policy, starter, schedule)
