"""What the e2e app configures and the tests rely on (no aws_cdk import: the tests read it too)."""

TIMEOUT_SECONDS = 3
VISIBILITY_TIMEOUT_SECONDS = 4
MAX_RECEIVE_COUNT = 2
MAX_PAYLOAD_BYTES = 1024
POLL_INTERVAL_SECONDS = 1
GREETING = "hello from the template"
