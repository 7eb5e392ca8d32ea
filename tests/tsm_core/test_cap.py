"""CAP files (tsm_core.gp.cap): two published CAP files and what their publishers say of them, both forms, the
demo applets' CAP files (cardsim.capbuild), and malformed or oversized input refused with a typed error.

Published: costan/smartcard's hello.cap load data with the values its own test asserts, and the OpenFIPS201
load file reassembled from a GPShell trace, checked against what GlobalPlatformPro printed about the same CAP
file (package, version, applet, imports, code sizes, SHA-256 and SHA-1 of the load file).
"""

from __future__ import annotations

import io
import json
import random
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cardsim.applets import APPLETS, DEMO_LOAD_FILES
from cardsim.cap import read_load_file
from cardsim.capbuild import DEMO_CAPS, demo_cap
from tsm_core.gp.cap import (
    COMPONENT_MAX,
    FILE_NAMES,
    LOAD_ORDER,
    MAX_ENTRIES,
    MAX_INPUT,
    CapFile,
    CapFormatError,
    CapTooLarge,
    Component,
    HashAlgorithm,
    HeaderFlag,
    Version,
    parse_cap,
    split_components,
)

TRACES = Path(__file__).parent / "cap_traces"


def _published(name: str) -> dict:  # type: ignore[type-arg]
    return json.loads((TRACES / name).read_text())


def openfips201_load_file() -> bytes:
    """The Load File Data Block of OpenFIPS201 v1.10.2, Descriptor included, as GPShell's plain LOAD commands
    carry it after 'C4 82 68EE' (tests/tsm_core/cap_traces/openfips201_gpshell_scp02.json)."""
    payload = b"".join(bytes.fromhex(apdu)[5 : 5 + bytes.fromhex(apdu)[4]]
                       for apdu in _published("openfips201_gpshell_scp02.json")["load_plain"])
    assert payload[:4] == bytes.fromhex("C48268EE")
    return payload[4:]


def jar_of(components: dict[Component, bytes], prefix: str = "com/example/pkg/javacard/",
           extra: tuple[tuple[str, bytes], ...] = ()) -> bytes:
    """A CAP JAR holding `components` under `prefix`, entries shuffled, with `extra` entries."""
    entries = [(prefix + FILE_NAMES[tag], raw) for tag, raw in components.items()] + list(extra)
    random.Random(7).shuffle(entries)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as jar:
        for name, data in entries:
            jar.writestr(name, data)
    return out.getvalue()


# ---- published CAP files --------------------------------------------------------------------------------------


def test_costan_hello_load_data_as_its_test_asserts():
    published = _published("hello_costan.json")
    cap = parse_cap(bytes.fromhex(published["load_data"].replace(" ", "")))
    expect = published["expect"]
    assert str(cap.cap_version) == expect["cap_version"] and cap.flags == HeaderFlag.APPLET
    assert cap.package_aid.hex().upper() == expect["package_aid"]
    assert str(cap.package_version) == expect["package_version"]
    assert [[a.aid.hex().upper(), a.install_method_offset] for a in cap.applets] == expect["applets"]
    assert cap.imports[0].aid.hex().upper() == "A0000000620101"  # javacard.framework
    assert cap.load_file_data_block() == bytes.fromhex(published["load_data"].replace(" ", ""))


def test_openfips201_as_globalplatformpro_describes_it():
    info = _published("openfips201_gppro_scp03.json")["cap_info"]
    lfdb = openfips201_load_file()
    cap = parse_cap(lfdb)
    assert str(cap.cap_version) == info["cap_version"] and cap.package_name is None
    assert cap.package_aid.hex().upper() == info["package_aid"]
    assert str(cap.package_version) == info["package_version"] == "1.10"
    assert [aid.hex().upper() for aid in cap.applet_aids] == info["applet_aids"]
    assert [[p.aid.hex().upper(), str(p.version)] for p in cap.imports] == info["imports"]
    assert len(cap.load_file_data_block()) == info["code_size"]
    assert cap.load_file_data_block(include_descriptor=True) == lfdb
    assert len(lfdb) == info["code_size_with_descriptor"]
    assert cap.load_file_hash().hex().upper() == info["sha256"]
    assert cap.load_file_hash(HashAlgorithm.SHA1).hex().upper() == info["sha1"]
    assert cap.component_sizes == {"header": 19, "directory": 31, "import": 50, "applet": 15, "class": 661,
                                   "method": 16569, "static_field": 708, "constant_pool": 1474,
                                   "reference_location": 2226, "descriptor": 5079}


