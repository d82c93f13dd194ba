"""``POST /{type}``: validate the request, record the job QUEUED, enqueue it, answer ``202 Accepted``.

The job type is the request's resource (``POST /reports``: type ``reports``; the single-handler form's type is
``jobs``, at ``POST /jobs``): its queue gets the message and its payload limit applies; a type the API does not
have is a ``404 job-type-not-found``. Every job, whatever its type, is at ``/jobs/{id}`` (``Location``).

Two AWS calls on the happy path: PutItem (with an ``Idempotency-Key``: TransactWriteItems of the job and its key
item), then SendMessage. A job is never acknowledged unless both succeeded: when the message cannot be sent, the
items are deleted again and the caller gets a ``503``.

A request that repeats a key (same caller, same key, same payload) gets the key's job back (``202``, with
``Idempotent-Replayed: true``); if that job never started (QUEUED, no attempt) and no replay sent its message
yet, its message is sent again and that is recorded (``enqueueConfirmed``), so that every ``202`` still means
"enqueued" even when the first request died between its two calls, and a replay storm sends one message, not
one per replay (the worker drops a message that is not the job's own: ``transitions.decide_claim``). The first
request's undo (after its own SendMessage failed) leaves a job so confirmed in place and answers ``202``. The
same key with another payload is a ``422``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools.logging import correlation_paths
from botocore.exceptions import BotoCoreError, ClientError

from lambda_handlers import api_common, clients, config, idempotency, messages, objects, websocket_config
from lambda_handlers.config import JobTypeConfig
from lambda_handlers.connections import Connections, ConnectionsError
from lambda_handlers.contract import (
    CALLBACK_URL_HEADER,
    CLAIM_CHECK_BYTES,
    IDEMPOTENCY_KEY_HEADER,
    JOB_TYPE_DIMENSION,
    REPLAYED_HEADER,
)
from lambda_handlers.idempotency import IdempotencyRecord, InvalidKeyError
from lambda_handlers.models import Job, JobStatus, utc_now
from lambda_handlers.observability import MetricUnit, logger, metrics, tracer
from lambda_handlers.payload import read_payload
from lambda_handlers.problems import ProblemError, problem
from lambda_handlers.store import JobStore, JobStoreError, KeyInUseError
from lambda_handlers.webhook_delivery import InvalidCallbackError, policy_from_environ

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["CONFIG", "handler", "read_payload"]

CONFIG: Final = config.load(config.SubmitConfig)
#: Which ``Callback-Url`` values this API calls (``webhook_allowed_hosts``; none: the header is refused).
_POLICY: Final = policy_from_environ(os.environ)
_store: Final = JobStore(CONFIG.table_name, ttl_seconds=CONFIG.ttl_seconds)
#: ``Link: <wss://...>; rel="updates"`` on every ``202`` when the API has a WebSocket.
_UPDATES_LINK: Final = websocket_config.updates_link()
#: The WebSocket's connections table (the owner's watch: a new job of a watched owner is written watched).
_CONNECTIONS_TABLE: Final = websocket_config.connections_table()
_connections: Final = None if _CONNECTIONS_TABLE is None else Connections(_CONNECTIONS_TABLE)


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
        logger.exception("POST failed unexpectedly")
        return api_common.internal_error()


def _submit(event: dict[str, Any]) -> dict[str, Any]:
    # Powertools clears added dimensions only when it publishes: drop what an invocation without metrics left.
    metrics.clear_metrics()
    name = api_common.request_job_type(event)
    kind = CONFIG.job_type(name)
    if kind is None:
        return _type_not_found(name)
    # One request per invocation: the dimension holds for every metric of this one, and is cleared when they
    # are flushed at its end (Powertools keeps only default dimensions across invocations).
    metrics.add_dimension(name=JOB_TYPE_DIMENSION, value=kind.name)
    logger.append_keys(job_type=kind.name)
    method = event.get("httpMethod")
    if method != "POST":
        return api_common.method_not_allowed(method, ["POST"])
    key = _idempotency_key(event, kind)
    webhook = _webhook(event)
    payload_text = messages.sqs_safe(read_payload(event, kind.max_payload_bytes))
    owner = api_common.caller_identity(event)
    jobs_url = api_common.jobs_url(event)
    if key is None:
        return _accept(kind, payload_text, owner, jobs_url, webhook)
    return _accept_keyed(kind, payload_text, owner, jobs_url, idempotency.key_item_id(owner, key), webhook)


def _webhook(event: dict[str, Any]) -> str | None:
    """The job's webhook state for a ``Callback-Url`` header (``PENDING``, no attempt), or None without one.

    Raises
    ------
    ProblemError
        ``400 invalid-callback-url``: the URL is malformed, not https, or its host is not allowed.
    """
    url = api_common.header(event, CALLBACK_URL_HEADER)
    if url is None:
        return None
    try:
        _POLICY.check(url.strip())
    except InvalidCallbackError as error:
        raise ProblemError(400, "invalid-callback-url", "Invalid callback URL", str(error)) from None
    return json.dumps({"url": url.strip(), "status": "PENDING", "attempts": 0}, separators=(",", ":"))


def _type_not_found(name: str) -> dict[str, Any]:
    """``404 job-type-not-found``: counted in no metric (an unknown name is no series of its own)."""
    known = ", ".join(f"POST /{known}" for known in sorted(CONFIG.job_types))
    return problem(
        404,
        "job-type-not-found",
        "Job type not found",
        f"This API has no job type {name[:40]!r}; it accepts {known}.",
    )


def _accept(
    kind: JobTypeConfig, payload_text: str, owner: str, jobs_url: str, webhook: str | None
) -> dict[str, Any]:
    """Record and enqueue a job without a key: PutItem, SendMessage."""
    job = _new_job(kind, messages.payload_digest(payload_text), owner, webhook)
    try:
        _store.create(job)
    except JobStoreError:
        logger.exception("could not record the job; nothing was accepted")
        return _unavailable("The job could not be recorded.")
    if not _enqueue(kind, job.job_id, payload_text):
        return _undo(job, None, payload_text, jobs_url)
    return _accepted(job, payload_text, jobs_url)


def _accept_keyed(
    kind: JobTypeConfig, payload_text: str, owner: str, jobs_url: str, key_id: str, webhook: str | None
) -> dict[str, Any]:
    """Record the job and its key together and enqueue it; or answer for the job the key created before."""
    digest = messages.payload_digest(payload_text)
    replacing: str | None = None
    for _ in range(3):
        job = _new_job(kind, digest, owner, webhook)
        try:
            found = _store.create_keyed(
                job, IdempotencyRecord(key_id, job.job_id, digest, job.expires_at), replacing=replacing
            )
        except KeyInUseError:
            logger.warning("a concurrent request is recording the same idempotency key")
            raise ProblemError(
                409,
                "idempotency-key-in-use",
                "Idempotency-Key in use",
                "Another request with this Idempotency-Key is being handled right now. Retry it shortly.",
                api_common.retry_after(1),
            ) from None
        except JobStoreError:
            logger.exception("could not record the job; nothing was accepted")
            return _unavailable("The job could not be recorded.")
        if found is None:
            if not _enqueue(kind, job.job_id, payload_text):
                return _undo(job, key_id, payload_text, jobs_url)
            return _accepted(job, payload_text, jobs_url)
        logger.append_keys(job_id=found.job_id)
        if found.payload_sha256 != digest:
            raise ProblemError(
                422,
                "idempotency-key-reused",
                "Idempotency-Key reused",
                "This Idempotency-Key was used for another request body. Send a new key with a new job, or "
                "the same body to get the first request's job.",
            )
        try:
            existing = _store.get(found.job_id)
            if existing is not None and existing.job_type != kind.name:
                raise ProblemError(
                    422,
                    "idempotency-key-reused",
                    "Idempotency-Key reused",
                    f"This Idempotency-Key was used for a job of type {existing.job_type!r}, not "
                    f"{kind.name!r}. Send a new key with a new job.",
                )
            if existing is not None and _maybe_unsent(existing):
                # The first request may have died between recording and enqueueing: a 202 must mean
                # "enqueued", so send the message (again) and record that it was sent, once per job.
                if not _enqueue(kind, existing.job_id, payload_text):
                    return _unavailable("The job could not be enqueued.")
                if not _store.confirm_enqueued(existing.job_id):
                    existing = None  # the first request's undo removed it meanwhile: the key gets a new job
                else:
                    _count("MessagesResent")
        except JobStoreError:
            logger.exception("could not read or update the job of the idempotency key")
            return _unavailable("The job of this Idempotency-Key could not be read.")
        if existing is not None:
            return _replay(existing, jobs_url)
        # The key outlived its job (which was removed): let the key create a job anew.
        logger.warning("the idempotency key's job is gone; the key gets a new job")
        replacing = found.job_id
    return _unavailable("The job could not be recorded.")


def _maybe_unsent(job: Job) -> bool:
    """Whether the job's message may never have been sent: untouched by workers, and no replay sent it."""
    return job.status is JobStatus.QUEUED and job.attempts == 0 and not job.enqueue_confirmed


