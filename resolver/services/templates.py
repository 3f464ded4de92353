"""Data templates of a prefix: define, extend, disable items, list. Versions never change meaning."""

from __future__ import annotations

from typing import Any

from resolver.core.errors import RC, HandleError
from resolver.core.handles import check_prefix
from resolver.core.permissions import Identity
from resolver.core.templates import SHARED, Template, merge_update, parse_template
from resolver.services.registry import Registry
from resolver.store import enterprises
from resolver.store import templates as db
from resolver.store.rows import AuditEntry


class TemplateRegistry:
    """Templates per enterprise prefix, plus the shared ones every enterprise may use."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.store = registry.store

    async def _owned_prefix(self, raw_prefix: object, identity: Identity) -> tuple[str, int | None]:
        """The prefix a caller may manage templates of: its enterprise's, or any for the node admin."""
        if raw_prefix in (None, "") and self.registry.is_node_admin(identity):
            return SHARED, None
        if not isinstance(raw_prefix, str):
            raise HandleError(RC.PROTOCOL_ERROR, "prefix is missing", zh="缺少前缀 prefix")
        prefix = check_prefix(raw_prefix, self.registry.limits)
        owner = await enterprises.prefix_owner(self.store, prefix)
        if self.registry.is_node_admin(identity):
            if owner is None and not self.registry.scope.owns_prefix(prefix):
                raise HandleError(
                    RC.SERVER_NOT_RESPONSIBLE,
                    f"prefix {raw_prefix} is not on this node",
                    zh=f"前缀 {raw_prefix} 不在本节点",
                )
            return prefix, owner
        if owner is None or owner != identity.enterprise_id:
            raise HandleError(
                RC.INSUFFICIENT_PERMISSIONS,
                f"prefix {raw_prefix} is not this enterprise's; its templates are not yours to manage",
                zh=f"前缀 {raw_prefix} 不属于本企业，不能管理其模板",
            )
        return prefix, owner

    async def create(self, body: object, identity: Identity) -> Template:
        """A new template version."""
        if not isinstance(body, dict):
            raise HandleError(
                RC.PROTOCOL_ERROR, "a template must be a JSON object", zh="模板必须是 JSON 对象"
            )
        prefix, owner = await self._owned_prefix(body.get("prefix"), identity)
        template = parse_template(body, prefix)
        async with self.store.write() as tx:
            if not await db.insert_template(tx, template):
                raise HandleError(
                    RC.HANDLE_ALREADY_EXISTS,
                    f"template version {template.version} exists; versions do not change, use a new version",
                    zh=f"模板版本 {template.version} 已存在；版本不可修改，请使用新的版本号",
                )
            tx.audit(AuditEntry(identity.name, "template.create", None, owner, None, template.to_json()))
        return template

    async def update(self, body: object, identity: Identity) -> Template:
        """Add items to a version, or switch items on and off."""
        if not isinstance(body, dict):
            raise HandleError(
                RC.PROTOCOL_ERROR, "a template must be a JSON object", zh="模板必须是 JSON 对象"
            )
        prefix, owner = await self._owned_prefix(body.get("prefix"), identity)
        update = parse_template(body, prefix)
        async with self.store.write() as tx:
            current = await db.lock_template(tx, prefix, update.version)
            if current is None:
                raise HandleError(
                    RC.HANDLE_NOT_FOUND,
                    f"no template version {update.version}",
                    zh=f"模板版本 {update.version} 不存在",
                )
            merged = merge_update(current, update)
            await db.update_template(tx, merged)
            tx.audit(
                AuditEntry(identity.name, "template.update", None, owner, current.to_json(), merged.to_json())
            )
        return merged

    async def list(
        self, raw_prefix: str | None, version: str | None, identity: Identity
    ) -> list[dict[str, Any]]:
        """The templates a prefix may use: its own and the shared ones."""
        prefixes = [SHARED]
        if raw_prefix:
            prefix, _ = await self._owned_prefix(raw_prefix, identity)
            prefixes.append(prefix)
        templates = [t.to_json() for t in await db.templates_of(self.store, prefixes)]
        return [t for t in templates if version is None or t["version"] == version]
