"""INSTALL and LOAD builders (GPCS 2.3.1 §11.5, §11.6): pure, plain (no secure messaging)."""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum, IntFlag, unique

from globalplatform import tlv
from globalplatform.apdu import SHORT_NE_MAX, Cla, CommandApdu, Ins
from tsm_core.gp.commands import (
    DEFAULT_BLOCK_SIZE,
    BuilderExample,
    aid_field,
    block_number,
    lv,
    split_blocks,
)
from tsm_core.gp.getstatus import Privilege


@unique
class InstallFor(IntFlag):
    """INSTALL P1 (GPCS 2.3.1 §11.5.2.1 Table 11-41); b8 set means more INSTALL commands follow."""

    LOAD = 0x02
    INSTALL = 0x04
    MAKE_SELECTABLE = 0x08
    EXTRADITION = 0x10
    PERSONALIZATION = 0x20
    REGISTRY_UPDATE = 0x40
    MORE_COMMANDS = 0x80


@unique
class LoadP1(IntEnum):
    """LOAD P1 (GPCS 2.3.1 §11.6.2.1 Table 11-57)."""

    MORE_BLOCKS = 0x00
    LAST_BLOCK = 0x80


NO_PRIVILEGES = Privilege(0)
BUILDER_EXAMPLES: list[BuilderExample] = []


def _ber_lv(value: bytes) -> bytes:
    """The value after its length in BER form ('81 80' from 128 bytes on): install parameters and tokens
    (GPCS 2.3.1 §11.5.2.3 Tables 11-43 to 11-47; an RSA-1024 token is 128 bytes)."""
    return tlv.encode_length(len(value)) + value


def _install(p1: InstallFor, data: bytes, more: bool) -> CommandApdu:
    if more:
        p1 |= InstallFor.MORE_COMMANDS
    return CommandApdu(Cla.GP, Ins.INSTALL, p1, 0x00, data, SHORT_NE_MAX)


def install_for_load(
    elf_aid: bytes,
    sd_aid: bytes = b"",
    *,
    load_file_hash: bytes = b"",
    load_parameters: bytes = b"",
    token: bytes = b"",
) -> CommandApdu:
    """INSTALL [for load] (GPCS 2.3.1 §11.5.2.3.1 Table 11-43); `load_parameters` is encoded TLV ('EF')."""
    data = lv(aid_field(elf_aid)) + lv(aid_field(sd_aid, empty_ok=True))
    data += lv(load_file_hash) + _ber_lv(load_parameters) + _ber_lv(token)
    return _install(InstallFor.LOAD, data, False)


BUILDER_EXAMPLES += [
    BuilderExample(
        install_for_load,
        {"elf_aid": tlv.h("A0000000620001"), "sd_aid": tlv.h("A000000151000000")},
        ("80E6020014 07A0000000620001 08A000000151000000 000000 00",),
    ),
    BuilderExample(
        install_for_load,
        {"elf_aid": tlv.h("A00000030800001000"), "sd_aid": tlv.h("A000000151000000"),
         "load_parameters": tlv.h("EF04C60268F8")},
        ("80E602001C 09A00000030800001000 08A000000151000000 00 06EF04C60268F8 00 00",),
        "GPShell log of OpenFIPS201 (OpenPhysical/Gp4Net, tests/Gp4Net.Tests/TestData/Traces/Raw/"
        "configure_gpshell_log.txt): non-volatile code minimum 'C6' in the load parameters",
    ),
    BuilderExample(
        install_for_load,
        {"elf_aid": tlv.h("1983122910DEAE"), "load_file_hash": bytes(range(20))},
        ("80E6020020 071983122910DEAE 00 14000102030405060708090A0B0C0D0E0F10111213 00 00 00",),
        "GPCS 2.3.1 §11.5.2.3.1 Table 11-43: a 20-byte (SHA-1) Load File Data Block Hash, no SD AID",
    ),
]


def install_for_install(
    elf_aid: bytes,
    module_aid: bytes,
    application_aid: bytes,
    *,
    privileges: Privilege = NO_PRIVILEGES,
    parameters: bytes = b"\xc9\x00",
    token: bytes = b"",
    make_selectable: bool = True,
    more: bool = False,
) -> CommandApdu:
    """INSTALL [for install] (and make selectable) (GPCS 2.3.1 §11.5.2.3.2 Table 11-44).

    `parameters` is the encoded install-parameters field ('C9' mandatory, 'EF' optional; see
    `tlv.INSTALL_PARAMETERS`). Privileges use the 1-byte form when bytes 2 and 3 are zero.
    """
    p1 = InstallFor.INSTALL | (InstallFor.MAKE_SELECTABLE if make_selectable else InstallFor(0))
    data = lv(aid_field(elf_aid)) + lv(aid_field(module_aid)) + lv(aid_field(application_aid))
    data += lv(privileges.encode(short=privileges.fits_byte1)) + _ber_lv(parameters) + _ber_lv(token)
    return _install(p1, data, more)


