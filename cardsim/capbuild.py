"""CAP files of the demo applets, built by the simulator itself (no Java Card SDK can be installed here), in
both forms: the JAR (JCVM 3.0.5 §6.1.1) and the concatenated components that LOAD carries (§6.2).

CAP format 2.2 (compact, §6.4). Written: Header (§6.4), Directory (§6.5), Applet (§6.6), Import (§6.7),
Constant Pool (§6.8), Class (§6.9), Method (§6.10), Static Field (§6.11) and Reference Location (§6.12). No
Export (the package shares nothing), no Descriptor (only an off-card verifier reads it; a card never loads it,
§6.2) and no Debug; the Directory lists them with size 0.

The package holds one class extending javacard.framework.Applet: `install` creates the instance and calls
`register()`, the constructor calls `Applet.<init>`, `process` returns. Static filler methods of arithmetic
bytecode (sspush, sadd, sxor, sstore, return; §7.5) give the Method component a realistic size: the transit
purse's load file is about 10 KB, as the provisioning benchmark asks. The simulator runs none of this bytecode;
a demo applet's behaviour is bound to its module AID (cardsim/applets).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from enum import IntEnum, unique
from typing import Final

from cardsim.applets import BANK_ELF_AID, TRANSIT_ELF_AID
from cardsim.applets.bank import BankCard
from cardsim.applets.transit import TransitPurse
from cardsim.errors import CardSimInputError

MAGIC: Final = bytes.fromhex("DECAFFED")
CAP_FORMAT: Final = (2, 2)
"""(major, minor) of the CAP file format written (JCVM 3.0.5 §6.4)."""
ACC_APPLET: Final = 0x04
"""Header flag: the file has an Applet component (§6.4 Table 6-3)."""
COMPONENT_COUNT: Final = 12
"""Entries of the Directory's component_sizes in format 2.2, tags 1 to 12 (§6.5)."""
JAVA_LANG: Final = (bytes.fromhex("A0000000620001"), (1, 0))
JAVACARD_FRAMEWORK: Final = (bytes.fromhex("A0000000620101"), (1, 3))
"""Imported packages (AID, (major, minor)); javacard.framework 1.3 is Java Card 2.2.2's."""
FRAMEWORK_TOKEN: Final = 0x81
"""External reference to the second imported package (bit 8 set: external, §6.8.1)."""
APPLET_CLASS_TOKEN: Final = 3
APPLET_INIT_TOKEN: Final = 0
REGISTER_TOKEN: Final = 1
PROCESS_TOKEN: Final = 7
"""Tokens of javacard.framework.Applet, its constructor, `register()` and `process(APDU)` in the framework's
export file."""
NO_REFERENCE_FIELDS: Final = 0xFF
"""first_reference_token of a class without reference fields (§6.9)."""
ZIP_DATE: Final = (1980, 1, 1, 0, 0, 0)
"""A fixed entry time: the same demo applet always gives the same JAR, byte for byte."""
DELTA_MAX: Final = 255
"""A Reference Location distance of 255 or more is written as that many 255s plus the remainder (§6.12)."""


@unique
class Tag(IntEnum):
    """Component tags written here (JCVM 3.0.5 §6.1 Table 6-1)."""

    HEADER = 1
    DIRECTORY = 2
    APPLET = 3
    IMPORT = 4
    CONSTANT_POOL = 5
    CLASS = 6
    METHOD = 7
    STATIC_FIELD = 8
    REFERENCE_LOCATION = 9


FILE_NAMES: Final = {Tag.HEADER: "Header.cap", Tag.DIRECTORY: "Directory.cap", Tag.APPLET: "Applet.cap",
                     Tag.IMPORT: "Import.cap", Tag.CONSTANT_POOL: "ConstantPool.cap", Tag.CLASS: "Class.cap",
                     Tag.METHOD: "Method.cap", Tag.STATIC_FIELD: "StaticField.cap",
                     Tag.REFERENCE_LOCATION: "RefLocation.cap"}
"""JAR entry names (§6.1.1 Table 6-2)."""
LOAD_ORDER: Final = (Tag.HEADER, Tag.DIRECTORY, Tag.IMPORT, Tag.APPLET, Tag.CLASS, Tag.METHOD, Tag.STATIC_FIELD,
                     Tag.CONSTANT_POOL, Tag.REFERENCE_LOCATION)
"""The components' order on the card (§6.2; no Export here)."""


@unique
class Op(IntEnum):
    """The bytecodes used (JCVM 3.0.5 §7.5)."""

    SSPUSH = 0x11
    ALOAD_0 = 0x18
    SSTORE = 0x29
    DUP = 0x3D
    SADD = 0x41
    SXOR = 0x57
    RETURN = 0x7A
    INVOKEVIRTUAL = 0x8B
    INVOKESPECIAL = 0x8C
    NEW = 0x8F


