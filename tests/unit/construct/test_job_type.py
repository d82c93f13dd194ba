"""Job types: one API, several types, each with its own queue, dead-letter queue and worker (one synthesis)."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template

from async_job_construct import AsyncJobApi, JobType, PropValueError
from lambda_handlers.contract import METADATA_KEY, Env, JobTypeKey
from tests.unit.construct.helpers import TEAM_CODE, env, joined_json, props, resource

MEDIA = "Stack/Media"


class Synthesized:
    def __init__(self) -> None:
        app = cdk.App()
        self.stack = cdk.Stack(app, "Stack")
        self.media = AsyncJobApi(self.stack, "Media")
        self.reports = self.media.add_job_type(
            "reports", handler="reports.generate", code=TEAM_CODE, timeout=cdk.Duration.minutes(10)
        )
        self.invoker = iam.Role(self.stack, "Invoker", assumed_by=iam.AccountRootPrincipal())
        self.media.grant_invoke(self.invoker)  # before thumbnails exists: covers it too
        self.thumbs = self.media.add_job_type(
            "thumbnails",
            handler="thumbs.make",
            code=TEAM_CODE,
            max_concurrency=5,
            max_payload_bytes=1000,
            max_receive_count=5,
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.ARM_64,
        )
        self.submitter = iam.Role(self.stack, "Submitter", assumed_by=iam.AccountRootPrincipal())
        self.reports.grant_submit(self.submitter)
        # Budget: the same API with one type more, in the same stack.
        one = AsyncJobApi(self.stack, "One")
        one.add_job_type("a", handler="m.f", code=TEAM_CODE)
        two = AsyncJobApi(self.stack, "Two")
        two.add_job_type("a", handler="m.f", code=TEAM_CODE)
        two.add_job_type("b", handler="m.f", code=TEAM_CODE)
        self.body: dict[str, Any] = Template.from_stack(self.stack).to_json()

    def logical_id(self, construct: Any) -> str:
        return self.stack.resolve(self.stack.get_logical_id(construct.node.default_child))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def synth() -> Synthesized:
    return Synthesized()


def _of_type(body: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in body["Resources"].values() if r["Type"] == resource_type]


def test_each_type_is_submitted_at_its_own_route_and_every_job_read_at_jobs(synth: Synthesized) -> None:
    api_id, _ = resource(synth.body, MEDIA, "api")
    resources = {
        logical_id: r["Properties"]["PathPart"]
        for logical_id, r in synth.body["Resources"].items()
        if r["Type"] == "AWS::ApiGateway::Resource" and r["Properties"]["RestApiId"] == {"Ref": api_id}
    }
    assert sorted(resources.values()) == ["jobs", "reports", "result", "thumbnails", "{id}"]
    methods = {
        (resources[m["ResourceId"]["Ref"]], m["HttpMethod"])
        for m in _of_type(synth.body, "AWS::ApiGateway::Method")
        if m["RestApiId"] == {"Ref": api_id}
    }
    assert methods == {
        ("reports", "POST"),
        ("thumbnails", "POST"),
        ("jobs", "GET"),
        ("{id}", "GET"),
        ("{id}", "DELETE"),
        ("result", "GET"),
    }
    submit_id, _ = resource(synth.body, MEDIA, "submit")
    assert synth.thumbs.submit_method.node.path.endswith("/thumbnails/POST")
    assert submit_id in repr(synth.body["Resources"][synth.logical_id(synth.thumbs.submit_method)])


def test_submit_and_dead_letter_functions_know_every_type(synth: Synthesized) -> None:
    queues = {name: synth.logical_id(t.queue) for name, t in synth.media.job_types.items()}
    expected = {
        "reports": {
            JobTypeKey.QUEUE_URL: f"<ref:{queues['reports']}>",
            JobTypeKey.MAX_PAYLOAD_BYTES: 262144,
            JobTypeKey.MAX_RECEIVE_COUNT: 3,
        },
        "thumbnails": {
            JobTypeKey.QUEUE_URL: f"<ref:{queues['thumbnails']}>",
            JobTypeKey.MAX_PAYLOAD_BYTES: 1000,
            JobTypeKey.MAX_RECEIVE_COUNT: 5,
        },
    }
    for role in ("submit", "dead-letter"):
        variables = env(synth.body, MEDIA, role)
        assert joined_json(variables[Env.JOB_TYPES]) == expected, role
        assert Env.QUEUE_URL not in variables
        assert Env.MAX_PAYLOAD_BYTES not in variables
        assert Env.MAX_RECEIVE_COUNT not in variables
    assert Env.JOB_TYPES not in env(synth.body, MEDIA, "status")


def test_each_worker_knows_its_type_and_its_own_settings(synth: Synthesized) -> None:
    reports = env(synth.body, MEDIA, "worker", "reports")
    thumbs = env(synth.body, MEDIA, "worker", "thumbnails")
    assert reports[Env.JOB_TYPE] == "reports"
    assert reports[Env.HANDLER] == "reports.generate"
    assert reports[Env.MAX_RECEIVE_COUNT] == "3"
    assert thumbs[Env.JOB_TYPE] == "thumbnails"
    assert thumbs[Env.MAX_RECEIVE_COUNT] == "5"
    worker = props(synth.body, MEDIA, "worker", "thumbnails")
    assert worker["Runtime"] == "python3.12"
    assert worker["Architectures"] == ["arm64"]
    assert "AWSLambdaPowertoolsPythonV3-python312-arm64:" in repr(worker["Layers"])
    assert props(synth.body, MEDIA, "worker", "reports")["Timeout"] == 600


def test_metrics_service_is_one_per_api_on_all_its_functions(synth: Synthesized) -> None:
    names = {
        r["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
        for r in synth.body["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function" and r["Metadata"][METADATA_KEY]["api"] == MEDIA
    }
    assert names == {"Stack-Media"}


def test_per_type_resources_are_marked_with_their_type(synth: Synthesized) -> None:
    marks = [
        r["Metadata"][METADATA_KEY]
        for r in synth.body["Resources"].values()
        if r.get("Metadata", {}).get(METADATA_KEY, {}).get("api") == MEDIA
    ]
    per_type = sorted((m["role"], m["jobType"]) for m in marks if "jobType" in m)
    assert per_type == sorted(
        (role, name)
        for role in ("queue", "dead-letter-queue", "worker")
        for name in ("reports", "thumbnails")
    )
    shared = sorted(m["role"] for m in marks if "jobType" not in m)
    assert shared == [
        "api",
        "bucket",
        "dead-letter",
        "events",
        "events-dead-letter-queue",
        "status",
        "submit",
        "table",
    ]


def test_submit_sends_to_every_queue_and_the_dead_letter_consumer_reads_every_dlq(synth: Synthesized) -> None:
    _, submit = resource(synth.body, MEDIA, "submit")
    role_ref = submit["Properties"]["Role"]["Fn::GetAtt"][0]
    send_targets = repr(
        [
            s["Resource"]
            for p in _of_type(synth.body, "AWS::IAM::Policy")
            if {"Ref": role_ref} in p["Roles"]
            for s in p["PolicyDocument"]["Statement"]
            if "sqs:SendMessage" in s["Action"]
        ]
    )
    for job_type in synth.media.job_types.values():
        assert synth.logical_id(job_type.queue) in send_targets
    dead_letter_id, _ = resource(synth.body, MEDIA, "dead-letter")
    sources = {
        repr(m["EventSourceArn"])
        for m in _of_type(synth.body, "AWS::Lambda::EventSourceMapping")
        if m["FunctionName"] == {"Ref": dead_letter_id}
    }
    assert len(sources) == 2
    for job_type in synth.media.job_types.values():
        assert any(synth.logical_id(job_type.dead_letter_queue) in s for s in sources)


def test_runtime_layer_is_compatible_with_every_worker(synth: Synthesized) -> None:
    (layer,) = [
        r["Properties"]
        for logical_id, r in synth.body["Resources"].items()
        if r["Type"] == "AWS::Lambda::LayerVersion" and logical_id.startswith("Media")
    ]
    assert layer["CompatibleRuntimes"] == ["python3.14", "python3.12"]
    assert layer["CompatibleArchitectures"] == ["x86_64", "arm64"]


def _invoke_resources(body: dict[str, Any], role_logical_id: str) -> str:
    return repr(
        [
            s["Resource"]
            for p in _of_type(body, "AWS::IAM::Policy")
            if {"Ref": role_logical_id} in p["Roles"]
            for s in p["PolicyDocument"]["Statement"]
            if s["Action"] == "execute-api:Invoke"
        ]
    )


def test_grant_invoke_covers_every_type_also_those_added_later(synth: Synthesized) -> None:
    granted = _invoke_resources(synth.body, synth.logical_id(synth.invoker))
    for route in ("/POST/reports", "/POST/thumbnails", "/GET/jobs'", "/GET/jobs/*", "/DELETE/jobs/*"):
        assert route in granted


def test_grant_submit_covers_its_type_and_reading_jobs_only(synth: Synthesized) -> None:
    granted = _invoke_resources(synth.body, synth.logical_id(synth.submitter))
    for route in ("/POST/reports", "/GET/jobs'", "/GET/jobs/*", "/DELETE/jobs/*"):
        assert route in granted
    assert "/POST/thumbnails" not in granted


def test_job_types_and_resolved_props_are_exposed(synth: Synthesized) -> None:
    assert list(synth.media.job_types) == ["reports", "thumbnails"]
    assert isinstance(synth.thumbs, JobType)
    assert synth.media.job_types["thumbnails"] is synth.thumbs
    assert synth.thumbs.name == "thumbnails"
    assert synth.thumbs.max_concurrency == 5
    assert synth.thumbs.visibility_timeout.to_minutes() == 30
    assert synth.reports.timeout.to_minutes() == 10
    assert synth.reports.batch_size == 1


@pytest.mark.parametrize("attribute", ["queue", "dead_letter_queue", "worker_function", "timeout"])
def test_single_type_attributes_name_job_types_when_there_are_several(
    synth: Synthesized, attribute: str
) -> None:
    with pytest.raises(AttributeError, match=r"has 2 job types.*job_types\['reports'\]"):
        getattr(synth.media, attribute)


def test_each_extra_type_adds_at_most_15_resources_and_its_7_alarms(synth: Synthesized) -> None:
    def count(prefix: str, alarms: bool) -> int:
        return sum(
            logical_id.startswith(prefix) and (resource["Type"] == "AWS::CloudWatch::Alarm") == alarms
            for logical_id, resource in synth.body["Resources"].items()
        )

    assert count("Two", alarms=False) - count("One", alarms=False) <= 15
    assert count("Two", alarms=True) - count("One", alarms=True) == 7


# --------------------------------------------------------------------------------------------- refusals


def _api() -> AsyncJobApi:
    return AsyncJobApi(cdk.Stack(cdk.App(), "Stack"), "Media")


@pytest.mark.parametrize("name", ["Reports", "1st", "a_b", "", "x" * 41, "with space"])
def test_fails_if_the_name_is_not_a_path_segment(name: str) -> None:
    with pytest.raises(PropValueError, match=r"^name must match .*given '.*'.*lowercase"):
        _api().add_job_type(name, handler="m.f", code=TEAM_CODE)


def test_fails_if_the_name_is_taken() -> None:
    api = _api()
    api.add_job_type("reports", handler="m.f", code=TEAM_CODE)
    with pytest.raises(PropValueError, match=r"^name is already a job type .*given 'reports'.*reports"):
        api.add_job_type("reports", handler="m.g", code=TEAM_CODE)


@pytest.mark.parametrize(
    "variable", ["POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_TRACE_DISABLED"]
)
def test_fails_if_environment_sets_what_identifies_the_metrics(variable: str) -> None:
    with pytest.raises(
        PropValueError,
        match=rf"^environment must not set the Powertools .*dimensioned by API.*given '{variable}'",
    ):
        _api().add_job_type("reports", handler="m.f", code=TEAM_CODE, environment={variable: "x"})


def test_fails_if_a_job_type_prop_is_given_without_handler() -> None:
    with pytest.raises(PropValueError, match=r"^timeout is a job type's prop.*add_job_type"):
        AsyncJobApi(cdk.Stack(cdk.App(), "Stack"), "Media", timeout=cdk.Duration.minutes(1))


def test_fails_if_handler_comes_without_code() -> None:
    with pytest.raises(PropValueError, match=r"^code is required with handler"):
        AsyncJobApi(cdk.Stack(cdk.App(), "Stack"), "Media", handler="m.f")


def test_fails_synth_if_the_api_has_no_job_type() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "Stack")
    AsyncJobApi(stack, "Media")
    with pytest.raises(RuntimeError, match=r"Stack/Media has no job type"):
        app.synth()