BUILDER_EXAMPLES.append(
    BuilderExample(
        install_for_install,
        {
            "elf_aid": tlv.h("A00000015100"),
            "module_aid": tlv.h("A0000001510001"),
            "application_aid": tlv.h("A0000001510001"),
        },
        ("80E60C001D 06A00000015100 07A0000001510001 07A0000001510001 0100 02C900 00 00",),
    )
)


def install_for_make_selectable(
    application_aid: bytes, *, privileges: Privilege = NO_PRIVILEGES, token: bytes = b""
) -> CommandApdu:
    """INSTALL [for make selectable] (GPCS 2.3.1 §11.5.2.3.3 Table 11-45)."""
    data = b"\x00\x00" + lv(aid_field(application_aid)) + lv(privileges.encode(short=privileges.fits_byte1))
    data += lv(b"") + _ber_lv(token)
    return _install(InstallFor.MAKE_SELECTABLE, data, False)


BUILDER_EXAMPLES.append(
    BuilderExample(
        install_for_make_selectable,
        {"application_aid": tlv.h("A0000001510001")},
        ("80E608000E 0000 07A0000001510001 0100 00 00 00",),
    )
)


def install_for_personalization(application_aid: bytes) -> CommandApdu:
    """INSTALL [for personalization] (GPCS 2.3.1 §11.5.2.3.5 Table 11-47): routes STORE DATA via the SD."""
    data = b"\x00\x00" + lv(aid_field(application_aid)) + b"\x00\x00\x00"
    return _install(InstallFor.PERSONALIZATION, data, False)


BUILDER_EXAMPLES.append(
    BuilderExample(
        install_for_personalization,
        {"application_aid": tlv.h("A0000001510001")},
        ("80E620000D 0000 07A0000001510001 000000 00",),
    )
)


def install_for_extradition(
    sd_aid: bytes, application_aid: bytes, *, parameters: bytes = b"", token: bytes = b""
) -> CommandApdu:
    """INSTALL [for extradition] (GPCS 2.3.1 §11.5.2.3.4 Table 11-46): associate an app with another SD."""
    data = lv(aid_field(sd_aid)) + b"\x00" + lv(aid_field(application_aid)) + b"\x00"
    data += _ber_lv(parameters) + _ber_lv(token)
    return _install(InstallFor.EXTRADITION, data, False)


BUILDER_EXAMPLES.append(
    BuilderExample(
        install_for_extradition,
        {"sd_aid": tlv.h("A000000151000001"), "application_aid": tlv.h("A0000001510001")},
        ("80E6100015 08A000000151000001 00 07A0000001510001 00 00 00 00",),
    )
)


def load_commands(
    load_file: bytes, *, dap_blocks: Sequence[bytes] = (), block_size: int = DEFAULT_BLOCK_SIZE
) -> list[CommandApdu]:
    """LOAD (GPCS 2.3.1 §11.6): the DAP blocks ('E2', encoded, Table 11-58) then 'C4' with its BER length and
    the Load File Data Block (`CapFile.load_file_data_block()`), cut into blocks of `block_size` bytes
    (`commands.max_block_size` for the channel) numbered from 0 in P2; P1 '80' on the last (Table 11-57).
    At most 256 blocks (P2 is one byte)."""
    payload = b"".join(dap_blocks) + tlv.encode(tlv.LOAD_FILE_DATA_BLOCK_TAG, load_file)
    blocks = split_blocks(payload, block_size)
    return [
        CommandApdu(
            Cla.GP,
            Ins.LOAD,
            LoadP1.LAST_BLOCK if n == len(blocks) - 1 else LoadP1.MORE_BLOCKS,
            block_number(n),
            block,
            SHORT_NE_MAX,
        )
        for n, block in enumerate(blocks)
    ]


BUILDER_EXAMPLES += [
    BuilderExample(
        load_commands,
        {"load_file": bytes(range(8)), "block_size": 6},
        ("80E8000006 C4080001020300", "80E8800104 0405060700"),
    ),
    BuilderExample(
        load_commands,
        {"load_file": bytes(range(4)), "block_size": 16,
         "dap_blocks": [tlv.h("E2134F07A0000000030000C3080102030405060708")]},
        ("80E8000010 E2134F07A0000000030000C308010203 00", "80E880010B 0405060708 C40400010203 00"),
        "GPCS 2.3.1 §11.6.2.3 Table 11-58: a DAP block before the Load File Data Block, in the first block",
    ),
    BuilderExample(
        load_commands,
        {"load_file": bytes(range(128)), "block_size": 0x60},
        ("80E8000060 C48180" + bytes(range(93)).hex() + " 00", "80E8800123 " + bytes(range(93, 128)).hex() + " 00"),
        "ITU-T X.690 §8.1.3.5: a 128-byte Load File Data Block takes the two-byte length '81 80'",
    ),
]
