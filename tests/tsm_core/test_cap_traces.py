"""A published CAP file loaded by two published tools, replayed byte for byte: our INSTALL [for load], LOAD blocks
and INSTALL [for install] equal the ones in the traces, before secure messaging and after it, with the
published static keys through the key service (real SoftHSM2 token).

Traces (tests/tsm_core/cap_traces/, sources in each file): GPShell loading OpenFIPS201 v1.10.2 over SCP02 i=55
at security level 03 (C-MAC and C-DECRYPTION, blocks of 239 bytes, Descriptor included), and GlobalPlatformPro
loading the same CAP file over SCP03 i=70 at level 01 (C-MAC, blocks of 247 bytes, no Descriptor). Each C-MAC
chains over every command before it, so the last one checks the whole sequence.

The tools differ from us only in Le: GPShell sends it on INSTALL [for load] and the last LOAD block, GPPro on
neither; our builders always send Le '00' (the card may answer data, GPCS 2.3.1 §11.5.3, §11.6.3). Le is not
covered by the C-MAC (GPCS 2.3.1 §E.4.4, Amd D §6.2.4), so commands are compared without it where the tool
left it out, and byte for byte everywhere else.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from globalplatform.apdu import Cla, CommandApdu
from globalplatform.scp import Scp
from keyservice.channels import ChannelSpec
from keyservice.identity import Caller, CallerKind
from keyservice.policy import Purpose, Request
from tests.tsm_core.test_cap import openfips201_load_file
from tsm_core.gp import commands
from tsm_core.gp.cap import parse_cap
from tsm_core.gp.commands import max_block_size
from tsm_core.gp.getstatus import StatusSubset
from tsm_core.gp.install import install_for_install, install_for_load, load_commands

TRACES = Path(__file__).parent / "cap_traces"
TSM = Request(Caller("tsm-core", CallerKind.SERVICE), Purpose.SE_MANAGEMENT, "openfips201-trace")
SUBSETS = (StatusSubset.ISD, StatusSubset.APPLICATIONS, StatusSubset.LOAD_FILES_AND_MODULES, StatusSubset.LOAD_FILES)
"""The GET STATUS commands GPPro sends before and after loading, in its order."""


def _trace(name: str) -> dict:  # type: ignore[type-arg]
    return json.loads((TRACES / name).read_text())


def without_le(apdu: bytes) -> bytes:
    """The command without its Le field (not covered by the C-MAC)."""
    return dataclasses.replace(CommandApdu.from_bytes(apdu), le=None).to_bytes()


def c_mac(wrapped: bytes) -> bytes:
    """The C-MAC: the last 8 bytes of the data field."""
    return CommandApdu.from_bytes(wrapped).data[-8:]


@pytest.fixture(scope="module")
def cap():  # type: ignore[no-untyped-def]
    return parse_cap(openfips201_load_file())


def _install_commands(cap, sd_aid: bytes, load_parameters: bytes = b""):  # type: ignore[no-untyped-def]
    (applet,) = cap.applet_aids
    return (install_for_load(cap.package_aid, sd_aid, load_parameters=load_parameters),
            install_for_install(cap.package_aid, applet, applet))


def test_gpshell_plain_commands_are_ours(cap):
    trace = _trace("openfips201_gpshell_scp02.json")
    for_load, for_install = _install_commands(cap, bytes.fromhex(trace["isd_aid"]), bytes.fromhex("EF04C60268F8"))
    assert for_load.to_bytes().hex().upper() == trace["install_for_load"]["plain"]
    block_size = max_block_size(0x03, Scp.SCP02)
    assert block_size == 239
    blocks = load_commands(cap.load_file_data_block(include_descriptor=True), block_size=block_size)
    assert len(blocks) == len(trace["load_plain"]) == 113
    for ours, published in zip(blocks, trace["load_plain"], strict=True):
        assert without_le(ours.to_bytes()) == without_le(bytes.fromhex(published))
    assert blocks[-1].to_bytes().hex().upper() == trace["load_plain"][-1]  # GPShell's last block has Le too
    assert without_le(for_install.to_bytes()) == bytes.fromhex(trace["install_for_install"]["plain"])


def test_gpshell_scp02_trace_through_the_key_service(service, cap):
    trace = _trace("openfips201_gpshell_scp02.json")
    for_load, for_install = _install_commands(cap, bytes.fromhex(trace["isd_aid"]), bytes.fromhex("EF04C60268F8"))
    blocks = load_commands(cap.load_file_data_block(include_descriptor=True),
                           block_size=max_block_size(0x03, Scp.SCP02))
    spec = ChannelSpec(("gp-des",), security_level=0x03, i=0x55)
    with service.channels.open(TSM, spec) as session:
        command = bytes.fromhex(trace["initialize_update"])
        assert session.initialize_update(CommandApdu.from_bytes(command).data) == command
        external = session.authenticate(bytes.fromhex(trace["initialize_update_response"]))
        assert external.hex().upper() == trace["external_authenticate"]
        assert session.wrap(for_load.to_bytes()).hex().upper() == trace["install_for_load"]["wrapped"]
        for n, block in enumerate(blocks):
            wrapped = session.wrap(block.to_bytes())
            assert c_mac(wrapped).hex().upper() == trace["load_c_mac"][n], f"LOAD block {n}"
            if str(n) in trace["load_wrapped"]:  # data encrypted (C-DECRYPTION), compared whole
                assert without_le(wrapped) == without_le(bytes.fromhex(trace["load_wrapped"][str(n)]))
        assert wrapped.hex().upper() == trace["load_wrapped"]["112"]  # the last block, Le and all
        wrapped = session.wrap(for_install.to_bytes())
        assert without_le(wrapped) == bytes.fromhex(trace["install_for_install"]["wrapped"])


def test_globalplatformpro_scp03_trace_through_the_key_service(service, cap):
    trace = _trace("openfips201_gppro_scp03.json")
    isd = bytes.fromhex(trace["isd_aid"])
    for_load, for_install = _install_commands(cap, isd)
    block_size = max_block_size(0x01, Scp.SCP03)
    assert block_size == 247
    lfdb = cap.load_file_data_block()
    blocks = load_commands(lfdb, block_size=block_size)
    assert len(blocks) == len(trace["load_c_mac"]) == 89
    spec = ChannelSpec(("gp",), security_level=0x01, aid=isd)  # i=70: the card challenge derives from the AID
    with service.channels.open(TSM, spec) as session:
        command = bytes.fromhex(trace["initialize_update"])
        assert session.initialize_update(CommandApdu.from_bytes(command).data) == command
        external = session.authenticate(bytes.fromhex(trace["initialize_update_response"]))
        assert external.hex().upper() == trace["external_authenticate"]
        *status, install = trace["before_load"]
        for subset, published in zip(SUBSETS, status, strict=True):
            assert session.wrap(commands.get_status(subset).to_bytes()).hex().upper() == published
        assert without_le(session.wrap(for_load.to_bytes())) == bytes.fromhex(install)
        for n, block in enumerate(blocks):
            header = bytes((block.cla | Cla.SECURE_MESSAGING, block.ins, block.p1, block.p2, len(block.data) + 8))
            published = header + block.data + bytes.fromhex(trace["load_c_mac"][n])
            assert without_le(session.wrap(block.to_bytes())) == published, f"LOAD block {n}"
        *status, install = trace["after_load"]
        for subset, published in zip(SUBSETS, status, strict=True):
            assert session.wrap(commands.get_status(subset).to_bytes()).hex().upper() == published
        assert without_le(session.wrap(for_install.to_bytes())) == bytes.fromhex(install)
