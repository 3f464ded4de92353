"""Structured value data, checked when it is written: formats `admin`, `vlist`, `site` and `key`.

The rule: whatever is accepted here has a binary form (RFC 3651 section 3.2: HS_ADMIN, HS_VLIST,
HS_SITE; a key is its octets), so that the native protocol's encoder (`resolver.native.protocol`)
never meets data it cannot write. The JSON forms are those of the Handle.Net JSON API
(`net/handle/hdllib/GsonUtility.java` in the reference implementation) as far as this node stores
them: a site's `primaryMask` object or the reference's `primarySite`/`multiPrimary` booleans;
attributes as a list of `{name, value}`. A server address must be an IP address: a host name would
have to be looked up (I/O) every time the value is encoded, and could answer differently each time.

Each error names the part of the value that is wrong (`servers[0].interfaces[1].port`).
"""

from __future__ import annotations

import binascii
import ipaddress
import re
from typing import Any

from resolver.config import Limits
from resolver.core.errors import quoted
from resolver.core.handles import has_control_characters

STRUCTURED_FORMATS = frozenset({"admin", "vlist", "site", "key"})
TRANSPORT_NAMES = frozenset({"UDP", "TCP", "HTTP", "HTTPS"})
KEY_FORMATS = frozenset({"key", "base64", "hex"})
_ADMIN_PERMISSIONS = re.compile(r"[01]{0,12}")
ADMIN_PERMISSION_BITS = 12
_PROTOCOL_VERSION = re.compile(r"(\d{1,3})(?:\.(\d{1,3}))?", re.ASCII)
_UINT8, _UINT16, _INT32 = 0xFF, 0xFFFF, 2**31 - 1
_MAX_PORT = 65535


class InvalidStructure(ValueError):
    """Structured data without its format's shape; the message says where and why, in English
    (`str(exc)`) and in Chinese (`exc.zh`)."""

    def __init__(self, message: str, zh: str | None = None) -> None:
        super().__init__(message)
        self.zh = zh


_ZH_WHAT = {"a site value": "site 标识值", "a key value": "key 标识值"}
_ZH_FORMAT_VALUE = re.compile(r"a value of format '(\w+)'")


def _zh(what: str) -> str:
    """The Chinese for the part of a value `what` names: a field path (`servers[0].port`) stays
    as it is, followed by a space; the prose names callers use are translated."""
    if what in _ZH_WHAT:
        return _ZH_WHAT[what]
    found = _ZH_FORMAT_VALUE.fullmatch(what)
    if found:
        return f"格式为 '{found.group(1)}' 的标识值"
    return f"{what} "


def normalize(fmt: str, value: object, limits: Limits) -> object:
    """The stored form of the value of structured data in format `fmt` (one of
    STRUCTURED_FORMATS), or InvalidStructure. Admin permissions are stored as twelve bits
    (admin_permissions); every other value is stored as sent."""
    if fmt == "admin":
        return admin(value, limits)
    if fmt == "vlist":
        if not isinstance(value, list):
            raise InvalidStructure(
                "a vlist value must be a list of {handle, index}",
                "vlist 标识值必须是 {handle, index} 的列表",
            )
        return [reference(item, f"vlist[{n}]", limits) for n, item in enumerate(value)]
    if fmt == "site":
        site(value)
        return value
    if fmt == "key":
        check_base64(value, "a key value")
        return value
    raise InvalidStructure(f"format {quoted(fmt)} is not structured", f"格式 {quoted(fmt)} 不是结构化格式")


def reference(raw: object, what: str, limits: Limits) -> dict[str, Any]:
    """A value reference `{handle, index}` (in HS_ADMIN, HS_VLIST and a value's references)."""
    if not isinstance(raw, dict):
        raise InvalidStructure(
            f"{what} must be an object with 'handle' and 'index'",
            f"{_zh(what)}必须是含 'handle' 和 'index' 的对象",
        )
    handle = raw.get("handle")
    if not isinstance(handle, str) or not handle or len(handle) > limits.max_handle_length:
        raise InvalidStructure(
            f"{what}.handle must be a handle of at most {limits.max_handle_length} characters",
            f"{what}.handle 必须是不超过 {limits.max_handle_length} 个字符的标识",
        )
    if has_control_characters(handle):
        raise InvalidStructure(f"{what}.handle contains control characters", f"{what}.handle 含有控制字符")
    index = raw.get("index", 0)
    if isinstance(index, str) and re.fullmatch(r"\s*\d{1,10}\s*", index, re.ASCII):
        index = int(index)
    _integer(index, f"{what}.index", limits.max_index)
    return {"handle": handle, "index": index}


