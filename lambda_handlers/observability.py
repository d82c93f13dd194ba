"""The functions' Powertools logger, metrics and tracer: one of each per execution environment.

Every metric carries the job type as its ``jobType`` dimension, beside Powertools' ``service``, so two job types
never share a series: the worker (one type) sets it once, as a default dimension; the submit and status
functions (one request per invocation) add it per invocation, once the type is known (Powertools clears added
dimensions when it flushes, at the end of each invocation); the dead-letter consumer, whose batch may hold jobs
of several types, emits each record's metrics at once with ``emit_now``.

The service name and the metrics namespace come from ``POWERTOOLS_SERVICE_NAME`` and
``POWERTOOLS_METRICS_NAMESPACE``. Tracing is on in Lambda unless ``POWERTOOLS_TRACE_DISABLED`` is true (the
construct sets it when ``tracing=False``); when it is off no Powertools ``Tracer`` is built at all, because
building one imports the X-Ray SDK (and wrapt, asyncio) even when disabled: about a third of a cold start.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from lambda_handlers.contract import JOB_TYPE_DIMENSION

__all__ = ["MetricUnit", "emit_now", "logger", "metrics", "tracer", "tracing_enabled"]

_Handler = TypeVar("_Handler", bound=Callable[..., Any])


def tracing_enabled(environ: os._Environ[str] | dict[str, str] = os.environ) -> bool:
    """Whether X-Ray tracing applies: in Lambda (Powertools' own rule), and not disabled by the environment."""
    disabled = environ.get("POWERTOOLS_TRACE_DISABLED", "").strip().lower() in {"1", "true", "yes", "on"}
    return not disabled and "AWS_LAMBDA_FUNCTION_NAME" in environ


class TracerLike(Protocol):
    """What the entry points use of Powertools' ``Tracer``."""

    def capture_lambda_handler(self, *, capture_response: bool = ...) -> Callable[[_Handler], _Handler]: ...


class _NoTracer:
    """Stands in for Powertools' ``Tracer`` when tracing is off: its decorators return the handler unchanged."""

    def capture_lambda_handler(self, *, capture_response: bool = True) -> Callable[[_Handler], _Handler]:
        return lambda handler: handler


def _tracer() -> TracerLike:
    if not tracing_enabled():
        return _NoTracer()
    from aws_lambda_powertools import Tracer

    # Only botocore is patched: patching every supported library costs start-up time for nothing.
    return cast(TracerLike, Tracer(patch_modules=["botocore"]))


#: JSON logs; entry points add the Lambda context and correlation ids (API request id, job id).
logger = Logger()
#: CloudWatch EMF metrics, flushed at the end of every invocation.
metrics = Metrics()
#: X-Ray (Powertools' Tracer) when tracing applies, else a stand-in whose decorators do nothing.
tracer: TracerLike = _tracer()

# An invocation that records no metric (a 404, an empty batch) is normal here; Powertools warns on each one.
# Its documentation suggests this filter.
warnings.filterwarnings("ignore", "No application metrics to publish*")


def emit_now(name: str, job_type: str, value: float = 1, unit: MetricUnit = MetricUnit.Count) -> None:
    """Publish one metric at once, in its own EMF document, with the ``service`` and ``jobType`` dimensions.

    For a function whose invocation handles jobs of several types (the dead-letter consumer): the metrics that
    ``metrics.add_metric`` collects share one dimension set per invocation.

    Examples
    --------
    >>> emit_now("JobsDeadLettered", "reports")
    """
    with single_metric(name=name, unit=unit, value=value, namespace=metrics.namespace) as metric:
        if metrics.service:
            metric.add_dimension(name="service", value=str(metrics.service))
        metric.add_dimension(name=JOB_TYPE_DIMENSION, value=job_type)
