"""One module per GP command; `HANDLERS` maps INS to the function the OPEN dispatches to."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from cardsim.apdu import CommandApdu, Ins, Response
from cardsim.commands import (
    auth,
    delete,
    getdata,
    getstatus,
    install,
    load,
    putkey,
    select,
    setstatus,
    storedata,
)

if TYPE_CHECKING:
    from cardsim.card import Card

Handler = Callable[["Card", CommandApdu], Response]

HANDLERS: Final[dict[int, Handler]] = {
    Ins.SELECT: select.handle,
    Ins.GET_DATA: getdata.handle,
    Ins.INITIALIZE_UPDATE: auth.initialize_update,
    Ins.EXTERNAL_AUTHENTICATE: auth.external_authenticate,
    Ins.GET_STATUS: getstatus.handle,
    Ins.INSTALL: install.handle,
    Ins.LOAD: load.handle,
    Ins.DELETE: delete.handle,
    Ins.SET_STATUS: setstatus.handle,
    Ins.PUT_KEY: putkey.handle,
    Ins.STORE_DATA: storedata.handle,
}

__all__ = ["HANDLERS", "Handler", "auth", "select"]
