"""``GET /jobs/{id}``: one job, to its owner (or an operator). One AWS call: a consistent GetItem.

``GET /jobs``: the caller's jobs (an operator's ``owner=`` names whose), newest first, a page at a time, filtered
by ``status`` and ``type`` (``lambda_handlers.listing``). One Query of the owner index, or a few.

``GET /jobs/{id}/result``: a SUCCEEDED job's result: inline (``200``), or a ``303`` to a presigned link of the
one kept in the API's bucket.

``DELETE /jobs/{id}``: cancel the owner's job. A QUEUED job is CANCELLED at once (``200``); a RUNNING one is
asked to stop (``202``, ``cancelRequested: true``); a finished one is a ``409``. One conditional UpdateItem,
two for a running job. A RUNNING job of a long type (its item names its durable ``execution``) is stopped:
``StopDurableExecution``, then the job ends CANCELLED, fenced on its run (``200``); when the execution cannot
be stopped the cancel stays a request (``202``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode

from aws_lambda_powertools.logging import correlation_paths
from botocore.exceptions import BotoCoreError, ClientError

from lambda_handlers import api_common, clients, config, objects, websocket_config
from lambda_handlers.contract import JOB_TYPE_DIMENSION, JOBS_PATH
from lambda_handlers.job_resource import job_resource
from lambda_handlers.listing import InvalidListQueryError, JobPage, list_jobs, parse_list_query, summary
from lambda_handlers.models import Job, JobStatus
from lambda_handlers.observability import MetricUnit, logger, metrics, tracer
from lambda_handlers.problems import problem
from lambda_handlers.store import CancelOutcome, CancelStatus, JobStore, JobStoreError, WriteOutcome

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["CONFIG", "handler"]

CONFIG: Final = config.load(config.StatusConfig)
_store: Final = JobStore(CONFIG.table_name, ttl_seconds=CONFIG.ttl_seconds)
#: ``Link: <wss://...>; rel="updates"`` on the ``200`` of ``GET /jobs/{id}`` when the API has a WebSocket.
_UPDATES_LINK: Final = websocket_config.updates_link()
# Job status changes while the caller polls: no cache may keep an answer.
_NO_STORE: Final = {"Cache-Control": "no-store"}
_METHODS: Final = ("GET", "DELETE")
#: What ``StopDurableExecution`` answers for an execution that has ended already (not an error here).
_ENDED_ALREADY: Final = ("ResourceNotFoundException", "ResourceConflictException")


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
    if event.get("resource") == f"/{JOBS_PATH}":
        return _list(event) if method == "GET" else api_common.method_not_allowed(method, ("GET", "POST"))
    if method not in _METHODS:
        return api_common.method_not_allowed(method, _METHODS)
    job_id = api_common.path_job_id(event)
    if job_id is None:
        return api_common.invalid_job_id()
    logger.append_keys(job_id=job_id)
    if event.get("resource") == f"/{JOBS_PATH}/{{id}}/result":
        return _result(event, job_id) if method == "GET" else api_common.method_not_allowed(method, ("GET",))
    if method == "DELETE":
        return _cancel(event, job_id)
    job = _visible_job(event, job_id)
    return job if not isinstance(job, Job) else _job_response(200, job, event, _UPDATES_LINK)


def _visible_job(event: dict[str, Any], job_id: str) -> Job | dict[str, Any]:
    """The job if the caller may read it; else the response to give (``404``, ``503``)."""
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
    return job


def _result(event: dict[str, Any], job_id: str) -> dict[str, Any]:
    """``GET /jobs/{id}/result``: ``200`` with the result, ``303`` to a presigned link of the stored one, or
    ``409 job-not-succeeded`` (with ``Retry-After`` while the job may still succeed)."""
    job = _visible_job(event, job_id)
    if not isinstance(job, Job):
        return job
    if job.status is not JobStatus.SUCCEEDED:
        headers = dict(_NO_STORE)
        if not job.status.is_terminal:
            headers.update(api_common.retry_after(CONFIG.retry_after_seconds))
        return problem(
            409,
            "job-not-succeeded",
            "Job has no result",
            f"The job is {job.status.value}: only a SUCCEEDED job has a result."
            + ("" if job.status.is_terminal else " Poll the job and come back when it is SUCCEEDED."),
            headers,
            jobStatus=job.status.value,
        )
    if job.result_ref is None or CONFIG.bucket_name is None:
        return {
            "statusCode": 200,
            "headers": {"Content-Type": api_common.JSON_CONTENT_TYPE, **_NO_STORE},
            "body": job.result if job.result is not None else "null",
            "isBase64Encoded": False,
        }
    return {
        "statusCode": 303,
        "headers": {**_NO_STORE, "Location": objects.link(CONFIG.bucket_name, job.result_ref)},
        "body": "",
        "isBase64Encoded": False,
    }


def _list(event: dict[str, Any]) -> dict[str, Any]:
    """``GET /jobs``: a page of the caller's jobs (``owner=`` someone else's: operators only, else ``403``)."""
    parameters = _query_parameters(event)
    try:
        query = parse_list_query(parameters)
    except InvalidListQueryError as error:
        return problem(
            400,
            "invalid-query-parameter",
            "Invalid query parameter",
            str(error),
            _NO_STORE,
            parameter=error.parameter,
        )
    caller = api_common.caller_identity(event)
    owner = caller if query.owner is None else query.owner
    if owner != caller and not api_common.is_operator(caller, CONFIG.operators):
        return problem(
            403,
            "owner-forbidden",
            "Not allowed to list another caller's jobs",
            "Only the API's operators may list another caller's jobs (owner=); leave owner out to list yours.",
            _NO_STORE,
        )
    try:
        page = list_jobs(_store, owner, query)
    except JobStoreError:
        logger.exception("could not list the jobs")
        return api_common.service_unavailable(
            "The jobs could not be listed. Retry later.", CONFIG.retry_after_seconds
        )
    logger.info("listed", extra={"jobs": len(page.jobs), "more": page.next_cursor is not None})
    return _page_response(event, parameters, page)


def _query_parameters(event: dict[str, Any]) -> dict[str, list[str]]:
    """Every query parameter's values, from ``multiValueQueryStringParameters`` (else the single-value map)."""
    multi = event.get("multiValueQueryStringParameters") or {}
    if multi:
        return {str(name): [str(value) for value in values or []] for name, values in multi.items()}
    single = event.get("queryStringParameters") or {}
    return {str(name): [str(value)] for name, value in single.items() if value is not None}


