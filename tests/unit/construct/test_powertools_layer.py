"""The public Powertools layer in each partition, the SSM option, and the pin the runtime is tested against.

One app, one stack per case, synthesized once for the module.
"""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Annotations, Match

from async_job_construct import AsyncJobApi
from async_job_construct.defaults import (
    POWERTOOLS_LAYER_ACCOUNT,
    POWERTOOLS_LAYER_ACCOUNTS_BY_REGION,
    POWERTOOLS_LAYER_RELEASES,
    POWERTOOLS_LAYER_VERSION,
)
from tests.unit.construct.helpers import TEAM_CODE, from_stack

ROOT = Path(__file__).resolve().parents[3]
ROLES = ("submit", "status", "dead-letter", "worker", "events")
LAYER = f"layer:AWSLambdaPowertoolsPythonV3-python314-x86_64:{POWERTOOLS_LAYER_VERSION}"


def _stack(app: cdk.App, id: str, region: str | None, **api_props: Any) -> cdk.Stack:
    env = cdk.Environment(account="111111111111", region=region) if region else None
    stack = cdk.Stack(app, id, env=env)
    AsyncJobApi(stack, "Jobs", handler="m.f", code=TEAM_CODE, **api_props)
    return stack


class Synthesized:
    """One stack per case, each with one AsyncJobApi ``Jobs``."""

    def __init__(self) -> None:
        app = cdk.App()
        cases: dict[str, tuple[str | None, dict[str, Any]]] = {
            "Commercial": ("eu-west-1", {}),
            "China": ("cn-north-1", {}),
            "GovEast": ("us-gov-east-1", {}),
            "GovWest": ("us-gov-west-1", {}),
            "Agnostic": (None, {}),
            "Latest": ("eu-west-1", {"powertools_layer_version": "latest"}),
            "Release": (
                "eu-west-1",
                {"powertools_layer_version": "3.23.0", "architecture": lambda_.Architecture.ARM_64},
            ),
            "Numbered": ("eu-west-1", {"powertools_layer_version": 30}),
        }
        self.stacks = {name: _stack(app, name, region, **props) for name, (region, props) in cases.items()}
        own = cdk.Stack(app, "Own")
        self.own_layer = lambda_.LayerVersion.from_layer_version_arn(
            own, "OwnPowertools", "arn:aws:lambda:eu-west-1:111111111111:layer:powertools:3"
        )
        AsyncJobApi(own, "Jobs", handler="m.f", code=TEAM_CODE, powertools_layer=self.own_layer)
        self.stacks["Own"] = own
        two = _stack(app, "TwoApis", None)
        AsyncJobApi(two, "Other", handler="m.f", code=TEAM_CODE)
        self.stacks["TwoApis"] = two
        self.bodies = {name: from_stack(stack)[1] for name, stack in self.stacks.items()}

    def layers(self, case: str) -> list[list[Any]]:
        """The Layers of every function of ``case`` (submit, status, dead-letter, worker)."""
        functions = [
            r["Properties"]["Layers"]
            for r in self.bodies[case]["Resources"].values()
            if r["Type"] == "AWS::Lambda::Function"
        ]
        assert len(functions) == len(ROLES)
        return functions

    def powertools_arns(self, case: str) -> list[Any]:
        """The one Powertools layer (not a ``Ref`` to the runtime layer) of every function of ``case``."""
        found = []
        for layers in self.layers(case):
            public = [layer for layer in layers if not (isinstance(layer, dict) and "Ref" in layer)]
            assert len(public) == 1, layers
            found.append(public[0])
        return found


@pytest.fixture(scope="module")
def synth() -> Synthesized:
    return Synthesized()


