"""Template definitions and the checks of a registration against a template, one rule each."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from resolver.config import Limits
from resolver.core.errors import HandleError
from resolver.core.templates import check_values, merge_update, parse_template, reference_value
from resolver.core.values import parse_values

TEMPLATE = parse_template(
    {
        "version": "1.0",
        "industryCodes": ["C3459"],
        "items": [
            {
                "name": "产品名称",
                "idType": "name",
                "idIndex": 2000,
                "required": True,
                "metadata": {"type": "string", "minLength": 2, "maxLength": 5},
            },
            {"name": "重量", "idType": "weight", "idIndex": 2001, "metadata": {"type": "number"}},
            {"name": "生产日期", "idType": "date", "idIndex": 2002, "metadata": {"type": "date"}},
            {"name": "旧字段", "idType": "old", "idIndex": 2003, "state": 0},
        ],
    },
    "88.123.45",
)


def values(*raw):
    return parse_values([reference_value("1.0"), *raw], Limits(), datetime.now(UTC))


def v(index, value_type, data):
    return {"index": index, "type": value_type, "data": data}


def test_a_fitting_registration_passes():
    check_values(
        TEMPLATE,
        values(
            v(2000, "name", "螺栓"),
            v(2001, "weight", "12.5"),
            v(2002, "date", "2026-11-21"),
            v(
                100,
                "HS_ADMIN",
                {"format": "admin", "value": {"handle": "0.NA/88.123.45", "index": 200, "permissions": "1"}},
            ),
        ),
    )


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ([v(2000, "name", "螺栓"), v(2999, "extra", "x")], "不在模板"),
        ([v(2000, "title", "螺栓")], "要求 name"),
        ([v(2000, "name", "螺栓"), v(2003, "old", "x")], "已停用"),
        ([v(2001, "weight", "1")], "缺少必填"),
        ([v(2000, "name", "螺")], "太短"),
        ([v(2000, "name", "螺栓螺栓螺栓")], "太长"),
        ([v(2000, "name", "螺栓"), v(2001, "weight", "heavy")], "要求数字"),
        ([v(2000, "name", "螺栓"), v(2002, "date", "2026-02-30")], "要求日期"),
        ([v(2000, "name", "螺栓"), v(2002, "date", "21/11/2026")], "要求日期"),
        ([v(2000, "name", {"format": "hex", "value": "00"})], "字符串"),
    ],
)
def test_each_rule_names_the_offending_item(raw, fragment):
    with pytest.raises(HandleError) as caught:
        check_values(TEMPLATE, values(*raw))
    # the enterprise API answers the Chinese (zh); the Handle API the English message
    assert caught.value.zh is not None and fragment in caught.value.zh


def test_index_1001_is_the_template_reference():
    with pytest.raises(HandleError, match="1001"):
        check_values(
            TEMPLATE,
            parse_values(
                [v(1001, "NOT_TEMPLATE", "1.0"), v(2000, "name", "螺栓")], Limits(), datetime.now(UTC)
            ),
        )


@pytest.mark.parametrize(
    ("items", "fragment"),
    [
        ([{"name": "a", "idType": "a", "idIndex": 1999}], "2000"),
        (
            [{"name": "a", "idType": "a", "idIndex": 2000}, {"name": "b", "idType": "b", "idIndex": 2000}],
            "两次",
        ),
        ([{"name": "a", "idType": "HS_X", "idIndex": 2000}], "HS_"),
        ([{"name": "a", "idType": "a", "idIndex": 2000, "metadata": {"type": "blob"}}], "string"),
        (
            [{"name": "a", "idType": "a", "idIndex": 2000, "metadata": {"minLength": 5, "maxLength": 2}}],
            "长度",
        ),
        ([], "至少"),
    ],
)
def test_definitions_are_checked(items, fragment):
    with pytest.raises(HandleError) as caught:
        parse_template({"version": "1.0", "items": items}, "88.123.45")
    # the enterprise API answers the Chinese (zh); the Handle API the English message
    assert caught.value.zh is not None and fragment in caught.value.zh


def test_updates_add_and_switch_items_but_never_change_them():
    added = parse_template(
        {"version": "1.0", "items": [{"name": "颜色", "idType": "color", "idIndex": 2010}]}, "88.123.45"
    )
    merged = merge_update(TEMPLATE, added)
    assert [i.id_index for i in merged.items] == [2000, 2001, 2002, 2003, 2010]
    disabled = parse_template(
        {"version": "1.0", "items": [{**TEMPLATE.items[1].to_json(), "state": 0}]}, "88.123.45"
    )
    assert not merge_update(TEMPLATE, disabled).items[1].enabled
    changed = parse_template(
        {"version": "1.0", "items": [{**TEMPLATE.items[0].to_json(), "idType": "title"}]}, "88.123.45"
    )
    with pytest.raises(HandleError, match="can only be enabled or disabled") as refused:
        merge_update(TEMPLATE, changed)
    assert refused.value.zh is not None and "只能启用或停用" in refused.value.zh
