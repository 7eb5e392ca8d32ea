"""One generic test per kind of declaration: every TLV definition and every command builder round-trips its
stored examples (osmocom pySim `_test_de_encode` style)."""

from __future__ import annotations

import pytest

from globalplatform import tlv
from globalplatform.apdu import CommandApdu
from tsm_core.gp import commands, install, storedata
from tsm_core.gp.commands import BuilderExample

BUILDER_MODULES = (commands, install, storedata)
BUILDER_EXAMPLES = [example for module in BUILDER_MODULES for example in module.BUILDER_EXAMPLES]

TLV_EXAMPLES = [
    pytest.param(definition, hex_text, decoded, id=f"{definition.name}-{n}")
    for definition in tlv.TLV_DEFINITIONS
    for n, (hex_text, decoded) in enumerate(definition.examples)
]


def test_every_tlv_definition_has_examples():
    assert all(definition.examples for definition in tlv.TLV_DEFINITIONS)


@pytest.mark.parametrize(("definition", "hex_text", "decoded"), TLV_EXAMPLES)
def test_tlv_round_trip(definition, hex_text, decoded):
    raw = tlv.h(hex_text)
    assert definition.decode(raw) == decoded
    assert definition.encode(decoded) == raw


def _ids(example: BuilderExample) -> str:
    return f"{example.builder.__name__}-{'-'.join(example.expected)[:24]}"


@pytest.mark.parametrize("example", BUILDER_EXAMPLES, ids=_ids)
def test_builder_round_trip(example: BuilderExample):
    built = example.builder(**example.kwargs)
    apdus = built if isinstance(built, list) else [built]
    expected = [tlv.h(hex_text) for hex_text in example.expected]
    assert [apdu.to_bytes() for apdu in apdus] == expected
    assert [CommandApdu.from_bytes(raw) for raw in expected] == apdus


HELPERS = {"aid_field", "lv", "block_number", "split_blocks", "max_block_size", "dgi"}


def test_every_builder_has_an_example():
    builders = {
        name
        for module in BUILDER_MODULES
        for name, value in vars(module).items()
        if callable(value)
        and getattr(value, "__module__", None) == module.__name__
        and not name.startswith("_")
        and not isinstance(value, type)
        and name not in HELPERS
    }
    assert builders == {example.builder.__name__ for example in BUILDER_EXAMPLES}
