"""The baseline: the seed article's design in plain L2 constructs, inline code, nothing more.

REST API -> producer Lambda -> SQS (+ DLQ) -> worker Lambda -> DynamoDB, and a status Lambda behind GET. No auth,
no validation, no logging setup, no tracing: what a team writes in an afternoon, and what the construct is compared
against (its synth time and resource count).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

_INLINE = "def handler(event, context):\n    return {'statusCode': 200, 'body': '{}'}\n"


class SeedStack(cdk.Stack):
    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        table = dynamodb.Table(
            self,
            "Jobs",
            partition_key=dynamodb.Attribute(name="jobId", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        )
        dlq = sqs.Queue(self, "Dlq")
        queue = sqs.Queue(
            self,
            "Queue",
            visibility_timeout=cdk.Duration.minutes(30),
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=3, queue=dlq),
        )

        def function(name: str, timeout: cdk.Duration) -> lambda_.Function:
            return lambda_.Function(
                self,
                name,
                runtime=lambda_.Runtime.PYTHON_3_13,
                handler="index.handler",
                code=lambda_.Code.from_inline(_INLINE),
                timeout=timeout,
                environment={"TABLE": table.table_name, "QUEUE_URL": queue.queue_url},
            )

        producer = function("Producer", cdk.Duration.seconds(10))
        worker = function("Worker", cdk.Duration.minutes(5))
        status = function("Status", cdk.Duration.seconds(10))
        table.grant_read_write_data(producer)
        table.grant_read_write_data(worker)
        table.grant_read_data(status)
        queue.grant_send_messages(producer)
        worker.add_event_source(event_sources.SqsEventSource(queue))

        api = apigateway.RestApi(self, "Api")
        jobs = api.root.add_resource("jobs")
        jobs.add_method("POST", apigateway.LambdaIntegration(producer))
        jobs.add_resource("{id}").add_method("GET", apigateway.LambdaIntegration(status))


def build_app(outdir: str | None = None) -> cdk.App:
    app = cdk.App(outdir=outdir)
    SeedStack(app, "SeedBaseline")
    return app


if __name__ == "__main__":
    build_app().synth()
