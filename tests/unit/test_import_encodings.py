"""How the importer picks a file's text encoding (resolver/bulk/encodings.py)."""

from __future__ import annotations

import codecs
import io

import pytest

from resolver.bulk import encodings


def test_a_byte_order_mark_means_utf8() -> None:
    raw = io.BytesIO(codecs.BOM_UTF8 + b"handle\r\n")
    assert encodings.choose(raw) == "utf-8-sig" and raw.tell() == 0


def test_utf8_then_gb18030_then_utf8() -> None:
    assert encodings.choose(io.BytesIO("handle,名称\n".encode())) == "utf-8-sig"
    assert encodings.choose(io.BytesIO("handle,名称\n".encode("gbk"))) == "gb18030"
    assert (
        encodings.choose(io.BytesIO(b"\xff\xfe\xff\xff")) == "utf-8-sig"
    )  # neither: UTF-8 errors name lines


def test_a_character_cut_at_the_end_of_the_sample_is_not_an_error() -> None:
    text = ("名" * (encodings.SAMPLE // 3 + 1)).encode()  # the sample ends inside a character
    assert encodings.choose(io.BytesIO(text)) == "utf-8-sig"


def test_the_override_wins_and_is_checked() -> None:
    assert encodings.choose(io.BytesIO("名".encode()), "GBK") == "gbk"
    assert encodings.choose(io.BytesIO(b""), "UTF8") == "utf-8-sig"
    with pytest.raises(ValueError, match="nope"):
        encodings.choose(io.BytesIO(b""), "nope")


def test_a_row_with_undecodable_octets_is_named() -> None:
    cells = "88.123/A,螺母".encode("gbk").decode("utf-8", errors=encodings.ERRORS).split(",")
    refusal = encodings.undecodable(cells, 7, "utf-8-sig")
    assert refusal is not None and "第 7 行" in refusal and "--encoding gb18030" in refusal
    assert encodings.undecodable(["88.123/A", "螺母"], 7, "utf-8-sig") is None


def test_a_mostly_utf8_file_with_a_row_in_gbk_stays_utf8() -> None:
    """GB18030 decodes nearly any octets: choosing it for such a file would garble the UTF-8 rows."""
    data = "88.123/A,螺栓垫圈\n".encode() * 3 + "88.123/B,螺母\n".encode("gbk")
    assert encodings.choose(io.BytesIO(data)) == "utf-8-sig"
