"""async-job local: every ``AsyncJobApi`` of a CDK app, running on this machine without AWS or Docker.

``async-job local`` synthesizes the app, reads each ``AsyncJobApi`` from the template, creates its table and
queues on moto (embedded, or another endpoint), runs its Lambda handlers in local execution environments
with real API Gateway and SQS events, and serves its REST API, every job type of it, on a loopback port. See
docs/local-runtime.md.
"""

from async_job_local.assembly import AssemblyError, CloudAssembly, load_assembly, synthesize
from async_job_local.backend import Backend, EmbeddedMotoBackend, EndpointBackend
from async_job_local.client import TERMINAL_STATUSES, HttpResponse, JobClient, JobClientError
from async_job_local.functions import FunctionLogs, InvokeResult, LocalFunction
from async_job_local.handler_check import HandlerError
from async_job_local.runtime import LocalRuntime
from async_job_local.server import DEFAULT_PRINCIPAL, PRINCIPAL_HEADER

__all__ = [
    "DEFAULT_PRINCIPAL",
    "PRINCIPAL_HEADER",
    "TERMINAL_STATUSES",
    "AssemblyError",
    "Backend",
    "CloudAssembly",
    "EmbeddedMotoBackend",
    "EndpointBackend",
    "FunctionLogs",
    "HandlerError",
    "HttpResponse",
    "InvokeResult",
    "JobClient",
    "JobClientError",
    "LocalFunction",
    "LocalRuntime",
    "load_assembly",
    "synthesize",
]
