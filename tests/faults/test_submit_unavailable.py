"""SendMessage failing during submit: the caller gets a 503 problem, and no job stays behind as accepted.

The fault is injected in the backend, not in the code: the runtime's job queue is deleted through the embedded
moto endpoint, so the submit function's real ``SendMessage`` fails as it would in AWS
(``AWS.SimpleQueueService.NonExistentQueue``) after its ``PutItem`` succeeded. The runtime is the module's own
``async-job local`` process (``faults_cli``): the queue's loss must not reach the shared runtime's tests.
"""

from __future__ import annotations

from typing import Any

from tests.faults.conftest import FaultsRuntime


def _items(runtime: FaultsRuntime) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = runtime.aws("dynamodb").scan(TableName=runtime.table_name)["Items"]
    return items


def test_send_message_failure_answers_503_and_leaves_no_job(faults_cli: FaultsRuntime) -> None:
    # GIVEN the job queue no longer exists (SendMessage will fail)
    sqs: Any = faults_cli.aws("sqs")
    attributes = sqs.get_queue_attributes(
        QueueUrl=faults_cli.queue_url, AttributeNames=["VisibilityTimeout", "RedrivePolicy"]
    )["Attributes"]
    sqs.delete_queue(QueueUrl=faults_cli.queue_url)
    client = faults_cli.client()

    # WHEN a job is submitted, without and with an Idempotency-Key
    plain = client.submit({"mode": "ok", "dir": str(faults_cli.side_channel)})
    keyed = client.request(
        "POST",
        faults_cli.jobs_url,
        b'{"mode": "ok"}',
        {"Content-Type": "application/json", "Idempotency-Key": '"fault-503"'},
    )

    # THEN each caller gets a 503 problem telling it to retry, and no job (nor key) is left in the table
    for response in (plain, keyed):
        assert response.status == 503, response.body
        assert response.content_type == "application/problem+json"
        problem = response.json()
        assert problem["status"] == 503
        assert {"type", "title", "detail"} <= problem.keys()
        assert "id" not in problem
        assert response.header("Location") is None
        assert response.header("Retry-After") is not None
    assert _items(faults_cli) == []

    # AND once the queue is back, the same key is accepted as a new job, which runs
    sqs.create_queue(QueueName=faults_cli.queue_url.rsplit("/", 1)[-1], Attributes=attributes)
    retried = client.request(
        "POST",
        faults_cli.jobs_url,
        b'{"mode": "ok", "dir": "%s"}' % str(faults_cli.side_channel).encode(),
        {"Content-Type": "application/json", "Idempotency-Key": '"fault-503"'},
    )
    assert retried.status == 202, retried.body
    assert retried.header("Idempotent-Replayed") is None
    assert faults_cli.wait_terminal(retried.json()["id"])["status"] == "SUCCEEDED"
