"""A job type's queue and dead-letter queue: created, or brought by the team and checked."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Annotations, Duration, RemovalPolicy, Token
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from async_job_construct.compliance import skip_checkov
from async_job_construct.defaults import QUEUE_RETENTION, VISIBILITY_TIMEOUT_FACTOR
from async_job_construct.validation import PropValueError, check_duration_range, check_int_range
from lambda_handlers.contract import MAX_RECEIVE_COUNT_LIMIT, MAX_VISIBILITY_SECONDS

__all__ = ["JobQueues", "QueueOptions", "create_queue", "resolve_queues"]

_DEAD_LETTER_VISIBILITY = Duration.seconds(60)
_SQS_DEFAULT_VISIBILITY_SECONDS = 30
_MAX_VISIBILITY = Duration.seconds(MAX_VISIBILITY_SECONDS)


@dataclass(frozen=True)
class QueueOptions:
    """What the API decides for every queue it creates."""

    encryption_key: kms.IKey | None
    removal_policy: RemovalPolicy


@dataclass(frozen=True)
class JobQueues:
    """A job type's queues and the retry settings read from or written to them."""

    queue: sqs.IQueue
    dead_letter_queue: sqs.IQueue
    max_receive_count: int
    visibility_timeout: Duration
    #: Whether the construct created the queues (and so may mark them in the template).
    created: bool


def create_queue(
    scope: Construct,
    id: str,
    options: QueueOptions,
    *,
    visibility: Duration,
    dead_letter: sqs.DeadLetterQueue | None,
) -> sqs.Queue:
    """A queue as the API makes every one: encrypted, TLS only, kept 14 days, removed as ``options`` says."""
    queue = sqs.Queue(
        scope,
        id,
        visibility_timeout=visibility,
        retention_period=QUEUE_RETENTION,
        encryption=(
            sqs.QueueEncryption.SQS_MANAGED if options.encryption_key is None else sqs.QueueEncryption.KMS
        ),
        encryption_master_key=options.encryption_key,
        enforce_ssl=True,
        dead_letter_queue=dead_letter,
        removal_policy=options.removal_policy,
    )
    if options.encryption_key is None:
        skip_checkov(
            queue,
            "CKV_AWS_27",
            "Encrypted at rest by SQS-managed SSE (SqsManagedSseEnabled), which this check does not "
            "recognise; pass encryption_key for a customer-managed key.",
        )
    return queue


