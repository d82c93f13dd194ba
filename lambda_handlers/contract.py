"""The contract between the construct, the runtime and the local runtime: names and limits typed out once.

Standard library only: ``async_job_construct`` (at synth), ``lambda_handlers`` (in Lambda) and
``async_job_local`` (reading a synthesized template) all import it, so an environment variable, a metadata key,
a header or a limit cannot drift between the three. ``docs/design.md`` describes what each one means.

Examples
--------
>>> from lambda_handlers import contract
>>> contract.Env.TABLE_NAME
'ASYNC_JOB_TABLE_NAME'
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "BUNDLE_MANIFEST",
    "CALLBACK_URL_HEADER",
    "CLAIM_CHECK_BYTES",
    "DEFAULT_JOB_TYPE",
    "FILE_NAME",
    "IDEMPOTENCY_KEY_HEADER",
    "JOBS_PATH",
    "JOB_OBJECTS_PREFIX",
    "JOB_TYPE_ATTRIBUTE",
    "JOB_TYPE_DIMENSION",
    "JOB_TYPE_NAME",
    "LAMBDA_PROVIDED_DISTRIBUTIONS",
    "LIST_QUERY_PARAMETERS",
    "MAX_FILES",
    "MAX_PAYLOAD_BYTES_LIMIT",
    "MAX_RECEIVE_COUNT_LIMIT",
    "MAX_VISIBILITY_SECONDS",
    "METADATA_KEY",
    "OWNER_INDEX",
    "OWNER_INDEX_ATTRIBUTES",
    "PAYLOAD_OBJECTS_PREFIX",
    "PRINCIPAL_HEADER",
    "REPLAYED_HEADER",
    "REQUIREMENTS_FILE",
    "UNKNOWN_JOB_TYPE",
    "Env",
    "JobTypeKey",
    "Role",
]


class Env:
    """The functions' environment variables (read and validated once, at import, by ``lambda_handlers.config``)."""

    #: All: the status table (a name or an ARN).
    TABLE_NAME: Final = "ASYNC_JOB_TABLE_NAME"
    #: All: how long a job stays readable after it ends, seconds.
    TTL_SECONDS: Final = "ASYNC_JOB_TTL_SECONDS"
    #: Submit: the job queue (one job type).
    QUEUE_URL: Final = "ASYNC_JOB_QUEUE_URL"
    #: Submit: the largest accepted request body, bytes.
    MAX_PAYLOAD_BYTES: Final = "ASYNC_JOB_MAX_PAYLOAD_BYTES"
    #: Submit: ``true`` refuses a POST without ``Idempotency-Key``.
    IDEMPOTENCY_KEY_REQUIRED: Final = "ASYNC_JOB_IDEMPOTENCY_KEY_REQUIRED"
    #: Submit, status: the ``Retry-After`` advised while a job is not finished, seconds.
    RETRY_AFTER_SECONDS: Final = "ASYNC_JOB_RETRY_AFTER_SECONDS"
    #: Status (optional): JSON list of identities that may read every job.
    OPERATORS: Final = "ASYNC_JOB_OPERATORS"
    #: Worker: the team's handler, ``module.function``.
    HANDLER: Final = "ASYNC_JOB_HANDLER"
    #: Worker, dead-letter: receives before a message is dead-lettered (the last attempt).
    MAX_RECEIVE_COUNT: Final = "ASYNC_JOB_MAX_RECEIVE_COUNT"
    #: Worker (optional): the first retry's delay cap, doubled per attempt, seconds.
    RETRY_BASE_SECONDS: Final = "ASYNC_JOB_RETRY_BASE_SECONDS"
    #: Worker (optional): the cap of every retry delay, seconds.
    RETRY_MAX_SECONDS: Final = "ASYNC_JOB_RETRY_MAX_SECONDS"
    #: Submit, status, worker: the API's bucket (results over the item's room, files, large payloads).
    BUCKET_NAME: Final = "ASYNC_JOB_BUCKET_NAME"
    #: Events: the EventBridge bus job events go to (a name or an ARN; ``default``).
    EVENT_BUS: Final = "ASYNC_JOB_EVENT_BUS"
    #: Events (optional): the webhook queue of finished jobs with a callback URL.
    WEBHOOK_QUEUE_URL: Final = "ASYNC_JOB_WEBHOOK_QUEUE_URL"
    #: Submit, webhook (optional): JSON list of the hosts a ``Callback-Url`` may name; absent: no webhooks.
    WEBHOOK_ALLOWED_HOSTS: Final = "ASYNC_JOB_WEBHOOK_ALLOWED_HOSTS"
    #: Webhook: the Secrets Manager secret webhooks are signed with.
    WEBHOOK_SECRET_ARN: Final = "ASYNC_JOB_WEBHOOK_SECRET_ARN"
    #: Webhook: deliveries of a webhook before it is given up.
    WEBHOOK_MAX_ATTEMPTS: Final = "ASYNC_JOB_WEBHOOK_MAX_ATTEMPTS"
    #: Set to ``1`` by the local runtime only (webhooks may then call ``http://127.0.0.1``).
    LOCAL_RUNTIME: Final = "ASYNC_JOB_LOCAL_RUNTIME"
    #: Worker: the name of the job type it runs.
    JOB_TYPE: Final = "ASYNC_JOB_TYPE"
    #: Submit, dead-letter: JSON object of every job type of the API, name -> settings
    #: (``{"reports": {"queueUrl": "...", "maxPayloadBytes": 262144, "maxReceiveCount": 3}}``).
    JOB_TYPES: Final = "ASYNC_JOB_TYPES"
    #: Starter (long job types): the durable worker to start, a qualified (version) function ARN.
    DURABLE_FUNCTION: Final = "ASYNC_JOB_DURABLE_FUNCTION"
    #: Starter (optional): the most executions of the type running at once; more wait in the queue.
    MAX_RUNNING: Final = "ASYNC_JOB_MAX_RUNNING"
    #: Starter: how far back the sweep looks for executions that ended without recording the job, seconds.
    SWEEP_WINDOW_SECONDS: Final = "ASYNC_JOB_SWEEP_WINDOW_SECONDS"
    #: Durable worker: the job's whole run limit (the execution timeout), seconds.
    EXECUTION_TIMEOUT_SECONDS: Final = "ASYNC_JOB_EXECUTION_TIMEOUT_SECONDS"
    #: Submit, status (optional; set when the API has a WebSocket): the ``wss://`` URL of its WebSocket stage,
    #: given in ``Link: <url>; rel="updates"`` on the ``202`` of ``POST`` and the ``200`` of ``GET /jobs/{id}``.
    WEBSOCKET_URL: Final = "ASYNC_JOB_WEBSOCKET_URL"
    #: Connection, push, and submit (optional, with a WebSocket): the connections table (a name or an ARN).
    CONNECTIONS_TABLE: Final = "ASYNC_JOB_CONNECTIONS_TABLE"
    #: Push: the ``@connections`` management endpoint of the WebSocket stage (``https://{api}.execute-api.
    #: {region}.amazonaws.com/{stage}``); the local runtime points it at its own server.
    WEBSOCKET_ENDPOINT: Final = "ASYNC_JOB_WEBSOCKET_ENDPOINT"
    #: Connection, push: the REST API's ``/jobs`` URL (a pushed job's ``links.self`` is ``{url}/{id}``).
    JOBS_URL: Final = "ASYNC_JOB_JOBS_URL"