def admin(value: object, limits: Limits) -> dict[str, Any]:
    """An HS_ADMIN value: `{handle, index, permissions}`, permissions stored as twelve bits, most
    significant first (see admin_permissions)."""
    if not isinstance(value, dict):
        raise InvalidStructure(
            "an admin value must be an object with handle, index and permissions",
            "admin 标识值必须是含 handle、index 和 permissions 的对象",
        )
    ref = reference(value, "admin", limits)
    return {**ref, "permissions": admin_permissions(value.get("permissions"))}


def admin_permissions(raw: object) -> str:
    """HS_ADMIN permissions in their stored form, twelve characters of 0 and 1, bit 11
    (list-handles) first and bit 0 (add-handle) last: the binary of the mask the native protocol
    carries (Encoder.encodeAdminRecord).

    Read as the reference reads them (GsonUtility.AdminRecordGsonTypeAdapter.permsElementToArray):
    a string from the right, its last character bit 0, missing bits 0 (`"0111"` is
    `"000000000111"`); `"*"` all twelve; `true` all, `false` none; an integer as a bit mask
    (bit 0 = add-handle); a list element by element from bit 0 (`[true, true]` is add-handle and
    delete-handle); none given, none granted. Refused, where the reference would silently drop or
    guess bits: characters other than 0 and 1, strings longer than twelve, integers outside 0-4095,
    lists longer than twelve or holding anything but booleans, 0 and 1.
    """
    if raw is None or raw is False:
        return "0" * ADMIN_PERMISSION_BITS
    if raw is True or raw == "*":
        return "1" * ADMIN_PERMISSION_BITS
    if isinstance(raw, str) and _ADMIN_PERMISSIONS.fullmatch(raw):
        return raw.rjust(ADMIN_PERMISSION_BITS, "0")
    if type(raw) is int and 0 <= raw <= 0xFFF:
        return format(raw, "012b")
    if (
        isinstance(raw, list)
        and len(raw) <= ADMIN_PERMISSION_BITS
        and all(type(bit) is bool or bit in (0, 1) for bit in raw)
    ):
        # element 0 is bit 0 (add-handle), the last character of the string
        return "".join("1" if bit else "0" for bit in reversed(raw)).rjust(ADMIN_PERMISSION_BITS, "0")
    raise InvalidStructure(
        "admin permissions must be up to 12 characters of 0 and 1 (read from the right: the last is "
        "add-handle), '*', true or false, an integer bit mask from 0 to 4095, or a list of up to 12 "
        "booleans from add-handle on",
        "admin 权限必须是：不超过 12 个 0 和 1 的字符（从右读起，最后一位是 add-handle）、'*'、"
        "true 或 false、0 到 4095 的整数位掩码，或从 add-handle 起不超过 12 个布尔值的列表",
    )


def site(value: object) -> None:
    """An HS_SITE value (InvalidStructure when it has no binary form)."""
    record = _object(value, "a site value")
    if "version" in record:
        _integer(record["version"], "version", _UINT16)
    if "protocolVersion" in record:
        text = record["protocolVersion"]
        found = _PROTOCOL_VERSION.fullmatch(text) if isinstance(text, str) else None
        if found is None or any(int(part) > _UINT8 for part in found.groups(default="0")):
            raise InvalidStructure(
                'protocolVersion must be a string "major.minor", each 0 to 255',
                'protocolVersion 必须是字符串 "major.minor"，各部分为 0 到 255',
            )
    if "serialNumber" in record:
        _integer(record["serialNumber"], "serialNumber", _UINT16)
    if "hashOption" in record:
        _integer(record["hashOption"], "hashOption", _UINT8)
    if "hashFilter" in record:
        _text(record["hashFilter"], "hashFilter")
    if "primaryMask" in record:
        mask = _object(record["primaryMask"], "primaryMask")
        for flag in ("primary", "multiPrimary"):
            if flag in mask:
                _boolean(mask[flag], f"primaryMask.{flag}")
    for flag in ("primarySite", "multiPrimary"):
        if flag in record:
            _boolean(record[flag], flag)
    for n, attribute in enumerate(_array(record.get("attributes", []), "attributes")):
        entry = _object(attribute, f"attributes[{n}]")
        _text(entry.get("name"), f"attributes[{n}].name")
        _text(entry.get("value"), f"attributes[{n}].value")
    for n, server in enumerate(_array(record.get("servers", []), "servers")):
        _server(server, f"servers[{n}]")


