"""Small hand-written templates in the shape ``AsyncJobApi`` synthesizes, for the local runtime's unit tests.

``api_template()`` is today's single-type construct (one type, ``jobs``, with unmarked per-type resources);
``api_template(types=("reports", "thumbs"), typed=True)`` is the many-types construct (per-type resources
marked with ``jobType``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lambda_handlers.contract import METADATA_KEY, Env, Role

API_PATH = "Stack/Media"
CODE_ASSET = "asset.code"
RUNTIME_ASSET = "asset.runtime"


def mark(role: str, job_type: str | None = None, api: str = API_PATH) -> dict[str, Any]:
    """The construct's metadata on a resource."""
    value: dict[str, Any] = {"api": api, "role": role}
    if job_type is not None:
        value["jobType"] = job_type
    return {METADATA_KEY: value}


def function(
    handler: str, role: str | None, *, job_type: str | None = None, environment: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An ``AWS::Lambda::Function`` with a directory asset (and the runtime layer)."""
    metadata: dict[str, Any] = {"aws:asset:path": CODE_ASSET}
    if role is not None:
        metadata.update(mark(role, job_type))
    return {
        "Type": "AWS::Lambda::Function",
        "Metadata": metadata,
        "Properties": {
            "Handler": handler,
            "Runtime": "python3.13",
            "Timeout": 30,
            "MemorySize": 256,
            "Layers": [{"Ref": "RuntimeLayer"}],
            "Environment": {"Variables": environment or {}},
        },
    }


def _logical(job_type: str) -> str:
    return "".join(part.capitalize() for part in job_type.split("-"))


def _job_types_json(types: Sequence[str]) -> dict[str, Any]:
    """``ASYNC_JOB_TYPES`` as ``Stack.to_json_string`` writes it: an ``Fn::Join`` of literal pieces and tokens."""
    pieces: list[Any] = ["{"]
    for index, name in enumerate(types):
        pieces.append(f'{"," if index else ""}"{name}":{{"queueUrl":"')
        pieces.append({"Ref": f"Queue{_logical(name)}"})
        pieces.append('","maxPayloadBytes":262144,"maxReceiveCount":3}')
    pieces.append("}")
    return {"Fn::Join": ["", pieces]}


def api_template(
    types: Sequence[str] = ("jobs",),
    *,
    typed: bool = False,
    batch_sizes: Sequence[int] | None = None,
    concurrencies: Sequence[int | None] | None = None,
) -> dict[str, Any]:
    """A template holding one ``AsyncJobApi`` with ``types``; ``typed`` marks per-type resources ``jobType``."""
    shared_env: dict[str, Any] = {Env.TABLE_NAME: {"Ref": "Table"}}
    submit_env = dict(shared_env)
    if typed:
        submit_env[Env.JOB_TYPES] = _job_types_json(types)
    else:
        submit_env[Env.QUEUE_URL] = {"Ref": f"Queue{_logical(types[0])}"}
    resources: dict[str, Any] = {
        "Api": {"Type": "AWS::ApiGateway::RestApi", "Metadata": mark(Role.API), "Properties": {}},
        "Table": {
            "Type": "AWS::DynamoDB::Table",
            "Metadata": mark(Role.TABLE),
            "Properties": {
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                "BillingMode": "PAY_PER_REQUEST",
            },
        },
        "RuntimeLayer": {
            "Type": "AWS::Lambda::LayerVersion",
            "Metadata": {"aws:asset:path": RUNTIME_ASSET},
            "Properties": {},
        },
        "Submit": function("lambda_handlers.submit.handler", Role.SUBMIT, environment=submit_env),
        "Status": function("lambda_handlers.status.handler", Role.STATUS, environment=dict(shared_env)),
        "DeadLetter": function(
            "lambda_handlers.dead_letter.handler",
            Role.DEAD_LETTER,
            environment={**shared_env, **({Env.JOB_TYPES: _job_types_json(types)} if typed else {})},
        ),
        "JobsResource": _resource("jobs", None),
        "JobIdResource": _resource("{id}", "JobsResource"),
        "GetJob": _method("GET", "JobIdResource", "Status"),
        "DeleteJob": _method("DELETE", "JobIdResource", "Status"),
        "Default4xx": {
            "Type": "AWS::ApiGateway::GatewayResponse",
            "Properties": {
                "RestApiId": {"Ref": "Api"},
                "ResponseType": "DEFAULT_4XX",
                "ResponseTemplates": {"application/json": '{"title": $context.error.messageString}'},
            },
        },
    }
    for index, name in enumerate(types):
        suffix = _logical(name)
        job_type = name if typed else None
        resources[f"Dlq{suffix}"] = {
            "Type": "AWS::SQS::Queue",
            "Metadata": mark(Role.DEAD_LETTER_QUEUE, job_type),
            "Properties": {},
        }
        resources[f"Queue{suffix}"] = {
            "Type": "AWS::SQS::Queue",
            "Metadata": mark(Role.QUEUE, job_type),
            "Properties": {
                "VisibilityTimeout": 60 + index,
                "RedrivePolicy": {
                    "deadLetterTargetArn": {"Fn::GetAtt": [f"Dlq{suffix}", "Arn"]},
                    "maxReceiveCount": 3,
                },
            },
        }
        resources[f"Worker{suffix}"] = function(
            "lambda_handlers.worker.handler",
            Role.WORKER,
            job_type=job_type,
            environment={**shared_env, Env.HANDLER: f"{name.replace('-', '_')}.run", Env.JOB_TYPE: name},
        )
        scaling = {}
        if concurrencies is not None and concurrencies[index] is not None:
            scaling = {"ScalingConfig": {"MaximumConcurrency": concurrencies[index]}}
        resources[f"Esm{suffix}"] = {
            "Type": "AWS::Lambda::EventSourceMapping",
            "Properties": {
                "FunctionName": {"Ref": f"Worker{suffix}"},
                "EventSourceArn": {"Fn::GetAtt": [f"Queue{suffix}", "Arn"]},
                "BatchSize": batch_sizes[index] if batch_sizes is not None else 1,
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
                **scaling,
            },
        }
        resources[f"DlqEsm{suffix}"] = {
            "Type": "AWS::Lambda::EventSourceMapping",
            "Properties": {
                "FunctionName": {"Ref": "DeadLetter"},
                "EventSourceArn": {"Fn::GetAtt": [f"Dlq{suffix}", "Arn"]},
                "BatchSize": 10,
            },
        }
        if name == "jobs":
            resources["PostJobs"] = _method("POST", "JobsResource", "Submit")
        else:
            resources[f"{suffix}Resource"] = _resource(name, None)
            resources[f"Post{suffix}"] = _method("POST", f"{suffix}Resource", "Submit")
    return {"Resources": resources}


def _resource(part: str, parent: str | None) -> dict[str, Any]:
    parent_id = {"Fn::GetAtt": ["Api", "RootResourceId"]} if parent is None else {"Ref": parent}
    return {
        "Type": "AWS::ApiGateway::Resource",
        "Properties": {"RestApiId": {"Ref": "Api"}, "ParentId": parent_id, "PathPart": part},
    }


def _method(verb: str, resource: str, function_id: str) -> dict[str, Any]:
    uri = {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":apigateway:",
                {"Ref": "AWS::Region"},
                ":lambda:path/2015-03-31/functions/",
                {"Fn::GetAtt": [function_id, "Arn"]},
                "/invocations",
            ],
        ]
    }
    return {
        "Type": "AWS::ApiGateway::Method",
        "Properties": {
            "RestApiId": {"Ref": "Api"},
            "ResourceId": {"Ref": resource},
            "HttpMethod": verb,
            "AuthorizationType": "AWS_IAM",
            "Integration": {"Type": "AWS_PROXY", "IntegrationHttpMethod": "POST", "Uri": uri},
        },
    }


def make_assets(directory: Path) -> None:
    """The asset directories the templates name, under ``directory`` (the stack's assembly directory)."""
    (directory / CODE_ASSET).mkdir(parents=True, exist_ok=True)
    (directory / RUNTIME_ASSET / "python").mkdir(parents=True, exist_ok=True)