def test_the_jar_form_gives_the_same_cap_file():
    lfdb = openfips201_load_file()
    components = split_components(lfdb)
    components_and_debug = {**components}
    debug = bytes((Component.DEBUG, 0, 2, 0, 0))
    jar = jar_of(components_and_debug, "com/makina/security/openfips201/javacard/",
                 (("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\r\n"),
                  ("com/makina/security/openfips201/javacard/Debug.cap", debug),
                  ("com/makina/security/openfips201/javacard/openfips201.exp", b"\xca\xfe")))
    assert parse_cap(jar) == parse_cap(lfdb)
    lower = jar_of({tag: raw for tag, raw in components.items()}, "javacard/")
    assert parse_cap(lower).load_file_data_block() == parse_cap(lfdb).load_file_data_block()


def test_jar_entry_names_are_not_case_sensitive():
    components = split_components(demo_cap("bank").load_file())
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as jar:
        for tag, raw in components.items():
            jar.writestr("demo/bank/JAVACARD/" + FILE_NAMES[tag].upper(), raw)
    assert parse_cap(out.getvalue()).package_aid == DEMO_CAPS["bank"].package_aid


# ---- the demo applets' CAP files ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DEMO_CAPS))
def test_demo_cap_files_parse_in_both_forms(name):
    image = demo_cap(name)
    from_jar, from_components = parse_cap(image.jar()), parse_cap(image.load_file())
    assert from_jar == from_components
    cap: CapFile = from_jar
    assert cap.cap_version == Version(2, 2) and cap.package_name == f"demo/{name}"
    assert list(cap.applet_aids) == DEMO_LOAD_FILES[cap.package_aid]  # the ROM load files' package and modules
    assert all(aid in APPLETS for aid in cap.applet_aids)  # bound to the demo behaviour
    assert [str(p.version) for p in cap.imports] == ["1.0", "1.3"]
    assert cap.load_file_data_block() == image.load_file()
    assert [tag for tag, _ in cap.components] == [t for t in LOAD_ORDER if t is not Component.EXPORT]
    assert image.jar() == demo_cap(name).jar()  # reproducible byte for byte
    card_view = read_load_file(image.load_file())  # what the card simulator reads of it
    assert card_view.package_aid == cap.package_aid and card_view.modules == list(cap.applet_aids)


def test_transit_load_file_is_about_10_kb():
    assert 10_000 <= len(demo_cap("transit").load_file()) <= 11_000  # the provisioning benchmark's CAP size
    assert 6_000 <= len(demo_cap("bank").load_file()) <= 7_000


def _references(cap: CapFile) -> tuple[list[int], bytes, int]:
    """Offsets the Reference Location lists (two-byte indices), the Method info and the constant pool count."""
    info = {tag: raw[3:] for tag, raw in cap.components}
    location, method = info[Component.REFERENCE_LOCATION], info[Component.METHOD]
    assert location[:2] == b"\x00\x00"  # no one-byte indices
    offsets, position = [], 0
    for delta in location[4:]:
        position += delta
        if delta != 0xFF:
            offsets.append(position)
    assert len(offsets) == int.from_bytes(location[2:4], "big")
    return offsets, method, int.from_bytes(info[Component.CONSTANT_POOL][:2], "big")


