"""``python -m async_job_local.moto_server``: a serialised moto of its own, for ``--endpoint-url``."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import boto3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_program_serves_moto_on_its_port_until_ctrl_c() -> None:
    # GIVEN the program started on a free port
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "async_job_local.moto_server", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()
        assert f"http://127.0.0.1:{port}" in banner, banner

        # WHEN a client creates a queue there
        sqs = boto3.client(
            "sqs",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        url = sqs.create_queue(QueueName="kept")["QueueUrl"]

        # THEN it is served, and Ctrl-C ends the program cleanly
        assert sqs.list_queues()["QueueUrls"] == [url]
        server.send_signal(signal.SIGINT)
        assert server.wait(20) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
