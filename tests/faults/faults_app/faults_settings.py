"""What the faults app configures and the fault tests rely on (no aws_cdk import: the tests read it too)."""

#: The worker's Lambda timeout; the handler is stopped (``JobTimeoutError``) about 1 s before it.
TIMEOUT_SECONDS = 3
#: How long a message stays invisible once received: the wait before a crashed attempt comes back.
VISIBILITY_TIMEOUT_SECONDS = 4
#: Attempts before a job is FAILED.
MAX_RECEIVE_COUNT = 3
#: Retry backoff: the first retry waits 1 s, later ones at most 2 s (full jitter, at least 1 s).
RETRY_BASE_SECONDS = 1
RETRY_MAX_SECONDS = 2
POLL_INTERVAL_SECONDS = 1
