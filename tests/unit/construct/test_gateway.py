"""The REST API: API Gateway's account logging role is one per stack (one synthesis)."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from async_job_construct import AsyncJobApi
from tests.unit.construct.helpers import TEAM_CODE


@pytest.fixture(scope="module")
def body() -> dict[str, Any]:
    stack = cdk.Stack(cdk.App(), "Stack")
    AsyncJobApi(stack, "First", handler="m.f", code=TEAM_CODE, cloud_watch_role=True)
    AsyncJobApi(stack, "Second", handler="m.f", code=TEAM_CODE, cloud_watch_role=True)
    return Template.from_stack(stack).to_json()


def test_two_apis_with_cloud_watch_role_share_one_account_setting(body: dict[str, Any]) -> None:
    accounts = [i for i, r in body["Resources"].items() if r["Type"] == "AWS::ApiGateway::Account"]
    roles = [
        r
        for r in body["Resources"].values()
        if r["Type"] == "AWS::IAM::Role" and "ManagedPolicyArns" in r["Properties"]
    ]
    assert len(accounts) == 1
    assert len(roles) == 1
    stages = [r for r in body["Resources"].values() if r["Type"] == "AWS::ApiGateway::Stage"]
    assert len(stages) == 2
    assert all(accounts[0] in r.get("DependsOn", []) for r in stages)
