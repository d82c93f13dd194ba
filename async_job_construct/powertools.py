"""The public Powertools for AWS Lambda (Python) v3 layer: its ARN in each partition, pinned or from SSM.

Powertools publishes the layer from account 017000801446 in every commercial region, from 498634801083 in
cn-north-1 and from one account per GovCloud region (``defaults.POWERTOOLS_LAYER_ACCOUNTS_BY_REGION``), so the
account depends on where the stack deploys:

- region known at synth (``env=``): the ARN is a plain string, and a region where Powertools does not publish
  (cn-northwest-1, the ISO partitions) fails synth naming ``powertools_layer``;
- region unknown (an environment-agnostic stack): a ``CfnMapping`` keyed by ``AWS::Partition`` gives the account
  (aws, aws-cn, aws-us-gov's us-gov-west-1), and one condition picks us-gov-east-1's account there; both are the
  stack's, shared by its APIs.

``powertools_layer_version="latest"`` (or a release such as ``"3.23.0"``) resolves the ARN at deploy time from
Powertools' public SSM parameters, ``/aws/service/powertools/python/{arch}/{python3.x}/{version}``, as a
``{{resolve:ssm:...}}`` dynamic reference (no stack parameter).
"""

from __future__ import annotations

import re
from typing import Final

from aws_cdk import (
    Annotations,
    Aws,
    CfnCondition,
    CfnDynamicReference,
    CfnDynamicReferenceService,
    CfnMapping,
    Fn,
    Stack,
    Token,
)
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from async_job_construct.defaults import (
    POWERTOOLS_LAYER_ACCOUNT,
    POWERTOOLS_LAYER_ACCOUNTS_BY_REGION,
    POWERTOOLS_LAYER_RELEASES,
    POWERTOOLS_LAYER_VERSION,
)
from async_job_construct.validation import PropValueError

__all__ = ["check_powertools_layer_version", "public_layer_arn", "ssm_parameter_name"]

#: A Powertools release as its SSM parameters name it.
_RELEASE: Final = re.compile(r"^\d+\.\d+\.\d+$")
_GOV_EAST: Final = "us-gov-east-1"
_MAPPING_ID: Final = "AsyncJobPowertoolsLayerAccounts"
_GOV_EAST_ID: Final = "AsyncJobPowertoolsLayerInGovEast"
#: The layer's account in each partition when only the partition is known; us-gov-east-1 is the exception.
_ACCOUNT_BY_PARTITION: Final = {
    "aws": POWERTOOLS_LAYER_ACCOUNT,
    "aws-cn": POWERTOOLS_LAYER_ACCOUNTS_BY_REGION["cn-north-1"],
    "aws-us-gov": POWERTOOLS_LAYER_ACCOUNTS_BY_REGION["us-gov-west-1"],
}
_PINNED: Final = (
    f"layer {POWERTOOLS_LAYER_VERSION}, Powertools {POWERTOOLS_LAYER_RELEASES[POWERTOOLS_LAYER_VERSION]}"
)


def check_powertools_layer_version(
    scope: Construct, value: object, *, powertools_layer: lambda_.ILayerVersion | None
) -> int | str:
    """The layer version to use: ``value`` checked, or the pinned one when it is None.

    An ``int`` is a layer version number; ``"latest"`` or a release (``"3.23.0"``) is resolved through SSM at
    deploy. Tokens are taken as they are (a number token as a layer version, a string token as a release).
    Anything but the pinned version is valid but untested with this runtime: a warning says so.

    Examples
    --------
    >>> check_powertools_layer_version(api, None, powertools_layer=None)
    27
    >>> check_powertools_layer_version(api, "latest", powertools_layer=None)
    'latest'
    """
    if value is None:
        return POWERTOOLS_LAYER_VERSION
    if powertools_layer is not None:
        raise PropValueError(
            "powertools_layer_version",
            repr(value),
            "cannot be combined with powertools_layer (the team's own layer)",
            "Pass powertools_layer for your own layer, or powertools_layer_version for a public one; not both.",
        )
    fix = (
        f"Pass a public layer version number (e.g. {POWERTOOLS_LAYER_VERSION}), 'latest', or a Powertools "
        f"release such as '{POWERTOOLS_LAYER_RELEASES[POWERTOOLS_LAYER_VERSION]}'; or None for the pinned "
        f"{_PINNED}."
    )
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise PropValueError(
            "powertools_layer_version",
            f"{value!r} of type {type(value).__name__}",
            "must be an int (a layer version) or a str ('latest' or a release)",
            fix,
        )
    if Token.is_unresolved(value):
        return value
    if isinstance(value, int) and value < 1:
        raise PropValueError("powertools_layer_version", value, "must be 1 or more", fix)
    if isinstance(value, str) and value != "latest" and not _RELEASE.match(value):
        raise PropValueError(
            "powertools_layer_version", repr(value), "must be 'latest' or a release like '3.23.0'", fix
        )
    if value != POWERTOOLS_LAYER_VERSION:
        shown = f"layer {value}" if isinstance(value, int) else f"the SSM parameter's {value!r} layer"
        Annotations.of(scope).add_warning_v2(
            "async-job:powertools-layer-version",
            f"powertools_layer_version={value!r}: the functions get {shown}, while the runtime is tested "
            f"against the pinned {_PINNED}. Pass None to use the pinned layer.",
        )
    return value


