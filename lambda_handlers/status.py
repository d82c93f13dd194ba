"""``GET /jobs/{id}``: one job, to its owner (or an operator). One AWS call: a consistent GetItem.

``DELETE /jobs/{id}``: cancel the owner's job. A QUEUED job is CANCELLED at once (``200``); a RUNNING one is
asked to stop (``202``, ``cancelRequested: true``); a finished one is a ``409``. One conditional UpdateItem,
two for a running job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools.logging import correlation_paths

from lambda_handlers import api_common, config
from lambda_handlers.contract import JOB_TYPE_DIMENSION
from lambda_handlers.models import Job
from lambda_handlers.observability import MetricUnit, logger, metrics, tracer
from lambda_handlers.problems import problem
from lambda_handlers.store import CancelStatus, JobStore, JobStoreError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["CONFIG", "handler"]

CONFIG: Final = config.load(config.StatusConfig)
_store: Final = JobStore(CONFIG.table_name, ttl_seconds=CONFIG.ttl_seconds)
# Job status changes while the caller polls: no cache may keep an answer.
_NO_STORE: Final = {"Cache-Control": "no-store"}
_METHODS: Final = ("GET", "DELETE")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """``GET``: the job (``200``); ``DELETE``: cancel it (``200``, ``202``, ``409 job-finished``); either:
    ``400 invalid-job-id``, ``404 job-not-found``, ``503``.

    A job owned by someone else answers exactly as an unknown id does, so ids reveal nothing.

    Examples
    --------
    >>> handler({"httpMethod": "GET", "pathParameters": {"id": job_id}, "requestContext": {...}}, context)
    {'statusCode': 200, 'headers': {..., 'Retry-After': '5'}, 'body': '{"id":...,"status":"RUNNING",...}', ...}
    """
    try:
        return _status(event)
    except Exception:
        logger.exception("/jobs/{id} failed unexpectedly")
        return api_common.internal_error()


def _status(event: dict[str, Any]) -> dict[str, Any]:
    # Powertools clears added dimensions only when it publishes: drop what an invocation without metrics left.
    metrics.clear_metrics()
    method = event.get("httpMethod")
    if method not in _METHODS:
        return api_common.method_not_allowed(method, _METHODS)
    job_id = api_common.path_job_id(event)
    if job_id is None:
        return api_common.invalid_job_id()
    logger.append_keys(job_id=job_id)
    if method == "DELETE":
        return _cancel(event, job_id)
    try:
        job = _store.get(job_id)
    except JobStoreError:
        logger.exception("could not read the job")
        return api_common.service_unavailable(
            "The job could not be read. Retry later.", CONFIG.retry_after_seconds
        )
    caller = api_common.caller_identity(event)
    if job is None or (job.owner != caller and not api_common.is_operator(caller, CONFIG.operators)):
        if job is not None:
            logger.info("job read by someone else than its owner; answering 404")
        return _not_found()
    return _job_response(200, job, event)


def _cancel(event: dict[str, Any], job_id: str) -> dict[str, Any]:
    """``DELETE /jobs/{id}``: only the owner may cancel (anyone else gets the 404 of an unknown id)."""
    try:
        outcome = _store.cancel(job_id, api_common.caller_identity(event))
    except JobStoreError:
        logger.exception("could not cancel the job")
        return api_common.service_unavailable(
            "The job could not be cancelled. Nothing was changed; retry later.", CONFIG.retry_after_seconds
        )
    logger.info("cancel", extra={"outcome": outcome.status.value})
    if outcome.job is None or outcome.status is CancelStatus.NOT_FOUND:
        return _not_found()
    # One request per invocation: its metrics are in the job's type's series.
    metrics.add_dimension(name=JOB_TYPE_DIMENSION, value=outcome.job.job_type)
    if outcome.status is CancelStatus.FINISHED:
        return problem(
            409,
            "job-finished",
            "Job finished",
            f"The job is {outcome.job.status.value} already: there is nothing left to cancel.",
            _NO_STORE,
            jobStatus=outcome.job.status.value,
        )
    if outcome.status is CancelStatus.CANCELLED:
        metrics.add_metric(name="JobsCancelled", unit=MetricUnit.Count, value=1)
        return _job_response(200, outcome.job, event)
    metrics.add_metric(name="CancelsRequested", unit=MetricUnit.Count, value=1)
    return _job_response(202, outcome.job, event)


def _job_response(status: int, job: Job, event: dict[str, Any]) -> dict[str, Any]:
    """The job as its resource, uncached; ``Retry-After`` while it is not finished (and, for ``202``, its URL)."""
    url = api_common.request_url(event)
    headers = dict(_NO_STORE)
    if not job.status.is_terminal:
        headers.update(api_common.retry_after(CONFIG.retry_after_seconds))
    if status == 202:
        headers["Location"] = url
    return api_common.json_response(status, job.to_resource(url), headers)


def _not_found() -> dict[str, Any]:
    return problem(
        404,
        "job-not-found",
        "Job not found",
        "No job with this id is visible to you: it does not exist, it expired, or it is not yours.",
        _NO_STORE,
    )
