"""``GET /jobs/{id}``: one job, to its owner (or an operator). One AWS call: a consistent GetItem."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools.logging import correlation_paths

from lambda_handlers import api_common, config
from lambda_handlers.observability import logger, metrics, tracer
from lambda_handlers.problems import problem
from lambda_handlers.store import JobStore, JobStoreError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["CONFIG", "handler"]

CONFIG: Final = config.load(config.StatusConfig)
_store: Final = JobStore(CONFIG.table_name)
# Job status changes while the caller polls: no cache may keep an answer.
_NO_STORE: Final = {"Cache-Control": "no-store"}


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Answer with the job (``200``), or ``400 invalid-job-id``, ``404 job-not-found``, ``503``.

    A job owned by someone else answers exactly as an unknown id does, so ids reveal nothing.

    Examples
    --------
    >>> handler({"httpMethod": "GET", "pathParameters": {"id": job_id}, "requestContext": {...}}, context)
    {'statusCode': 200, 'headers': {..., 'Retry-After': '5'}, 'body': '{"id":...,"status":"RUNNING",...}', ...}
    """
    try:
        return _status(event)
    except Exception:
        logger.exception("GET /jobs/{id} failed unexpectedly")
        return api_common.internal_error()


def _status(event: dict[str, Any]) -> dict[str, Any]:
    method = event.get("httpMethod")
    if method != "GET":
        return api_common.method_not_allowed(method, ["GET"])
    job_id = api_common.path_job_id(event)
    if job_id is None:
        return api_common.invalid_job_id()
    logger.append_keys(job_id=job_id)
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
        return problem(
            404,
            "job-not-found",
            "Job not found",
            "No job with this id is visible to you: it does not exist, it expired, or it is not yours.",
            _NO_STORE,
        )
    headers = dict(_NO_STORE)
    if not job.status.is_terminal:
        headers.update(api_common.retry_after(CONFIG.retry_after_seconds))
    return api_common.json_response(200, job.to_resource(api_common.request_url(event)), headers)
