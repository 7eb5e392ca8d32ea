"""Webhook deliveries on Procrastinate (PostgreSQL): a periodic task, one run at a time across every worker
process, sends the deliveries whose time has come (tsm_core/webhooks/delivery.py). `tsm job worker` binds it next
to the provisioning jobs and takes both queues.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from procrastinate import App

from tsm_core.context import Tsm
from tsm_core.webhooks.delivery import deliver_due

TASK: Final = "tsm.deliver_webhooks"
QUEUE: Final = "webhooks"
EVERY: Final = "*/5 * * * * *"
"""Every 5 seconds (croniter's sixth field is seconds): a delivery waits at most this long for its attempt."""


def bind(app: App, context: Callable[[], Tsm]) -> None:
    """Make this process's worker send webhooks with `context` (the worker's service identity)."""

    def deliver_webhooks(timestamp: int) -> None:
        deliver_due(context())

    task = app.task(name=TASK, queue=QUEUE, lock=QUEUE, queueing_lock=QUEUE)(deliver_webhooks)
    app.periodic(cron=EVERY, periodic_id=QUEUE)(task)
