"""EventBridge ``rate(...)`` schedules: a rule's target function invoked with a Scheduled Event on its period.

As EventBridge does for a schedule rule of the default bus: the first event one period after the rule exists,
then one each period, each ``{"source": "aws.events", "detail-type": "Scheduled Event", ...}`` naming the rule
in ``resources`` (or the target's ``Input`` when it sets one). The function is invoked asynchronously, so a
failed invocation is logged and the next period comes as usual (EventBridge's and Lambda's asynchronous retries
are not emulated).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from typing import Any

from async_job_local.functions import LocalFunction

__all__ = ["ScheduledInvoker", "scheduled_event"]


def scheduled_event(
    rule_arn: str, account: str, region: str, now: dt.datetime | None = None
) -> dict[str, Any]:
    """The event EventBridge sends a schedule rule's target.

    Example
    -------
    >>> scheduled_event("arn:aws:events:us-east-1:123456789012:rule/sweep", "123456789012", "us-east-1")["source"]
    'aws.events'
    """
    moment = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": moment.isoformat().replace("+00:00", "Z"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


class ScheduledInvoker:
    """One schedule rule target: invoke ``function`` every ``period`` seconds until ``stop``.

    Parameters
    ----------
    rule_arn, account, region
        What the scheduled event names.
    period
        Seconds between events (the rule's rate, or the runtime's ``sweep_interval``).
    input
        The target's ``Input`` (a JSON document), sent instead of the scheduled event.
    """

    def __init__(
        self,
        function: LocalFunction,
        *,
        rule_arn: str,
        account: str,
        region: str,
        period: float,
        input: str | None = None,
    ) -> None:
        self.function = function
        self.rule_arn = rule_arn
        self.account = account
        self.region = region
        self.period = period
        self.input = input
        self.invocations = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the clock: the first event comes one period from now."""
        name = f"schedule-{self.rule_arn.rsplit('/', 1)[-1]}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Send no more events (an invocation in flight runs to its end)."""
        self._stopping.set()

    def join(self, timeout: float) -> None:
        """Wait for the clock's thread to end."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.wait(self.period):
            event = (
                json.loads(self.input)
                if self.input is not None
                else scheduled_event(self.rule_arn, self.account, self.region)
            )
            result = self.function.invoke(event)
            self.invocations += 1
            if result.error is not None:
                self.function.logs.write(
                    self.function.name,
                    f"scheduled invocation by {self.rule_arn} failed: {result.error.get('errorType')}: "
                    f"{result.error.get('errorMessage')}",
                )