def resolve_queues(
    scope: Construct,
    options: QueueOptions,
    *,
    timeout: Duration,
    queue: sqs.IQueue | None,
    dead_letter_queue: sqs.IQueue | None,
    max_receive_count: int | None,
    visibility_timeout: Duration | None,
    default_max_receive_count: int,
    consumer: str = "timeout",
) -> JobQueues:
    """Create the queues in ``scope`` (ids ``Queue`` and ``DeadLetterQueue``), or check the team's.

    ``timeout`` is the queue consumer's (``consumer`` names it in messages: a long type's queue feeds its starter).
    """
    if queue is None:
        if dead_letter_queue is not None:
            raise PropValueError(
                "dead_letter_queue",
                dead_letter_queue.node.path,
                "is only used together with `queue`",
                "Pass `queue` too, or leave both out to let the construct create them.",
            )
        count = max_receive_count if max_receive_count is not None else default_max_receive_count
        check_int_range("max_receive_count", count, 1, MAX_RECEIVE_COUNT_LIMIT)
        visibility = (
            visibility_timeout
            if visibility_timeout is not None
            else Duration.seconds(timeout.to_seconds() * VISIBILITY_TIMEOUT_FACTOR)
        )
        _check_visibility(scope, visibility, timeout, consumer)
        dlq = create_queue(
            scope, "DeadLetterQueue", options, visibility=_DEAD_LETTER_VISIBILITY, dead_letter=None
        )
        main = create_queue(
            scope,
            "Queue",
            options,
            visibility=visibility,
            dead_letter=sqs.DeadLetterQueue(max_receive_count=count, queue=dlq),
        )
        return JobQueues(main, dlq, count, visibility, created=True)

    if visibility_timeout is not None:
        raise PropValueError(
            "visibility_timeout",
            visibility_timeout.to_human_string(),
            "configures the queue this construct creates and cannot apply to the `queue` you pass",
            "Set the visibility timeout on your queue (at least `timeout`, ideally 6 x) and drop this prop.",
        )
    own_redrive = queue.dead_letter_queue if isinstance(queue, sqs.Queue) else None
    if dead_letter_queue is None and own_redrive is not None:
        dead_letter_queue = own_redrive.queue
        if max_receive_count is None:
            max_receive_count = int(own_redrive.max_receive_count)
    if dead_letter_queue is None or max_receive_count is None:
        raise PropValueError(
            "queue",
            queue.node.path,
            "has no dead-letter queue and max_receive_count this construct can see",
            "Pass dead_letter_queue= and max_receive_count= matching the queue's redrive policy, "
            "so that jobs that keep failing are marked FAILED instead of lost.",
        )
    check_int_range("max_receive_count", max_receive_count, 1, MAX_RECEIVE_COUNT_LIMIT)
    cfn_queue = queue.node.default_child if isinstance(queue, sqs.Queue) else None
    if not isinstance(cfn_queue, sqs.CfnQueue):
        Annotations.of(scope).add_warning_v2(
            "async-job:imported-queue",
            "queue: the visibility timeout of an imported queue cannot be checked at synth; it must be at "
            f"least {consumer} ({timeout.to_human_string()}), ideally 6 x, or jobs run twice.",
        )
        return JobQueues(queue, dead_letter_queue, max_receive_count, timeout, created=False)
    seconds = cfn_queue.visibility_timeout
    visibility = Duration.seconds(_SQS_DEFAULT_VISIBILITY_SECONDS if seconds is None else seconds)
    _check_visibility(scope, visibility, timeout, consumer)
    return JobQueues(queue, dead_letter_queue, max_receive_count, visibility, created=False)


def _check_visibility(scope: Construct, visibility: Duration, timeout: Duration, consumer: str) -> None:
    if visibility.is_unresolved() or timeout.is_unresolved():
        return
    check_duration_range(
        "visibility_timeout",
        visibility,
        timeout,
        _MAX_VISIBILITY,
        f"It must cover one attempt ({consumer}={timeout.to_human_string()}), or SQS hands the job to a "
        "second worker while the first still runs; SQS allows at most 12 hours.",
    )
    advised = timeout.to_seconds() * VISIBILITY_TIMEOUT_FACTOR
    if visibility.to_seconds() < advised:
        Annotations.of(scope).add_warning_v2(
            "async-job:visibility-timeout",
            f"visibility_timeout is {visibility.to_human_string()}, less than 6 x {consumer} "
            f"({Duration.seconds(advised).to_human_string()}), AWS's advice for Lambda event sources: "
            "throttled batches may be retried, and use up attempts, before a worker gets to them.",
        )


def warn_if_retries_outlive_retention(
    scope: Construct, queues: JobQueues, timeout: Duration, retry_max_delay: Duration
) -> None:
    """Warn when a job's attempts can take longer than SQS keeps its message (then the job is never run
    again and stays QUEUED until its item expires)."""
    durations = (timeout, queues.visibility_timeout, retry_max_delay)
    if Token.is_unresolved(queues.max_receive_count) or any(d.is_unresolved() for d in durations):
        return
    per_attempt = max(
        queues.visibility_timeout.to_seconds(), timeout.to_seconds() + retry_max_delay.to_seconds()
    )
    longest = queues.max_receive_count * per_attempt
    if longest > QUEUE_RETENTION.to_seconds():
        Annotations.of(scope).add_warning_v2(
            "async-job:retries-outlive-retention",
            f"max_receive_count ({queues.max_receive_count}) x the longest attempt (the larger of "
            f"visibility_timeout and timeout + retry_max_delay: {Duration.seconds(per_attempt).to_human_string()}) "
            f"is {Duration.seconds(longest).to_human_string()}, longer than SQS keeps a message "
            f"({QUEUE_RETENTION.to_human_string()}): a job that keeps failing can lose its message before its "
            "last attempt and never end. Lower max_receive_count or retry_max_delay.",
        )