@pytest.mark.parametrize("name", sorted(DEMO_CAPS))
def test_demo_cap_references_are_consistent(name):
    """Every constant pool index the Reference Location names follows new/invoke* and is in the pool; the
    Applet's install method and the Class's process method are method headers inside the Method component."""
    cap = parse_cap(demo_cap(name).load_file())
    offsets, method, pool = _references(cap)
    assert [method[offset - 1] for offset in offsets] == [0x8C, 0x8F, 0x8C, 0x8B]  # invokespecial, new, ...
    assert all(int.from_bytes(method[o : o + 2], "big") < pool for o in offsets)
    install = cap.applets[0].install_method_offset
    assert method[install : install + 2] == bytes((0x02, 0x30))  # max_stack 2; nargs 3, max_locals 0
    process = int.from_bytes(cap.component(Component.CLASS)[-2:], "big")  # type: ignore[index]
    assert method[process : process + 3] == bytes((0x00, 0x20, 0x7A))  # nargs 2 (this, APDU); return


# ---- refusals ---------------------------------------------------------------------------------------------------


def _demo_components() -> dict[Component, bytes]:
    return split_components(demo_cap("bank").load_file())


def _concat(components: dict[Component, bytes]) -> bytes:
    return b"".join(components[tag] for tag in LOAD_ORDER if tag in components)


def _replace(tag: Component, info: bytes) -> bytes:
    components = _demo_components()
    components[tag] = bytes((tag,)) + len(info).to_bytes(2, "big") + info
    return _concat(components)


def _header_info() -> bytes:
    return _demo_components()[Component.HEADER][3:]


