"""`tsm cardsim ...`: create, list and serve virtual GlobalPlatform cards."""

from __future__ import annotations

import click


@click.group("cardsim")
def cardsim_group() -> None:
    """Virtual GlobalPlatform cards (GPCS 2.3.1)."""
