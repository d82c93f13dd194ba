"""async-job-construct: the asynchronous request-reply pattern for long-running Lambda handlers, as a CDK construct."""

from importlib.metadata import PackageNotFoundError, version

from async_job_construct.async_job_api import AsyncJobApi
from async_job_construct.auth import JobApiAuth, JobApiAuthKind
from async_job_construct.job_type import JobType
from async_job_construct.monitoring import AlarmOverride, JobAlarm, JobMonitoring, MonitoringOptions
from async_job_construct.validation import PropValueError
from async_job_construct.websocket import JobWebSocket, JobWebSocketOptions

try:
    __version__: str = version("async-job-construct")
    """The installed distribution's version (PEP 440), e.g. ``"0.1.0"``: see docs/upgrading.md."""
except PackageNotFoundError:  # a source tree on sys.path without an install (no metadata to read)
    __version__ = "0+unknown"

__all__ = [
    "AlarmOverride",
    "AsyncJobApi",
    "JobAlarm",
    "JobApiAuth",
    "JobApiAuthKind",
    "JobMonitoring",
    "JobType",
    "JobWebSocket",
    "JobWebSocketOptions",
    "MonitoringOptions",
    "PropValueError",
]
