"""The bucket every job type of an API shares: results too large for the status item, saved files, and payloads
too large for a message (``lambda_handlers.objects`` has the layout)."""

from __future__ import annotations

import math

from aws_cdk import Acknowledgment, Annotations, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from async_job_construct.compliance import skip_checkov
from async_job_construct.metadata import mark
from lambda_handlers.contract import JOB_OBJECTS_PREFIX, PAYLOAD_OBJECTS_PREFIX, Role
from lambda_handlers.models import MAX_PENDING_SECONDS

__all__ = ["JobBucket"]

#: Objects are written up to a Lambda run (15 min) before the job ends; a day of margin covers it.
_MARGIN_DAYS = 1


class JobBucket:
    """The API's bucket (the team's, or a new one in ``api`` with id ``Bucket``) and its least-privilege grants.

    Examples
    --------
    >>> objects = JobBucket(api, None, encryption_key=None, removal_policy=RemovalPolicy.RETAIN,
    ...                     job_ttl=Duration.days(7))
    >>> objects.grant_results_write(worker)
    """

    def __init__(
        self,
        api: Construct,
        bucket: s3.IBucket | None,
        *,
        encryption_key: kms.IKey | None,
        removal_policy: RemovalPolicy,
        job_ttl: Duration,
    ) -> None:
        if bucket is not None:
            Annotations.of(api).add_warning_v2(
                "async-job:byo-bucket",
                f"bucket: the construct keeps results and files under '{JOB_OBJECTS_PREFIX}' and large payloads "
                f"under '{PAYLOAD_OBJECTS_PREFIX}' of the bucket you pass, and adds no lifecycle rule to it: "
                "expire those prefixes after job_ttl yourself.",
            )
            self.bucket = bucket
            self._key = None
            return
        self._key = encryption_key
        self.bucket = _create_bucket(api, encryption_key, removal_policy, job_ttl)

    def grant_payload_write(self, grantee: iam.IGrantable) -> None:
        """``s3:PutObject`` on ``payloads/*`` (the submit function's claim checks)."""
        self._grant(grantee, "s3:PutObject", PAYLOAD_OBJECTS_PREFIX, encrypt=True)

    def grant_payload_read(self, grantee: iam.IGrantable) -> None:
        """``s3:GetObject`` on ``payloads/*`` (the worker reads a claim-checked payload)."""
        self._grant(grantee, "s3:GetObject", PAYLOAD_OBJECTS_PREFIX, encrypt=False)

    def grant_results_write(self, grantee: iam.IGrantable) -> None:
        """``s3:PutObject`` on ``jobs/*`` (the worker's large results and saved files)."""
        self._grant(grantee, "s3:PutObject", JOB_OBJECTS_PREFIX, encrypt=True)

    def grant_results_read(self, grantee: iam.IGrantable) -> None:
        """``s3:GetObject`` on ``jobs/*`` (the status function presigns links to results and files)."""
        self._grant(grantee, "s3:GetObject", JOB_OBJECTS_PREFIX, encrypt=False)

    def _grant(self, grantee: iam.IGrantable, action: str, prefix: str, *, encrypt: bool) -> None:
        iam.Grant.add_to_principal(
            grantee=grantee, actions=[action], resource_arns=[self.bucket.arn_for_objects(f"{prefix}*")]
        )
        role = getattr(grantee, "role", None)
        if isinstance(role, Construct):
            Validations.of(role).acknowledge(
                Acknowledgment(
                    id=f"AwsSolutions::AwsSolutions-IAM5[Resource::{self._nag_arn()}/{prefix}*]",
                    reason=f"The objects of every job are under {prefix}<job id>; the function reads or writes "
                    "only the one job it handles, which IAM cannot name ahead of time.",
                )
            )
        key = self._key or self.bucket.encryption_key
        if key is not None:
            if encrypt:
                key.grant(grantee, "kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt")
            else:
                key.grant_decrypt(grantee)

    def _nag_arn(self) -> str:
        """The bucket's ARN as cdk-nag names it in a finding (``<Logical.Arn>`` for a bucket of the stack)."""
        resolved = Stack.of(self.bucket).resolve(self.bucket.bucket_arn)
        if isinstance(resolved, dict) and "Fn::GetAtt" in resolved:
            return f"<{resolved['Fn::GetAtt'][0]}.Arn>"
        return str(resolved)


def _create_bucket(
    api: Construct, encryption_key: kms.IKey | None, removal_policy: RemovalPolicy, job_ttl: Duration
) -> s3.Bucket:
    """Encrypted (the API's key when given), TLS only, no public access, objects expiring with their jobs."""
    ttl_days = math.ceil(job_ttl.to_seconds() / 86_400)
    bucket = s3.Bucket(
        api,
        "Bucket",
        encryption=s3.BucketEncryption.S3_MANAGED if encryption_key is None else s3.BucketEncryption.KMS,
        encryption_key=encryption_key,
        bucket_key_enabled=True if encryption_key is not None else None,
        enforce_ssl=True,
        minimum_tls_version=1.2,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        removal_policy=removal_policy,
        lifecycle_rules=[
            s3.LifecycleRule(
                id="JobObjectsExpireWithTheirJobs",
                prefix=JOB_OBJECTS_PREFIX,
                expiration=Duration.days(ttl_days + _MARGIN_DAYS),
                abort_incomplete_multipart_upload_after=Duration.days(1),
            ),
            s3.LifecycleRule(
                id="PayloadsExpireWithUnfinishedJobs",
                prefix=PAYLOAD_OBJECTS_PREFIX,
                expiration=Duration.days(MAX_PENDING_SECONDS // 86_400 + ttl_days + _MARGIN_DAYS),
                abort_incomplete_multipart_upload_after=Duration.days(1),
            ),
        ],
    )
    mark(bucket, api=api, role=Role.BUCKET)
    reason_logs = (
        "Objects are written and read only by the API's own functions, whose calls CloudTrail data events and "
        "the functions' logs record; server access logs would need a second bucket per API."
    )
    skip_checkov(bucket, "CKV_AWS_18", reason_logs)
    skip_checkov(
        bucket,
        "CKV_AWS_21",
        "Each object is written once per job and expires with it; versions would keep expired results.",
    )
    skip_checkov(
        bucket,
        "CKV_AWS_144",
        "Job results are short-lived (job_ttl); replicate the bucket you pass if needed.",
    )
    if encryption_key is None:
        skip_checkov(
            bucket,
            "CKV_AWS_145",
            "Encrypted with S3-managed keys (SSE-S3); pass encryption_key for a customer-managed key.",
        )
    Validations.of(bucket).acknowledge(Acknowledgment(id="AwsSolutions::AwsSolutions-S1", reason=reason_logs))
    return bucket
