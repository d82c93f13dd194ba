"""The status table every job type of an API shares."""

from __future__ import annotations

from aws_cdk import Annotations, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct

from async_job_construct.compliance import skip_checkov
from async_job_construct.metadata import mark
from lambda_handlers.contract import OWNER_INDEX, OWNER_INDEX_ATTRIBUTES, Role

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
            "table: the table you pass must have partition key 'pk' (string) and TTL on 'expiresAt' "
            "(expired jobs are hidden either way, but only TTL deletes them), and, for GET /jobs, a global "
            f"secondary index '{OWNER_INDEX}' (partition 'owner', sort 'createdAt', both strings; projection ALL "
            f"or INCLUDE {', '.join(OWNER_INDEX_ATTRIBUTES)}).",
        )
        return table
    return _create_table(api, encryption_key=encryption_key, removal_policy=removal_policy)


def _create_table(
    api: Construct, *, encryption_key: kms.IKey | None, removal_policy: RemovalPolicy
) -> dynamodb.Table:
    """An on-demand table keyed by job id, with TTL on ``expiresAt``, point-in-time recovery and the owner index."""
    table = dynamodb.Table(
        api,
        "Table",
        partition_key=dynamodb.Attribute(name=PARTITION_KEY, type=dynamodb.AttributeType.STRING),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        time_to_live_attribute=TTL_ATTRIBUTE,
        # Job events and webhooks read every change of a job from the stream (async_job_construct.push).
        stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
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
    table.add_global_secondary_index(
        index_name=OWNER_INDEX,
        partition_key=dynamodb.Attribute(name="owner", type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name="createdAt", type=dynamodb.AttributeType.STRING),
        projection_type=dynamodb.ProjectionType.INCLUDE,
        non_key_attributes=list(OWNER_INDEX_ATTRIBUTES),
    )
    mark(table, api=api, role=Role.TABLE)
    if encryption_key is None:
        skip_checkov(
            table,
            "CKV_AWS_119",
            "Encrypted with the AWS-managed key (aws/dynamodb); pass encryption_key for a customer-managed key.",
        )
    return table