def _undo(job: Job, key_id: str | None, payload_text: str, jobs_url: str) -> dict[str, Any]:
    """The answer when the job's message could not be sent: remove the job (and key) and answer ``503``.

    The job is kept, and the request answered ``202``, when it turns out to be enqueued after all: a worker
    has claimed it (the failed SendMessage had in fact delivered), or a concurrent replay of the same request
    sent its message and told its caller ``202``.
    """
    if _forget(job.job_id, key_id):
        return _unavailable("The job could not be enqueued.")
    try:
        current = _store.get(job.job_id)
    except JobStoreError:
        logger.exception("could not read the job after a failed undo")
        current = None
    if current is None or _maybe_unsent(current):
        return _unavailable("The job could not be enqueued.")
    logger.info("the job is enqueued after all (a worker or a replay has it); accepted")
    return _accepted(current, payload_text, jobs_url)


def _replay(job: Job, jobs_url: str) -> dict[str, Any]:
    """The answer to a repeated request: the key's job as it is now."""
    _count("JobsReplayed")
    logger.info("idempotent replay", extra={"status": job.status.value, "attempts": job.attempts})
    url = f"{jobs_url}/{job.job_id}"
    headers = {"Location": url, "Cache-Control": "no-store", REPLAYED_HEADER: "true", **_UPDATES_LINK}
    if not job.status.is_terminal:
        headers.update(api_common.retry_after(CONFIG.retry_after_seconds))
    return api_common.json_response(202, job.to_resource(url), headers)


