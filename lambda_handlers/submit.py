"""``POST /jobs``: validate the request, record the job QUEUED, enqueue it, answer ``202 Accepted``.

Two AWS calls on the happy path: PutItem, then SendMessage. A job is never acknowledged unless both
succeeded: when the message cannot be sent, the item is deleted again and the caller gets a ``503``.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from typing import TYPE_CHECKING, Any, Final, NoReturn

from aws_lambda_powertools.logging import correlation_paths
from botocore.exceptions import BotoCoreError, ClientError

from lambda_handlers import api_common, clients, config, messages
from lambda_handlers.models import Job, utc_now
from lambda_handlers.observability import MetricUnit, logger, metrics, tracer
from lambda_handlers.problems import ProblemError
from lambda_handlers.store import JobStore, JobStoreError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["CONFIG", "handler", "read_payload"]

CONFIG: Final = config.load(config.SubmitConfig)
_store: Final = JobStore(CONFIG.table_name)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Accept a job: ``202`` with its URL in ``Location``, or a problem response.

    Examples
    --------
    >>> handler({"httpMethod": "POST", "headers": {"Content-Type": "application/json"}, "body": "{}",
    ...          "requestContext": {...}}, context)["statusCode"]
    202
    """
    try:
        return _submit(event)
    except ProblemError as rejected:
        metrics.add_metric(name="JobsRejected", unit=MetricUnit.Count, value=1)
        return rejected.response
    except Exception:
        logger.exception("POST /jobs failed unexpectedly")
        return api_common.internal_error()


def _submit(event: dict[str, Any]) -> dict[str, Any]:
    method = event.get("httpMethod")
    if method != "POST":
        return api_common.method_not_allowed(method, ["POST"])
    payload_text = read_payload(event, CONFIG.max_payload_bytes)

    job_id = str(uuid.uuid4())
    logger.append_keys(job_id=job_id)
    url = f"{api_common.request_url(event)}/{job_id}"
    payload_text = messages.sqs_safe(payload_text)
    job = Job.new(
        job_id,
        owner=api_common.caller_identity(event),
        payload_sha256=messages.payload_digest(payload_text),
        now=utc_now(),
        ttl_seconds=CONFIG.ttl_seconds,
    )
    try:
        _store.create(job)
    except JobStoreError:
        logger.exception("could not record the job; nothing was accepted")
        return _unavailable("The job could not be recorded.")
    try:
        clients.sqs().send_message(
            QueueUrl=CONFIG.queue_url, MessageBody=messages.encode(job_id, payload_text)
        )
    except (BotoCoreError, ClientError):
        logger.exception("could not enqueue the job; removing its record")
        _forget(job_id)
        return _unavailable("The job could not be enqueued.")

    metrics.add_metric(name="JobsSubmitted", unit=MetricUnit.Count, value=1)
    logger.info("job accepted", extra={"payload_bytes": len(payload_text.encode("utf-8"))})
    return api_common.json_response(
        202,
        job.to_resource(url),
        {"Location": url, **api_common.retry_after(CONFIG.retry_after_seconds), "Cache-Control": "no-store"},
    )


def read_payload(event: dict[str, Any], max_bytes: int) -> str:
    """The request's body as JSON text, checked to be a JSON object of at most ``max_bytes`` UTF-8 bytes.

    Checks in order: the media type (``application/json`` or ``application/*+json``, UTF-8 only), a body is
    present, its size, UTF-8, JSON (``NaN`` and ``Infinity`` are not JSON), an object.

    Raises
    ------
    ProblemError
        With the ``415``, ``400`` or ``413`` problem to answer.

    Examples
    --------
    >>> read_payload({"headers": {"content-type": "application/json"}, "body": '{"n": 1}'}, 1024)
    '{"n": 1}'
    """
    _check_media_type(api_common.header(event, "Content-Type"))
    body = event.get("body")
    if body is None or body == "":
        _reject(400, "empty-body", "Empty body", "The request needs a body: the job's input, a JSON object.")
    if not isinstance(body, str):
        _reject(400, "invalid-json", "Invalid JSON", "The body is not text.")
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            _reject(
                400, "invalid-json", "Invalid JSON", "The body is marked base64-encoded but is not base64."
            )
    else:
        raw = body.encode("utf-8", "surrogatepass")
    if len(raw) > max_bytes:
        raise ProblemError(
            413,
            "payload-too-large",
            "Payload too large",
            f"The body is {len(raw)} bytes; the limit is {max_bytes} bytes. Send a smaller payload, e.g. a "
            "reference to data in S3 instead of the data.",
            maxBytes=max_bytes,
        )
    if not raw.strip():
        _reject(400, "empty-body", "Empty body", "The request needs a body: the job's input, a JSON object.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        _reject(400, "invalid-json", "Invalid JSON", f"The body is not valid UTF-8 (at byte {error.start}).")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        _reject(
            400,
            "invalid-json",
            "Invalid JSON",
            f"The body is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno}).",
        )
    except (ValueError, RecursionError) as error:
        _reject(400, "invalid-json", "Invalid JSON", f"The body is not acceptable JSON: {_short(error)}.")
    if not isinstance(value, dict):
        kind = "an array" if isinstance(value, list) else "a JSON scalar"
        _reject(
            400, "body-not-object", "Body is not a JSON object", f"The body is {kind}; send a JSON object."
        )
    return text


def _check_media_type(content_type: str | None) -> None:
    if content_type is None:
        _unsupported("The request has no Content-Type; send application/json.")
    media, *parameters = content_type.split(";")
    media = media.strip().lower()
    maintype, _, subtype = media.partition("/")
    if not (maintype == "application" and (subtype == "json" or subtype.endswith("+json"))):
        _unsupported(f"The body must be JSON (Content-Type: application/json), not {media[:100]!r}.")
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        charset = value.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            _unsupported(f"JSON is UTF-8; charset {charset[:40]!r} is not supported.")


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON value")


def _short(error: BaseException) -> str:
    return "it is nested too deeply" if isinstance(error, RecursionError) else str(error)[:200]


def _reject(status: int, slug: str, title: str, detail: str) -> NoReturn:
    raise ProblemError(status, slug, title, detail)


def _unsupported(detail: str) -> NoReturn:
    _reject(415, "unsupported-media-type", "Unsupported media type", detail)


def _unavailable(what: str) -> dict[str, Any]:
    metrics.add_metric(name="SubmitErrors", unit=MetricUnit.Count, value=1)
    return api_common.service_unavailable(
        f"{what} Nothing was accepted; retry later.", CONFIG.retry_after_seconds
    )


def _forget(job_id: str) -> None:
    """Undo ``create`` (best effort): the caller is told nothing was accepted, so no job may stay behind."""
    try:
        _store.delete_if_queued(job_id)
    except JobStoreError:
        logger.exception("could not remove the unqueued job; it stays QUEUED until it expires")
