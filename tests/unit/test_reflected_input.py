"""Error messages repeat a client's bad value so the client can find it, but never as markup: the
recursion fuzzer (tests/security/test_fuzz_recursion.py, seed 2323479572) sent
`index=<script>alert(1)</script>` and read it back inside the message. Every message that quotes
input goes through core.errors.quoted."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from resolver.config import Limits
from resolver.core import structured
from resolver.core.errors import HandleError, UnsupportedEncoding, quoted
from resolver.core.templates import TemplateItem, check_text
from resolver.core.values import parse_int, parse_ttl

MARKUP = "<script>alert(1)</script>&amp;"


def _item(value_type: str) -> TemplateItem:
    return TemplateItem("名称", "name", 2, True, True, value_type, None, None)


def test_quoted_escapes_markup_and_cuts_long_values() -> None:
    assert quoted(MARKUP, 80) == r"'\x3cscript\x3ealert(1)\x3c/script\x3e\x26amp;'"
    assert "<" not in quoted(MARKUP) and ">" not in quoted(MARKUP) and "&" not in quoted(MARKUP)
    assert quoted("x" * 100) == "'" + "x" * 39
    assert quoted("x" * 100, 80) == "'" + "x" * 79
    assert quoted(12) == "12" and quoted("plain") == "'plain'"


def _message(call: object) -> str:
    with pytest.raises((HandleError, ValueError)) as caught:
        call()  # type: ignore[operator]
    return str(getattr(caught.value, "message", caught.value))


@pytest.mark.parametrize(
    "call",
    [
        lambda: parse_int(MARKUP, "index", 0, 10),
        lambda: parse_ttl(MARKUP, datetime.now(UTC)),
        lambda: structured.normalize(MARKUP, {}, Limits()),
        lambda: check_text(_item("number"), MARKUP),
        lambda: check_text(_item("date"), MARKUP),
    ],
    ids=["index", "ttl", "format", "template-number", "template-date"],
)
def test_messages_name_the_value_without_its_markup(call: object) -> None:
    message = _message(call)
    assert "script" in message, message  # the value is still named
    assert "<" not in message and ">" not in message, message


def test_content_encoding_refusal_does_not_reflect_markup() -> None:
    message = UnsupportedEncoding(MARKUP).message
    assert "x3cscript" in message and "<" not in message
