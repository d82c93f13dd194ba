"""The status table every job type of an API shares."""

from __future__ import annotations

from aws_cdk import Annotations, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct

from async_job_construct.compliance import skip_checkov
from async_job_construct.metadata import mark
from lambda_handlers.contract import Role

__all__ = ["PARTITION_KEY", "TTL_ATTRIBUTE", "status_table"]

PARTITION_KEY = "pk"
TTL_ATTRIBUTE = "expiresAt"


def status_table(
    api: Construct,
    table: dynamodb.ITable | None,
    *,
    encryption_key: kms.IKey | None,
    removal_policy: RemovalPolicy,
) -> dynamodb.ITable:
    """The team's table (with a warning: it cannot be checked), or a new one in ``api`` with id ``Table``."""
    if table is not None:
        Annotations.of(api).add_warning_v2(
            "async-job:byo-table",
            "table: the table you pass must have partition key 'pk' (string) and TTL on 'expiresAt'; "
            "expired jobs are hidden either way, but only TTL deletes them.",
        )
        return table
    return _create_table(api, encryption_key=encryption_key, removal_policy=removal_policy)


def _create_table(
    api: Construct, *, encryption_key: kms.IKey | None, removal_policy: RemovalPolicy
) -> dynamodb.Table:
    """An on-demand table keyed by job id, with TTL on ``expiresAt`` and point-in-time recovery."""
    table = dynamodb.Table(
        api,
        "Table",
        partition_key=dynamodb.Attribute(name=PARTITION_KEY, type=dynamodb.AttributeType.STRING),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        time_to_live_attribute=TTL_ATTRIBUTE,
        encryption=(
            dynamodb.TableEncryption.AWS_MANAGED
            if encryption_key is None
            else dynamodb.TableEncryption.CUSTOMER_MANAGED
        ),
        encryption_key=encryption_key,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        removal_policy=removal_policy,
    )
    mark(table, api=api, role=Role.TABLE)
    if encryption_key is None:
        skip_checkov(
            table,
            "CKV_AWS_119",
            "Encrypted with the AWS-managed key (aws/dynamodb); pass encryption_key for a customer-managed key.",
        )
    return table