def _evaluate(value: Any, body: dict[str, Any], partition: str, region: str) -> Any:
    """Evaluate the intrinsics the layer ARN uses, as CloudFormation would in ``region`` of ``partition``."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return [_evaluate(item, body, partition, region) for item in value]
    ((name, args),) = value.items()
    if name == "Ref":
        return {"AWS::Partition": partition, "AWS::Region": region}[args]
    if name == "Fn::Join":
        return args[0].join(_evaluate(part, body, partition, region) for part in args[1])
    if name == "Fn::FindInMap":
        mapping, top, second = (_evaluate(arg, body, partition, region) for arg in args)
        return body["Mappings"][mapping][top][second]
    if name == "Fn::If":
        condition, when_true, when_false = args
        return _evaluate(
            when_true if _evaluate(body["Conditions"][condition], body, partition, region) else when_false,
            body,
            partition,
            region,
        )
    if name == "Fn::Equals":
        left, right = (_evaluate(arg, body, partition, region) for arg in args)
        return left == right
    raise AssertionError(f"unexpected intrinsic {name}")


# ------------------------------------------------------------------------------------------ partitions
def test_commercial_region_gets_the_commercial_account(synth: Synthesized) -> None:
    arn = f"arn:aws:lambda:eu-west-1:{POWERTOOLS_LAYER_ACCOUNT}:{LAYER}"
    assert synth.powertools_arns("Commercial") == [arn] * len(ROLES)
    assert "Mappings" not in synth.bodies["Commercial"]


def test_china_gets_the_china_account_and_partition(synth: Synthesized) -> None:
    assert synth.powertools_arns("China") == [f"arn:aws-cn:lambda:cn-north-1:498634801083:{LAYER}"] * len(
        ROLES
    )


@pytest.mark.parametrize(
    ("case", "region", "account"),
    [("GovEast", "us-gov-east-1", "165087284144"), ("GovWest", "us-gov-west-1", "165093116878")],
)
def test_govcloud_gets_each_regions_account(synth: Synthesized, case: str, region: str, account: str) -> None:
    assert synth.powertools_arns(case) == [f"arn:aws-us-gov:lambda:{region}:{account}:{LAYER}"] * len(ROLES)


@pytest.mark.parametrize(
    ("partition", "region", "account"),
    [
        ("aws", "us-east-1", POWERTOOLS_LAYER_ACCOUNT),
        ("aws", "ap-southeast-7", POWERTOOLS_LAYER_ACCOUNT),
        ("aws-cn", "cn-north-1", "498634801083"),
        ("aws-us-gov", "us-gov-east-1", "165087284144"),
        ("aws-us-gov", "us-gov-west-1", "165093116878"),
    ],
)
def test_environment_agnostic_stack_resolves_the_account_at_deploy(
    synth: Synthesized, partition: str, region: str, account: str
) -> None:
    body = synth.bodies["Agnostic"]
    arns = {repr(arn) for arn in synth.powertools_arns("Agnostic")}
    assert len(arns) == 1  # one expression, shared by every function
    arn = _evaluate(synth.powertools_arns("Agnostic")[0], body, partition, region)
    assert arn == f"arn:{partition}:lambda:{region}:{account}:{LAYER}"


def test_environment_agnostic_stack_adds_one_mapping_and_one_condition(synth: Synthesized) -> None:
    body = synth.bodies["Agnostic"]
    assert body["Mappings"] == {
        "AsyncJobPowertoolsLayerAccounts": {
            "aws": {"account": POWERTOOLS_LAYER_ACCOUNT},
            "aws-cn": {"account": "498634801083"},
            "aws-us-gov": {"account": "165093116878"},
        }
    }
    assert body["Conditions"] == {
        "AsyncJobPowertoolsLayerInGovEast": {"Fn::Equals": [{"Ref": "AWS::Region"}, "us-gov-east-1"]}
    }


def test_two_apis_in_a_stack_share_the_mapping_and_the_condition(synth: Synthesized) -> None:
    body = synth.bodies["TwoApis"]
    assert list(body["Mappings"]) == ["AsyncJobPowertoolsLayerAccounts"]
    assert list(body["Conditions"]) == ["AsyncJobPowertoolsLayerInGovEast"]
    layers = repr(
        [
            r["Properties"]["Layers"]
            for r in body["Resources"].values()
            if r["Type"] == "AWS::Lambda::Function"
        ]
    )
    assert layers.count("AsyncJobPowertoolsLayerAccounts") == 2 * len(ROLES)


def test_the_documented_accounts_are_the_ones_used() -> None:
    assert POWERTOOLS_LAYER_ACCOUNT == "017000801446"
    assert dict(POWERTOOLS_LAYER_ACCOUNTS_BY_REGION) == {
        "cn-north-1": "498634801083",
        "us-gov-east-1": "165087284144",
        "us-gov-west-1": "165093116878",
    }


# ---------------------------------------------------------------------------------------- the options
def test_latest_resolves_through_powertools_ssm_parameter(synth: Synthesized) -> None:
    reference = "{{resolve:ssm:/aws/service/powertools/python/x86_64/python3.14/latest}}"
    assert synth.powertools_arns("Latest") == [reference] * len(ROLES)
    assert "Parameters" not in synth.bodies["Latest"] or not any(
        "powertools" in name.lower() for name in synth.bodies["Latest"]["Parameters"]
    )


def test_a_release_resolves_through_its_ssm_parameter_for_the_architecture(synth: Synthesized) -> None:
    reference = "{{resolve:ssm:/aws/service/powertools/python/arm64/python3.14/3.23.0}}"
    assert synth.powertools_arns("Release") == [reference] * len(ROLES)


def test_a_layer_number_is_used_in_the_arn(synth: Synthesized) -> None:
    arn = f"arn:aws:lambda:eu-west-1:{POWERTOOLS_LAYER_ACCOUNT}:layer:AWSLambdaPowertoolsPythonV3-python314-x86_64:30"
    assert synth.powertools_arns("Numbered") == [arn] * len(ROLES)


@pytest.mark.parametrize(("case", "given"), [("Latest", "'latest'"), ("Numbered", "30")])
def test_an_unpinned_layer_is_a_warning(synth: Synthesized, case: str, given: str) -> None:
    Annotations.from_stack(synth.stacks[case]).has_warning(
        f"/{case}/Jobs",
        Match.string_like_regexp(rf"powertools_layer_version={given}: .* tested against the pinned layer 27"),
    )


def test_the_pinned_layer_has_no_warning(synth: Synthesized) -> None:
    Annotations.from_stack(synth.stacks["Commercial"]).has_no_warning(
        "*", Match.string_like_regexp("powertools_layer_version")
    )


def test_own_layer_is_every_functions_layer(synth: Synthesized) -> None:
    own = "arn:aws:lambda:eu-west-1:111111111111:layer:powertools:3"
    assert synth.powertools_arns("Own") == [own] * len(ROLES)
    assert "Mappings" not in synth.bodies["Own"]


# --------------------------------------------------------------------------------------- the failures
@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, r"powertools_layer_version must be 1 or more \(given 0\)"),
        (
            "newest",
            r"powertools_layer_version must be 'latest' or a release like '3.23.0' \(given 'newest'\)",
        ),
        ("3.23", r"must be 'latest' or a release like '3.23.0' \(given '3.23'\)"),
        (True, r"must be an int \(a layer version\) or a str .*\(given True of type bool\)"),
        (27.0, r"must be an int .*\(given 27.0 of type float\)"),
    ],
)
def test_fails_if_powertools_layer_version_is_not_a_version(value: object, message: str) -> None:
    stack = cdk.Stack(cdk.App(), "Bad")
    with pytest.raises(ValueError, match=message) as raised:
        AsyncJobApi(stack, "Jobs", handler="m.f", code=TEAM_CODE, powertools_layer_version=value)  # type: ignore[arg-type]
    assert "Pass a public layer version number (e.g. 27), 'latest'" in str(raised.value)


def test_fails_if_own_layer_and_layer_version_are_both_given() -> None:
    stack = cdk.Stack(cdk.App(), "Both")
    own = lambda_.LayerVersion.from_layer_version_arn(stack, "Own", "arn:aws:lambda:eu-west-1:1:layer:p:3")
    with pytest.raises(
        ValueError, match=r"powertools_layer_version cannot be combined with powertools_layer"
    ):
        AsyncJobApi(
            stack, "Jobs", handler="m.f", code=TEAM_CODE, powertools_layer=own, powertools_layer_version=27
        )


@pytest.mark.parametrize("region", ["cn-northwest-1", "us-iso-east-1"])
def test_fails_if_the_region_has_no_public_layer(region: str) -> None:
    stack = cdk.Stack(cdk.App(), "Far", env=cdk.Environment(account="111111111111", region=region))
    with pytest.raises(
        ValueError,
        match=rf"powertools_layer is required here: .*\(given None \(the public layer\) in region {region}\)",
    ) as raised:
        AsyncJobApi(stack, "Jobs", handler="m.f", code=TEAM_CODE)
    assert "Pass powertools_layer=lambda_.LayerVersion(...) built from aws-lambda-powertools==3.23.0" in str(
        raised.value
    )


# ------------------------------------------------------------------------------------------- the pin
def test_the_pinned_layer_version_is_a_documented_release() -> None:
    assert POWERTOOLS_LAYER_VERSION in POWERTOOLS_LAYER_RELEASES


def test_the_installed_powertools_is_the_release_the_layer_ships() -> None:
    """The runtime is tested on the Powertools the deployed functions get: move both pins together."""
    assert (
        importlib.metadata.version("aws-lambda-powertools")
        == POWERTOOLS_LAYER_RELEASES[POWERTOOLS_LAYER_VERSION]
    )


def test_the_runtime_extra_pins_the_release_the_layer_ships() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (powertools,) = [d for d in extras["runtime"] if d.startswith("aws-lambda-powertools")]
    assert (
        powertools == f"aws-lambda-powertools[tracer]=={POWERTOOLS_LAYER_RELEASES[POWERTOOLS_LAYER_VERSION]}"
    )