class JobTypeKey:
    """The keys of one job type's settings in ``Env.JOB_TYPES`` (every one required)."""

    #: The type's job queue (an SQS queue URL).
    QUEUE_URL: Final = "queueUrl"
    #: The largest request body ``POST /{type}`` accepts, bytes (1 to ``MAX_PAYLOAD_BYTES_LIMIT``).
    MAX_PAYLOAD_BYTES: Final = "maxPayloadBytes"
    #: Receives before the type's messages are dead-lettered (its attempts), 1 to 1000.
    MAX_RECEIVE_COUNT: Final = "maxReceiveCount"


class Role:
    """What a resource is to an API, in its template metadata ``{METADATA_KEY: {"api": path, "role": ...}}``."""

    API: Final = "api"
    TABLE: Final = "table"
    SUBMIT: Final = "submit"
    STATUS: Final = "status"
    WORKER: Final = "worker"
    DEAD_LETTER: Final = "dead-letter"
    QUEUE: Final = "queue"
    DEAD_LETTER_QUEUE: Final = "dead-letter-queue"
    BUCKET: Final = "bucket"
    EVENTS: Final = "events"
    EVENTS_DEAD_LETTER_QUEUE: Final = "events-dead-letter-queue"
    WEBHOOK: Final = "webhook"
    WEBHOOK_QUEUE: Final = "webhook-queue"
    WEBHOOK_DEAD_LETTER_QUEUE: Final = "webhook-dead-letter-queue"
    #: A long job type's queue consumer: starts one durable execution per job, and sweeps ended ones.
    STARTER: Final = "starter"
    #: The WebSocket API (``AWS::ApiGatewayV2::Api``) of an API with ``websocket`` on.
    WEBSOCKET_API: Final = "websocket-api"
    #: The function behind its routes ($connect, $disconnect, subscribe, unsubscribe, $default).
    CONNECTIONS: Final = "connections"
    #: The stream consumer that posts job updates to subscribed connections.
    WEBSOCKET_PUSH: Final = "websocket-push"
    #: The table of connections and their subscriptions.
    CONNECTIONS_TABLE: Final = "connections-table"


