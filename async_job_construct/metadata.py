"""The template metadata that marks each API's resources, for tools such as the local runtime.

``{METADATA_KEY: {"api": <construct path>, "role": <Role.*>}}`` on every resource the API is made of, with
``"jobType": <name>`` added on the resources of one job type (its queue, dead-letter queue and worker).
"""

from __future__ import annotations

from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct

from lambda_handlers.contract import METADATA_KEY

__all__ = ["mark"]

_MARKED = (apigateway.CfnRestApi, lambda_.CfnFunction, sqs.CfnQueue, dynamodb.CfnTable, s3.CfnBucket)


def mark(resource: IConstruct, *, api: Construct, role: str, job_type: str | None = None) -> None:
    """Mark ``resource`` (an L2 whose default child is one of the marked L1 types) as ``role`` of ``api``."""
    cfn = resource.node.default_child
    if not isinstance(cfn, _MARKED):
        return  # an imported resource: nothing in this template to mark
    value = {"api": api.node.path, "role": role}
    if job_type is not None:
        value["jobType"] = job_type
    cfn.add_metadata(METADATA_KEY, value)
