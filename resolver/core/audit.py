"""What the audit trail stores of a value: its JSON, never a secret."""

from __future__ import annotations

import orjson

from resolver.core.handles import fold


def audit_json(value: object, known: str | None = None) -> str | None:
    """The JSON of an audited value (`known`: its encoding, when the caller already made it)."""
    if value is None:
        return None
    if known is not None:
        if "hs_seckey" not in known.lower():
            return known
        return orjson.dumps(_redacted(value)).decode()
    encoded = orjson.dumps(value)
    if b"hs_seckey" in encoded.lower():  # rare: only then look for secrets value by value
        encoded = orjson.dumps(_redacted(value))
    return encoded.decode()


def _redacted(value: object) -> object:
    """Audit entries never hold secrets, not even their hashes."""
    if isinstance(value, list):
        return [
            {**v, "data": {"format": v["data"].get("format"), "value": "<redacted>"}}
            if isinstance(v, dict) and isinstance(v.get("type"), str) and fold(v["type"]) == "hs_seckey"
            else v
            for v in value
        ]
    return value