#: The template metadata key that marks an API's resources (read by the local runtime).
METADATA_KEY: Final = "AsyncJob"
#: The local runtime's caller header (it plays the SigV4 identity).
PRINCIPAL_HEADER: Final = "X-Async-Job-Principal"
#: The request header that makes ``POST`` safe to retry (IETF httpapi draft).
IDEMPOTENCY_KEY_HEADER: Final = "Idempotency-Key"
#: The request header of ``POST`` naming the URL to call when the job ends (a webhook).
CALLBACK_URL_HEADER: Final = "Callback-Url"
#: The response header of a ``202`` that answers an earlier request with the same key.
REPLAYED_HEADER: Final = "Idempotent-Replayed"
#: The largest request body: what a Lambda proxy event carries (6 MB, less the event's envelope and the escaping
#: of the body into it). Bodies over ``CLAIM_CHECK_BYTES`` travel through the API's bucket.
MAX_PAYLOAD_BYTES_LIMIT: Final = 5 * 1024 * 1024
#: The largest payload carried in the job message itself; a larger one is put in the bucket and the message
#: carries its key (a claim check). SQS bills a message per 64 KiB; 256 KiB was its limit for years.
CLAIM_CHECK_BYTES: Final = 256 * 1024
#: Where the API's bucket keeps a job's result and files (``jobs/<id>/result.json``, ``jobs/<id>/files/<name>``),
#: expiring ``job_ttl`` (+1 day) after they are written.
JOB_OBJECTS_PREFIX: Final = "jobs/"
#: A saved file's name (``job.save_file``): letters, digits, ``.``, ``_`` and ``-``, not starting with a dot.
FILE_NAME: Final = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}")
#: The most files one job may save.
MAX_FILES: Final = 100
#: Where the API's bucket keeps claim-checked payloads (``payloads/<id>.json``), expiring with an unfinished job.
PAYLOAD_OBJECTS_PREFIX: Final = "payloads/"
#: SQS's longest visibility timeout (and so the longest retry delay), seconds.
MAX_VISIBILITY_SECONDS: Final = 43_200
#: A job type's name: it is a path segment (``POST /{name}``) and a metric dimension.
JOB_TYPE_NAME: Final = re.compile(r"[a-z][a-z0-9-]{0,39}")
#: The type of an API built with one handler (``AsyncJobApi(handler=..., code=...)``), submitted at ``POST /jobs``.
DEFAULT_JOB_TYPE: Final = "jobs"
#: The status-table item attribute (S) that holds a job's type; an item without it is of ``DEFAULT_JOB_TYPE``.
JOB_TYPE_ATTRIBUTE: Final = "jobType"
#: The metric dimension that holds the job type (beside Powertools' ``service``) on every metric.
JOB_TYPE_DIMENSION: Final = "jobType"
#: The ``jobType`` dimension of a metric about a message whose job type cannot be known (a malformed message
#: on a dead-letter queue); no job type can be named so (``JOB_TYPE_NAME``).
UNKNOWN_JOB_TYPE: Final = "(unknown)"
#: The status table's global secondary index of each owner's jobs (partition ``owner``, sort ``createdAt``):
#: ``GET /jobs`` reads it, newest first. Idempotency-key items carry neither attribute, so it holds jobs only.
OWNER_INDEX: Final = "owner-createdAt"
#: The attributes that index projects besides its keys and ``pk``: what a listed job shows (no result, no
#: payload digest, no lease), so that the index stays small whatever the results weigh.
OWNER_INDEX_ATTRIBUTES: Final = (
    "status",
    "updatedAt",
    "expiresAt",
    "attempts",
    JOB_TYPE_ATTRIBUTE,
    "progressPercent",
    "progressMessage",
    "errorType",
    "errorMessage",
    "cancelRequested",
    "cancelMessage",
)
#: The query parameters of ``GET /jobs`` (any other is refused): filters, page size, where to go on from, and
#: (operators only) whose jobs.
LIST_QUERY_PARAMETERS: Final = ("status", "type", "limit", "cursor", "owner")
#: The path segment of the jobs collection: every job, whatever its type, is at ``GET``/``DELETE /jobs/{id}``.
JOBS_PATH: Final = "jobs"
#: The most receives a job type's queue may allow before dead-lettering (its attempts, ``maxReceiveCount``).
MAX_RECEIVE_COUNT_LIMIT: Final = 1_000
#: A code folder's dependency list: at its root, bundled for the worker's runtime and architecture at synth.
REQUIREMENTS_FILE: Final = "requirements.txt"
#: The file the bundler writes at the root of a code asset it built from a requirements.txt (JSON: the target
#: platform, what was installed, what was left to Lambda); the local runtime installs the requirements of an
#: asset that has one, for the local interpreter.
BUNDLE_MANIFEST: Final = ".async-job-bundle.json"
#: What a deployed worker finds without bundling it, by distribution name: the AWS SDK that Lambda's Python
#: runtime ships (boto3 and what it requires) and the Powertools layer every function gets (Powertools, what it
#: requires, and its tracer extra). Not bundled again unless requirements.txt names one; the local runtime's
#: stand-in for the Lambda runtime holds exactly these.
LAMBDA_PROVIDED_DISTRIBUTIONS: Final = (
    # the Lambda Python runtime
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "python-dateutil",
    "six",
    "urllib3",
    # the Powertools layer
    "aws-lambda-powertools",
    "typing-extensions",
    "aws-xray-sdk",
    "wrapt",
)
