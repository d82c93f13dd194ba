"""What moto's CloudFormation needs to create a long job type's resources as CloudFormation does.

moto 5.2 creates an ``AWS::Lambda::Version`` (it publishes a version of the function) but keeps no ARN for it:
``Ref`` of the version (a long type's starter names its durable worker's version so) resolves to moto's
Python object, and the stack's creation then fails serialising it. CloudFormation's ``Ref`` of a version is
its ARN, ``<function ARN>:<version>``; :func:`install` gives moto's versions that.

The moto server of ``python -m async_job_local.moto_server`` (the deploy rehearsal's) installs it; the local
runtime does not use moto's CloudFormation.
"""

from __future__ import annotations

from typing import Any

__all__ = ["install"]


def install() -> None:
    """Make ``Ref`` of moto's ``AWS::Lambda::Version`` its ARN (idempotent)."""
    from moto.awslambda import models

    version_class: Any = models.LambdaVersion
    if getattr(version_class, "_async_job_arn_patch", False):
        return
    create = version_class.create_from_cloudformation_json.__func__

    def create_with_arn(
        cls: Any,
        /,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        version = create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        function = models.lambda_backends[account_id][region_name].get_function(
            cloudformation_json["Properties"]["FunctionName"]
        )
        version.arn = f"{function.function_arn}:{version.version}"
        return version

    version_class.create_from_cloudformation_json = classmethod(create_with_arn)
    version_class.physical_resource_id = property(lambda self: getattr(self, "arn", str(self.version)))
    version_class._async_job_arn_patch = True
