"""The functions' roles, log groups and dependencies (one synthesis)."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Template

from async_job_construct import AsyncJobApi
from tests.unit.construct.helpers import TEAM_CODE, resource

API = "Stack/Jobs"


@pytest.fixture(scope="module")
def synthesized() -> tuple[cdk.Stack, sqs.Queue, dict[str, Any]]:
    stack = cdk.Stack(cdk.App(), "Stack")
    jobs = AsyncJobApi(stack, "Jobs", handler="reports.generate", code=TEAM_CODE)
    prerequisite = sqs.Queue(stack, "Prerequisite")
    jobs.worker_function.node.add_dependency(prerequisite)  # after the construct is built
    return stack, prerequisite, Template.from_stack(stack).to_json()


def test_a_dependency_added_to_the_worker_is_kept(
    synthesized: tuple[cdk.Stack, sqs.Queue, dict[str, Any]],
) -> None:
    stack, prerequisite, body = synthesized
    _, worker = resource(body, API, "worker")
    prerequisite_id = stack.resolve(stack.get_logical_id(prerequisite.node.default_child))  # type: ignore[arg-type]
    assert prerequisite_id in worker["DependsOn"]


@pytest.mark.parametrize("role", ["submit", "status", "worker", "dead-letter"])
def test_each_function_depends_on_its_role_policy_not_on_the_role(
    synthesized: tuple[cdk.Stack, sqs.Queue, dict[str, Any]], role: str
) -> None:
    _, _, body = synthesized
    _, function = resource(body, API, role)
    role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
    assert role_id not in function["DependsOn"]  # its Fn::GetAtt already orders it (cfn-lint W3005)
    policies = [d for d in function["DependsOn"] if body["Resources"][d]["Type"] == "AWS::IAM::Policy"]
    assert len(policies) == 1
    assert {"Ref": role_id} in body["Resources"][policies[0]]["Properties"]["Roles"]
