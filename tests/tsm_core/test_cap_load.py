"""The demo applets' CAP files (cardsim.capbuild), parsed by the TSM (tsm_core.gp.cap) from the JAR an SP would
submit, loaded into the independent card simulator over a secure channel the key service opens (real SoftHSM2
token): INSTALL [for load] with the load file hash, LOAD in blocks sized for the channel, INSTALL [for install
and make selectable]; the card's Registry then lists the load file, its module and the instance, and the
instance answers SELECT and behaves as its demo applet.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from cardsim.capbuild import demo_cap
from cardsim.state import new_card
from globalplatform.apdu import CommandApdu, ResponseApdu
from globalplatform.scp import Scp
from keyservice.channels import ChannelSpec
from keyservice.identity import Caller, CallerKind
from keyservice.policy import Purpose, Request
from tsm_core.flows.channel import ChannelSessionLike, IsdInfo, open_isd_channel
from tsm_core.gp import commands
from tsm_core.gp.cap import CapFile, parse_cap
from tsm_core.gp.commands import max_block_size
from tsm_core.gp.getstatus import StatusSubset, parse_tlv
from tsm_core.gp.install import install_for_install, install_for_load, load_commands
from tsm_core.transport.local import LocalTransport

TSM = Request(Caller("tsm-core", CallerKind.SERVICE), Purpose.SE_MANAGEMENT, "se-cap-load")
OK, WRONG_DATA, CONDITIONS_NOT_SATISFIED, REFERENCED_DATA_NOT_FOUND = 0x9000, 0x6A80, 0x6985, 0x6A88
CARDS = [  # profile (no ROM load files), key label, security level, SCP
    pytest.param("scp03-i00", "gp", 0x03, Scp.SCP03, id="scp03-cdec"),
    pytest.param("scp02-i55", "gp-des", 0x01, Scp.SCP02, id="scp02-cmac"),
]
FIRST_USE = {  # demo applet: a command it answers 6985 to before personalization (docs/cardsim.md)
    "transit": "805C000000",  # GET BALANCE
    "bank": "00B2010C00",  # READ RECORD
}


@contextmanager
def isd_session(service, profile: str, label: str, level: int) -> Iterator[tuple[LocalTransport, ChannelSessionLike,
                                                                                bytes]]:
    """A fresh card of `profile` and an authenticated channel to its ISD, as the TSM flows open it; the ISD's
    AID from its FCI."""
    seen: list[IsdInfo] = []

    def open_channel(isd: IsdInfo) -> ChannelSessionLike:
        seen.append(isd)
        return service.channels.open(TSM, ChannelSpec((label,), security_level=level, aid=isd.aid, i=isd.i))

    with LocalTransport(new_card(profile)) as transport:
        session = open_isd_channel(transport, level, open_channel)
        try:
            assert seen[0].aid is not None
            yield transport, session, seen[0].aid
        finally:
            session.close()


def send(transport: LocalTransport, session: ChannelSessionLike, command: CommandApdu) -> ResponseApdu:
    return ResponseApdu.from_bytes(session.unwrap(transport.transmit(session.wrap(command.to_bytes()))))


def load(transport, session, cap: CapFile, sd_aid: bytes, level: int, scp: Scp, load_file_hash: bytes) -> int:
    """INSTALL [for load] then LOAD; the status word of the last command the card answered."""
    answer = send(transport, session, install_for_load(cap.package_aid, sd_aid, load_file_hash=load_file_hash))
    if answer.sw != OK:
        return answer.sw
    for block in load_commands(cap.load_file_data_block(), block_size=max_block_size(level, scp)):
        answer = send(transport, session, block)
        if answer.sw != OK:
            break
    return answer.sw


@pytest.mark.parametrize("name", ["transit", "bank"])
@pytest.mark.parametrize(("profile", "label", "level", "scp"), CARDS)
def test_demo_cap_loads_installs_and_selects(service, name, profile, label, level, scp):
    cap = parse_cap(demo_cap(name).jar())
    (module,) = cap.applet_aids
    instance = module + b"\x01"
    with isd_session(service, profile, label, level) as (transport, session, sd_aid):
        assert load(transport, session, cap, sd_aid, level, scp, cap.load_file_hash()) == OK
        installed = send(transport, session, install_for_install(cap.package_aid, module, instance))
        assert installed.sw == OK
        listed = send(transport, session, commands.get_status(StatusSubset.LOAD_FILES_AND_MODULES))
        (elf,) = [e for e in parse_tlv(StatusSubset.LOAD_FILES_AND_MODULES, listed.data)
                  if e.aid == cap.package_aid]  # besides the Security Domain package in ROM
        assert (elf.aid, elf.elf_version, elf.modules) == (cap.package_aid, bytes.fromhex("0100"), (module,))
        apps = parse_tlv(StatusSubset.APPLICATIONS, send(transport, session,
                                                         commands.get_status(StatusSubset.APPLICATIONS)).data)
        assert [(app.aid, app.elf_aid) for app in apps] == [(instance, cap.package_aid)]
        selected = ResponseApdu.from_bytes(transport.transmit(commands.select(instance).to_bytes()))
        assert selected.sw == OK and instance in selected.data  # FCI '6F' with the instance AID in '84'
        first = ResponseApdu.from_bytes(transport.transmit(bytes.fromhex(FIRST_USE[name])))
        assert first.sw == CONDITIONS_NOT_SATISFIED  # the demo applet, not yet personalized (not 6D00)


@pytest.mark.parametrize(("profile", "label", "level", "scp"), CARDS)
def test_a_wrong_load_file_hash_is_refused_and_nothing_is_registered(service, profile, label, level, scp):
    cap = parse_cap(demo_cap("transit").load_file())
    wrong = bytes(32)
    with isd_session(service, profile, label, level) as (transport, session, sd_aid):
        assert load(transport, session, cap, sd_aid, level, scp, wrong) == WRONG_DATA  # at the last block
        listed = send(transport, session, commands.get_status(StatusSubset.LOAD_FILES, aid=cap.package_aid))
        assert listed.sw == REFERENCED_DATA_NOT_FOUND  # no such load file on this card
        assert load(transport, session, cap, sd_aid, level, scp, cap.load_file_hash()) == OK  # the right one
