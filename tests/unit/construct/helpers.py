"""Helpers for reading a synthesized AsyncJobApi template."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template

from lambda_handlers.contract import METADATA_KEY

TEAM_CODE = lambda_.Code.from_inline("def generate(payload, job):\n    return payload\n")


def resource(
    template: dict[str, Any], api_path: str, role: str, job_type: str | None = None
) -> tuple[str, dict[str, Any]]:
    """Return (logical id, resource) of the one resource of ``role`` in the AsyncJobApi at ``api_path``
    (of ``job_type`` when given; per-type resources carry their type in the mark)."""
    found = [
        (logical_id, body)
        for logical_id, body in template["Resources"].items()
        if (mark := body.get("Metadata", {}).get(METADATA_KEY, {})).get("api") == api_path
        and mark.get("role") == role
        and (job_type is None or mark.get("jobType") == job_type)
    ]
    assert len(found) == 1, f"expected one {role} of {api_path}, found {[f[0] for f in found]}"
    return found[0]


def props(template: dict[str, Any], api_path: str, role: str, job_type: str | None = None) -> dict[str, Any]:
    """The Properties of the one resource of ``role`` in the AsyncJobApi at ``api_path``."""
    return resource(template, api_path, role, job_type)[1]["Properties"]


def env(template: dict[str, Any], api_path: str, role: str, job_type: str | None = None) -> dict[str, Any]:
    """The environment variables of the function of ``role``."""
    variables: dict[str, Any] = props(template, api_path, role, job_type)["Environment"]["Variables"]
    return variables


def joined_json(value: Any) -> Any:
    """Parse a JSON document CloudFormation joins from strings and references (``Ref`` -> ``<ref:Id>``)."""
    if isinstance(value, str):
        return json.loads(value)
    delimiter, parts = value["Fn::Join"]
    text = delimiter.join(part if isinstance(part, str) else f"<ref:{part['Ref']}>" for part in parts)
    return json.loads(text)


def job_types(template: dict[str, Any], api_path: str, role: str = "submit") -> dict[str, Any]:
    """The ``ASYNC_JOB_TYPES`` document of the submit (or dead-letter) function."""
    return joined_json(env(template, api_path, role)["ASYNC_JOB_TYPES"])  # type: ignore[no-any-return]


def refers_to(value: Any, logical_id: str) -> bool:
    """True when ``value`` (a CloudFormation expression) references ``logical_id``."""
    return logical_id in repr(value)


def policy_actions(template: dict[str, Any], function_logical_id: str, function: dict[str, Any]) -> set[str]:
    """Every IAM action granted to the role of ``function`` (its inline policies)."""
    role_ref = function["Properties"]["Role"]["Fn::GetAtt"][0]
    actions: set[str] = set()
    for body in template["Resources"].values():
        if body["Type"] != "AWS::IAM::Policy":
            continue
        if not any(refers_to(r, role_ref) for r in body["Properties"]["Roles"]):
            continue
        for statement in body["Properties"]["PolicyDocument"]["Statement"]:
            action = statement["Action"]
            actions.update([action] if isinstance(action, str) else action)
    return actions


def from_stack(stack: Any) -> tuple[Template, dict[str, Any]]:
    """Synthesize ``stack`` once; return the assertions Template and its JSON."""
    template = Template.from_stack(stack)
    return template, template.to_json()
