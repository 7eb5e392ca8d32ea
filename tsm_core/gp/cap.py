"""Java Card CAP files as a TSM receives them (JCVM 3.0.5 §6), and the Load File Data Block they give (GPCS
2.3.1 §11.6.2.3): pure, bounded, typed.

Two forms are read. The JAR form (JCVM 3.0.5 §6.1.1): a ZIP whose entries `<any/dirs>/javacard/<Name>.cap`
(Table 6-2, names not case sensitive) each hold one component; other entries (manifest, export files, custom
components) are ignored. The concatenated form: the components one after another (JCVM §6.1: tag u1, size u2,
info), in the order Java Card loads them (§6.2), which is what LOAD carries after tag 'C4' and what some
tools save as a `.ijc`.

Parsed: the Header (§6.4: CAP format, flags, package AID and version, package name from format 2.2), the
Directory (§6.5: component sizes, import and applet counts, checked against the components present), the
Import (§6.7: imported package AIDs and versions) and the Applet (§6.6: applet AIDs, install method offsets)
components; the others are kept as bytes. Bad input raises `CapFormatError`, too much input `CapTooLarge`
(the whole input, the number of ZIP entries and each entry are bounded, and an entry is never decompressed
beyond its bound, so a ZIP bomb costs at most COMPONENT_MAX bytes).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
import zlib
from dataclasses import dataclass
from enum import Enum, IntEnum, IntFlag, unique
from typing import Final

from globalplatform import tlv
from globalplatform.errors import GpError


class CapFormatError(GpError):
    """Bytes that are not a Java Card CAP file in either form (JCVM 3.0.5 §6)."""

    code = "gp_cap_format"


class CapTooLarge(CapFormatError):
    """A CAP file, ZIP entry or entry count beyond the bounds a Java Card package can need."""

    code = "gp_cap_too_large"


@unique
class Component(IntEnum):
    """CAP file component tags (JCVM 3.0.5 §6.1 Table 6-1)."""

    HEADER = 1
    DIRECTORY = 2
    APPLET = 3
    IMPORT = 4
    CONSTANT_POOL = 5
    CLASS = 6
    METHOD = 7
    STATIC_FIELD = 8
    REFERENCE_LOCATION = 9
    EXPORT = 10
    DESCRIPTOR = 11
    DEBUG = 12


FILE_NAMES: Final[dict[Component, str]] = {tag: f"{name}.cap" for tag, name in zip(Component, (
    "Header", "Directory", "Applet", "Import", "ConstantPool", "Class", "Method", "StaticField", "RefLocation",
    "Export", "Descriptor", "Debug"), strict=True)}
"""Component file names in the JAR form (JCVM 3.0.5 §6.1.1 Table 6-2)."""
_BY_FILE_NAME: Final = {name.lower(): tag for tag, name in FILE_NAMES.items()}

LOAD_ORDER: Final = (
    Component.HEADER, Component.DIRECTORY, Component.IMPORT, Component.APPLET, Component.CLASS, Component.METHOD,
    Component.STATIC_FIELD, Component.EXPORT, Component.CONSTANT_POOL, Component.REFERENCE_LOCATION,
)
"""The order a card receives the components in (JCVM 3.0.5 §6.2); the Descriptor may follow, the Debug never."""
REQUIRED: Final = frozenset({
    Component.HEADER, Component.DIRECTORY, Component.IMPORT, Component.CLASS, Component.METHOD,
    Component.STATIC_FIELD, Component.CONSTANT_POOL, Component.REFERENCE_LOCATION,
})
"""Components every loadable CAP file has (§6.1: Applet, Export and Debug are optional; the Descriptor, which a
card never needs, is accepted missing)."""

MAGIC: Final = bytes.fromhex("DECAFFED")
"""Header magic (JCVM 3.0.5 §6.4)."""
ZIP_MAGIC: Final = b"PK\x03\x04"
"""A ZIP local file header (APPNOTE.TXT §4.3.7): the JAR form."""
CAP_MAJOR: Final = 2
CAP_MINORS: Final = frozenset({1, 2})
"""CAP formats read: 2.1 (Java Card 2.1.x, and what converters still write for simple packages) and 2.2
(JCVM 3.0.5 §6.4, compact)."""
COMPONENT_SIZES_2_1: Final = 11
"""Format 2.1 has no Debug entry in the Directory's component_sizes; 2.2 has all 12."""
COMPONENT_HEADER_LEN: Final = 3
COMPONENT_MAX: Final = COMPONENT_HEADER_LEN + 0xFFFF
"""A component's size item is a u2: no component (and no JAR entry holding one) can be larger."""
MAX_INPUT: Final = 4 * 1024 * 1024
"""Largest input accepted, in either form (12 components of at most 64 KB, plus a JAR's other entries)."""
MAX_ENTRIES: Final = 512
"""Most entries a CAP JAR may have (the converter writes a manifest and up to 12 components)."""