def _server(raw: object, what: str) -> None:
    server = _object(raw, what)
    if "serverId" in server:
        _integer(server["serverId"], f"{what}.serverId", _INT32)
    address = server.get("address")
    try:
        ipaddress.ip_address(address if isinstance(address, str) else "")
    except ValueError:
        raise InvalidStructure(
            f"{what}.address must be an IPv4 or IPv6 address, got {quoted(address, 60)}",
            f"{what}.address 必须是 IPv4 或 IPv6 地址，收到的是 {quoted(address, 60)}",
        ) from None
    key = server.get("publicKey")
    if key is not None:
        key = _object(key, f"{what}.publicKey")
        key_format = key.get("format", "key")
        if not isinstance(key_format, str) or key_format.lower() not in KEY_FORMATS:
            raise InvalidStructure(
                f"{what}.publicKey.format must be one of {sorted(KEY_FORMATS)}",
                f"{what}.publicKey.format 必须是 {sorted(KEY_FORMATS)} 之一",
            )
        if key.get("value") is not None:
            if key_format.lower() == "hex":
                check_hex(key["value"], f"{what}.publicKey.value")
            else:
                check_base64(key["value"], f"{what}.publicKey.value")
    for n, interface in enumerate(_array(server.get("interfaces", []), f"{what}.interfaces")):
        _interface(interface, f"{what}.interfaces[{n}]")


def _interface(raw: object, what: str) -> None:
    interface = _object(raw, what)
    for flag in ("query", "admin"):
        if flag in interface:
            _boolean(interface[flag], f"{what}.{flag}")
    protocol = interface.get("protocol")
    if not isinstance(protocol, str) or protocol.upper() not in TRANSPORT_NAMES:
        raise InvalidStructure(
            f"{what}.protocol must be one of {sorted(TRANSPORT_NAMES)}",
            f"{what}.protocol 必须是 {sorted(TRANSPORT_NAMES)} 之一",
        )
    if "port" not in interface:
        raise InvalidStructure(f"{what}.port is missing", f"缺少 {what}.port")
    _integer(interface["port"], f"{what}.port", _MAX_PORT)


def _object(raw: object, what: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise InvalidStructure(f"{what} must be an object", f"{_zh(what)}必须是对象")
    return raw


def _array(raw: object, what: str) -> list[Any]:
    if not isinstance(raw, list):
        raise InvalidStructure(f"{what} must be a list", f"{_zh(what)}必须是列表")
    return raw


def _integer(raw: object, what: str, high: int) -> None:
    if type(raw) is not int or not 0 <= raw <= high:
        raise InvalidStructure(
            f"{what} must be an integer from 0 to {high}, got {quoted(raw)}",
            f"{_zh(what)}必须是 0 到 {high} 的整数，收到的是 {quoted(raw)}",
        )


def _boolean(raw: object, what: str) -> None:
    if not isinstance(raw, bool):
        raise InvalidStructure(f"{what} must be true or false", f"{_zh(what)}必须是 true 或 false")


def _text(raw: object, what: str) -> None:
    if not isinstance(raw, str):
        raise InvalidStructure(f"{what} must be a string", f"{_zh(what)}必须是字符串")


def check_base64(raw: object, what: str) -> None:
    """Raise unless `raw` is a string of strict base64."""
    if not isinstance(raw, str):
        raise InvalidStructure(f"{what} must be a base64 string", f"{_zh(what)}必须是 base64 字符串")
    try:
        binascii.a2b_base64(raw.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        raise InvalidStructure(f"{what} is not valid base64", f"{_zh(what)}不是有效的 base64") from None


def check_hex(raw: object, what: str) -> None:
    """Raise unless `raw` is a string of hex digits."""
    if not isinstance(raw, str):
        raise InvalidStructure(f"{what} must be a hex string", f"{_zh(what)}必须是十六进制字符串")
    try:
        bytes.fromhex(raw)
    except ValueError:
        raise InvalidStructure(f"{what} is not valid hex", f"{_zh(what)}不是有效的十六进制") from None