def ssm_parameter_name(runtime: lambda_.Runtime, architecture: str, version: str) -> str:
    """Powertools' public SSM parameter holding the layer ARN of ``version`` (``latest`` or a release).

    Examples
    --------
    >>> ssm_parameter_name(lambda_.Runtime.PYTHON_3_14, "x86_64", "latest")
    '/aws/service/powertools/python/x86_64/python3.14/latest'
    """
    return f"/aws/service/powertools/python/{architecture}/{runtime.name}/{version}"


def public_layer_arn(
    scope: Construct, runtime: lambda_.Runtime, architecture: str, version: int | str
) -> str:
    """The ARN of the public layer ``version`` for ``runtime`` and ``architecture`` (``x86_64``/``arm64``).

    In an environment-agnostic stack, the stack gets the mapping and condition (once, for all its APIs).
    """
    if isinstance(version, str):
        return Token.as_string(
            CfnDynamicReference(
                CfnDynamicReferenceService.SSM, ssm_parameter_name(runtime, architecture, version)
            )
        )
    python = runtime.name.replace(".", "")  # python3.14 -> python314
    layer = f"layer:AWSLambdaPowertoolsPythonV3-{python}-{architecture}:{version}"
    region = Stack.of(scope).region
    if Token.is_unresolved(region):
        return f"arn:{Aws.PARTITION}:lambda:{Aws.REGION}:{_account_at_deploy(scope)}:{layer}"
    return f"arn:{_partition_of(region)}:lambda:{region}:{_account_in(region)}:{layer}"


def _partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _account_in(region: str) -> str:
    if region in POWERTOOLS_LAYER_ACCOUNTS_BY_REGION:
        return POWERTOOLS_LAYER_ACCOUNTS_BY_REGION[region]
    if _partition_of(region) == "aws" and "-iso" not in region:
        return POWERTOOLS_LAYER_ACCOUNT
    raise PropValueError(
        "powertools_layer",
        f"None (the public layer) in region {region}",
        "is required here: outside the commercial partition Powertools publishes its layer only in "
        + ", ".join(sorted(POWERTOOLS_LAYER_ACCOUNTS_BY_REGION)),
        "Pass powertools_layer=lambda_.LayerVersion(...) built from aws-lambda-powertools=="
        f"{POWERTOOLS_LAYER_RELEASES[POWERTOOLS_LAYER_VERSION]}, or deploy to one of those regions.",
    )


def _account_at_deploy(scope: Construct) -> str:
    """The layer's account as CloudFormation resolves it: by partition, then us-gov-east-1's own.

    The mapping and the condition are the stack's, shared by every API in it (ids ``AsyncJobPowertoolsLayer*``,
    verbatim as logical ids), as aws-cdk-lib's own regional facts are: one per API would repeat an identical
    condition (cfn-lint W9053). They are no resources, and exist only when the region is a token.
    """
    stack = Stack.of(scope)
    if stack.node.try_find_child(_MAPPING_ID) is None:
        CfnMapping(
            stack,
            _MAPPING_ID,
            mapping={partition: {"account": account} for partition, account in _ACCOUNT_BY_PARTITION.items()},
        )
        CfnCondition(stack, _GOV_EAST_ID, expression=Fn.condition_equals(Aws.REGION, _GOV_EAST))
    mapping = stack.node.find_child(_MAPPING_ID)
    gov_east = stack.node.find_child(_GOV_EAST_ID)
    assert isinstance(mapping, CfnMapping)
    assert isinstance(gov_east, CfnCondition)
    return Token.as_string(
        Fn.condition_if(
            gov_east.logical_id,
            POWERTOOLS_LAYER_ACCOUNTS_BY_REGION[_GOV_EAST],
            mapping.find_in_map(Aws.PARTITION, "account"),
        )
    )
