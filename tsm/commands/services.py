"""`tsm service ...`: the service life cycle (docs/lifecycle.md): open, show, balance, top-up, lock, unlock,
suspend, resume, delete, unsubscribe, migrate, re-issue, each run now against the card given, and `order` (a job
planned, not run). Without a card, lock/unlock/unsubscribe act in the registry at once and queue the card side
for the device's next contact (`tsm se sync`)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from tsm.cards import card_given, card_options, card_transport, require_card
from tsm.commands.jobs import perso_file
from tsm.commands.pcsc import READER_HELP
from tsm.output import emit_json, json_option, table
from tsm.service import tsm_context
from tsm_core.context import Tsm
from tsm_core.jobs import service as jobs
from tsm_core.lifecycle import service as lifecycle
from tsm_core.lifecycle.service import Outcome
from tsm_core.lifecycle.views import ServiceView
from tsm_core.transport.base import Transport


@dataclass(frozen=True)
class Card:
    """The card options of one command: a reader, a simulated card file, or a phone relay session."""

    reader: str | None = None
    card_path: Path | None = None
    relay: str | None = None
    listen: tuple[str, int] | None = None

    @property
    def given(self) -> bool:
        return card_given(self.reader, self.card_path, self.relay)

    def required(self) -> Card:
        """This card, or the usage error of a command that needs one (checked before anything is looked up)."""
        require_card(self.reader, self.card_path, self.relay)
        return self

    @contextmanager
    def transport(self, se_id: str) -> Iterator[Transport]:
        """The card of SE `se_id` (a relay session is bound to it)."""
        require_card(self.reader, self.card_path, self.relay)
        with card_transport(self.reader, self.card_path, self.relay, se_id=se_id, listen=self.listen) as transport:
            yield transport

    @contextmanager
    def optional(self, se_id: str) -> Iterator[Transport | None]:
        """The card when one is given, else None (the device is out of reach)."""
        if not self.given:
            yield None
            return
        with self.transport(se_id) as transport:
            yield transport


def with_card(command: Callable[..., None]) -> Callable[..., None]:
    """`--reader`, `--card`, `--relay` and `--relay-listen` (tsm/cards.py), given to the command as `card`."""
    @card_options
    @functools.wraps(command)
    def wrapper(*args: Any, reader: str | None, card_path: Path | None, relay: str | None,
                relay_listen: tuple[str, int] | None, **kwargs: Any) -> None:
        command(*args, card=Card(reader, card_path, relay, relay_listen), **kwargs)
    return wrapper


def _se_of(tsm: Tsm, service_id: str) -> str:
    return lifecycle.show(tsm, service_id).se_id


def print_service(view: ServiceView, *, history: bool = False) -> None:
    """The service's fields, its history and jobs (with `history`), its id last."""
    fields = [("SE", view.se_id), ("app", view.app_id), ("SP", view.sp), ("instance", view.instance_aid),
              ("state", view.state), ("card-side lock", "yes" if view.card_locked else "no")]
    if view.card_number:
        fields.append(("card number", view.card_number))
    if view.balance is not None:
        when = f" (backup of {view.backed_up_at:%Y-%m-%d %H:%M:%S} UTC)" if view.backed_up_at else ""
        fields.append(("balance", f"{view.balance}, top-up counter {view.purse_counter}{when}"))
    if view.card_life_cycle is not None:
        fields.append(("card life cycle", f"{view.card_life_cycle:02X}"))
    for name, value in (("reason", view.reason), ("seen", view.seen), ("replaces", view.previous_id)):
        if value:
            fields.append((name, value))
    if view.waiting:
        fields.append(("waiting for contact", " ".join(view.waiting)))
    table(("FIELD", "VALUE"), fields)
    if history:
        click.echo()
        table(("AT", "OPERATION", "FROM", "TO", "DETAIL"),
              [(f"{e.at:%Y-%m-%d %H:%M:%S}", e.operation, e.from_state, e.to_state, e.detail) for e in view.history])
        click.echo()
        table(("JOB", "KIND", "STATE"), view.jobs)
    click.echo(view.id)


def _outcome(outcome: Outcome) -> None:
    click.echo(outcome.message)
    click.echo(outcome.service.id)


@click.group("service")
def service_group() -> None:
    """Services: an app on an SE, and the life an end user gives it."""


@service_group.command("order")
@click.argument("se_id", metavar="SE")
@click.argument("app_id", metavar="APP")
def service_order(se_id: str, app_id: str) -> None:
    """Order an approved app for an SE: the job is planned (not run); its id is the last line."""
    click.echo(jobs.order(tsm_context(), se_id, app_id))


@service_group.command("open")
@click.argument("se_id", metavar="SE")
@click.argument("app_id", metavar="APP")
@click.option("--card-number", default=None, metavar="N", help="The card number (12-19 digits), kept sealed.")
@click.option("--perso", "perso_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON {\"DGI\": \"hex\"} of this card's sensitive DGIs (`DGI!` in the app's profile); never stored.")
@with_card
def service_open(se_id: str, app_id: str, card_number: str | None, perso_path: Path | None, card: Card) -> None:
    """Open card: order, SSD if missing, load, install, personalize, activate; the service id is the last line."""
    card.required()
    tsm = tsm_context()
    perso = perso_file(perso_path)
    with card.transport(se_id) as transport:
        view = lifecycle.open_service(tsm, se_id, app_id, transport, card_number=card_number, perso=perso)
    print_service(view)


