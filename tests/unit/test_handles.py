"""Handle parsing, case folding, scope, with property tests for the round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resolver.config import Limits
from resolver.core.errors import RC, HandleError
from resolver.core.handles import NodeScope, fold, parse_handle, strip_scheme

LIMITS = Limits()
segment = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_",
    min_size=1,
    max_size=8,
)
prefixes = st.lists(segment, min_size=1, max_size=4).map(".".join)
suffixes = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\x7f"),
    min_size=1,
    max_size=60,
).filter(lambda s: not any(0x80 <= ord(c) <= 0x9F for c in s))


@given(prefixes, suffixes)
def test_parse_keeps_the_text_and_folds_only_ascii(prefix, suffix):
    name = parse_handle(f"{prefix}/{suffix}", LIMITS)
    assert name.text == f"{prefix}/{suffix}"
    assert name.prefix == fold(prefix) and name.suffix == suffix
    assert name.key == fold(name.text)
    assert parse_handle(name.key, LIMITS).key == name.key  # folding is idempotent
    assert parse_handle("hdl:" + name.text, LIMITS) == name


@given(st.text(max_size=30))
def test_fold_changes_only_ascii_capitals(text):
    folded = fold(text)
    assert len(folded) == len(text)
    for a, b in zip(text, folded, strict=True):
        assert b == (a.lower() if "A" <= a <= "Z" else a)


def test_fold_leaves_non_ascii_letters():
    assert fold("88.123/ÄBC-Ж") == "88.123/Äbc-Ж"


@pytest.mark.parametrize("scheme", ["hdl:", "HDL:", "doi:", "info:hdl/", "urn:hdl:"])
def test_schemes_are_stripped(scheme):
    assert strip_scheme(scheme + "88.123/x") == "88.123/x"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("88 123", "segments"),
        ("0.NA/88.123/x", "segments"),
        ("88.123/", "empty suffix"),
        ("/abc", "prefix is empty"),
        ("88..123/x", "segments"),
        ("88 123/x", "segments"),
        ("88.123/a\nb", "control"),
        ("88.123/a\x85b", "control"),
        ("88.123/" + "x" * 300, "longer than 255"),
        ("8" * 65 + "/x", "prefix is longer"),
    ],
)
def test_invalid_handles_name_the_reason(raw, reason):
    with pytest.raises(HandleError) as caught:
        parse_handle(raw, LIMITS)
    assert caught.value.rc == RC.INVALID_HANDLE and reason in caught.value.message


@pytest.mark.parametrize("raw", ["88.123", "hdl:88.123", "88.123.45", "0.NA"])
def test_a_bare_prefix_names_its_prefix_handle(raw):
    """MistraR/handle HandleServer.java doResolution (and doListHandles, doHomeNA): a handle without
    '/' is first turned into its prefix handle by Util.convertSlashlessHandleToZeroNaHandle
    (`88.123` -> `0.NA/88.123`); the lookup key folds case as every handle's does."""
    bare = strip_scheme(raw)
    name = parse_handle(raw, LIMITS)
    assert name == parse_handle(f"0.NA/{bare}", LIMITS)
    assert name.text == f"0.NA/{bare}" and name.key == fold(f"0.na/{bare}")
    assert name.is_prefix_handle and name.suffix == bare
    assert NodeScope("88.123").is_responsible(name) == (bare != "0.NA")


def test_a_bare_prefix_is_no_template_to_mint_under():
    """Minting needs `<prefix>/`: a bare prefix there stays an error (rc 102)."""
    with pytest.raises(HandleError) as caught:
        parse_handle("88.123", LIMITS, allow_empty_suffix=True)
    assert caught.value.rc == RC.INVALID_HANDLE and "no '/'" in caught.value.message


def test_scope_answers_for_its_prefix_tree_and_prefix_handles():
    scope = NodeScope("88.123")
    assert scope.is_responsible(parse_handle("88.123/x", LIMITS))
    assert scope.is_responsible(parse_handle("88.123.45/x", LIMITS))
    assert scope.is_responsible(parse_handle("0.NA/88.123.45", LIMITS))
    assert scope.is_responsible(parse_handle("0.na/88.123", LIMITS))
    assert not scope.is_responsible(parse_handle("88.1234/x", LIMITS))
    assert not scope.is_responsible(parse_handle("88/x", LIMITS))
    assert not scope.is_responsible(parse_handle("0.NA/88", LIMITS))


def test_governing_prefix_handles_nearest_first():
    scope = NodeScope("88.123")
    assert scope.governing_prefix_handles(parse_handle("88.123.45.6/x", LIMITS)) == [
        "0.na/88.123.45.6",
        "0.na/88.123.45",
        "0.na/88.123",
    ]
    assert scope.governing_prefix_handles(parse_handle("0.NA/88.123.45", LIMITS)) == ["0.na/88.123"]
    assert scope.governing_prefix_handles(parse_handle("0.NA/88.123", LIMITS)) == []