def _new_job(kind: JobTypeConfig, payload_sha256: str, owner: str, webhook: str | None) -> Job:
    job_id = str(uuid.uuid4())
    logger.append_keys(job_id=job_id)
    job = Job.new(
        job_id,
        owner=owner,
        payload_sha256=payload_sha256,
        now=utc_now(),
        ttl_seconds=CONFIG.ttl_seconds,
        job_type=kind.name,
    )
    return dataclasses.replace(job, webhook=webhook, watched_until=_owner_watched_until(owner))


def _owner_watched_until(owner: str) -> int | None:
    """Until when a WebSocket connection follows all the owner's jobs (one GetItem), or None.

    Best effort: when the read fails the job is written unwatched (a subscriber then sees it from its first
    ``GET`` or its next subscribe) rather than refused.
    """
    if _connections is None:
        return None
    try:
        return _connections.owner_watched_until(owner)
    except ConnectionsError:
        logger.warning("could not read the owner's WebSocket watch; the job is written unwatched")
        return None


def _enqueue(kind: JobTypeConfig, job_id: str, payload_text: str) -> bool:
    """Send the job's message: the payload in it, or, over ``CLAIM_CHECK_BYTES``, in the bucket (a claim check)."""
    body = messages.encode(job_id, payload_text)
    data = payload_text.encode("utf-8")
    if len(data) > CLAIM_CHECK_BYTES and CONFIG.bucket_name is not None:
        key = objects.payload_key(job_id)
        try:
            objects.put(CONFIG.bucket_name, key, data, api_common.JSON_CONTENT_TYPE)
        except objects.ObjectStoreError:
            logger.exception("could not store the payload in the bucket")
            return False
        body = messages.encode_reference(job_id, key)
    try:
        clients.sqs().send_message(QueueUrl=kind.queue_url, MessageBody=body)
    except (BotoCoreError, ClientError):
        logger.exception("could not enqueue the job")
        return False
    return True


def _accepted(job: Job, payload_text: str, jobs_url: str) -> dict[str, Any]:
    url = f"{jobs_url}/{job.job_id}"
    _count("JobsSubmitted")
    logger.info("job accepted", extra={"payload_bytes": len(payload_text.encode("utf-8"))})
    return api_common.json_response(
        202,
        job.to_resource(url),
        {
            "Location": url,
            **api_common.retry_after(CONFIG.retry_after_seconds),
            "Cache-Control": "no-store",
            **_UPDATES_LINK,
        },
    )


def _idempotency_key(event: Mapping[str, Any], kind: JobTypeConfig) -> str | None:
    """The request's Idempotency-Key, or None without one (when the API does not require it)."""
    try:
        key = idempotency.parse_key(api_common.header_values(event, IDEMPOTENCY_KEY_HEADER))
    except InvalidKeyError as error:
        raise ProblemError(400, "invalid-idempotency-key", "Invalid Idempotency-Key", str(error)) from None
    if key is None and CONFIG.idempotency_key_required:
        raise ProblemError(
            400,
            "idempotency-key-required",
            "Idempotency-Key required",
            f"This API needs an {IDEMPOTENCY_KEY_HEADER} header on POST /{kind.name}: a new unique value (e.g. a UUID) "
            "per job, sent again unchanged when the request is retried.",
        )
    return key


def _unavailable(what: str) -> dict[str, Any]:
    _count("SubmitErrors")
    return api_common.service_unavailable(
        f"{what} Nothing was accepted; retry later.", CONFIG.retry_after_seconds
    )


def _forget(job_id: str, key_id: str | None) -> bool:
    """Undo ``create``/``create_keyed``: the caller is to be told nothing was accepted, so no job may stay.

    Returns whether the items were removed. They are not when a worker or a replay has the job (``_undo``
    then accepts it), or when DynamoDB fails: then a keyed job stays QUEUED until the caller's retry with the
    same key sends its message, an unkeyed one until its item expires.
    """
    try:
        if key_id is None:
            return _store.delete_if_queued(job_id)
        return _store.forget_keyed(job_id, key_id)
    except JobStoreError:
        logger.exception("could not remove the unqueued job; it stays QUEUED")
        return False


def _count(name: str) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
