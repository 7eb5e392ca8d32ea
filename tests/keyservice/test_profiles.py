"""HSM profiles: every shipped profile is well formed and its strategy table fits the code and its mechanisms."""

from __future__ import annotations

import pytest

from hsm_profiles import loader
from keyservice import strategy
from keyservice.errors import ConfigurationError


@pytest.mark.parametrize("name", loader.names())
def test_profile_strategies_are_implemented_and_backed_by_mechanisms(name):
    profile = loader.load(name)
    table = strategy.profile_table(profile.strategies, name)
    declared = {loader.KNOWN[m] for m in profile.mechanisms}
    for op, chosen in table.items():
        needs = strategy.STRATEGIES[chosen].mechanisms
        assert needs <= declared, f"{name}: {op} uses {chosen} without its mechanisms"


def test_softhsm2_profile_is_the_table_the_code_proves():
    assert strategy.profile_table(loader.load("softhsm2").strategies, "softhsm2") == strategy.SOFTHSM2
    assert loader.load("softhsm2").tested and not loader.load("thales-luna7").tested


def test_bad_tables_are_refused():
    good = dict(loader.load("softhsm2").strategies)
    with pytest.raises(ConfigurationError):
        strategy.profile_table({k: v for k, v in good.items() if k != "kcv"}, "x")
    with pytest.raises(ConfigurationError):
        strategy.profile_table({**good, "scp03_session_keys": "derive_twice"}, "x")
    with pytest.raises(loader.ProfileError):
        loader.load("no-such-hsm")
