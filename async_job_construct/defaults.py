"""The documented defaults of ``AsyncJobApi`` and its job types, and the service limits they are checked against.

Every default the README's props tables give is defined here once; ``tests/unit/construct/test_defaults.py``
reads each one back from a synthesized template.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs

__all__ = [
    "API_FUNCTION_MEMORY_SIZE",
    "DEAD_LETTER_FUNCTION_TIMEOUT",
    "DEFAULT_ARCHITECTURE",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_INVOCATION_TIMEOUT",
    "DEFAULT_JOB_TTL",
    "DEFAULT_LOG_RETENTION",
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "DEFAULT_MAX_RECEIVE_COUNT",
    "DEFAULT_MEMORY_SIZE",
    "DEFAULT_METRICS_NAMESPACE",
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_REMOVAL_POLICY",
    "DEFAULT_RETRY_BASE_DELAY",
    "DEFAULT_RETRY_MAX_DELAY",
    "DEFAULT_RUNTIME",
    "DEFAULT_THROTTLING_BURST_LIMIT",
    "DEFAULT_THROTTLING_RATE_LIMIT",
    "DEFAULT_TIMEOUT",
    "DURABLE_RETENTION",
    "LONG_TYPE_MIN_PYTHON",
    "MAX_INVOCATION_TIMEOUT",
    "MAX_TIMEOUT",
    "POWERTOOLS_LAYER_ACCOUNT",
    "POWERTOOLS_LAYER_ACCOUNTS_BY_REGION",
    "POWERTOOLS_LAYER_RELEASES",
    "POWERTOOLS_LAYER_VERSION",
    "QUEUE_RETENTION",
    "SHARED_FUNCTION_TIMEOUT",
    "STARTER_FUNCTION_TIMEOUT",
    "SWEEP_INTERVAL",
    "SWEEP_WINDOW_MARGIN",
    "VISIBILITY_TIMEOUT_FACTOR",
    "WEBSOCKET_PUSH_FUNCTION_TIMEOUT",
]

# ------------------------------------------------------------------------------------------ per job type
DEFAULT_TIMEOUT: Final = Duration.minutes(5)
DEFAULT_MEMORY_SIZE: Final = 1024
DEFAULT_RUNTIME: Final = lambda_.Runtime.PYTHON_3_14
#: x86_64: the architecture most team dependencies publish wheels for.
DEFAULT_ARCHITECTURE: Final = lambda_.Architecture.X86_64
DEFAULT_MAX_RECEIVE_COUNT: Final = 3
#: AWS's advice for a queue feeding a Lambda event source: 6 x the function's timeout.
VISIBILITY_TIMEOUT_FACTOR: Final = 6
DEFAULT_BATCH_SIZE: Final = 1
DEFAULT_MAX_PAYLOAD_BYTES: Final = 256 * 1024
DEFAULT_RETRY_BASE_DELAY: Final = Duration.seconds(10)
DEFAULT_RETRY_MAX_DELAY: Final = Duration.minutes(15)

# ------------------------------------------------------------------ long job types (timeout > 15 min)
#: Lambda's limit of one invocation: a ``timeout`` above it makes the type long (a durable execution).
MAX_INVOCATION_TIMEOUT: Final = Duration.minutes(15)
#: One invocation's limit of a long type's durable worker.
DEFAULT_INVOCATION_TIMEOUT: Final = MAX_INVOCATION_TIMEOUT
#: The longest ``timeout`` (a durable execution runs for up to a year).
MAX_TIMEOUT: Final = Duration.days(365)
#: The minor version of the oldest Python runtime a long type may use (3.13: its managed runtime ships the
#: durable execution SDK).
LONG_TYPE_MIN_PYTHON: Final = 13
#: How long Lambda keeps an ended durable execution's history (the sweep reads it).
DURABLE_RETENTION: Final = Duration.days(14)
#: How often a long type's starter sweeps executions that ended without recording their job.
SWEEP_INTERVAL: Final = Duration.minutes(5)
#: The sweep looks back ``timeout`` + this: an execution started that long ago has ended.
SWEEP_WINDOW_MARGIN: Final = Duration.days(1)

# ------------------------------------------------------------------------------------------- per API
DEFAULT_JOB_TTL: Final = Duration.days(7)
DEFAULT_POLL_INTERVAL: Final = Duration.seconds(5)
DEFAULT_REMOVAL_POLICY: Final = RemovalPolicy.RETAIN
DEFAULT_LOG_RETENTION: Final = logs.RetentionDays.ONE_MONTH
DEFAULT_METRICS_NAMESPACE: Final = "AsyncJobs"
DEFAULT_THROTTLING_RATE_LIMIT: Final = 100
DEFAULT_THROTTLING_BURST_LIMIT: Final = 200

# ------------------------------------------------------------------------------------ fixed settings
#: SQS's longest message retention: how long an unstarted job can wait.
QUEUE_RETENTION: Final = Duration.days(14)
#: The submit and status functions answer API Gateway (29 s at most); they make one or two calls.
SHARED_FUNCTION_TIMEOUT: Final = Duration.seconds(10)
DEAD_LETTER_FUNCTION_TIMEOUT: Final = Duration.seconds(30)
#: The WebSocket's push posts each of up to 10 changes to every subscriber of the job, one call each.
WEBSOCKET_PUSH_FUNCTION_TIMEOUT: Final = Duration.seconds(30)
#: A long type's starter: one Invoke (or a list of running executions) per message, and the sweep.
STARTER_FUNCTION_TIMEOUT: Final = Duration.seconds(60)
API_FUNCTION_MEMORY_SIZE: Final = 256

# ------------------------------------------------------------------- the public Powertools layer
# Powertools for AWS Lambda (Python) v3 publishes AWSLambdaPowertoolsPythonV3-{python314}-{x86_64|arm64}:{n} in
# every commercial region from one account, and in China and GovCloud from accounts of their own. Source: its
# installation docs, "Lambda Layer", "AWS China regions", "AWS GovCloud regions"
# (https://docs.aws.amazon.com/powertools/python/latest/getting-started/install/, read 2026-12-01; in its
# repository docs/getting-started/install.md). docs/powertools-layer.md tells how to move the pin.

#: The layer version of every function's default Powertools layer (the same number in every partition and for
#: every Python and architecture). Move it with ``POWERTOOLS_LAYER_RELEASES`` and the ``runtime`` extra's pin.
POWERTOOLS_LAYER_VERSION: Final = 27
#: Which Powertools release each public layer version holds, as Powertools documents them (layer 27: the first
#: with python314). ``pyproject.toml``'s ``runtime`` extra pins ``aws-lambda-powertools`` to the release of
#: ``POWERTOOLS_LAYER_VERSION``, so the runtime is tested on what the layer ships (tests/unit/construct/
#: test_powertools_layer.py fails when they drift apart).
POWERTOOLS_LAYER_RELEASES: Final[Mapping[int, str]] = {27: "3.23.0"}
#: The account that publishes the layer in every commercial region (partition ``aws``).
POWERTOOLS_LAYER_ACCOUNT: Final = "017000801446"
#: The regions outside partition ``aws`` where Powertools publishes the layer, and the account of each: China
#: (cn-north-1 only) and GovCloud (one account per region).
POWERTOOLS_LAYER_ACCOUNTS_BY_REGION: Final[Mapping[str, str]] = {
    "cn-north-1": "498634801083",
    "us-gov-east-1": "165087284144",
    "us-gov-west-1": "165093116878",
}