def _page_response(event: dict[str, Any], parameters: dict[str, list[str]], page: JobPage) -> dict[str, Any]:
    """``200`` with ``jobs`` (summaries: read a result at its job's ``links.self``), ``next`` and ``links``."""
    url = api_common.request_url(event)
    body: dict[str, Any] = {"jobs": [summary(job, f"{url}/{job.job_id}") for job in page.jobs]}
    query = {name: values for name, values in parameters.items() if name != "cursor"}
    links = {"self": url + (f"?{urlencode(parameters, doseq=True)}" if parameters else "")}
    headers = dict(_NO_STORE)
    if page.next_cursor is not None:
        body["next"] = page.next_cursor
        links["next"] = f"{url}?{urlencode({**query, 'cursor': [page.next_cursor]}, doseq=True)}"
        headers["Link"] = f'<{links["next"]}>; rel="next"'
    body["links"] = links
    return api_common.json_response(200, body, headers)


def _cancel(event: dict[str, Any], job_id: str) -> dict[str, Any]:
    """``DELETE /jobs/{id}``: only the owner may cancel (anyone else gets the 404 of an unknown id)."""
    try:
        outcome = _store.cancel(job_id, api_common.caller_identity(event))
    except JobStoreError:
        logger.exception("could not cancel the job")
        return api_common.service_unavailable(
            "The job could not be cancelled. Nothing was changed; retry later.", CONFIG.retry_after_seconds
        )
    if outcome.status is CancelStatus.REQUESTED and outcome.job is not None and outcome.job.execution:
        outcome = _stop_execution(outcome.job) or outcome
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


def _stop_execution(job: Job) -> CancelOutcome | None:
    """A long job's cancel: stop its durable execution, then end the job CANCELLED (fenced on its run).

    None when the execution cannot be stopped now: the cancel stays a request, which the handler sees with its
    next progress report (and the sweep ends the job CANCELLED should its execution stop later).
    """
    try:
        clients.lambda_().stop_durable_execution(
            DurableExecutionArn=str(job.execution),
            Error={
                "ErrorType": "JobCancelled",
                "ErrorMessage": "The job's owner cancelled it (DELETE /jobs/{id}).",
            },
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in _ENDED_ALREADY:
            logger.exception("could not stop the job's durable execution; the cancel stays a request")
            return None
        logger.info("the job's durable execution had ended already")
    except BotoCoreError:
        logger.exception("could not stop the job's durable execution; the cancel stays a request")
        return None
    try:
        written = _store.cancel_run(job.job_id, str(job.run_id))
        now = _store.get(job.job_id)
    except JobStoreError:
        logger.exception("stopped the job's execution but could not end the job; the sweep will")
        return None
    if now is None:
        return CancelOutcome(CancelStatus.NOT_FOUND)
    if written is WriteOutcome.APPLIED:
        logger.info("stopped the job's durable execution", extra={"execution": job.execution})
        return CancelOutcome(CancelStatus.CANCELLED, now)
    return CancelOutcome(CancelStatus.FINISHED if now.status.is_terminal else CancelStatus.REQUESTED, now)


def _job_response(
    status: int, job: Job, event: dict[str, Any], extra_headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """The job as its resource, uncached; ``Retry-After`` while it is not finished (and, for ``202``, its URL)."""
    url = api_common.request_url(event)
    headers = {**_NO_STORE, **(extra_headers or {})}
    if not job.status.is_terminal:
        headers.update(api_common.retry_after(CONFIG.retry_after_seconds))
    if status == 202:
        headers["Location"] = url
    return api_common.json_response(status, job_resource(job, url, CONFIG.bucket_name), headers)


def _not_found() -> dict[str, Any]:
    return problem(
        404,
        "job-not-found",
        "Job not found",
        "No job with this id is visible to you: it does not exist, it expired, or it is not yours.",
        _NO_STORE,
    )
