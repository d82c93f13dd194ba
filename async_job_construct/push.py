"""Push instead of poll: the status table's stream published to EventBridge, and webhooks to allowed hosts.

``EventsFunction`` reads the table's stream (new and old images) through an event source mapping whose filter
lets through the records that end a job (or, with ``job_events="all"``, every record with a status), and puts
one event per change of status on the bus. With ``webhook_allowed_hosts``, it also queues the webhook of each
finished job that has a callback URL; ``WebhookFunction`` delivers it, signed with ``WebhookSecret``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from aws_cdk import Acknowledgment, Annotations, Duration, RemovalPolicy, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from async_job_construct.compliance import skip_checkov
from async_job_construct.metadata import mark
from async_job_construct.queues import QueueOptions, create_queue
from async_job_construct.validation import PropValueError, check_int_range
from lambda_handlers.contract import Env, Role
from lambda_handlers.models import JobStatus

__all__ = ["JOB_EVENTS", "CreateFunction", "JobPush", "PushOptions"]

#: Makes one of the API's functions: ``create(id, role, handler, variables)`` (``SharedFunctions``' maker).
CreateFunction = Callable[[str, str, str, Mapping[str, str]], lambda_.Function]

#: What ``job_events`` may say: ``terminal`` (SUCCEEDED, FAILED, CANCELLED), ``all`` (every change), ``none``.
JOB_EVENTS: Final = ("terminal", "all", "none")
_TERMINAL: Final = [JobStatus.SUCCEEDED.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value]
_WEBHOOK_VISIBILITY: Final = Duration.seconds(60)
_HOST: Final = re.compile(
    r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)


class PushOptions:
    """The API-level props of events and webhooks, checked (``PropValueError`` naming the prop and the fix)."""

    def __init__(
        self,
        *,
        job_events: str | None,
        event_bus: events.IEventBus | None,
        webhook_allowed_hosts: Sequence[str],
        webhook_max_attempts: int,
        encryption_key: kms.IKey | None,
        removal_policy: RemovalPolicy,
    ) -> None:
        #: Whether the caller chose events or webhooks (a table without a stream is then an error, not a warning).
        self.explicit = job_events is not None or bool(webhook_allowed_hosts)
        self.job_events = "terminal" if job_events is None else job_events
        self.event_bus = event_bus
        self.webhook_allowed_hosts = tuple(webhook_allowed_hosts)
        self.webhook_max_attempts = webhook_max_attempts
        self.encryption_key = encryption_key
        self.removal_policy = removal_policy
        self._validate()

    def _validate(self) -> None:
        if self.job_events not in JOB_EVENTS:
            raise PropValueError(
                "job_events",
                repr(self.job_events),
                f"must be one of {', '.join(map(repr, JOB_EVENTS))}",
                "Pass 'terminal' (the default: an event when a job ends), 'all' (every change) or 'none'.",
            )
        check_int_range("webhook_max_attempts", self.webhook_max_attempts, 1, 20)
        for host in self.webhook_allowed_hosts:
            name = host[2:] if isinstance(host, str) and host.startswith("*.") else host
            if not isinstance(name, str) or _HOST.fullmatch(name) is None:
                raise PropValueError(
                    "webhook_allowed_hosts",
                    repr(host),
                    "must hold host names, not URLs or patterns",
                    "Pass names like 'hooks.example.com', or '*.example.com' for every subdomain of example.com.",
                )
        if self.webhook_allowed_hosts and self.job_events == "none":
            raise PropValueError(
                "webhook_allowed_hosts",
                repr(list(self.webhook_allowed_hosts)),
                "needs job events",
                "Webhooks are sent from the job events: leave job_events at 'terminal' (or 'all'), or drop the hosts.",
            )


def stream_filter(job_events: str) -> dict[str, object]:
    """The event source mapping's filter pattern: the records whose new image has a status worth an event.

    Examples
    --------
    >>> stream_filter("terminal")["dynamodb"]["NewImage"]["status"]["S"]
    ['SUCCEEDED', 'FAILED', 'CANCELLED']
    """
    statuses: list[object] = list(_TERMINAL) if job_events == "terminal" else [{"exists": True}]
    return {"eventName": ["INSERT", "MODIFY"], "dynamodb": {"NewImage": {"status": {"S": statuses}}}}


class JobPush:
    """The events function on the table's stream and, with allowed hosts, the webhook queue, function and secret.

    Parameters
    ----------
    create
        Makes one of the API's functions: ``create(id, role, handler, variables) -> Function``.
    """

    def __init__(
        self,
        scope: Construct,
        options: PushOptions,
        *,
        table: dynamodb.ITable,
        create: CreateFunction,
    ) -> None:
        self.events_function: lambda_.Function | None = None
        self.webhook_function: lambda_.Function | None = None
        self.webhook_queue: sqs.Queue | None = None
        self.webhook_secret: secretsmanager.Secret | None = None
        self.events_dead_letter_queue: sqs.Queue | None = None
        if options.job_events == "none":
            return
        if table.table_stream_arn is None and not options.explicit:
            Annotations.of(scope).add_warning_v2(
                "async-job:no-job-events",
                "table: the table you pass has no stream, so this API publishes no job events; give it a stream "
                "(NEW_AND_OLD_IMAGES) for them, or set job_events='none' to say so.",
            )
            self.events_function = None
            return
        if table.table_stream_arn is None:
            raise PropValueError(
                "table",
                table.node.path,
                "has no stream, which job events and webhooks read",
                "Pass a table with stream=StreamViewType.NEW_AND_OLD_IMAGES (imported with table_stream_arn), "
                "or job_events='none'.",
            )
        queues = QueueOptions(encryption_key=options.encryption_key, removal_policy=options.removal_policy)
        variables: dict[str, str] = {
            Env.EVENT_BUS: "default" if options.event_bus is None else options.event_bus.event_bus_name
        }
        if options.webhook_allowed_hosts:
            self._webhooks(scope, options, queues, create)
            assert self.webhook_queue is not None
            variables[Env.WEBHOOK_QUEUE_URL] = self.webhook_queue.queue_url
        function: lambda_.Function = create(
            "EventsFunction", "events", "lambda_handlers.events.handler", variables
        )
        self.events_function = function
        bus = options.event_bus or events.EventBus.from_event_bus_name(scope, "DefaultEventBus", "default")
        bus.grant_put_events_to(function)
        if self.webhook_queue is not None:
            self.webhook_queue.grant(function, "sqs:SendMessage")
            if options.encryption_key is not None:
                options.encryption_key.grant(function, "kms:GenerateDataKey", "kms:Decrypt")
        #: Records Lambda gave up on (after its retries), kept 14 days: no event is lost unseen.
        self.events_dead_letter_queue = events_dlq = create_queue(
            scope, "EventsDeadLetterQueue", queues, visibility=Duration.seconds(60), dead_letter=None
        )
        mark(events_dlq, api=scope, role=Role.EVENTS_DEAD_LETTER_QUEUE)
        Validations.of(events_dlq).acknowledge(
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-SQS3",
                reason="It is a dead-letter queue: the on-failure destination of the stream's event source "
                "mapping (records Lambda gave up on), which the rule cannot see.",
            )
        )
        if options.encryption_key is not None and function.role is not None:
            reason = (
                "CDK's on-failure destination (SqsDlq) grants sending to the encrypted events dead-letter queue "
                "with the key's encrypt actions; the key is the API's own."
            )
            Validations.of(function.role).acknowledge(
                *(
                    Acknowledgment(
                        id=f"AwsSolutions::AwsSolutions-IAM5[Action::kms:{action}*]", reason=reason
                    )
                    for action in ("ReEncrypt", "GenerateDataKey")
                )
            )
        function.add_event_source(
            sources.DynamoEventSource(
                table,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=100,
                max_batching_window=Duration.seconds(1),
                bisect_batch_on_error=True,
                retry_attempts=20,
                report_batch_item_failures=True,
                filters=[lambda_.FilterCriteria.filter(stream_filter(options.job_events))],
                on_failure=sources.SqsDlq(events_dlq),
            )
        )

    def _webhooks(
        self,
        scope: Construct,
        options: PushOptions,
        queues: QueueOptions,
        create: CreateFunction,
    ) -> None:
        secret = secretsmanager.Secret(
            scope,
            "WebhookSecret",
            description=f"Signing secret of {scope.node.path}'s webhooks (Standard Webhooks: whsec_ + base64)",
            encryption_key=options.encryption_key,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=32, exclude_punctuation=True
            ),
            removal_policy=options.removal_policy,
        )
        rotation = (
            "Receivers verify with this secret: rotating it is a coordinated change with them (put a new value, "
            "have receivers accept both for a while); an automatic rotation would break every receiver at once."
        )
        skip_checkov(secret, "CKV2_AWS_57", rotation)
        Validations.of(secret).acknowledge(
            Acknowledgment(id="AwsSolutions::AwsSolutions-SMG4", reason=rotation)
        )
        self.webhook_secret = secret
        dead_letters = create_queue(
            scope, "WebhookDeadLetterQueue", queues, visibility=Duration.seconds(60), dead_letter=None
        )
        queue = create_queue(
            scope,
            "WebhookQueue",
            queues,
            visibility=_WEBHOOK_VISIBILITY,
            dead_letter=sqs.DeadLetterQueue(
                queue=dead_letters, max_receive_count=options.webhook_max_attempts + 2
            ),
        )
        self.webhook_queue = queue
        mark(queue, api=scope, role=Role.WEBHOOK_QUEUE)
        mark(dead_letters, api=scope, role=Role.WEBHOOK_DEAD_LETTER_QUEUE)
        function: lambda_.Function = create(
            "WebhookFunction",
            Role.WEBHOOK,
            "lambda_handlers.webhooks.handler",
            {
                Env.WEBHOOK_SECRET_ARN: secret.secret_arn,
                Env.WEBHOOK_MAX_ATTEMPTS: str(options.webhook_max_attempts),
            },
        )
        self.webhook_function = function
        secret.grant_read(function)
        function.add_event_source(
            # One delivery per invocation: a slow receiver (10 s) holds up no other.
            sources.SqsEventSource(queue, batch_size=1, report_batch_item_failures=True)
        )


def webhook_environment(hosts: Sequence[str]) -> Mapping[str, str]:
    """The variable that tells the submit and webhook functions which hosts they may call."""
    return {Env.WEBHOOK_ALLOWED_HOSTS: json.dumps(list(hosts))} if hosts else {}
