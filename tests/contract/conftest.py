"""The contract tests drive the real functions on moto, with the handler tests' fixtures."""

from tests.unit.handlers.conftest import (  # noqa: F401  (fixtures, found by pytest through this module)
    _quiet_empty_metrics,
    aws,
    aws_environment,
    boto_clients,
    entry_points,
    lambda_context,
)
