"""Data templates (标识数据模板): their definitions, and checking a registration against one.

A registration names its template by a value at index 1001 of type `TEMPLATE` whose data is the
template version. Every other value must match an enabled item of the template by index and type
(values of the `HS_` types that the Handle system itself uses are exempt), required items must be
present, and each value must fit its item's type and lengths.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from resolver.core.errors import RC, HandleError, quoted
from resolver.core.handles import fold, has_control_characters
from resolver.core.values import StoredValue

TEMPLATE_INDEX = 1001
TEMPLATE_TYPE = "TEMPLATE"
FIRST_ITEM_INDEX = 2000
SHARED = ""  # the prefix of templates every enterprise may use
VALUE_TYPES = ("string", "number", "date")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", re.ASCII)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
MAX_TEMPLATE_NAME = 100  # characters of a template's display name (templateName, templateNameEn)


def _bad(message: str, zh: str) -> HandleError:
    return HandleError(RC.INVALID_VALUE, message, zh=zh)


@dataclass(frozen=True)
class TemplateItem:
    """One attribute of a template."""

    name: str
    id_type: str
    id_index: int
    required: bool
    enabled: bool
    value_type: str
    min_length: int | None
    max_length: int | None
    name_en: str | None = None  # an English label for pages, when the template gives one

    def label(self) -> str:
        return f"“{self.name}”({self.id_type}, 索引 {self.id_index})"

    def label_en(self) -> str:
        """The item named in English messages (the Handle API's): its English name when given."""
        return f"'{self.name_en or self.name}' ({self.id_type}, index {self.id_index})"

    def to_json(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {"type": self.value_type}
        if self.min_length is not None:
            metadata["minLength"] = self.min_length
        if self.max_length is not None:
            metadata["maxLength"] = self.max_length
        shown: dict[str, Any] = {
            "name": self.name,
            "idType": self.id_type,
            "idIndex": self.id_index,
            "required": self.required,
            "state": 1 if self.enabled else 0,
            "metadata": metadata,
        }
        if self.name_en:
            shown["nameEn"] = self.name_en
        return shown


@dataclass(frozen=True)
class Template:
    """A template version of a prefix ('' for the shared ones)."""

    prefix: str
    version: str
    industry_codes: tuple[str, ...]
    items: tuple[TemplateItem, ...]
    name: str | None = None  # the display name (Chinese) pages show, e.g. 通用产品
    name_en: str | None = None  # the display name in English

    def to_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "prefix": self.prefix or None,
            "version": self.version,
            "industryCodes": list(self.industry_codes),
            "items": [item.to_json() for item in self.items],
        }
        if self.name:
            shown["templateName"] = self.name
        if self.name_en:
            shown["templateNameEn"] = self.name_en
        return shown


def display_name(raw: object, field: str, what_zh: str) -> str | None:
    """An optional display name (`templateName`, `templateNameEn`): None when absent or blank, else
    the text stripped, at most MAX_TEMPLATE_NAME characters and free of control characters."""
    if raw is None:
        return None
    if not isinstance(raw, str) or len(raw) > MAX_TEMPLATE_NAME or has_control_characters(raw):
        raise _bad(
            f"{field} must be a string of at most {MAX_TEMPLATE_NAME} characters without control characters",
            f"{what_zh} {field} 必须是不超过 {MAX_TEMPLATE_NAME} 个字符的字符串，且不能含控制字符",
        )
    return raw.strip() or None


def _int(raw: object, what: str, what_zh: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise _bad(f"{what} must be an integer", f"{what_zh} 必须是整数")
    try:
        return int(raw)
    except ValueError:
        raise _bad(f"{what} must be an integer", f"{what_zh} 必须是整数") from None


def parse_item(raw: object, position: int) -> TemplateItem:
    """One item of a template definition, validated."""
    where = f"第 {position + 1} 个条目"
    en = f"item {position + 1}"
    if not isinstance(raw, Mapping):
        raise _bad(f"{en} must be an object", f"{where}必须是对象")
    name, id_type = raw.get("name"), raw.get("idType")
    if not isinstance(name, str) or not name.strip():
        raise _bad(f"{en} has no name", f"{where}缺少名称 name")
    if not isinstance(id_type, str) or not id_type.strip() or fold(id_type).startswith("hs_"):
        raise _bad(
            f"{en} '{name}': idType must be a non-empty string not starting with HS_",
            f"{where}“{name}”的 idType 必须是非空字符串且不能以 HS_ 开头",
        )
    index = _int(raw.get("idIndex"), f"{en} '{name}': idIndex", f"{where}“{name}”的 idIndex")
    if index < FIRST_ITEM_INDEX:
        raise _bad(
            f"{en} '{name}': idIndex must be at least {FIRST_ITEM_INDEX} "
            f"({TEMPLATE_INDEX} is kept for the template reference)",
            f"{where}“{name}”的 idIndex 必须不小于 {FIRST_ITEM_INDEX}（{TEMPLATE_INDEX} 保留给模板引用）",
        )
    metadata = raw.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise _bad(f"{en} '{name}': metadata must be an object", f"{where}“{name}”的 metadata 必须是对象")
    value_type = metadata.get("type", "string")
    if value_type not in VALUE_TYPES:
        raise _bad(
            f"{en} '{name}': type must be string, number or date",
            f"{where}“{name}”的类型必须是 string、number 或 date 之一",
        )
    lengths = [
        None if metadata.get(k) is None else _int(metadata.get(k), f"'{name}': {k}", f"“{name}”的 {k}")
        for k in ("minLength", "maxLength")
    ]
    low, high = lengths
    if (
        (low is not None and low < 0)
        or (high is not None and high < 1)
        or (low is not None and high is not None and low > high)
    ):
        raise _bad(f"{en} '{name}': the length limits are not consistent", f"{where}“{name}”的长度限制不合理")
    state = raw.get("state", 1)
    if state not in (0, 1, "0", "1"):
        raise _bad(
            f"{en} '{name}': state must be 1 (enabled) or 0 (disabled)",
            f"{where}“{name}”的 state 必须是 1（启用）或 0（停用）",
        )
    required = raw.get("required", False)
    if not isinstance(required, bool):
        raise _bad(
            f"{en} '{name}': required must be true or false",
            f"{where}“{name}”的 required 必须是 true 或 false",
        )
    name_en = raw.get("nameEn")
    if name_en is not None and (not isinstance(name_en, str) or len(name_en) > 100):
        raise _bad(
            f"{en} '{name}': nameEn must be a string of at most 100 characters",
            f"{where}“{name}”的英文名称 nameEn 必须是不超过 100 个字符的字符串",
        )
    return TemplateItem(
        name.strip(),
        id_type.strip(),
        index,
        required,
        int(state) == 1,
        value_type,
        low,
        high,
        name_en.strip() if name_en else None,
    )


def parse_template(raw: object, prefix: str) -> Template:
    """A template definition as the SNMS v5 template API sends it."""
    if not isinstance(raw, Mapping):
        raise _bad("a template must be a JSON object", "模板必须是 JSON 对象")
    version = raw.get("version")
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise _bad(
            "the template version must be 1 to 64 letters, digits, dots, underscores or hyphens",
            "模板版本 version 必须是 1 到 64 个字母、数字、点、下划线或连字符",
        )
    codes = raw.get("industryCodes", raw.get("industryCategory", []))
    if isinstance(codes, str):
        codes = [codes]
    if not isinstance(codes, list) or not all(isinstance(c, str) and c for c in codes):
        raise _bad(
            "industryCodes must be an array of strings (GB/T 4754 codes)",
            "行业分类 industryCodes 必须是字符串数组（GB/T 4754 代码）",
        )
    raw_items = raw.get("items")
    if not isinstance(raw_items, list) or not raw_items:
        raise _bad("a template needs at least one item in items", "模板至少需要一个条目 items")
    items = tuple(parse_item(item, i) for i, item in enumerate(raw_items))
    seen_index: set[int] = set()
    seen_type: set[str] = set()
    for item in items:
        if item.id_index in seen_index:
            raise _bad(
                f"idIndex {item.id_index} appears twice in the template",
                f"idIndex {item.id_index} 在模板中出现了两次",
            )
        if item.id_type in seen_type:
            raise _bad(
                f"idType {item.id_type} appears twice in the template",
                f"idType {item.id_type} 在模板中出现了两次",
            )
        seen_index.add(item.id_index)
        seen_type.add(item.id_type)
    name = display_name(raw.get("templateName"), "templateName", "模板名称")
    name_en = display_name(raw.get("templateNameEn"), "templateNameEn", "模板英文名称")
    return Template(prefix, version, tuple(codes), items, name, name_en)


def merge_update(current: Template, update: Template) -> Template:
    """Apply an update: items may be added or switched on and off, never changed or removed; the
    display names (presentation only) are replaced when the update gives them."""
    by_index = {item.id_index: item for item in current.items}
    merged = list(current.items)
    for item in update.items:
        old = by_index.get(item.id_index)
        if old is None:
            if any(other.id_type == item.id_type for other in merged):
                raise _bad(
                    f"idType {item.id_type} is used by another item",
                    f"idType {item.id_type} 已被其他条目使用",
                )
            merged.append(item)
        elif replace(old, enabled=item.enabled) != item:
            raise _bad(
                f"item {old.label_en()} is published: it can only be enabled or disabled, not changed; "
                "add an item or a new template version",
                f"条目 {old.label()} 已发布，只能启用或停用，不能修改；请新增条目或新建模板版本",
            )
        else:
            merged[merged.index(old)] = item
    return replace(
        current,
        industry_codes=update.industry_codes or current.industry_codes,
        items=tuple(merged),
        name=update.name or current.name,
        name_en=update.name_en or current.name_en,
    )


def template_version_of(values: Sequence[StoredValue]) -> str | None:
    """The template version a record names at index 1001, if any."""
    for value in values:
        if value["index"] == TEMPLATE_INDEX:
            data = value["data"]["value"]
            return data if isinstance(data, str) else None
    return None


def reference_value(version: str) -> dict[str, Any]:
    """The value at index 1001 that names a template version."""
    return {"index": TEMPLATE_INDEX, "type": TEMPLATE_TYPE, "data": {"format": "string", "value": version}}


def check_text(item: TemplateItem, text: str) -> None:
    """Raise rc 202 naming the item when a string value does not fit it."""
    if not item.enabled:
        raise _bad(
            f"template item {item.label_en()} is disabled and takes no new values",
            f"模板条目 {item.label()} 已停用，不能再登记",
        )
    if item.min_length is not None and len(text) < item.min_length:
        raise _bad(
            f"template item {item.label_en()}: the value is too short, "
            f"at least {item.min_length} characters, got {len(text)}",
            f"模板条目 {item.label()} 的值太短：至少 {item.min_length} 个字符，实际 {len(text)} 个",
        )
    if item.max_length is not None and len(text) > item.max_length:
        raise _bad(
            f"template item {item.label_en()}: the value is too long, "
            f"at most {item.max_length} characters, got {len(text)}",
            f"模板条目 {item.label()} 的值太长：至多 {item.max_length} 个字符，实际 {len(text)} 个",
        )
    if item.value_type == "number" and not _NUMBER.fullmatch(text):
        raise _bad(
            f"template item {item.label_en()} requires a number, got {quoted(text)}",
            f"模板条目 {item.label()} 要求数字，实际为 {quoted(text)}",
        )
    if item.value_type == "date":
        try:
            if not _DATE.fullmatch(text):
                raise ValueError
            date.fromisoformat(text)
        except ValueError:
            raise _bad(
                f"template item {item.label_en()} requires a date YYYY-MM-DD, got {quoted(text)}",
                f"模板条目 {item.label()} 要求日期 YYYY-MM-DD，实际为 {quoted(text)}",
            ) from None


def _check_item(item: TemplateItem, value: StoredValue) -> None:
    if value["type"] != item.id_type:
        raise _bad(
            f"value {value['index']} has type {value['type']}, "
            f"template item {item.label_en()} requires {item.id_type}",
            f"值 {value['index']} 的类型是 {value['type']}，模板条目 {item.label()} 要求 {item.id_type}",
        )
    if not item.enabled:
        raise _bad(
            f"template item {item.label_en()} is disabled and takes no new values",
            f"模板条目 {item.label()} 已停用，不能再登记",
        )
    data = value["data"]
    if data.get("format") != "string" or not isinstance(data.get("value"), str):
        raise _bad(
            f"template item {item.label_en()}: the value must be a string (format string)",
            f"模板条目 {item.label()} 的值必须是字符串（format string）",
        )
    check_text(item, data["value"])


def missing_required(template: Template, present: set[int]) -> None:
    """Raise naming the first enabled required item that is not among `present` indexes."""
    for item in template.items:
        if item.required and item.enabled and item.id_index not in present:
            raise _bad(
                f"the required template item {item.label_en()} is missing",
                f"缺少必填的模板条目 {item.label()}",
            )


def check_values(template: Template, values: Sequence[StoredValue]) -> None:
    """Raise rc 202 naming the offending item when the values do not fit the template."""
    items = {item.id_index: item for item in template.items}
    present: set[int] = set()
    for value in values:
        index = value["index"]
        if index == TEMPLATE_INDEX:
            if value["type"] != TEMPLATE_TYPE:
                raise _bad(
                    f"index {TEMPLATE_INDEX} is kept for the template reference (type {TEMPLATE_TYPE})",
                    f"索引 {TEMPLATE_INDEX} 保留给模板引用（类型 {TEMPLATE_TYPE}）",
                )
            continue
        if fold(value["type"]).startswith("hs_"):
            continue
        item = items.get(index)
        if item is None:
            raise _bad(
                f"value {index} ({value['type']}) is not an item of template {template.version}",
                f"值 {index}（{value['type']}）不在模板 {template.version} 的条目中",
            )
        _check_item(item, value)
        present.add(index)
    missing_required(template, present)


def pick_template(templates: Mapping[tuple[str, str], Template], prefix: str, version: str) -> Template:
    """The template a value set naming `version` under `prefix` must fit: the prefix's own version,
    else the shared one of that version."""
    template = templates.get((prefix, version)) or templates.get((SHARED, version))
    if template is None:
        raise HandleError(
            RC.INVALID_VALUE,
            f"template version {version} does not exist (neither under prefix {prefix} nor shared)",
            zh=f"模板版本 {version} 不存在（前缀 {prefix} 及通用模板中都没有）",
        )
    return template