@unique
class HeaderFlag(IntFlag):
    """Header flags (JCVM 3.0.5 §6.4 Table 6-3); EXTENDED is Java Card 3.1's extended format, not read here."""

    INT = 0x01
    EXPORT = 0x02
    APPLET = 0x04
    EXTENDED = 0x08


@unique
class HashAlgorithm(Enum):
    """Load File Data Block hash algorithms (GPCS 2.3.1 §11.5.2.3.1, Annex C.2): SHA-256 by default, SHA-1 for
    profiles of older cards; the length of the hash in INSTALL [for load] names the algorithm."""

    SHA1 = "sha1"
    SHA256 = "sha256"
    SHA384 = "sha384"
    SHA512 = "sha512"


@dataclass(frozen=True)
class Version:
    """A major.minor version (a package's, JCVM 3.0.5 §4.5; or the CAP format's, §6.4)."""

    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


@dataclass(frozen=True)
class ImportedPackage:
    """One entry of the Import component (JCVM 3.0.5 §6.7)."""

    aid: bytes
    version: Version


@dataclass(frozen=True)
class AppletEntry:
    """One entry of the Applet component (JCVM 3.0.5 §6.6): an Executable Module as GP calls it."""

    aid: bytes
    install_method_offset: int
    """Offset of the install method's header in the Method component's info."""


@dataclass(frozen=True)
class CapFile:
    """A parsed CAP file; `components` holds each component whole (tag, size, info), in load order."""

    cap_version: Version
    flags: HeaderFlag
    package_aid: bytes
    package_version: Version
    package_name: str | None
    """The package's internal name (`com/example/x`), in format 2.2 headers only."""
    applets: tuple[AppletEntry, ...]
    imports: tuple[ImportedPackage, ...]
    components: tuple[tuple[Component, bytes], ...]

    @property
    def applet_aids(self) -> tuple[bytes, ...]:
        """The Executable Module AIDs (INSTALL [for install] P1 '04', GPCS 2.3.1 §11.5.2.3.2)."""
        return tuple(applet.aid for applet in self.applets)

    @property
    def component_sizes(self) -> dict[str, int]:
        """Each component's size item (info bytes), by component name."""
        return {tag.name.lower(): len(raw) - COMPONENT_HEADER_LEN for tag, raw in self.components}

    def component(self, tag: Component) -> bytes | None:
        """One component whole, or None when the file has none."""
        return next((raw for found, raw in self.components if found == tag), None)

    def load_file_data_block(self, *, include_descriptor: bool = False) -> bytes:
        """The components a card loads, in the JCVM 3.0.5 §6.2 order; the Descriptor last when asked for and
        present. This is what LOAD sends under tag 'C4' (GPCS 2.3.1 §11.6.2.3)."""
        wanted = (*LOAD_ORDER, Component.DESCRIPTOR) if include_descriptor else LOAD_ORDER
        return b"".join(raw for tag, raw in self.components if tag in wanted)

    def load_file_hash(self, algorithm: HashAlgorithm = HashAlgorithm.SHA256, *,
                       include_descriptor: bool = False) -> bytes:
        """The Load File Data Block Hash (GPCS 2.3.1 §11.5.2.3.1, Annex C.2) over exactly what LOAD sends."""
        return hashlib.new(algorithm.value, self.load_file_data_block(include_descriptor=include_descriptor)).digest()


