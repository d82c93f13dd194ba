"""CloudFormation expressions evaluated locally."""

from __future__ import annotations

import pytest

from async_job_local.errors import UnresolvableError
from async_job_local.intrinsics import referenced_id, resolve_intrinsic

VALUES = {
    ("Queue", None): "http://sqs/q",
    ("Queue", "Arn"): "arn:aws:sqs:us-east-1:1:q",
    ("AWS::Region", None): "us-east-1",
}


def lookup(logical_id: str, attribute: str | None) -> str:
    try:
        return VALUES[(logical_id, attribute)]
    except KeyError:
        raise UnresolvableError(f"{logical_id} does not exist locally") from None


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ({"Ref": "Queue"}, "http://sqs/q"),
        ({"Fn::GetAtt": ["Queue", "Arn"]}, "arn:aws:sqs:us-east-1:1:q"),
        ({"Fn::GetAtt": "Queue.Arn"}, "arn:aws:sqs:us-east-1:1:q"),
        ({"Fn::Join": ["/", ["a", {"Ref": "AWS::Region"}]]}, "a/us-east-1"),
        (
            {"Fn::Sub": "${AWS::Region}-${Queue.Arn}-${!Literal}"},
            "us-east-1-arn:aws:sqs:us-east-1:1:q-${Literal}",
        ),
        ({"Fn::Sub": ["x-${Name}", {"Name": {"Ref": "Queue"}}]}, "x-http://sqs/q"),
        ({"Fn::Select": [1, ["a", {"Ref": "Queue"}]]}, "http://sqs/q"),
        (7, "7"),
        (True, "true"),
    ],
)
def test_an_expression_resolves_to_the_local_value(expression: object, expected: str) -> None:
    # GIVEN an expression WHEN it is resolved THEN it is the local value
    assert resolve_intrinsic(expression, lookup) == expected


def test_fails_if_an_expression_refers_to_what_does_not_exist_locally() -> None:
    # GIVEN a Join with a reference to a resource the runtime does not create
    expression = {"Fn::Join": ["", ["s3://", {"Ref": "Bucket"}]]}

    # WHEN it is resolved THEN the error names it
    with pytest.raises(UnresolvableError, match="Bucket does not exist locally"):
        resolve_intrinsic(expression, lookup)


def test_fails_if_an_intrinsic_is_not_one_the_runtime_evaluates() -> None:
    # GIVEN Fn::ImportValue WHEN it is resolved THEN it cannot be
    with pytest.raises(UnresolvableError, match="Fn::ImportValue"):
        resolve_intrinsic({"Fn::ImportValue": "Exported"}, lookup)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"Ref": "Queue"}, "Queue"),
        ({"Fn::GetAtt": ["Queue", "Arn"]}, "Queue"),
        ({"Fn::GetAtt": "Queue.Arn"}, "Queue"),
        ({"Fn::Join": ["", []]}, None),
        ("Queue", None),
    ],
)
def test_referenced_id_is_the_logical_id_of_a_ref_or_getatt(value: object, expected: str | None) -> None:
    # GIVEN a value WHEN its reference is read THEN it is the logical id, or None
    assert referenced_id(value) == expected
