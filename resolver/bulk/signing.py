"""What an import does for signed prefixes (resolver/services/record_signing.py): the node key
that signs their rows, with its certificates in place before any row is written, and the
comparison of a row with a stored one that ignores the signature's times."""

from __future__ import annotations

import logging
from typing import Any

from resolver.config import Config
from resolver.keys import Signers
from resolver.services.record_signing import SIGNATURE_INDEX, RecordSigning
from resolver.store import imports
from resolver.store.connections import Connection
from resolver.store.rows import PrefixInfo

log = logging.getLogger(__name__)


async def signing_key(conn: Connection, config: Config, prefixes: dict[str, PrefixInfo]) -> int | None:
    """The number of the node key that signs the rows of signed prefixes, its certificates
    written for each of them first (as an API write would: RecordSigning.chain_in); None when no
    prefix is signed, or no key is found here (the reader then rejects their rows, saying why)."""
    signed = sorted(p.prefix for p in prefixes.values() if p.signed)
    if not signed:
        return None
    signing = RecordSigning(
        Signers(config.keys_path), config.node_prefix, lambda _keys: None, config.record_key
    )
    if signing.current() is None:
        log.warning(
            "signed prefixes %s: no node key in %s, their rows will be rejected", signed, config.keys_path
        )
        return None
    number = 0
    for prefix in signed:  # one transaction each: the prefix's handle, then the node's, as writes lock them
        async with imports.transaction(conn, config) as tx:
            number, _pairs = await signing.chain_in(tx, [prefix])
    return number


def unsigned(values: list[Any]) -> list[Any]:
    """Values without the HS_SIGNATURE at 400: a row signed now and the same row signed before
    differ only there (the signature's times), which does not make them different content."""
    return [
        v
        for v in values
        if not (v.get("index") == SIGNATURE_INDEX and str(v.get("type", "")).upper() == "HS_SIGNATURE")
    ]
