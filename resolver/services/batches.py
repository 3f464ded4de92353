"""Identifier registration in the shape of the enterprise API: one item or up to thousands per call.

A batch is validated item by item in Python, then written with a constant number of statements
whatever its size. Every item gets its own result; one bad item never fails the others. Creating
an item that already exists with identical content succeeds, so integrators can retry a batch
after a gateway timeout; different content for an existing handle is that item's error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from resolver.core.errors import RC, HandleError, in_chinese
from resolver.core.handles import HandleName, fold, parse_handle
from resolver.core.permissions import Identity
from resolver.core.policy import Action
from resolver.core.templates import (
    TEMPLATE_INDEX,
    check_values,
    pick_template,
    reference_value,
    template_version_of,
)
from resolver.core.values import StoredValue, parse_values, same_content, timestamp
from resolver.services import signed_writes
from resolver.services.registry import Registry, audit
from resolver.services.statistics import DailyCounter
from resolver.store.rows import PrefixInfo
from resolver.store.tx import Tx

OK = 1
FAILED = -2
CREATED = "登记成功"


@dataclass
class Item:
    """One item of a batch, as parsed."""

    sent: str
    name: HandleName | None = None
    values: list[StoredValue] | None = None
    version: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class ItemResult:
    handle: str
    code: int
    msg: str
    created: bool = False  # a new identifier (not an identical one that was already there)

    def to_json(self) -> dict[str, Any]:
        return {"handle": self.handle, "code": self.code, "msg": self.msg}


def refuse_reserved(value_type: str) -> None:
    """HS_ types are the node's and the Handle API's: the enterprise API and the portal do not
    register them."""
    if fold(value_type).startswith("hs_"):
        raise HandleError(
            RC.INVALID_VALUE,
            f"type {value_type} is reserved; the enterprise API does not register it",
            zh=f"类型 {value_type} 是系统保留类型，不能通过企业接口登记",
        )


def count_new(daily: DailyCounter, results: Sequence[ItemResult]) -> None:
    """New identifiers in the day's registration counts, by the prefix of each handle."""
    for result in results:
        if result.created:
            daily.registered(fold(result.handle).partition("/")[0])


def _refuse_repeats(items: list[Item]) -> None:
    """A handle appearing twice in one batch is an error of the later item."""
    seen: set[str] = set()
    for item in items:
        if item.name is not None:
            if item.name.key in seen:
                item.error, item.name = "同一批次中该标识重复出现", None
            else:
                seen.add(item.name.key)


