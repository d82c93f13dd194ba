"""The documented defaults of ``AsyncJobApi`` and its job types, and the service limits they are checked against.

Every default the README's props tables give is defined here once; ``tests/unit/construct/test_defaults.py``
reads each one back from a synthesized template.
"""

from __future__ import annotations

from typing import Final

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs

__all__ = [
    "API_FUNCTION_MEMORY_SIZE",
    "DEAD_LETTER_FUNCTION_TIMEOUT",
    "DEFAULT_ARCHITECTURE",
    "DEFAULT_BATCH_SIZE",
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
    "POWERTOOLS_LAYER_ACCOUNT",
    "POWERTOOLS_LAYER_VERSION",
    "QUEUE_RETENTION",
    "SHARED_FUNCTION_TIMEOUT",
    "VISIBILITY_TIMEOUT_FACTOR",
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
API_FUNCTION_MEMORY_SIZE: Final = 256
#: The Powertools for AWS Lambda (Python) v3 public layer, published in account 017000801446 of each region.
POWERTOOLS_LAYER_ACCOUNT: Final = "017000801446"
POWERTOOLS_LAYER_VERSION: Final = 36
