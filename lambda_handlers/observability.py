"""The functions' Powertools logger, metrics and tracer: one of each per execution environment.

The service name and the metrics namespace come from ``POWERTOOLS_SERVICE_NAME`` and
``POWERTOOLS_METRICS_NAMESPACE``; tracing is off outside Lambda or with ``POWERTOOLS_TRACE_DISABLED=true``.
"""

from __future__ import annotations

import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

__all__ = ["MetricUnit", "logger", "metrics", "tracer"]

#: JSON logs; entry points add the Lambda context and correlation ids (API request id, job id).
logger = Logger()
#: CloudWatch EMF metrics, flushed at the end of every invocation.
metrics = Metrics()
#: X-Ray; only botocore is patched (patching every supported library costs start-up time for nothing).
tracer = Tracer(patch_modules=["botocore"])

# An invocation that records no metric (a 404, an empty batch) is normal here; Powertools warns on each one.
# Its documentation suggests this filter.
warnings.filterwarnings("ignore", "No application metrics to publish*")