def _name(tag: Component) -> str:
    """The component's name as Table 6-2 spells it (ConstantPool, RefLocation, ...)."""
    return FILE_NAMES[tag].removesuffix(".cap")


class _Reader:
    """Bounds-checked reads of one component's info; every overrun is a CapFormatError naming the component."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.what, self.pos = data, what, 0

    def take(self, count: int) -> bytes:
        end = self.pos + count
        if end > len(self.data):
            raise CapFormatError(f"{self.what} component is truncated at byte {self.pos}")
        out, self.pos = self.data[self.pos : end], end
        return out

    def u1(self) -> int:
        return self.take(1)[0]

    def u2(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def aid(self) -> bytes:
        aid = self.take(self.u1())
        if not tlv.AID_MIN <= len(aid) <= tlv.AID_MAX:
            raise CapFormatError(f"{self.what} component holds an AID of {len(aid)} bytes "
                                 f"(ISO 7816-5: {tlv.AID_MIN} to {tlv.AID_MAX})")
        return aid

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def done(self) -> None:
        if self.remaining():
            raise CapFormatError(f"{self.what} component has {self.remaining()} bytes after its last item")


def _component(raw: bytes, expected: Component | None = None) -> tuple[Component, bytes]:
    """Tag and info of one whole component, checking its size item."""
    if len(raw) < COMPONENT_HEADER_LEN:
        raise CapFormatError("a CAP component needs a tag and a two-byte size")
    try:
        tag = Component(raw[0])
    except ValueError:
        raise CapFormatError(f"unknown CAP component tag {raw[0]} (JCVM 3.0.5 Table 6-1: 1 to 12)") from None
    if expected is not None and tag != expected:
        raise CapFormatError(f"{FILE_NAMES[expected]} holds a component with tag {raw[0]}")
    size = int.from_bytes(raw[1:COMPONENT_HEADER_LEN], "big")
    if len(raw) - COMPONENT_HEADER_LEN != size:
        raise CapFormatError(f"{_name(tag)} component declares {size} bytes, "
                             f"holds {len(raw) - COMPONENT_HEADER_LEN}")
    return tag, raw[COMPONENT_HEADER_LEN:]


def split_components(data: bytes) -> dict[Component, bytes]:
    """The components of the concatenated form, which must come in the JCVM 3.0.5 §6.2 order (Descriptor
    last, if at all) and each once."""
    order = (*LOAD_ORDER, Component.DESCRIPTOR)
    found: dict[Component, bytes] = {}
    pos = 0
    while pos < len(data):
        if pos + COMPONENT_HEADER_LEN > len(data):
            raise CapFormatError(f"truncated component header at byte {pos}")
        end = pos + COMPONENT_HEADER_LEN + int.from_bytes(data[pos + 1 : pos + COMPONENT_HEADER_LEN], "big")
        if end > len(data):
            raise CapFormatError(f"the component at byte {pos} overruns the load file ({end} > {len(data)})")
        tag, _ = _component(data[pos:end])
        if tag not in order:
            raise CapFormatError(f"the {_name(tag)} component is never loaded (JCVM 3.0.5 §6.2)")
        if found and order.index(tag) <= order.index(next(reversed(found))):
            raise CapFormatError(f"the {_name(tag)} component is out of the load order or repeated "
                                 f"(JCVM 3.0.5 §6.2: " + ", ".join(_name(t) for t in order) + ")")
        found[tag] = data[pos:end]
        pos = end
    return found


def jar_components(data: bytes) -> dict[Component, bytes]:
    """The component entries `…/javacard/<Name>.cap` of the JAR form (JCVM 3.0.5 §6.1.1), all under one
    package directory; the Debug component and other entries are skipped."""
    found: dict[Component, bytes] = {}
    package_dir: str | None = None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as jar:
            entries = jar.infolist()
            if len(entries) > MAX_ENTRIES:
                raise CapTooLarge(f"the JAR has {len(entries)} entries (at most {MAX_ENTRIES})")
            for entry in entries:
                directory, _, name = entry.filename.rpartition("/")
                tag = _BY_FILE_NAME.get(name.lower())
                if tag is None or tag is Component.DEBUG or directory.rpartition("/")[2].lower() != "javacard":
                    continue
                if package_dir not in (None, directory):
                    raise CapFormatError(f"the JAR holds CAP components under both {package_dir}/ and {directory}/")
                package_dir = directory
                if tag in found:
                    raise CapFormatError(f"the JAR holds {FILE_NAMES[tag]} twice")
                if entry.file_size > COMPONENT_MAX:
                    raise CapTooLarge(f"{entry.filename} declares {entry.file_size} bytes (a component has at most "
                                      f"{COMPONENT_MAX})")
                with jar.open(entry) as stream:
                    raw = stream.read(COMPONENT_MAX + 1)  # never inflate more than one component can hold
                if len(raw) > COMPONENT_MAX:
                    raise CapTooLarge(f"{entry.filename} inflates beyond {COMPONENT_MAX} bytes")
                found[tag] = raw
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError, OSError,
            zlib.error, ValueError) as exc:
        raise CapFormatError(f"not a readable CAP JAR: {exc}") from None
    if not found:
        raise CapFormatError("the JAR holds no javacard/*.cap component entries (JCVM 3.0.5 §6.1.1)")
    for tag, raw in found.items():
        _component(raw, tag)
    return found


def _header(info: bytes) -> tuple[Version, HeaderFlag, bytes, Version, str | None]:
    """JCVM 3.0.5 §6.4: magic, CAP format, flags, package_info, and (format 2.2) package_name_info."""
    reader = _Reader(info, "Header")
    if reader.take(len(MAGIC)) != MAGIC:
        raise CapFormatError("the Header component does not start with the magic DECAFFED (JCVM 3.0.5 §6.4)")
    minor, major = reader.u1(), reader.u1()
    cap_version = Version(major, minor)
    if major != CAP_MAJOR or minor not in CAP_MINORS:
        raise CapFormatError(f"CAP format {cap_version} is not read here (2.1 and 2.2)")
    flags = reader.u1()
    if flags & ~(HeaderFlag.INT | HeaderFlag.EXPORT | HeaderFlag.APPLET):
        raise CapFormatError(f"Header flags {flags:02X}: only ACC_INT, ACC_EXPORT and ACC_APPLET are read here")
    package_minor, package_major = reader.u1(), reader.u1()
    package_aid = reader.aid()
    name = None
    if minor >= 2 and reader.remaining():
        raw_name = reader.take(reader.u1())
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            raise CapFormatError("the package name in the Header component is not UTF-8") from None
    reader.done()
    return cap_version, HeaderFlag(flags), package_aid, Version(package_major, package_minor), name


def _directory(info: bytes, cap_version: Version) -> tuple[list[int], int, int]:
    """JCVM 3.0.5 §6.5: component_sizes, static_field_size_info, import and applet counts, custom components."""
    reader = _Reader(info, "Directory")
    count = COMPONENT_SIZES_2_1 if cap_version.minor < 2 else len(Component)
    sizes = [reader.u2() for _ in range(count)]
    reader.take(6)  # static_field_size_info: image_size, array_init_count, array_init_size
    import_count, applet_count, custom_count = reader.u1(), reader.u1(), reader.u1()
    for _ in range(custom_count):
        reader.take(3)  # component_tag, size
        reader.aid()
    reader.done()
    return sizes, import_count, applet_count


def _imports(info: bytes) -> tuple[ImportedPackage, ...]:
    """JCVM 3.0.5 §6.7: count, package_info (minor, major, AID) each."""
    reader = _Reader(info, "Import")
    packages = []
    for _ in range(reader.u1()):
        minor, major = reader.u1(), reader.u1()
        packages.append(ImportedPackage(reader.aid(), Version(major, minor)))
    reader.done()
    return tuple(packages)


def _applets(info: bytes) -> tuple[AppletEntry, ...]:
    """JCVM 3.0.5 §6.6: count, then AID and install_method_offset (u2) each."""
    reader = _Reader(info, "Applet")
    applets = []
    for _ in range(reader.u1()):
        aid = reader.aid()
        applets.append(AppletEntry(aid, reader.u2()))
    reader.done()
    if len({applet.aid for applet in applets}) != len(applets):
        raise CapFormatError("the Applet component lists an applet AID twice")
    return tuple(applets)


def _check_directory(found: dict[Component, bytes], sizes: list[int]) -> None:
    """Every component present has the size the Directory lists; a listed Applet or Export is present (§6.5)."""
    for position, size in enumerate(sizes):
        tag = Component(position + 1)
        raw = found.get(tag)
        if raw is None:
            if size and tag in (Component.APPLET, Component.EXPORT):
                raise CapFormatError(f"the Directory lists a {_name(tag)} component of {size} bytes "
                                     "that is missing")
            continue
        if len(raw) - COMPONENT_HEADER_LEN != size:
            raise CapFormatError(f"the Directory gives the {_name(tag)} component {size} bytes, "
                                 f"it has {len(raw) - COMPONENT_HEADER_LEN}")


def cap_from_components(found: dict[Component, bytes]) -> CapFile:
    """A CapFile from whole components keyed by tag (either form), with the cross-checks of JCVM 3.0.5 §6."""
    missing = sorted(REQUIRED - found.keys())
    if missing:
        raise CapFormatError("missing required component(s): " + ", ".join(FILE_NAMES[t] for t in missing))
    info = {tag: _component(raw, tag)[1] for tag, raw in found.items()}
    cap_version, flags, package_aid, package_version, name = _header(info[Component.HEADER])
    sizes, import_count, applet_count = _directory(info[Component.DIRECTORY], cap_version)
    _check_directory(found, sizes)
    imports = _imports(info[Component.IMPORT])
    applets = _applets(info[Component.APPLET]) if Component.APPLET in info else ()
    if (import_count, applet_count) != (len(imports), len(applets)):
        raise CapFormatError(f"the Directory counts {import_count} import(s) and {applet_count} applet(s), the "
                             f"components hold {len(imports)} and {len(applets)}")
    for flag, tag in ((HeaderFlag.APPLET, Component.APPLET), (HeaderFlag.EXPORT, Component.EXPORT)):
        if bool(flags & flag) != (tag in found):
            raise CapFormatError(f"the Header flag ACC_{flag.name} does not match the "
                                 f"{_name(tag)} component's presence (JCVM 3.0.5 §6.4)")
    method_size = len(info[Component.METHOD])
    for applet in applets:
        if applet.install_method_offset >= method_size:
            raise CapFormatError(f"applet {applet.aid.hex().upper()}: install method offset "
                                 f"{applet.install_method_offset} is outside the Method component ({method_size})")
    order = (*LOAD_ORDER, Component.DESCRIPTOR)
    components = tuple((tag, found[tag]) for tag in order if tag in found)
    return CapFile(cap_version, flags, package_aid, package_version, name, applets, imports, components)


def parse_cap(data: bytes) -> CapFile:
    """Parse a CAP file in the JAR form (starts with a ZIP local header) or the concatenated form (starts with
    the Header tag 01)."""
    if len(data) > MAX_INPUT:
        raise CapTooLarge(f"{len(data)} bytes is more than a CAP file can need ({MAX_INPUT})")
    if data.startswith(ZIP_MAGIC):
        return cap_from_components(jar_components(data))
    if data[:1] == bytes((Component.HEADER,)):
        return cap_from_components(split_components(data))
    raise CapFormatError("neither a CAP JAR (ZIP) nor concatenated CAP components (which start with the Header "
                         "component, tag 01)")