MALFORMED = {
    "empty": b"",
    "not a cap": b"\x7fELF...",
    "truncated header": bytes.fromhex("0100"),
    "size overruns": bytes.fromhex("01 0010 DECAFFED"),
    "bad magic": _replace(Component.HEADER, b"\xca\xfe\xba\xbe" + _header_info()[4:]),
    "cap format 3.0": _replace(Component.HEADER, _header_info()[:4] + b"\x00\x03" + _header_info()[6:]),
    "extended format flag": _replace(Component.HEADER, _header_info()[:6] + b"\x0c" + _header_info()[7:]),
    "short package aid": _replace(Component.HEADER, _header_info()[:9] + b"\x04\xf0\x00\x00\x00"),
    "header trailing bytes": _replace(Component.HEADER, _header_info() + b"\x00"),
    "unknown tag": _demo_components()[Component.HEADER] + bytes.fromhex("2A0000"),
    "debug in load file": _concat(_demo_components()) + bytes.fromhex("0C0000"),
    "out of order": b"".join(_demo_components()[t] for t in (Component.HEADER, Component.IMPORT,
                                                              Component.DIRECTORY)),
    "repeated": _concat(_demo_components()) + _demo_components()[Component.REFERENCE_LOCATION],
    "missing method": _concat({t: r for t, r in _demo_components().items() if t is not Component.METHOD}),
    "applet count": _replace(Component.APPLET, b"\x02" + _demo_components()[Component.APPLET][4:]),
    "directory size mismatch": _replace(Component.STATIC_FIELD, bytes(12)),
    "applet missing": _concat({t: r for t, r in _demo_components().items() if t is not Component.APPLET}),
    "install offset outside": _replace(Component.APPLET, _demo_components()[Component.APPLET][3:-2] + b"\xff\xff"),
    "garbage zip": b"PK\x03\x04" + b"\x00" * 40,
    "jar without components": jar_of({}, extra=(("META-INF/MANIFEST.MF", b"x"),)),
    "two packages": jar_of(_demo_components(), extra=(("other/javacard/Header.cap",
                                                       _demo_components()[Component.HEADER]),)),
    "wrong tag in entry": jar_of({**_demo_components(), Component.CLASS: _demo_components()[Component.METHOD]}),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_input_is_a_typed_error(data):
    with pytest.raises(CapFormatError) as caught:
        parse_cap(data)
    assert caught.value.code in ("gp_cap_format", "gp_cap_too_large")


def _zip_with_entry(name: str, chunks: int, chunk: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as jar, \
            jar.open(name, "w", force_zip64=True) as stream:
        for _ in range(chunks):
            stream.write(chunk)
    return out.getvalue()


def test_a_100_mb_entry_is_refused_without_inflating_it():
    bomb = _zip_with_entry("pkg/javacard/Method.cap", 100, bytes(1 << 20))  # 100 MB of zeros in ~100 KB
    assert len(bomb) < MAX_INPUT
    with pytest.raises(CapTooLarge, match="declares 104857600 bytes") as caught:
        parse_cap(bomb)
    assert caught.value.code == "gp_cap_too_large"


def test_an_entry_that_lies_about_its_size_is_refused():
    """A central directory claiming 100 bytes for a 1 MB entry: reading stops at the claim, the CRC fails."""
    data = bytearray(_zip_with_entry("pkg/javacard/Method.cap", 1, bytes(1 << 20)))
    big = (1 << 20).to_bytes(4, "little")
    for at in [i for i in range(len(data) - 3) if data[i : i + 4] == big]:
        data[at : at + 4] = (100).to_bytes(4, "little")
    with pytest.raises(CapFormatError):
        parse_cap(bytes(data))


def test_oversized_input_and_too_many_entries():
    with pytest.raises(CapTooLarge):
        parse_cap(b"\x01" + bytes(MAX_INPUT))
    crowded = jar_of(_demo_components(), extra=tuple((f"f{n}", b"") for n in range(MAX_ENTRIES)))
    with pytest.raises(CapTooLarge, match="entries"):
        parse_cap(crowded)
    with pytest.raises(CapTooLarge, match="declares"):
        parse_cap(jar_of({Component.METHOD: bytes(COMPONENT_MAX + 1)}))


VALID = [demo_cap("bank").load_file(), demo_cap("bank").jar()]


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_corruption_is_a_cap_file_or_a_typed_error(data):
    """Whatever bytes are flipped, cut or inserted, the parser returns a CapFile or raises CapFormatError."""
    raw = bytearray(data.draw(st.sampled_from(VALID)))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw)))
        action = data.draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        if action == "flip" and at < len(raw):
            raw[at] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del raw[at : at + data.draw(st.integers(1, 64))]
        elif action == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del raw[at:]
    try:
        cap = parse_cap(bytes(raw))
    except CapFormatError as exc:
        assert exc.code in ("gp_cap_format", "gp_cap_too_large")
    else:  # what parses gives a load file that parses to itself
        lfdb = cap.load_file_data_block(include_descriptor=True)
        assert parse_cap(lfdb).load_file_data_block(include_descriptor=True) == lfdb


# ---- `tsm cardsim cap` ---------------------------------------------------------------------------------------


def test_cli_writes_both_forms(tmp_path):
    from click.testing import CliRunner

    from tsm.cli import main

    runner = CliRunner()
    jar, components = tmp_path / "transit.cap", tmp_path / "transit.ijc"
    done = runner.invoke(main, ["cardsim", "cap", "transit", "--out", str(jar)])
    assert done.exit_code == 0 and done.output.startswith("transit CAP file (jar, ")
    done = runner.invoke(main, ["cardsim", "cap", "transit", "--out", str(components), "--format", "components"])
    assert done.exit_code == 0 and "package F0000000010101, applet F000000001010101" in done.output
    assert parse_cap(jar.read_bytes()) == parse_cap(components.read_bytes())
    assert components.read_bytes() == demo_cap("transit").load_file()
    refused = runner.invoke(main, ["cardsim", "cap", "bank", "--out", str(tmp_path / "no" / "bank.cap")])
    assert refused.exit_code == 2 and refused.stderr.startswith("error[cardsim_output_file]: cannot write ")
    assert len(refused.stderr.splitlines()) == 1
    unknown = runner.invoke(main, ["cardsim", "cap", "wallet", "--out", str(jar)])
    assert unknown.exit_code == 2 and unknown.stderr.startswith("error[usage]: ")
