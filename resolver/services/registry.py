"""The node's operations on handles: resolve, create, change, delete, list.

Permissions are decided here from the HS_ADMIN values of the handle and of its prefix handles;
every write runs in one transaction that locks the handle's row, and is acknowledged only after
it commits.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from resolver.cache import Entry, Lookup
from resolver.config import Config
from resolver.core.enterprises import READABLE
from resolver.core.errors import RC, HandleError
from resolver.core.handles import HandleName, NodeScope, check_prefix, fold, parse_handle
from resolver.core.permissions import (
    ALL,
    NONE,
    Identity,
    Perm,
    admin_bits,
    granted,
    granted_by_change,
    needed_for_change,
    referenced_handles,
)
from resolver.core.policy import Action, Caller, check_write, governing_owner, owner_candidates
from resolver.core.templates import Template, check_values, pick_template, template_version_of
from resolver.core.values import StoredValue, is_admin_readable, is_public, parse_values
from resolver.services import signed_writes
from resolver.services.record_signing import RecordSigning
from resolver.services.seckeys import SecretKeys
from resolver.services.template_lookup import TemplateSource, load_templates
from resolver.store.handles import HandleStore
from resolver.store.rows import AuditEntry, PrefixInfo, Record
from resolver.store.tx import Tx

NODE_ADMIN_INDEX = 300


def _denied(message: str) -> HandleError:
    return HandleError(RC.INSUFFICIENT_PERMISSIONS, message)


def audit(
    tx: Tx,
    identity: Identity,
    operation: str,
    key: str,
    owner: PrefixInfo | None,
    before: list[StoredValue] | None,
    after: list[StoredValue] | None,
) -> None:
    """Audit one write of a handle under `owner` (None: outside every enterprise prefix)."""
    tx.audit(AuditEntry(identity.name, operation, key, owner.enterprise_id if owner else None, before, after))


def not_found() -> HandleError:
    """rc 100: the handle does not exist."""
    return HandleError(RC.HANDLE_NOT_FOUND, "handle not found", zh="标识不存在")


class Registry:
    """Handle operations with their permission checks."""

    def __init__(self, config: Config, store: HandleStore, lookup: Lookup, secret_keys: SecretKeys) -> None:
        self.config = config
        self.secret_keys = secret_keys
        self.limits = config.limits
        self.store = store
        self.lookup = lookup
        self.scope = NodeScope(config.node_prefix)
        # signs the records of signed prefixes (resolver/services/record_signing.py); None: no
        # signing here (tests of the rules without keys), and a signed prefix cannot be written
        self.signing: RecordSigning | None = None

    # -- who may do what ---------------------------------------------------------------------

    def is_node_admin(self, identity: Identity | None) -> bool:
        """The node administrator is `300:0.NA/<node prefix>`."""
        return (
            identity is not None
            and identity.key == self.scope.node_prefix_handle
            and identity.index == NODE_ADMIN_INDEX
        )

    def check_responsible(self, name: HandleName) -> None:
        """rc 301 for handles that do not live under this node's prefix."""
        if not self.scope.is_responsible(name):
            raise HandleError(
                RC.SERVER_NOT_RESPONSIBLE,
                f"this node serves prefix {self.config.node_prefix}; that prefix does not live here",
                zh=f"本节点服务前缀 {self.config.node_prefix}，该前缀不在本节点",
            )

    async def _permissions(
        self, tx: Tx | None, identity: Identity, chain: list[str], own: Sequence[StoredValue]
    ) -> Perm:
        if self.is_node_admin(identity):
            return ALL
        fetch = tx.fetch_many if tx is not None else self._fetch_records
        records = {k: r.values for k, r in (await fetch(chain)).items()}
        sources: list[Sequence[StoredValue]] = [own, *(records[k] for k in chain if k in records)]
        missing = referenced_handles(sources) - records.keys()
        if missing:
            records.update({k: r.values for k, r in (await fetch(missing)).items()})
        return granted(identity, sources, records)

    async def _fetch_records(self, keys: Sequence[str] | set[str]) -> dict[str, Record]:
        entries = await asyncio.gather(*(self.lookup.get(k) for k in keys))
        return {k: e.record for k, e in zip(keys, entries, strict=True) if e.record is not None}

    def caller(self, identity: Identity) -> Caller:
        """The write policy's view of an identity."""
        return Caller(identity, self.is_node_admin(identity))

    async def authorize(
        self,
        tx: Tx | None,
        identity: Identity,
        name: HandleName,
        owner: PrefixInfo | None,
        action: Action,
        old: Sequence[StoredValue] = (),
        new: Sequence[StoredValue] = (),
    ) -> None:
        """The permission check of every write path (`core.policy.check_write` decides).

        `old` are the handle's values before the write (none when it is created), `new` after it
        (none when it is deleted).
        """
        if action == Action.CREATE:
            needed = Perm.ADD_PREFIX if name.is_prefix_handle else Perm.ADD_HANDLE
            grants = admin_bits(new)
        elif action == Action.DELETE:
            needed, grants = (Perm.DELETE_PREFIX if name.is_prefix_handle else Perm.DELETE_HANDLE), NONE
        else:
            # a change that changes nothing is still a write (and audited): it needs modify-value
            needed = needed_for_change(old, new) or Perm.MODIFY_VALUE
            grants = granted_by_change(old, new)
        caller = self.caller(identity)
        check_write(caller, name, owner, action, needed, await self._have(tx, caller, name, old), grants)

    async def _have(
        self, tx: Tx | None, caller: Caller, name: HandleName, old: Sequence[StoredValue]
    ) -> Perm:
        """The permissions `caller` holds on `name` (all for those `check_write` does not ask)."""
        if caller.node_admin or caller.enterprise_user or name.is_prefix_handle:
            return ALL
        return await self._permissions(tx, caller.identity, self.scope.governing_prefix_handles(name), old)

    async def _may_ask(
        self,
        tx: Tx,
        identity: Identity,
        name: HandleName,
        owner: PrefixInfo | None,
        old: Sequence[StoredValue],
        nominal: Perm,
    ) -> None:
        """Refuse a caller without the operation's own permission (`nominal`) before the answer
        can say which indexes exist (`HandleServer.doAddValue` and its siblings check the
        permission first): a value a stranger cannot read must not be found out by writing it."""
        caller = self.caller(identity)
        check_write(caller, name, owner, Action.CHANGE, nominal, await self._have(tx, caller, name, old))

    # -- reads ---------------------------------------------------------------------------------

    async def entry(self, name: HandleName) -> Entry:
        """The cache entry of an existing handle (its public answer is encoded in it); rc 100 if none."""
        self.check_responsible(name)
        entry = await self.lookup.get(name.key)
        if entry.record is None:
            raise not_found()
        return entry

    async def read(self, name: HandleName, *, fresh: bool) -> Record:
        """The record of a handle, from the cache unless `fresh`; rc 100 when it does not exist."""
        self.check_responsible(name)
        if fresh and self.store.primary is not None:  # with a replica: fresh means the primary's
            found = (await self.store.fetch_primary([name.key])).get(name.key)
            if found is None:
                raise not_found()
            return found
        entry = await (self.lookup.fetch(name.key) if fresh else self.lookup.get(name.key))
        if entry.record is None:
            raise not_found()
        return entry.record

    async def owner_of(self, name: HandleName) -> PrefixInfo | None:
        """The enterprise prefix a handle lives under, if any (read outside a transaction)."""
        return (await self.owners([name]))[name.key]

    async def owners(self, names: Sequence[HandleName]) -> dict[str, PrefixInfo | None]:
        """The enterprise prefix each handle lives under, if any, by key (one query for all)."""
        candidates = {name.key: self.enterprise_prefix_candidates(name) for name in names}
        wanted = sorted({p for ps in candidates.values() for p in ps})
        infos = await self.store.prefix_info(wanted) if wanted else {}
        return {key: next((infos[p] for p in ps if p in infos), None) for key, ps in candidates.items()}

    async def enterprise_of_prefix_admin(self, identity: Identity) -> int | None:
        """The enterprise owning the prefix that a prefix administrator `300:0.NA/<prefix>`
        administers (the nearest enterprise prefix at or above it), if any."""
        head, _, prefix = identity.key.partition("/")
        if head != "0.na" or not prefix or self.is_node_admin(identity):
            return None
        parts = prefix.split(".")
        candidates = [".".join(parts[:n]) for n in range(len(parts), 0, -1)]  # nearest first
        infos = await self.store.prefix_info(candidates)
        return next((int(infos[p].enterprise_id) for p in candidates if p in infos), None)

    async def readable_values(
        self, name: HandleName, record: Record, identity: Identity | None
    ) -> list[StoredValue]:
        """The values the caller may see: public ones, plus admin-readable ones with read-value."""
        if identity is None:
            return [v for v in record.values if is_public(v)]
        if identity.enterprise_id is not None:
            owner = await self.owner_of(name)
            if owner is not None and owner.enterprise_id == identity.enterprise_id:
                return [v for v in record.values if is_public(v) or is_admin_readable(v)]
            return [v for v in record.values if is_public(v)]
        perms = await self._permissions(
            None, identity, self.scope.governing_prefix_handles(name), record.values
        )
        if perms & Perm.READ_VALUE:
            return [v for v in record.values if is_public(v) or is_admin_readable(v)]
        return [v for v in record.values if is_public(v)]

    async def list_handles(
        self, prefix_text: str, page: int, page_size: int, identity: Identity
    ) -> tuple[int, list[str]]:
        """Handles under a prefix, for callers with list-handles on it."""
        prefix = check_prefix(prefix_text, self.limits)
        if not self.scope.owns_prefix(prefix) and not (prefix == "0.na" and self.is_node_admin(identity)):
            raise HandleError(
                RC.SERVER_NOT_RESPONSIBLE, "that prefix does not live here", zh="该前缀不在本节点"
            )
        if identity.enterprise_id is not None:
            # an enterprise user lists what its enterprise governs (the portal): a prefix of its
            # own, in any state, or an undelegated sub-prefix of one; nothing else
            owner = await self.owner_of(parse_handle(f"{prefix}/x", self.limits))
            # enabled or disabled: not while it awaits review, was rejected or is being deleted
            # (a prefix allocated over identifiers made before is not its to read until approved)
            if owner is None or owner.enterprise_id != identity.enterprise_id or owner.state not in READABLE:
                raise _denied(
                    f"{identity.name} may not list handles under {prefix_text}: not its enterprise's prefix"
                )
        elif not self.is_node_admin(identity):
            chain = self.scope.prefix_handles_for_listing(prefix)
            have = await self._permissions(None, identity, chain, ())
            if not have & Perm.LIST_HANDLES:
                raise _denied(f"{identity.index}:{identity.text} may not list handles under {prefix_text}")
        return await self.store.list_prefix(prefix, page, page_size)

    async def prefixes(self) -> list[str]:
        """The prefixes homed here: those with a prefix handle under the node prefix."""
        handles = await self.store.prefix_handles()
        return [h.partition("/")[2] for h in handles if self.scope.owns_prefix(fold(h.partition("/")[2]))]

    # -- write policy: prefix states, templates, audit --------------------------------------

    def _now(self) -> datetime:
        return datetime.now(UTC)

    def committed(self, keys: list[str], chains: list[tuple[str, int]]) -> None:
        """After a write's commit: the cache forgets `keys`, the signer remembers `chains`."""
        if chains and self.signing is not None:
            self.signing.certified(chains)
        self._after_commit(keys)

    def _after_commit(self, keys: list[str]) -> None:
        # Our own cache learns at once; other workers through the notification.
        self.lookup.invalidate(keys)

    def enterprise_prefix_candidates(self, name: HandleName) -> list[str]:
        """The prefixes that may be the enterprise prefix of a handle, nearest first."""
        return (
            [k.partition("/")[2] for k in self.scope.governing_prefix_handles(name)]
            if not name.is_prefix_handle
            else []
        )

    def owner_candidates(self, name: HandleName) -> list[str]:
        """The prefixes that may be the enterprise prefix governing a write of `name`, nearest first."""
        return owner_candidates(self.scope, name)

    async def admit(self, tx: Tx, names: Sequence[HandleName]) -> dict[str, PrefixInfo | None]:
        """The enterprise prefix governing each handle (None outside enterprise prefixes); whether
        its state admits the write is for `authorize` to decide."""
        candidates = {name.key: self.owner_candidates(name) for name in names}
        wanted = sorted({p for ps in candidates.values() for p in ps})
        infos = await tx.prefix_info(wanted) if wanted else {}
        return {name.key: governing_owner(candidates[name.key], infos) for name in names}

    async def load_templates(
        self, tx: TemplateSource, wanted: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], Template]:
        """Templates by (prefix, version): the prefix's own, or a shared one of that version
        (read in the transaction `tx`, or, for display, straight from the store)."""
        return await load_templates(tx, wanted)

    async def check_template(self, tx: Tx, name: HandleName, values: list[StoredValue]) -> None:
        """When the values name a template version (index 1001), they must fit it."""
        version = template_version_of(values)
        if version is None:
            return
        templates = await self.load_templates(tx, [(name.prefix, version)])
        check_values(pick_template(templates, name.prefix, version), values)

    # -- writes --------------------------------------------------------------------------------

    def mint(self, name: HandleName) -> HandleName:
        """A new handle under the prefix of `name` with a server-chosen suffix."""
        suffix = uuid.uuid4().hex.upper()
        text = f"{name.text.rstrip('/')}/{suffix}"
        return HandleName(text=text, key=fold(text), prefix=name.prefix, suffix=suffix)

    async def create_or_replace(
        self, name: HandleName, raw_values: list[object], identity: Identity, *, overwrite: bool
    ) -> bool:
        """Create the handle, or with `overwrite` replace all its values; True when created."""
        self.check_responsible(name)
        values = parse_values(raw_values, self.limits, self._now())
        self.secret_keys.prepare(values)
        chains: list[tuple[str, int]] = []
        async with self.store.write() as tx:
            owner = (await self.admit(tx, [name]))[name.key]
            values = signed_writes.own_values(self, owner, name, values, supplied=True)
            existing = await tx.lock(name.key)
            if existing is None:
                await self.authorize(tx, identity, name, owner, Action.CREATE, (), values)
                await self.check_template(tx, name, values)
                stored = await signed_writes.finish(self, tx, name, owner, values, chains)
                if not await tx.insert(name.key, name.text, name.prefix, stored):
                    raise HandleError(RC.HANDLE_ALREADY_EXISTS, "the handle already exists", zh="标识已存在")
                created = True
            elif not overwrite:
                raise HandleError(RC.HANDLE_ALREADY_EXISTS, "the handle already exists", zh="标识已存在")
            else:
                old = signed_writes.own_values(self, owner, name, existing.values, supplied=False)
                await self.authorize(tx, identity, name, owner, Action.CHANGE, old, values)
                await self.check_template(tx, name, values)
                stored = await signed_writes.finish(self, tx, name, owner, values, chains)
                await tx.update(name.key, stored)
                created = False
            audit(
                tx,
                identity,
                "handle.create" if created else "handle.replace",
                name.key,
                owner,
                None if existing is None else existing.values,
                stored,
            )
        self.committed(tx.changed, chains)
        return created

    async def put_values(
        self,
        name: HandleName,
        raw_values: list[object],
        indexes: frozenset[int] | None,
        identity: Identity,
        *,
        overwrite: bool,
        must_exist: bool = False,
    ) -> None:
        """Add or replace the given values of an existing handle (`indexes` None means any).
        `overwrite` False: an index that exists is VALUE_ALREADY_EXISTS; `must_exist`: an index
        that does not is VALUES_NOT_FOUND (the native MODIFY_VALUE), both decided under the
        handle's lock and only for a caller holding the operation's permission."""
        self.check_responsible(name)
        values = parse_values(raw_values, self.limits, self._now())
        if indexes is not None and indexes != {v["index"] for v in values}:
            raise HandleError(
                RC.PROTOCOL_ERROR,
                "the indexes in the query differ from those in the body",
                zh="查询参数中的索引与请求体中的不一致",
            )
        self.secret_keys.prepare(values)
        chains: list[tuple[str, int]] = []
        async with self.store.write() as tx:
            owner = (await self.admit(tx, [name]))[name.key]
            values = signed_writes.own_values(self, owner, name, values, supplied=True)
            existing = await tx.lock(name.key)
            if existing is None:
                raise not_found()
            old = signed_writes.own_values(self, owner, name, existing.values, supplied=False)
            merged = {v["index"]: v for v in old}
            present = [v["index"] for v in values if v["index"] in merged]
            missing = [v["index"] for v in values if v["index"] not in merged]
            if (present and not overwrite) or (missing and must_exist):
                nominal = Perm.MODIFY_VALUE if must_exist else Perm.ADD_VALUE
                await self._may_ask(tx, identity, name, owner, old, nominal)
            if present and not overwrite:
                raise HandleError(
                    RC.VALUE_ALREADY_EXISTS,
                    f"a value with index {present[0]} already exists",
                    zh=f"索引为 {present[0]} 的标识值已存在",
                )
            if missing and must_exist:
                raise HandleError(
                    RC.VALUES_NOT_FOUND,
                    f"no value with index {missing[0]} to modify",
                    zh=f"没有索引为 {missing[0]} 的标识值可修改",
                )
            merged.update((value["index"], value) for value in values)
            if len(merged) > self.limits.max_values_per_handle:
                raise HandleError(
                    RC.INVALID_VALUE,
                    f"more than {self.limits.max_values_per_handle} values in one handle",
                    zh=f"一个标识至多 {self.limits.max_values_per_handle} 个标识值",
                )
            new_values = sorted(merged.values(), key=lambda v: v["index"])
            await self.authorize(tx, identity, name, owner, Action.CHANGE, old, new_values)
            await self.check_template(tx, name, new_values)
            stored = await signed_writes.finish(self, tx, name, owner, new_values, chains)
            await tx.update(name.key, stored)
            audit(tx, identity, "handle.values.put", name.key, owner, existing.values, stored)
        self.committed(tx.changed, chains)

    async def delete_values(self, name: HandleName, indexes: frozenset[int], identity: Identity) -> None:
        """Remove the values with these indexes; rc 200 when none of them exists."""
        self.check_responsible(name)
        chains: list[tuple[str, int]] = []
        async with self.store.write() as tx:
            owner = (await self.admit(tx, [name]))[name.key]
            existing = await tx.lock(name.key)
            if existing is None:
                raise not_found()
            old = signed_writes.own_values(self, owner, name, existing.values, supplied=False)
            remaining = [v for v in old if v["index"] not in indexes]
            if len(remaining) == len(old):
                await self._may_ask(tx, identity, name, owner, old, Perm.REMOVE_VALUE)
                raise HandleError(RC.VALUES_NOT_FOUND, "none of those values exists", zh="这些标识值都不存在")
            await self.authorize(tx, identity, name, owner, Action.CHANGE, old, remaining)
            await self.check_template(tx, name, remaining)
            stored = await signed_writes.finish(self, tx, name, owner, remaining, chains)
            await tx.update(name.key, stored)
            audit(tx, identity, "handle.values.delete", name.key, owner, existing.values, stored)
        self.committed(tx.changed, chains)

    async def delete_handle(self, name: HandleName, identity: Identity) -> None:
        """Delete a handle and all its values."""
        self.check_responsible(name)
        async with self.store.write() as tx:
            owner = (await self.admit(tx, [name]))[name.key]
            existing = await tx.lock(name.key)
            if existing is None:
                raise not_found()
            await self.authorize(tx, identity, name, owner, Action.DELETE, existing.values)
            await tx.delete(name.key)
            audit(tx, identity, "handle.delete", name.key, owner, existing.values, None)
        self._after_commit(tx.changed)
