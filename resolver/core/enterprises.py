"""Enterprises and their prefixes: credit codes and the life cycle of a prefix."""

from __future__ import annotations

from enum import IntEnum

from resolver.core.errors import RC, HandleError

# GB 32100-2015: 31 characters (no I, O, S, V, Z), weights 3^i mod 31.
_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_VALUE = {c: i for i, c in enumerate(_ALPHABET)}
_WEIGHTS = [pow(3, i, 31) for i in range(17)]


def credit_code_check_character(first17: str) -> str:
    """The check character of a unified social credit code, from its first 17 characters."""
    total = sum(_VALUE[c] * w for c, w in zip(first17, _WEIGHTS, strict=True))
    return _ALPHABET[(31 - total % 31) % 31]


def valid_credit_code(code: str) -> bool:
    """True for an 18-character code over the GB 32100 alphabet whose check character fits."""
    return (
        len(code) == 18
        and all(c in _VALUE for c in code)
        and credit_code_check_character(code[:17]) == code[17]
    )


class PrefixState(IntEnum):
    """Prefix states, numbered as deployed secondary nodes number them."""

    DISABLED = 0
    ENABLED = 1
    PENDING_DELETION = 2
    REJECTED = 3
    AWAITING_REVIEW = 4
    UNDER_REVIEW = 5


# the states in which a prefix's enterprise reads its identifiers (Registry.list_handles, the portal)
READABLE = frozenset({PrefixState.ENABLED, PrefixState.DISABLED})

STATE_NAMES = {
    PrefixState.DISABLED: "已停用",
    PrefixState.ENABLED: "已启用",
    PrefixState.PENDING_DELETION: "待删除",
    PrefixState.REJECTED: "已驳回",
    PrefixState.AWAITING_REVIEW: "待审核",
    PrefixState.UNDER_REVIEW: "审核中",
}

TRANSITIONS: dict[PrefixState, frozenset[PrefixState]] = {
    PrefixState.AWAITING_REVIEW: frozenset({PrefixState.UNDER_REVIEW, PrefixState.REJECTED}),
    PrefixState.UNDER_REVIEW: frozenset({PrefixState.ENABLED, PrefixState.REJECTED}),
    PrefixState.REJECTED: frozenset({PrefixState.AWAITING_REVIEW}),
    PrefixState.ENABLED: frozenset({PrefixState.DISABLED, PrefixState.PENDING_DELETION}),
    PrefixState.DISABLED: frozenset({PrefixState.ENABLED, PrefixState.PENDING_DELETION}),
    PrefixState.PENDING_DELETION: frozenset({PrefixState.DISABLED}),
}


def check_transition(current: PrefixState, wanted: PrefixState) -> None:
    """Refuse a state change the life cycle does not allow, saying which ones it does."""
    if wanted not in TRANSITIONS[current]:
        allowed = "、".join(f"{s.value}({STATE_NAMES[s]})" for s in sorted(TRANSITIONS[current]))
        allowed_en = ", ".join(str(s.value) for s in sorted(TRANSITIONS[current]))
        raise HandleError(
            RC.PROTOCOL_ERROR,
            f"the prefix state cannot change from {current.value} to {wanted.value}; allowed: {allowed_en}",
            zh=f"前缀状态不能从 {current.value}({STATE_NAMES[current]}) 变为 "
            f"{wanted.value}({STATE_NAMES[wanted]})；可变为：{allowed}",
        )
