"""The columns of a sheet of identifiers (CSV or .xlsx) as `resolver import` reads them, and as
`resolver export` and the rejected-rows report write them, so that what the node writes imports
back unchanged.

A header holds `handle` first, then any of:
- `index:type` columns (`1:URL`): a string value at that index, of that type;
- columns named as a template names its items (the item's name, or its idType): the row's template
  says which index and type they fill;
- `templateVersion` (or 模板版本): the row's template version (`--template` gives it to rows whose
  cell is empty, or to every row of a file without the column);
- `values`: a JSON array of further values (what no cell can hold: other data formats, TTLs,
  permissions, control characters);
- `拒绝原因` (or `reason`): what the rejected-rows report adds; ignored on import.
The last three are written only by the node: in a file holding one of them, cells are restored
from the neutralisation the node applies to what it writes (`resolver.core.csvcells`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import orjson

from resolver.core.csvcells import cell as _cell
from resolver.core.csvcells import json_cell, visible
from resolver.core.errors import HandleError, in_chinese
from resolver.core.handles import fold, has_control_characters
from resolver.core.templates import TEMPLATE_INDEX, Template, TemplateItem, pick_template
from resolver.core.values import DEFAULT_TTL, StoredValue

HANDLE = "handle"
TEMPLATE_COLUMN = "templateVersion"
VALUES_COLUMN = "values"
REASON_COLUMN = "拒绝原因"
_TEMPLATE_NAMES = frozenset({"templateversion", "模板版本"})
_REASON_NAMES = frozenset({"拒绝原因", "reason"})
_FIXED = re.compile(r"(\d{1,10}):(.+)", re.ASCII)
SECRET_TYPE = "hs_seckey"
SECRETS_REFUSED = (
    "批量导入不接受 HS_SECKEY（密钥）值：密钥只经 Handle API 登记，由节点以散列保存 "
    "/ an import carries no HS_SECKEY values: secrets are registered through the Handle API, which hashes them"
)


@dataclass
class Plan:
    """How the cells of a row with one template (or none) become values: for each position of the
    header, the index and type it fills and the template item it must fit, or why a cell there is
    refused."""

    template: Template | None
    version: str | None
    index: list[int | None]  # by position; None: not a value column
    value_type: list[str]
    items: list[TemplateItem | None]
    refused: dict[int, str]  # position -> why a non-empty cell there is refused
    order: list[int]  # value positions by index (stored values are ordered by index)


@dataclass
class Shape:
    """What a header says: where the handle, the template version, the JSON values and the report's
    reason are, and what each other column is."""

    columns: list[str]
    default_version: str | None
    templates: Mapping[tuple[str, str], Template]
    version_at: int | None = None
    values_at: int | None = None
    reason_at: int | None = None
    fixed: dict[int, tuple[int, str]] = field(default_factory=dict)  # `index:type` columns
    named: dict[int, str] = field(default_factory=dict)  # columns named by template items
    unnamed: list[int] = field(default_factory=list)  # columns without a name (cells must be empty)
    _plans: dict[tuple[str, str | None], Plan | str] = field(default_factory=dict)

    @property
    def node_written(self) -> bool:
        """A file the node wrote (an export, a report): its cells are restored on import."""
        return self.values_at is not None or self.reason_at is not None or self.version_at is not None

    @property
    def width(self) -> int:
        return len(self.columns)

    @classmethod
    def from_header(
        cls, header: Sequence[str], default_version: str | None, templates: Mapping[tuple[str, str], Template]
    ) -> Shape:
        """Raises ValueError for a header that cannot be read."""
        # a byte-order mark read as text (--encoding naming a codec that keeps it) is not a name
        columns = [h.strip().lstrip("\ufeff").strip() for h in header]
        while columns and not columns[-1]:
            columns.pop()  # spreadsheets write empty cells after the last named column
        if not columns or columns[0].lower() != HANDLE:
            raise ValueError("表头第一列必须是 handle")
        shape = cls(columns, default_version or None, templates)
        for position, name in enumerate(columns[1:], start=1):
            lowered = name.lower()
            if lowered in _TEMPLATE_NAMES:
                shape.version_at = shape._once(shape.version_at, position, name)
            elif lowered == VALUES_COLUMN:
                shape.values_at = shape._once(shape.values_at, position, name)
            elif lowered in _REASON_NAMES:
                shape.reason_at = shape._once(shape.reason_at, position, name)
            elif not name:
                shape.unnamed.append(position)
            elif match := _FIXED.fullmatch(name):
                value_type = match.group(2).strip()
                if fold(value_type) == SECRET_TYPE:
                    raise ValueError(SECRETS_REFUSED)
                shape.fixed[position] = (int(match.group(1)), value_type)
            else:
                shape.named[position] = name
        if shape.named and shape.default_version is None and shape.version_at is None:
            first = next(iter(shape.named.values()))
            raise ValueError(
                f"列名 {first} 应为 索引:类型（例如 1:URL），或模板条目的名称（此时用 --template 指定模板版本，"
                f"或加一列 {TEMPLATE_COLUMN}）"
            )
        # two columns that fill the same value in every row (when a row has two cells for one
        # index only in some rows, that row is refused)
        filled: dict[tuple[int, str], int] = {}
        for position, (index, value_type) in shape.fixed.items():
            shape._distinct(filled, (index, fold(value_type)), position, index)
        if shape.default_version is not None:
            candidates = [t for (_, v), t in templates.items() if v == shape.default_version]
            if not candidates:
                raise ValueError(f"模板版本 {shape.default_version} 不存在")
            for name in shape.named.values():
                if not any(_item_named(t, name) for t in candidates):
                    raise ValueError(
                        f"列 {name} 不是模板 {shape.default_version} 的条目（用 idType 或名称作列名）"
                    )
            if shape.version_at is None and len(candidates) == 1:
                for position, name in shape.named.items():
                    item = _item_named(candidates[0], name)
                    assert item is not None
                    shape._distinct(filled, (item.id_index, fold(item.id_type)), position, item.id_index)
        return shape

    def _distinct(
        self, filled: dict[tuple[int, str], int], key: tuple[int, str], position: int, index: int
    ) -> None:
        if key in filled:
            raise ValueError(
                f"列 {self.columns[position]} 与列 {self.columns[filled[key]]} 是同一个索引 {index}"
            )
        filled[key] = position

    def _once(self, current: int | None, position: int, name: str) -> int:
        if current is not None:
            raise ValueError(f"列 {name} 出现了两次")
        return position

    def plan(self, prefix: str, version: str | None) -> Plan | str:
        """The plan for rows under `prefix` (folded) naming `version`, or why such rows are refused."""
        key = (prefix, version)
        found = self._plans.get(key)
        if found is None:
            try:
                found = self._plan(prefix, version)
            except HandleError as exc:
                found = in_chinese(exc)
            self._plans[key] = found
        return found

    def _plan(self, prefix: str, version: str | None) -> Plan:
        template = pick_template(self.templates, prefix, version) if version else None
        width = self.width
        plan = Plan(template, version, [None] * width, [""] * width, [None] * width, {}, [])
        by_index = {i.id_index: i for i in template.items} if template else {}
        for position, (index, value_type) in self.fixed.items():
            item = by_index.get(index)
            if template is not None and fold(value_type).startswith("hs_"):  # (as check_values)
                item = None
            elif template is not None and (item is None or fold(item.id_type) != fold(value_type)):
                plan.refused[position] = f"值 {index}（{value_type}）不在模板 {version} 的条目中"
                continue
            plan.index[position], plan.value_type[position], plan.items[position] = index, value_type, item
        for position, name in self.named.items():
            item = _item_named(template, name) if template else None
            if item is None:
                plan.refused[position] = (
                    f"列 {name} 不是模板 {version} 的条目"
                    if template
                    else f"列 {name} 是模板条目的名称，但该行没有模板版本"
                )
                continue
            plan.index[position], plan.value_type[position], plan.items[position] = (
                item.id_index,
                item.id_type,
                item,
            )
        for position in self.unnamed:
            plan.refused[position] = f"第 {position + 1} 列没有列名"
        plan.order = sorted(
            (p for p in range(width) if plan.index[p] is not None), key=lambda p: plan.index[p] or 0
        )
        return plan

    # -- writing: the cells of a stored record under this header (export, reports) ---------------

    def cells_of(self, handle: str, values: Sequence[StoredValue], neutralise: bool = True) -> list[str]:
        """The row that imports back as exactly these values, each cell neutralised for CSV
        (`csvcells.cell`; a workbook's string cells run nothing); what no column holds goes to the
        `values` column."""
        cell = _cell if neutralise else visible
        row = [""] * self.width
        row[0] = cell(handle)
        version = next((v["data"]["value"] for v in values if v["index"] == TEMPLATE_INDEX), None)
        if version is not None and self.version_at is not None:
            row[self.version_at] = cell(str(version))
        plan = self.plan(_prefix_of(handle), version if isinstance(version, str) else None)
        where: dict[tuple[int, str], int] = {}
        if isinstance(plan, Plan):
            where = {
                (index, fold(plan.value_type[p])): p
                for p in range(self.width)
                if (index := plan.index[p]) is not None and p not in plan.refused
            }
        rest: list[StoredValue] = []
        for value in values:
            if value["index"] == TEMPLATE_INDEX and (
                self.version_at is not None or version == self.default_version
            ):
                continue  # in its column, or what --template gives every row
            position = where.get((value["index"], fold(value["type"])))
            if position is not None and fits_a_cell(value):
                row[position] = cell(value["data"]["value"])
            else:
                rest.append(value)
        if rest:
            if self.values_at is None:
                raise ValueError("record has values that no column of this header holds")
            row[self.values_at] = json_cell(orjson.dumps([_without_timestamp(v) for v in rest]))
        return row


def _item_named(template: Template, name: str) -> TemplateItem | None:
    """The item a column name names: by name first, then by idType (case as the template has it)."""
    return next((i for i in template.items if i.name == name), None) or next(
        (i for i in template.items if i.id_type == name), None
    )


def _exempt(value: StoredValue) -> bool:
    """A value of the Handle system's own types, which templates do not cover."""
    return fold(value["type"]).startswith("hs_")


def _prefix_of(handle: str) -> str:
    return fold(handle.partition("/")[0])


def _without_timestamp(value: StoredValue) -> dict[str, object]:
    return {k: v for k, v in value.items() if k != "timestamp"}


def fits_a_cell(value: StoredValue) -> bool:
    """A value a cell holds exactly: a string with the default TTL and permissions, no references,
    nothing a spreadsheet would not keep (control characters)."""
    data = value["data"]
    text = data.get("value")
    return (
        data.get("format") == "string"
        and isinstance(text, str)
        and text != ""
        and value["ttl"] == DEFAULT_TTL
        and "permissions" not in value
        and not value.get("references")
        and not has_control_characters(text)
    )


class ExportShape:
    """The header an export is written under, from the records it holds (`add` each, then
    `shape`): the template version (when one names a template), the items of each template used,
    in its order and as it names them, an `index:type` column for each other value a cell holds,
    and `values` for the rest."""

    def __init__(self, templates: Mapping[tuple[str, str], Template]) -> None:
        self.templates = templates
        self.versions: dict[tuple[str, str], Template | None] = {}
        self.fixed: dict[tuple[int, str], str] = {}
        self.needs_values = False

    def add(self, handle: str, values: Sequence[StoredValue]) -> None:
        version = next((v["data"]["value"] for v in values if v["index"] == TEMPLATE_INDEX), None)
        template = None
        if isinstance(version, str):
            key = (_prefix_of(handle), version)
            if key not in self.versions:
                try:
                    self.versions[key] = pick_template(self.templates, *key)
                except HandleError:
                    self.versions[key] = None
                    self.needs_values = True  # its values cannot go to item columns
            template = self.versions[key]
        elif version is not None:
            self.needs_values = True
        by_index = {i.id_index: i for i in template.items} if template else {}
        for value in values:
            if value["index"] == TEMPLATE_INDEX:
                continue
            item = by_index.get(value["index"])
            matches = item is not None and fold(item.id_type) == fold(value["type"])
            if not fits_a_cell(value) or (template is not None and not matches and not _exempt(value)):
                self.needs_values = True  # (a value the template does not have stays as JSON)
            elif not matches:
                key2 = (value["index"], fold(value["type"]))
                self.fixed.setdefault(key2, f"{value['index']}:{value['type']}")

    def shape(self) -> Shape:
        names: list[str] = [HANDLE]
        if self.versions:
            names.append(TEMPLATE_COLUMN)
        reserved = {HANDLE, VALUES_COLUMN, *_TEMPLATE_NAMES, *_REASON_NAMES}
        for template in (t for t in self.versions.values() if t is not None):
            for item in template.items:
                # the item's name, unless another item of its template has it first or it reads
                # as another kind of column; then its idType
                name = item.name
                if (
                    _item_named(template, name) is not item
                    or name.lower() in reserved
                    or _FIXED.fullmatch(name)
                ):
                    name = item.id_type
                if name not in names:  # a name two templates share is one column: each row has its own
                    names.append(name)
        names += [self.fixed[key] for key in sorted(self.fixed)]
        if self.needs_values or len(names) == 1:
            names.append(VALUES_COLUMN)
        return Shape.from_header(names, None, self.templates)