@unique
class Constant(IntEnum):
    """Constant pool entries (§6.8): index, in the order written."""

    THIS_CLASS = 0
    """CONSTANT_Classref (1), internal: offset of this class in the Class component."""
    THIS_INIT = 1
    """CONSTANT_StaticMethodref (6), internal: offset of the constructor in the Method component."""
    REGISTER = 2
    """CONSTANT_VirtualMethodref (3): Applet.register()."""
    APPLET_INIT = 3
    """CONSTANT_StaticMethodref (6), external: Applet.<init>."""


@unique
class CpTag(IntEnum):
    """Constant pool entry tags used (§6.8 Table 6-6)."""

    CLASSREF = 1
    VIRTUAL_METHODREF = 3
    STATIC_METHODREF = 6


FILLER_UNITS: Final = 24
"""Arithmetic statements per filler method (9 bytes each)."""
STATIC_FIELD_SIZE_INFO: Final = 6
"""static_field_size_info: image_size, array_init_count, array_init_size, all 0 here (§6.5)."""


@dataclass(frozen=True)
class CapSpec:
    """What a demo CAP file declares: package (internal name, AID, version), the applet and the code size."""

    package: str
    package_aid: bytes
    version: tuple[int, int]
    applet_aid: bytes
    method_size: int
    """Bytes of the Method component's info to reach with filler methods."""


DEMO_CAPS: Final[dict[str, CapSpec]] = {
    "transit": CapSpec("demo/transit", TRANSIT_ELF_AID, (1, 0), TransitPurse.module_aid, 10_000),
    "bank": CapSpec("demo/bank", BANK_ELF_AID, (1, 0), BankCard.module_aid, 6_000),
}
"""The demo applets' CAP files: package AIDs and module AIDs are those of the ROM load files (docs/cardsim.md)."""


def _component(tag: Tag, info: bytes) -> bytes:
    """tag u1, size u2, info (§6.1)."""
    return bytes((tag,)) + len(info).to_bytes(2, "big") + info


def _u2(value: int) -> bytes:
    return value.to_bytes(2, "big")


def _method_header(max_stack: int, nargs: int, max_locals: int) -> bytes:
    """method_header_info, standard form (§6.10): flags 0 | max_stack, nargs | max_locals, nibbles each."""
    return bytes((max_stack, nargs << 4 | max_locals))


@dataclass(frozen=True)
class _Code:
    info: bytes
    init: int
    install: int
    process: int
    byte2_indices: tuple[int, ...]
    """Offsets of the two-byte constant pool indices in `info` (for the Reference Location component)."""


def _methods(method_size: int) -> _Code:
    """The Method component's info (§6.10): no exception handlers, then the methods, each header + bytecode."""
    info = bytearray((0,))  # handler_count
    refs: list[int] = []

    def call(op: Op, constant: Constant) -> None:
        info.append(op)
        refs.append(len(info))
        info.extend(_u2(constant))

    init = len(info)  # Applet subclass constructor: this.<super>(); return
    info += _method_header(1, 1, 0) + bytes((Op.ALOAD_0,))
    call(Op.INVOKESPECIAL, Constant.APPLET_INIT)
    info.append(Op.RETURN)
    install = len(info)  # static install(byte[], short, byte): new <this class>().register(); return
    info += _method_header(2, 3, 0)
    call(Op.NEW, Constant.THIS_CLASS)
    info.append(Op.DUP)
    call(Op.INVOKESPECIAL, Constant.THIS_INIT)
    call(Op.INVOKEVIRTUAL, Constant.REGISTER)
    info.append(Op.RETURN)
    process = len(info)  # process(APDU): return
    info += _method_header(0, 2, 0) + bytes((Op.RETURN,))
    seed = 1
    while len(info) < method_size:  # static filler methods: s = (a + b) ^ c, repeated; return
        info += _method_header(2, 0, 1)
        for _ in range(FILLER_UNITS):
            a, b, c = ((seed * k) & 0xFFFF for k in (0x9E37, 0x79B9, 0x7F4A))
            info += bytes((Op.SSPUSH,)) + _u2(a) + bytes((Op.SSPUSH,)) + _u2(b) + bytes((Op.SADD, Op.SSPUSH))
            info += _u2(c) + bytes((Op.SXOR, Op.SSTORE, 0))
            seed += 1
        info.append(Op.RETURN)
    return _Code(bytes(info), init, install, process, tuple(refs))


