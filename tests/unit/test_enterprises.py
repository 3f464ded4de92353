"""Credit codes and the prefix life cycle."""

from __future__ import annotations

import pytest

from resolver.core.enterprises import (
    PrefixState,
    check_transition,
    credit_code_check_character,
    valid_credit_code,
)
from resolver.core.errors import HandleError
from tests.enterprise_helpers import credit_code


def test_generated_codes_are_valid_and_any_change_is_caught():
    code = credit_code(12345)
    assert valid_credit_code(code)
    # changing any single character breaks the check (weights are non-zero modulo a prime)
    for position in range(18):
        for replacement in "0123456789ABCDEFGHJKLMNPQRTUWXY":
            changed = code[:position] + replacement + code[position + 1 :]
            assert valid_credit_code(changed) == (changed == code)


def test_known_check_character():
    # weights 3^i mod 31 over the 17 characters, check = (31 - sum mod 31) mod 31
    first17 = "91350100M000100Y4"
    total = sum("0123456789ABCDEFGHJKLMNPQRTUWXY".index(c) * pow(3, i, 31) for i, c in enumerate(first17))
    assert credit_code_check_character(first17) == "0123456789ABCDEFGHJKLMNPQRTUWXY"[(31 - total % 31) % 31]


@pytest.mark.parametrize(
    "code",
    ["", "123", "91350100M000100Y4", "91350100M000100Y4XX", "91350100I000100Y40", "91350100o000100Y40"],
)
def test_malformed_codes(code):
    assert not valid_credit_code(code)


def test_life_cycle():
    check_transition(PrefixState.AWAITING_REVIEW, PrefixState.UNDER_REVIEW)
    check_transition(PrefixState.UNDER_REVIEW, PrefixState.ENABLED)
    check_transition(PrefixState.ENABLED, PrefixState.DISABLED)
    check_transition(PrefixState.DISABLED, PrefixState.ENABLED)
    with pytest.raises(HandleError, match="allowed: ") as refused:
        check_transition(PrefixState.AWAITING_REVIEW, PrefixState.ENABLED)
    # the operator API answers in Chinese (exc.zh), the Handle API in English (exc.message)
    assert refused.value.zh is not None and "可变为" in refused.value.zh
    with pytest.raises(HandleError):
        check_transition(PrefixState.REJECTED, PrefixState.ENABLED)
