"""``resolve``: template values as CloudFormation resolves them (what the rehearsal compares moto's state with)."""

from __future__ import annotations

import pytest

from tests.deploy.rehearsal import PSEUDO_PARAMETERS, resolve

#: The shape of the construct's Powertools layer ARN: an account per partition, GovCloud's by region.
TEMPLATE = {
    "Mappings": {"Accounts": {"aws": {"account": "017000801446"}, "aws-us-gov": {"account": "165093116878"}}},
    "Conditions": {
        "InGovEast": {"Fn::Equals": [{"Ref": "AWS::Region"}, "us-gov-east-1"]},
        "NotInGovEast": {"Fn::Not": [{"Condition": "InGovEast"}]},
        "Either": {"Fn::Or": [{"Condition": "InGovEast"}, {"Condition": "NotInGovEast"}]},
        "Both": {"Fn::And": [{"Condition": "InGovEast"}, {"Condition": "NotInGovEast"}]},
    },
}
LAYER = {
    "Fn::Join": [
        "",
        [
            "arn:",
            {"Ref": "AWS::Partition"},
            ":lambda:",
            {"Ref": "AWS::Region"},
            ":",
            {
                "Fn::If": [
                    "InGovEast",
                    "165087284144",
                    {"Fn::FindInMap": ["Accounts", {"Ref": "AWS::Partition"}, "account"]},
                ]
            },
            ":layer:AWSLambdaPowertoolsPythonV3-python314-x86_64:27",
        ],
    ]
}


def test_a_layer_arn_resolves_through_its_condition_and_mapping() -> None:
    assert resolve(LAYER, PSEUDO_PARAMETERS, TEMPLATE) == (
        "arn:aws:lambda:us-east-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python314-x86_64:27"
    )
    gov = {**PSEUDO_PARAMETERS, "AWS::Partition": "aws-us-gov", "AWS::Region": "us-gov-east-1"}
    assert resolve(LAYER, gov, TEMPLATE).startswith("arn:aws-us-gov:lambda:us-gov-east-1:165087284144:layer:")


@pytest.mark.parametrize(("condition", "value"), [("NotInGovEast", "yes"), ("Either", "yes"), ("Both", "no")])
def test_conditions_combine_as_cloudformation_s(condition: str, value: str) -> None:
    assert resolve({"Fn::If": [condition, "yes", "no"]}, PSEUDO_PARAMETERS, TEMPLATE) == value


def test_refs_attributes_subs_and_selects_resolve_inside_properties() -> None:
    refs = {
        **PSEUDO_PARAMETERS,
        "Queue": "https://sqs/q",
        "Queue.Arn": "arn:aws:sqs:us-east-1:123456789012:q",
    }
    properties = {
        "Url": {"Ref": "Queue"},
        "Arn": {"Fn::GetAtt": ["Queue", "Arn"]},
        "Bucket": {"Fn::Sub": "cdk-assets-${AWS::AccountId}-${AWS::Region}"},
        "Name": {"Fn::Select": [5, {"Fn::Split": [":", {"Fn::GetAtt": ["Queue", "Arn"]}]}]},
        "Plain": [1, "two"],
    }
    assert resolve(properties, refs) == {
        "Url": "https://sqs/q",
        "Arn": "arn:aws:sqs:us-east-1:123456789012:q",
        "Bucket": "cdk-assets-123456789012-us-east-1",
        "Name": "q",
        "Plain": [1, "two"],
    }


def test_fails_if_a_value_is_unknown() -> None:
    with pytest.raises(KeyError, match="Table"):
        resolve({"Ref": "Table"}, PSEUDO_PARAMETERS)
