"""Status word table: categories (ISO 7816-4 §5.6) and typed errors (GPCS 2.3.1 §11.1.3)."""

from __future__ import annotations

import pytest

from globalplatform import errors, sw


@pytest.mark.parametrize(
    ("status", "category", "error"),
    [
        (0x9000, sw.SwCategory.NORMAL, None),
        (0x6110, sw.SwCategory.NORMAL, None),
        (0x6310, sw.SwCategory.WARNING, None),
        (0x6283, sw.SwCategory.WARNING, errors.ConditionsNotSatisfied),
        (0x6581, sw.SwCategory.EXECUTION_ERROR, errors.CardMemoryError),
        (0x6700, sw.SwCategory.CHECKING_ERROR, errors.WrongLengthOrParameters),
        (0x6C10, sw.SwCategory.CHECKING_ERROR, errors.WrongLengthOrParameters),
        (0x6982, sw.SwCategory.CHECKING_ERROR, errors.SecurityStatusNotSatisfied),
        (0x6985, sw.SwCategory.CHECKING_ERROR, errors.ConditionsNotSatisfied),
        (0x6A82, sw.SwCategory.CHECKING_ERROR, errors.ReferencedDataNotFound),
        (0x6A84, sw.SwCategory.CHECKING_ERROR, errors.CardMemoryError),
        (0x6A88, sw.SwCategory.CHECKING_ERROR, errors.ReferencedDataNotFound),
        (0x6D00, sw.SwCategory.CHECKING_ERROR, errors.FunctionNotSupported),
        (0x6E00, sw.SwCategory.CHECKING_ERROR, errors.FunctionNotSupported),
        (0x9485, sw.SwCategory.APPLICATION_ERROR, errors.CardExecutionError),
        (0x6402, sw.SwCategory.EXECUTION_ERROR, errors.CardExecutionError),
        (0x6B00, sw.SwCategory.CHECKING_ERROR, errors.CardExecutionError),
    ],
)
def test_lookup(status, category, error):
    info = sw.lookup(status)
    assert info.sw == status
    assert info.category is category
    assert info.error is error
    assert info.meaning


def test_table_keys_match_entries():
    assert all(key == info.sw for key, info in sw.SW_TABLE.items())


def test_check_success_and_accept():
    sw.check(0x9000)
    sw.check(0x6310, accept=(sw.Sw.SUCCESS, sw.Sw.MORE_DATA))


def test_check_raises_typed_error_with_code():
    with pytest.raises(errors.ReferencedDataNotFound) as caught:
        sw.check(0x6A88)
    assert caught.value.sw == 0x6A88
    assert caught.value.code == "card_not_found"
    assert "6A88" in str(caught.value)
    assert isinstance(caught.value, errors.GpError)


def test_unaccepted_warning_raises():
    with pytest.raises(errors.CardExecutionError):
        sw.check(0x6310)
