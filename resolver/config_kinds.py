"""How the text of a setting (an option or an environment variable) becomes its value, each kind
checked when read so that a wrong value stops the command with a usage error."""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_header_value(text: str) -> str:
    if not text.strip() or not all(" " <= c <= "~" for c in text):
        raise argparse.ArgumentTypeError(f"expected printable ASCII text, got {text!r}")
    return text


def parse_types(text: str) -> tuple[str, ...]:
    return tuple(t.strip().lower() for t in text.split(",") if t.strip())


def parse_networks(text: str) -> tuple[str, ...]:
    """Comma-separated networks (CIDR, or single addresses), each checked and written canonically."""
    try:
        return tuple(str(ipaddress.ip_network(n.strip(), strict=False)) for n in text.split(",") if n.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_origins(text: str) -> tuple[str, ...]:
    """Comma-separated web origins (scheme://host[:port], or `*`), lower-cased, without a trailing slash."""
    found = []
    for item in (o.strip().rstrip("/").lower() for o in text.split(",")):
        if not item:
            continue
        if item != "*" and not (
            item.startswith(("http://", "https://")) and "/" not in item.split("://", 1)[1]
        ):
            raise argparse.ArgumentTypeError(f"expected an origin like https://erp.example.com, got {item!r}")
        found.append(item)
    return tuple(found)


def parse_time_zone(text: str) -> str:
    """An IANA time zone name (Asia/Shanghai), checked against the system's zone database."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(
            f"unknown time zone {text!r} (expected e.g. Asia/Shanghai)"
        ) from None
    return text


def parse_record_key(text: str) -> str:
    if text.lower() not in ("rsa", "sm2"):
        raise argparse.ArgumentTypeError(f"expected rsa or sm2, got {text!r}")
    return text.lower()


def parse_log_format(text: str) -> str:
    if text.lower() not in ("text", "json"):
        raise argparse.ArgumentTypeError(f"expected text or json, got {text!r}")
    return text.lower()


# How the text of an option or environment variable becomes the field's value, by annotation.
_KINDS: dict[str, Callable[[str], Any]] = {
    "int": int,
    "float": float,
    "str": str,
    "str | None": str,
    "Path": Path,
    "bool": parse_bool,
}


def setting(help: str, *, kind: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """The metadata that makes a field a setting (`kind`: how its text is read, when the field's
    annotation does not say)."""
    return {"help": help, "kind": kind}


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting as the command line and the environment see it."""

    flag: str
    env: str
    target: str  # "field", or "<group>.field" for Config.limits/cache/rate
    kind: Callable[[str], Any]
    help: str
    default: Any

    @property
    def secret(self) -> bool:
        return "secret" in self.flag
