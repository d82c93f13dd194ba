"""What the e2e app configures and the tests rely on (no aws_cdk import: the tests read it too)."""

TIMEOUT_SECONDS = 3
VISIBILITY_TIMEOUT_SECONDS = 4
MAX_RECEIVE_COUNT = 2
MAX_PAYLOAD_BYTES = 1024
POLL_INTERVAL_SECONDS = 1
GREETING = "hello from the template"
#: The job type of large payloads, results and files, and its body limit.
OBJECTS_TYPE = "objects"
OBJECTS_MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
#: The one host the API sends webhooks to (receivers on this machine).
WEBHOOK_HOST = "127.0.0.1"
