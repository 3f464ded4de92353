"""The write policy: the one decision every write path asks before it changes a handle.

The Handle API, the enterprise API (single and batch), the bulk importer and the operator's own
Handle API writes all call `check_write`; nothing else decides who may write what. The rules, in
the order they are applied:

1. Nothing under an enterprise prefix that is not enabled is written, its prefix record included
   (disabled, pending deletion, rejected, not yet reviewed).
2. Prefix records (`0.NA/<prefix>`) are the node operator's: only the node administrator changes
   them, and the prefix record of an allocated enterprise prefix is created and removed only by the
   operator API (its life cycle), never through the Handle API or the importer.
3. An enterprise API user writes only handles under its own enterprise's prefixes, and only with
   the rights of an identifier owner (no HS_ADMIN changes).
4. Every other identity needs the HS_ADMIN permissions the change needs.
5. No identity grants rights it does not hold: the permission bits of HS_ADMIN values it adds or
   changes must all be bits it has itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol, TypeVar

from resolver.core.enterprises import STATE_NAMES, PrefixState
from resolver.core.errors import RC, HandleError
from resolver.core.handles import HandleName, NodeScope, fold
from resolver.core.permissions import NONE, Identity, Perm

# What an enterprise API user may do to its own enterprise's identifiers.
OWNER_RIGHTS = (
    Perm.ADD_HANDLE
    | Perm.DELETE_HANDLE
    | Perm.ADD_VALUE
    | Perm.MODIFY_VALUE
    | Perm.REMOVE_VALUE
    | Perm.READ_VALUE
    | Perm.LIST_HANDLES
)


class Action(Enum):
    """What a write does to the handle as a whole."""

    CREATE = "create"
    CHANGE = "change"
    DELETE = "delete"


class Owner(Protocol):
    """The enterprise prefix a handle lives under (`store.rows.PrefixInfo` has this shape)."""

    @property
    def prefix(self) -> str: ...

    @property
    def state(self) -> int: ...

    @property
    def enterprise_id(self) -> int: ...


OwnerT = TypeVar("OwnerT", bound=Owner)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who writes: the identity, and whether it is the node administrator."""

    identity: Identity
    node_admin: bool

    @property
    def enterprise_user(self) -> bool:
        return self.identity.enterprise_id is not None


def _denied(message: str) -> HandleError:
    return HandleError(RC.INSUFFICIENT_PERMISSIONS, message)


def perm_names(perms: Perm) -> str:
    """`add-handle, modify-value` for a set of permission bits."""
    return ", ".join(p.name.lower().replace("_", "-") for p in Perm if p & perms and p.name)


def check_enabled(owner: Owner | None) -> None:
    """Refuse writes under an enterprise prefix that is not enabled (rule 1)."""
    if owner is None or owner.state == PrefixState.ENABLED:
        return
    state = PrefixState(owner.state)
    raise _denied(
        f"前缀 {owner.prefix} 未启用（当前状态：{state.value} {STATE_NAMES[state]}），不能登记、修改或删除标识 "
        f"/ prefix {owner.prefix} is not enabled"
    )


def check_write(
    caller: Caller,
    name: HandleName,
    owner: Owner | None,
    action: Action,
    needed: Perm,
    have: Perm,
    grants: Perm = NONE,
) -> None:
    """Raise rc 401 (HTTP 403) unless `caller` may make this write.

    `owner` is the enterprise prefix governing `name` (for a prefix record: the prefix itself or
    the nearest allocated one above it), `needed` the permissions the change needs, `have` those
    the caller holds on the handle (ignored for the node administrator), `grants` the union of
    the permission bits of HS_ADMIN values the change adds or alters.
    """
    check_enabled(owner)
    who = caller.identity.name
    if name.is_prefix_handle:
        if not caller.node_admin:
            raise _denied(
                f"{who} 无权修改前缀记录 {name.text}：前缀记录只能由节点运营方修改 "
                "/ prefix records are changed by the node operator only"
            )
        if owner is not None and owner.prefix == name.key.partition("/")[2] and action != Action.CHANGE:
            raise _denied(
                f"前缀 {owner.prefix} 已分配给企业，其前缀记录随前缀生命周期由运营接口（/admin/prefixes）创建和撤销 "
                f"/ the prefix record of an allocated prefix is created and removed through the operator API"
            )
        return
    if caller.node_admin:
        return
    if caller.enterprise_user:
        if owner is None or owner.enterprise_id != caller.identity.enterprise_id:
            raise _denied(f"{who} 无权操作 {name.text}：该前缀不属于本企业 / not your prefix")
        have = OWNER_RIGHTS
    lacking = needed & ~have
    if lacking:
        raise _denied(
            f"{caller.identity.index}:{caller.identity.text} lacks the permission: {perm_names(lacking)}"
        )
    beyond = grants & ~have
    if beyond:
        raise _denied(
            f"{who} may not grant permissions it does not hold: {perm_names(beyond)} / 不能授予自己没有的权限"
        )


def owner_candidates(scope: NodeScope, name: HandleName) -> list[str]:
    """The prefixes that may be the enterprise prefix governing a write of `name`, nearest first;
    for a prefix record `0.NA/<prefix>`, that prefix itself comes first."""
    below = [k.partition("/")[2] for k in scope.governing_prefix_handles(name)]
    return [fold(name.suffix), *below] if name.is_prefix_handle else below


def governing_owner(candidates: Sequence[str], owners: Mapping[str, OwnerT]) -> OwnerT | None:
    """The nearest of `candidates` that is an enterprise prefix (None: the handle lies outside
    every enterprise prefix)."""
    return next((owners[p] for p in candidates if p in owners), None)