def _deltas(offsets: tuple[int, ...]) -> bytes:
    """offsets_to_byte2_indices (§6.12): each distance from the previous index (the first from 0)."""
    out = bytearray()
    previous = 0
    for offset in offsets:
        distance = offset - previous
        out += bytes((DELTA_MAX,)) * (distance // DELTA_MAX) + bytes((distance % DELTA_MAX,))
        previous = offset
    return bytes(out)


def _aid_info(aid: bytes, version: tuple[int, int]) -> bytes:
    """package_info (§6.4): minor_version, major_version, AID_length, AID."""
    return bytes((version[1], version[0], len(aid))) + aid


def _components(spec: CapSpec) -> dict[Tag, bytes]:
    code = _methods(spec.method_size)
    name = spec.package.encode("utf-8")
    imports = (JAVA_LANG, JAVACARD_FRAMEWORK)
    infos: dict[Tag, bytes] = {
        Tag.HEADER: MAGIC + bytes((CAP_FORMAT[1], CAP_FORMAT[0], ACC_APPLET))
        + _aid_info(spec.package_aid, spec.version) + bytes((len(name),)) + name,
        Tag.IMPORT: bytes((len(imports),)) + b"".join(_aid_info(*package) for package in imports),
        Tag.APPLET: bytes((1, len(spec.applet_aid))) + spec.applet_aid + _u2(code.install),
        # signature_pool_length 0; class_info: flags|interface_count, super class Applet (external), instance
        # size, first reference token, reference count, public method table base and count, package method
        # table base and count, the public virtual method table (process)
        Tag.CLASS: _u2(0) + bytes((0, FRAMEWORK_TOKEN, APPLET_CLASS_TOKEN, 0, NO_REFERENCE_FIELDS, 0,
                                   PROCESS_TOKEN, 1, 0, 0)) + _u2(code.process),
        Tag.METHOD: code.info,
        # image_size, reference_count, array_init_count, default_value_count, non_default_value_count: all 0
        Tag.STATIC_FIELD: bytes(10),
        # the class sits after the Class component's two-byte signature_pool_length
        Tag.CONSTANT_POOL: _u2(len(Constant)) + bytes((CpTag.CLASSREF,)) + _u2(2) + bytes((0,))
        + bytes((CpTag.STATIC_METHODREF, 0)) + _u2(code.init)
        + bytes((CpTag.VIRTUAL_METHODREF, FRAMEWORK_TOKEN, APPLET_CLASS_TOKEN, REGISTER_TOKEN))
        + bytes((CpTag.STATIC_METHODREF, FRAMEWORK_TOKEN, APPLET_CLASS_TOKEN, APPLET_INIT_TOKEN)),
        Tag.REFERENCE_LOCATION: _u2(0) + _u2(len(code.byte2_indices)) + _deltas(code.byte2_indices),
    }
    directory_size = 2 * COMPONENT_COUNT + STATIC_FIELD_SIZE_INFO + 3  # component_sizes, sizes, 3 counts
    sizes = [0] * COMPONENT_COUNT  # Export, Descriptor and Debug stay 0: not in this file
    for tag, info in infos.items():
        sizes[tag - 1] = len(info)
    sizes[Tag.DIRECTORY - 1] = directory_size
    infos[Tag.DIRECTORY] = (b"".join(_u2(size) for size in sizes) + bytes(STATIC_FIELD_SIZE_INFO)
                            + bytes((len(imports), 1, 0)))  # import_count, applet_count, custom_count
    return {tag: _component(tag, infos[tag]) for tag in LOAD_ORDER}


@dataclass(frozen=True)
class CapImage:
    """A built CAP file: its components in load order."""

    spec: CapSpec
    components: dict[Tag, bytes]

    def load_file(self) -> bytes:
        """The concatenated form: the Load File Data Block LOAD sends (JCVM 3.0.5 §6.2)."""
        return b"".join(self.components[tag] for tag in LOAD_ORDER)

    def jar(self) -> bytes:
        """The JAR form: a manifest and `<package>/javacard/<Name>.cap` entries (JCVM 3.0.5 §6.1.1)."""
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as jar:
            entries = [("META-INF/MANIFEST.MF", self._manifest())]
            entries += [(f"{self.spec.package}/javacard/{FILE_NAMES[tag]}", self.components[tag])
                        for tag in LOAD_ORDER]
            for name, data in entries:
                entry = zipfile.ZipInfo(name, date_time=ZIP_DATE)
                entry.compress_type = zipfile.ZIP_DEFLATED
                entry.external_attr = 0o644 << 16
                jar.writestr(entry, data)
        return out.getvalue()

    def _manifest(self) -> bytes:
        spec = self.spec

        def aid(value: bytes) -> str:
            return ":".join(f"0x{byte:02x}" for byte in value)

        lines = ["Manifest-Version: 1.0", "Created-By: tsm-hsm cardsim (demo CAP builder)",
                 f"Java-Card-CAP-File-Version: {CAP_FORMAT[0]}.{CAP_FORMAT[1]}",
                 f"Java-Card-Package-Name: {spec.package.replace('/', '.')}",
                 f"Java-Card-Package-Version: {spec.version[0]}.{spec.version[1]}",
                 f"Java-Card-Package-AID: {aid(spec.package_aid)}",
                 f"Java-Card-Applet-1-AID: {aid(spec.applet_aid)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def build_cap(spec: CapSpec) -> CapImage:
    """A CAP file for `spec`."""
    return CapImage(spec, _components(spec))


def demo_cap(name: str) -> CapImage:
    """The CAP file of a demo applet: `transit` or `bank`."""
    spec = DEMO_CAPS.get(name)
    if spec is None:
        raise CardSimInputError(f"no demo applet {name!r} (one of: {', '.join(DEMO_CAPS)})")
    return build_cap(spec)