@service_group.command("show")
@click.argument("service_id", metavar="ID")
@json_option
@with_card
def service_show(service_id: str, as_json: bool, card: Card) -> None:
    """A service's state, history and jobs; with a card, what waits for it runs and the card's view is read."""
    tsm = tsm_context()
    se_id = _se_of(tsm, service_id)
    with card.optional(se_id) as transport:
        view = lifecycle.observe(tsm, service_id, transport) if transport is not None else \
            lifecycle.show(tsm, service_id)
    if as_json:
        emit_json(view)
        return
    print_service(view, history=True)


@service_group.command("list")
@click.option("--se", "se_id", default=None, metavar="SE", help="Only this SE's services.")
@json_option
def service_list(se_id: str | None, as_json: bool) -> None:
    """Services, newest first."""
    found = lifecycle.list_services(tsm_context(), se_id)
    if as_json:
        emit_json(found)
        return
    table(("SERVICE", "SE", "APP", "STATE", "BALANCE", "UPDATED"),
          [(v.id, v.se_id, v.app_id, v.state, "" if v.balance is None else v.balance,
            f"{v.updated_at:%Y-%m-%d %H:%M:%S}") for v in found])


@service_group.command("balance")
@click.argument("service_id", metavar="ID")
@with_card
def service_balance(service_id: str, card: Card) -> None:
    """Read the purse's balance from the card: minor units on the last line."""
    card.required()
    tsm = tsm_context()
    with card.transport(_se_of(tsm, service_id)) as transport:
        view = lifecycle.balance(tsm, service_id, transport)
    click.echo(f"top-up counter {view.purse_counter}")
    click.echo(view.balance)


@service_group.command("topup")
@click.argument("service_id", metavar="ID")
@click.option("--amount", type=click.IntRange(1, lifecycle.MAX_AMOUNT), required=True, metavar="MINOR",
              help="Minor units (cents) to credit.")
@with_card
def service_topup(service_id: str, amount: int, card: Card) -> None:
    """Credit the purse (two-phase, never twice); the new balance is the last line."""
    card.required()
    tsm = tsm_context()
    with card.transport(_se_of(tsm, service_id)) as transport:
        order = lifecycle.topup(tsm, service_id, amount, transport)
    click.echo(f"top-up {order.id}: {order.state}, {order.balance_before} -> {order.balance_after}")
    click.echo(order.balance_after)


def _state_command(name: str, doc: str) -> None:
    operation = getattr(lifecycle, name)

    @service_group.command(name, help=doc)
    @click.argument("service_id", metavar="ID")
    @with_card
    def command(service_id: str, card: Card) -> None:
        tsm = tsm_context()
        with card.optional(_se_of(tsm, service_id)) as transport:
            _outcome(operation(tsm, service_id, transport))


_state_command("lock", "Report lost: blocked now; locked on the card now, or at the device's next contact.")
_state_command("unlock", "Found again: unblocked now; unlocked on the card now, or at its next contact.")
_state_command("suspend", "Suspend the service (locked like a lost one).")
_state_command("resume", "Resume a suspended service.")
_state_command("unsubscribe", "End the service: a purse's remaining balance is recorded for refund; the app is "
                              "deleted now, or at the device's next contact.")


@service_group.command("delete")
@click.argument("service_id", metavar="ID")
@with_card
def service_delete(service_id: str, card: Card) -> None:
    """Delete the app from the card (and its load file and SSD when nothing else uses them)."""
    card.required()
    tsm = tsm_context()
    with card.transport(_se_of(tsm, service_id)) as transport:
        _outcome(lifecycle.delete(tsm, service_id, transport))


@service_group.command("migrate")
@click.argument("service_id", metavar="ID")
@click.option("--to", "to_se", required=True, metavar="SE", help="The new device's SE.")
@click.option("--from-reader", default=None, metavar="READER", help=f"The old device's reader. {READER_HELP}")
@click.option("--from-card", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="The old device's simulated card.")
@with_card
def service_migrate(service_id: str, to_se: str, from_reader: str | None, from_card: Path | None,
                    card: Card) -> None:
    """Device change: the old SE's app saved and deleted (now, or at its next contact), installed on the new
    SE with its balance; the new service id is the last line."""
    card.required()
    tsm = tsm_context()
    old_card = Card(from_reader, from_card)
    with card.transport(to_se) as transport, old_card.optional(_se_of(tsm, service_id)) as old:
        view = lifecycle.migrate(tsm, service_id, to_se, transport, old)
    print_service(view)


@service_group.command("reissue")
@click.argument("service_id", metavar="ID")
@click.option("--to", "to_se", required=True, metavar="SE", help="The new SE.")
@click.option("--new-card-number", default=None, metavar="N", help="Issue a new card number (the old one blocked).")
@with_card
def service_reissue(service_id: str, to_se: str, new_card_number: str | None, card: Card) -> None:
    """Re-issue onto a new SE from the server-side backup; the new service id is the last line."""
    card.required()
    tsm = tsm_context()
    with card.transport(to_se) as transport:
        view = lifecycle.reissue(tsm, service_id, to_se, transport, new_card_number=new_card_number)
    print_service(view)