class Batches:
    """Create, update and delete identifiers in batches, for the enterprise API and the importer."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.limits = registry.limits

    def parse_item(self, raw: object, now: datetime, stamp: str | None = None) -> Item:
        """An enterprise API item `{"handle", "templateVersion", "value": [...]}`, validated."""
        if type(raw) is not dict and not isinstance(raw, Mapping):
            return Item(sent="", error="每一项必须是 JSON 对象 {handle, templateVersion, value}")
        sent = raw.get("handle")
        if not isinstance(sent, str):
            return Item(sent="", error="缺少标识 handle")
        item = Item(sent=sent)
        try:
            name = parse_handle(sent, self.limits)
            self.registry.check_responsible(name)
            raw_values = raw.get("value", raw.get("values"))
            if not isinstance(raw_values, list):
                raise HandleError(
                    RC.INVALID_VALUE, "value must be an array of values", zh="value 必须是标识值数组"
                )
            for value in raw_values:
                if not (type(value) is dict or isinstance(value, Mapping)):
                    continue  # parse_values says what is wrong with it
                if isinstance(value.get("type"), str):
                    refuse_reserved(value["type"])
                if value.get("index") in (TEMPLATE_INDEX, str(TEMPLATE_INDEX)):
                    raise HandleError(
                        RC.INVALID_VALUE,
                        f"index {TEMPLATE_INDEX} is kept for the template reference; name it with templateVersion",
                        zh=f"索引 {TEMPLATE_INDEX} 保留给模板引用，请用 templateVersion 指定模板",
                    )
            version = raw.get("templateVersion")
            if version is not None and (not isinstance(version, str) or not version):
                raise HandleError(
                    RC.INVALID_VALUE,
                    "templateVersion must be a non-empty string",
                    zh="templateVersion 必须是非空字符串",
                )
            extra = [reference_value(version)] if version else []
            item.values = parse_values([*raw_values, *extra], self.limits, now, stamp)
            item.name = name
            item.version = version
        except HandleError as exc:
            item.error = in_chinese(exc)
        return item

    def stored_items(self, rows: Sequence[tuple[str, list[StoredValue]]]) -> list[Item]:
        """Items of (handle, values already parsed, as `resolver import` reads a file's rows)."""
        items: list[Item] = []
        for sent, values in rows:
            item = Item(sent=sent)
            try:
                item.name = parse_handle(sent, self.limits)
                self.registry.check_responsible(item.name)
                for value in values:
                    refuse_reserved(value["type"])
                item.values, item.version = values, template_version_of(values)
            except HandleError as exc:
                item.error, item.name = in_chinese(exc), None
            items.append(item)
        _refuse_repeats(items)
        return items

    def parse_items(self, raw_items: Sequence[object]) -> list[Item]:
        """Parse every item; a handle appearing twice in one batch is an error of the later one."""
        now = datetime.now(UTC)
        stamp = timestamp(now)
        items = [self.parse_item(raw, now, stamp) for raw in raw_items]
        _refuse_repeats(items)
        return items

    async def _owners(self, tx: Tx, items: list[Item]) -> dict[str, PrefixInfo | None]:
        """The enterprise prefix governing each valid item (one query for the whole batch)."""
        return await self.registry.admit(tx, [i.name for i in items if i.name is not None])

    def _own(self, item: Item, owner: PrefixInfo | None) -> bool:
        """The item's values without the node's signature (`Registry.own_values`); a value the
        node's index 400 refuses gets its error and False."""
        assert item.name is not None and item.values is not None
        try:
            item.values = signed_writes.own_values(
                self.registry, owner, item.name, item.values, supplied=True
            )
        except HandleError as exc:
            item.error, item.name = in_chinese(exc), None
            return False
        return True

    async def _authorize(
        self,
        tx: Tx,
        identity: Identity,
        item: Item,
        owner: PrefixInfo | None,
        action: Action,
        old: Sequence[StoredValue] = (),
        new: Sequence[StoredValue] = (),
    ) -> bool:
        """The write policy for one item; a refused item gets its error and False."""
        assert item.name is not None
        try:
            await self.registry.authorize(tx, identity, item.name, owner, action, old, new)
        except HandleError as exc:
            item.error, item.name = in_chinese(exc), None
            return False
        return True

    async def _check_templates(
        self, tx: Tx, items: list[Item], values_of: dict[str, list[StoredValue]]
    ) -> None:
        wanted = sorted(
            {
                (i.name.prefix, v)
                for i in items
                if i.name and (v := template_version_of(values_of[i.name.key]))
            }
        )
        templates = await self.registry.load_templates(tx, wanted)
        for item in items:
            if item.name is None:
                continue
            version = template_version_of(values_of[item.name.key])
            if version is None:
                continue
            try:
                check_values(pick_template(templates, item.name.prefix, version), values_of[item.name.key])
            except HandleError as exc:
                item.error, item.name = in_chinese(exc), None

    async def create(self, identity: Identity, items: list[Item]) -> list[ItemResult]:
        """Register new identifiers; identical re-registration succeeds."""
        chains: list[tuple[str, int]] = []
        async with self.registry.store.write() as tx:
            owners = await self._owners(tx, items)
            for item in items:
                if item.name is not None and item.values is not None:
                    owner = owners[item.name.key]
                    if self._own(item, owner):
                        await self._authorize(tx, identity, item, owner, Action.CREATE, (), item.values)
            await self._check_templates(
                tx, items, {i.name.key: i.values for i in items if i.name and i.values is not None}
            )
            valid = [i for i in items if i.name is not None and i.values is not None]
            stored = await signed_writes.finish_many(
                self.registry,
                tx,
                [(i.name, owners[i.name.key], i.values) for i in valid if i.name and i.values is not None],
                chains,
            )
            inserted = await tx.insert_many(
                [
                    (i.name.key, i.name.text, i.name.prefix, values)
                    for i, values in zip(valid, stored, strict=True)
                    if i.name
                ]
            )
            conflicts = [i for i in valid if i.name and i.name.key not in inserted]
            existing = await tx.fetch_many([i.name.key for i in conflicts if i.name]) if conflicts else {}
            outcome: dict[int, str] = {}
            stored_of = {id(i): values for i, values in zip(valid, stored, strict=True)}
            for item in valid:
                assert item.name is not None and item.values is not None
                if item.name.key in inserted:
                    audit(
                        tx,
                        identity,
                        "handle.create",
                        item.name.key,
                        owners.get(item.name.key),
                        None,
                        stored_of[id(item)],
                    )
                    outcome[id(item)] = CREATED
                else:
                    record = existing.get(item.name.key)
                    before = (
                        None
                        if record is None
                        else signed_writes.own_values(
                            self.registry, owners.get(item.name.key), item.name, record.values, supplied=False
                        )
                    )
                    if same_content(before, item.values):
                        outcome[id(item)] = "标识已存在且内容相同，视为成功"
                    else:
                        item.error = "标识已存在且内容不同；如需修改请调用更新接口"
        self.registry.committed(tx.changed, chains)
        return [
            ItemResult(i.sent, FAILED, i.error)
            if i.error
            else ItemResult(i.sent, OK, outcome[id(i)], created=outcome[id(i)] == CREATED)
            for i in items
        ]

    async def update(self, identity: Identity, items: list[Item]) -> list[ItemResult]:
        """Change existing identifiers: the given values replace those at their indexes, others stay."""
        chains: list[tuple[str, int]] = []
        async with self.registry.store.write() as tx:
            owners = await self._owners(tx, items)
            keys = [i.name.key for i in items if i.name]
            current = await tx.lock_many(keys) if keys else {}
            merged: dict[str, list[StoredValue]] = {}
            for item in items:
                if item.name is None or item.values is None:
                    continue
                record = current.get(item.name.key)
                if record is None:
                    item.error, item.name = "标识不存在，无法更新；请先登记", None
                    continue
                owner = owners[item.name.key]
                if not self._own(item, owner):
                    continue
                old = signed_writes.own_values(self.registry, owner, item.name, record.values, supplied=False)
                by_index = {v["index"]: v for v in old}
                by_index.update({v["index"]: v for v in item.values})
                if len(by_index) > self.limits.max_values_per_handle:
                    item.error, item.name = f"标识值超过 {self.limits.max_values_per_handle} 个", None
                    continue
                new_values = sorted(by_index.values(), key=lambda v: v["index"])
                if await self._authorize(tx, identity, item, owner, Action.CHANGE, old, new_values):
                    merged[item.name.key] = new_values
            await self._check_templates(tx, items, merged)
            names = [i.name for i in items if i.name is not None]
            stored = await signed_writes.finish_many(
                self.registry, tx, [(name, owners[name.key], merged[name.key]) for name in names], chains
            )
            rows = [(name.key, values) for name, values in zip(names, stored, strict=True)]
            await tx.update_many(rows)
            for key, new_values in rows:
                audit(tx, identity, "handle.update", key, owners.get(key), current[key].values, new_values)
        self.registry.committed(tx.changed, chains)
        return [
            ItemResult(i.sent, FAILED, i.error) if i.error else ItemResult(i.sent, OK, "更新成功")
            for i in items
        ]

    async def delete(self, identity: Identity, handles: Sequence[object]) -> list[ItemResult]:
        """Delete identifiers; each gets its own result."""
        items: list[Item] = []
        for raw in handles:
            if not isinstance(raw, str):
                items.append(Item(sent="", error="每一项必须是标识字符串"))
                continue
            item = Item(sent=raw)
            try:
                item.name = parse_handle(raw, self.limits)
                self.registry.check_responsible(item.name)
            except HandleError as exc:
                item.error, item.name = in_chinese(exc), None
            items.append(item)
        _refuse_repeats(items)
        async with self.registry.store.write() as tx:
            owners = await self._owners(tx, items)
            locking = [i.name.key for i in items if i.name]
            current = await tx.lock_many(locking) if locking else {}
            for item in items:
                if item.name is None:
                    continue
                record = current.get(item.name.key)
                if record is None:
                    item.error, item.name = "标识不存在", None
                    continue
                await self._authorize(tx, identity, item, owners[item.name.key], Action.DELETE, record.values)
            keys = [i.name.key for i in items if i.name]
            deleted = await tx.delete_many(keys) if keys else {}
            for item in items:
                if item.name is None:
                    continue
                record = deleted.get(item.name.key)
                if record is None:
                    item.error = "标识不存在"
                    continue
                audit(
                    tx,
                    identity,
                    "handle.delete",
                    item.name.key,
                    owners.get(item.name.key),
                    record.values,
                    None,
                )
        self.registry.lookup.invalidate(tx.changed)
        return [
            ItemResult(i.sent, FAILED, i.error) if i.error else ItemResult(i.sent, OK, "删除成功")
            for i in items
        ]
