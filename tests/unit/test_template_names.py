"""A template's display names (templateName, templateNameEn; issue 16): parsed, bounded, kept by
updates that do not give them, and shown on the scan page in the page's language."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from resolver.core.errors import HandleError
from resolver.core.templates import MAX_TEMPLATE_NAME, merge_update, parse_template
from resolver.http.scan import _product_type
from resolver.store.scan import PageExtras

ITEMS = [{"name": "名称", "idType": "productName", "idIndex": 2000}]


def test_names_are_optional_stripped_and_shown_by_to_json():
    plain = parse_template({"version": "t-1", "items": ITEMS}, "88.123.45")
    assert plain.name is None and "templateName" not in plain.to_json()
    named = parse_template(
        {"version": "t-1", "items": ITEMS, "templateName": " 通用产品 ", "templateNameEn": "General product"},
        "88.123.45",
    )
    assert named.to_json()["templateName"] == "通用产品"
    assert named.to_json()["templateNameEn"] == "General product"
    assert parse_template({"version": "t-1", "items": ITEMS, "templateName": "  "}, "").name is None


@pytest.mark.parametrize(
    "bad", ["名" * (MAX_TEMPLATE_NAME + 1), "two\nlines", "bell\x07", "c1\x85", 12, ["名"]]
)
def test_a_long_or_control_or_non_string_name_is_refused_in_both_languages(bad):
    with pytest.raises(HandleError) as refused:
        parse_template({"version": "t-1", "items": ITEMS, "templateNameEn": bad}, "")
    assert "templateNameEn" in refused.value.message and "100 characters" in refused.value.message
    assert refused.value.zh is not None and "100 个字符" in refused.value.zh


def test_an_update_replaces_the_names_it_gives_and_keeps_the_others():
    current = parse_template(
        {"version": "t-1", "items": ITEMS, "templateName": "旧名", "templateNameEn": "Old"}, ""
    )
    merged = merge_update(
        current, parse_template({"version": "t-1", "items": ITEMS, "templateName": "新名"}, "")
    )
    assert (merged.name, merged.name_en) == ("新名", "Old")


def test_the_product_type_line_follows_the_page_language_and_falls_back():
    now = datetime.now(UTC)
    both = PageExtras(now, now, "通用产品", "General product")
    assert _product_type(both, "zh") == '<p class="kind">产品类型：通用产品</p>'
    assert _product_type(both, "en") == '<p class="kind">Product type: General product</p>'
    assert (
        _product_type(PageExtras(now, now, "<五金>", None), "en")
        == '<p class="kind">Product type: &lt;五金&gt;</p>'
    )
    assert _product_type(PageExtras(now, now, None, "Tools"), "zh") == '<p class="kind">产品类型：Tools</p>'
    assert _product_type(PageExtras(now, now, None, None), "zh") == ""
    assert _product_type(None, "en") == ""
