"""moto's DynamoDB and SQS on a loopback port, one request at a time (see ``async_job_local.serialised_moto``).

``EmbeddedMotoBackend`` runs one in the runtime's process. Run as a program it is a moto server of its own,
for ``async-job local --endpoint-url``: the tables and queues then outlive each runtime (``moto_server``'s
threads call moto concurrently, with moto's races; this one does not)::

    python -m async_job_local.moto_server --port 5000
"""

from __future__ import annotations

import argparse
import socket
import threading
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from async_job_local import moto_cloudformation
from async_job_local.serialised_moto import SerialisedMotoApp

__all__ = ["MotoServer", "main"]


class _CachingDispatcher(DomainDispatcherApplication):
    """moto's dispatcher, remembering which service a host name means (it lists moto's modules on disk for
    every request otherwise: a quarter of the time of a small request)."""

    def __init__(self) -> None:
        super().__init__(create_backend_app)
        self._backends: dict[str | None, Any] = {}

    def get_backend_for_host(self, host: str | None) -> Any:
        if host not in self._backends:
            self._backends[host] = super().get_backend_for_host(host)
        return self._backends[host]


class _NoDelayHandler(MotoRequestHandler):
    """moto's request handler with ``TCP_NODELAY`` (else each keep-alive response waits ~40 ms for a delayed
    ACK) and without a log line per request."""

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class MotoServer:
    """moto on ``127.0.0.1:<port>``, served by threads of this process through ``SerialisedMotoApp``.

    Parameters
    ----------
    port
        The loopback port; 0 (the default) picks a free one.

    Example
    -------
    >>> server = MotoServer()
    >>> server.url
    'http://127.0.0.1:41234'
    >>> server.close()
    """

    def __init__(self, port: int = 0) -> None:
        self._app = SerialisedMotoApp(_CachingDispatcher())
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", port, self._app, threaded=True, request_handler=_NoDelayHandler
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop accepting requests and end the waiting long polls."""
        self._app.close()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def main(argv: list[str] | None = None) -> None:
    """Serve moto on a loopback port until Ctrl-C (``python -m async_job_local.moto_server``)."""
    parser = argparse.ArgumentParser(
        prog="python -m async_job_local.moto_server",
        description="moto's DynamoDB and SQS on 127.0.0.1, one request at a time, until Ctrl-C.",
    )
    parser.add_argument(
        "-p", "--port", type=int, default=5000, help="the port (default: 5000; 0: a free one)"
    )
    args = parser.parse_args(argv)
    moto_cloudformation.install()  # a stack deployed here (the deploy rehearsal) may have long job types
    server = MotoServer(args.port)
    print(f"moto on {server.url} (async-job local --endpoint-url {server.url}); Ctrl-C stops it", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


if __name__ == "__main__":
    main()
