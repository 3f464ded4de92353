"""An enterprise's application for a prefix, made from the portal by someone not yet known to the
node (issue 18): the enterprise, its requested prefix (awaiting review, as the operator API
allocates one) and the applicant's account, all or nothing, through the operator's own service
(resolver/services/enterprises.py), so every rule (the credit code's check digit, prefixes under
the node's and overlapping none, user names, password length and hashing) is the API's. The
operator reviews it in the existing life cycle (PUT /admin/prefixes/{prefix}/state); the applicant
signs in to the portal with the account and sees the prefix's state."""

from __future__ import annotations

from typing import Any

from resolver.core.errors import RC, HandleError
from resolver.core.permissions import Identity
from resolver.services.enterprises import Operators


def applicant(address: str) -> Identity:
    """Who the audit trail names for an application: the client's address."""
    return Identity(0, "applicant", "applicant", actor=f"applicant:{address[:64]}")


async def apply(operators: Operators, fields: dict[str, str], address: str) -> dict[str, Any]:
    """Register the enterprise, allocate the prefix and make the account in one transaction."""
    actor = applicant(address)
    enterprise = {
        "name": fields.get("name", ""),
        "creditCode": fields.get("creditCode", ""),
        "contact": {k: fields.get(f"contact_{k}", "") for k in ("name", "phone", "email")},
    }
    async with operators.store.write() as tx:
        record = await operators.register_enterprise(enterprise, actor, tx)
        try:
            prefix = await operators.allocate_prefix(
                record["id"], {"prefix": fields.get("prefix", "")}, actor, tx, fresh_only=True
            )
        except HandleError as exc:
            if exc.rc != RC.HANDLE_ALREADY_EXISTS:
                raise
            # the operator API names the enterprise it overlaps; a stranger is told less
            raise HandleError(
                RC.HANDLE_ALREADY_EXISTS,
                "that prefix is taken, overlaps an allocated one, or identifiers already live under it",
                zh="该前缀已被占用、与已分配的前缀重叠，或其下已有标识，请另选一个",
            ) from None
        await operators.create_user(
            record["id"],
            {"username": fields.get("username", ""), "password": fields.get("password", "")},
            actor,
            tx,
        )
    return {"enterprise": record, "prefix": prefix}
