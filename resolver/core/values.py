"""Handle values: validation of what clients send, and the stored form we render back.

A stored value is a plain dict already in the JSON shape of the Handle API, so rendering a
record is filtering a list, not building objects:
`{"index", "type", "data": {"format", "value"}, "ttl", "timestamp"[, "permissions"][, "references"]}`.
`permissions` is omitted when it is the default `"1110"`, `references` when empty.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from resolver.config import Limits
from resolver.core import structured
from resolver.core.errors import RC, HandleError, quoted
from resolver.core.handles import fold, has_control_characters

StoredValue = dict[str, Any]

DEFAULT_TTL = 86400
DEFAULT_PERMISSIONS = "1110"
SECRET_PERMISSIONS = "1100"
SECRET_TYPES = frozenset({"hs_seckey"})
HS_ADMIN = "HS_ADMIN"
HS_VLIST = "HS_VLIST"
HS_SECKEY = "HS_SECKEY"
KNOWN_FORMATS = frozenset({"string", "base64", "hex", "admin", "vlist", "site", "key"})
MAX_RELATIVE_TTL = 2_147_483_647
_PERMISSIONS_RE = re.compile(r"[01]{0,4}")


def _invalid(message: str, zh: str) -> HandleError:
    return HandleError(RC.INVALID_VALUE, message, zh=zh)


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def timestamp(now: datetime) -> str:
    """The Handle timestamp form: UTC, seconds, `Z`."""
    moment = now.astimezone(UTC)
    # not strftime: glibc writes year 1 as "1", which strptime then cannot read back
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z"
    )


def parse_int(raw: object, what: str, low: int, high: int) -> int:
    """An integer that may arrive as a JSON number or as a string of digits."""
    if type(raw) is int and low <= raw <= high:
        return raw
    if isinstance(raw, bool):
        raise _invalid(f"{what} must be an integer", f"{what} 必须是整数")
    if isinstance(raw, int):
        number = raw
    elif isinstance(raw, str) and re.fullmatch(r"\s*[+-]?\d{1,12}\s*", raw, re.ASCII):
        number = int(raw)
    else:
        raise _invalid(
            f"{what} must be an integer, got {quoted(raw)}", f"{what} 必须是整数，收到的是 {quoted(raw)}"
        )
    if not low <= number <= high:
        raise _invalid(
            f"{what} must be between {low} and {high}, got {number}",
            f"{what} 必须在 {low} 到 {high} 之间，收到的是 {number}",
        )
    return number


def parse_ttl(raw: object, now: datetime) -> int | str:
    """A relative TTL in seconds, or an absolute expiry as an ISO-8601 string (kept as UTC `Z`)."""
    if raw is None:
        return DEFAULT_TTL
    if type(raw) is int and 0 <= raw <= MAX_RELATIVE_TTL:
        return raw
    if isinstance(raw, str) and not re.fullmatch(r"\s*\d+\s*", raw, re.ASCII):
        try:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise _invalid(
                f"ttl must be seconds or an ISO-8601 time, got {quoted(raw)}",
                f"ttl 必须是秒数或 ISO-8601 时间，收到的是 {quoted(raw)}",
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        try:
            return timestamp(moment)
        except (OverflowError, ValueError):  # beyond the years a datetime holds once moved to UTC
            raise _invalid(
                f"ttl is not a time that can be expressed in UTC: {quoted(raw)}",
                f"ttl 不是能以 UTC 表示的时间：{quoted(raw)}",
            ) from None
    return parse_int(raw, "ttl", 0, MAX_RELATIVE_TTL)


def ttl_seconds(ttl: int | str, now: float) -> float:
    """How many seconds from `now` (a Unix time) a value may be cached."""
    if isinstance(ttl, int):
        return float(ttl)
    expiry = datetime.strptime(ttl, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    return max(0.0, expiry - now)


def _data(raw: object, value_type: str, limits: Limits, index: int | None = None) -> dict[str, Any]:
    if isinstance(raw, str):
        return {"format": "string", "value": raw}
    where = f"value {index}: " if index is not None else f"a {value_type:.40} value: "
    where_zh = f"标识值 {index}：" if index is not None else f"{value_type:.40} 标识值："
    if not isinstance(raw, dict):
        raise _invalid(
            f"{where}data must be a string or an object with 'format' and 'value'",
            f"{where_zh}data 必须是字符串或含 'format' 和 'value' 的对象",
        )
    fmt = raw.get("format", "string")
    if not isinstance(fmt, str) or not fmt or len(fmt) > 32 or has_control_characters(fmt):
        raise _invalid(f"{where}data.format must be a short string", f"{where_zh}data.format 必须是短字符串")
    fmt = fmt.lower() if fold(fmt) in KNOWN_FORMATS else fmt
    if "value" not in raw:
        raise _invalid(f"{where}data.value is missing", f"{where_zh}缺少 data.value")
    value = raw["value"]
    if fmt == "string":
        if not isinstance(value, str):
            raise _invalid(
                f"{where}a value of format 'string' must be a JSON string",
                f"{where_zh}格式为 'string' 的标识值必须是 JSON 字符串",
            )
    elif fmt in ("base64", "hex"):
        check = structured.check_base64 if fmt == "base64" else structured.check_hex
        try:
            check(value, f"a value of format '{fmt}'")
        except structured.InvalidStructure as exc:
            # the checker's own words (exc.zh in Chinese), after where the value is in each language
            message, zh = f"{where}{exc}", f"{where_zh}{exc.zh}"
            raise _invalid(message, zh) from None
    elif fmt in structured.STRUCTURED_FORMATS:
        try:
            value = structured.normalize(fmt, value, limits)
        except structured.InvalidStructure as exc:
            raise _invalid(f"{where}{fmt} data: {exc}", f"{where_zh}{fmt} 数据：{exc.zh}") from None
    return {"format": fmt, "value": value}


def value_permissions(raw: object, default: str, index: int) -> str:
    """A value's permissions in their stored form: four characters of 0 and 1, admin-read,
    admin-write, public-read, public-write, the binary of the octet the native protocol carries
    (Encoder.encodeHandleValue: PERM_ADMIN_READ 0x8 ... PERM_PUBLIC_WRITE 0x1).

    Read as the reference reads them (GsonUtility.HandleValueGsonTypeAdapter.deserializePermissions):
    from the right, the last character public-write, bits not given keep the default (`"0"` on a
    URL value is `"1110"`, `"11"` is `"1111"`); `"*"` all four; none given, the default. One
    difference: the reference skips the first character of a string of four or fewer (it tests
    `length() > 4` for admin-read, an off-by-one that reads its own `"0110"` back as `"1110"`);
    here every character counts, as its serializer and Encoder write them. Refused: anything but
    a string, characters other than 0 and 1, more than four characters (the reference would drop
    the leading ones).
    """
    if raw is None:
        return default
    if raw == "*":
        return "1111"
    if isinstance(raw, str) and _PERMISSIONS_RE.fullmatch(raw):
        return default[: 4 - len(raw)] + raw
    raise _invalid(
        f"value {index}: permissions must be up to four characters of 0 and 1 (admin read, admin "
        "write, public read, public write; read from the right) or '*'",
        f"标识值 {index}：权限必须是不超过四个 0 和 1 的字符（admin read、admin write、public read、"
        "public write；从右读起）或 '*'",
    )


def parse_value(raw: object, limits: Limits, now: datetime, stamp: str | None = None) -> StoredValue:
    """Validate one value sent by a client and return its stored form (rc 202 when invalid)."""
    if not isinstance(raw, dict):
        raise _invalid("each value must be a JSON object", "每个标识值必须是 JSON 对象")
    if "index" not in raw:
        raise _invalid("a value has no index", "标识值缺少索引")
    index = parse_int(raw["index"], "index", 1, limits.max_index)
    value_type = raw.get("type")
    if not isinstance(value_type, str) or not value_type:
        raise _invalid(
            f"value {index}: type must be a non-empty string", f"标识值 {index}：type 必须是非空字符串"
        )
    if len(value_type) > limits.max_type_length:
        raise _invalid(
            f"value {index}: type longer than {limits.max_type_length} characters",
            f"标识值 {index}：type 超过 {limits.max_type_length} 个字符",
        )
    if has_control_characters(value_type):
        raise _invalid(
            f"value {index}: type contains control characters", f"标识值 {index}：type 含有控制字符"
        )
    if "data" not in raw:
        raise _invalid(f"value {index}: data is missing", f"标识值 {index}：缺少 data")
    raw_data = raw["data"]
    if (
        type(raw_data) is dict
        and raw_data.get("format") == "string"
        and type(raw_data.get("value")) is str
        and len(raw_data) == 2
    ):
        data = {"format": "string", "value": raw_data["value"]}  # the common case, checked at once
    else:
        data = _data(raw_data, value_type, limits, index)
    folded_type = fold(value_type)
    if folded_type == "hs_admin" and data["format"] != "admin":
        raise _invalid(
            f"value {index}: an HS_ADMIN value must have format 'admin'",
            f"标识值 {index}：HS_ADMIN 标识值的格式必须是 'admin'",
        )
    raw_value = data["value"]
    try:
        encoded = None if isinstance(raw_value, str) else orjson.dumps(raw_value)
        size = len(encoded) if encoded is not None else _utf8_size(raw_value)
    except UnicodeEncodeError:
        # only a caller that hands over Python strings can get here (JSON bodies, UTF-8 files and
        # native messages cannot carry a lone surrogate): not text, whatever the path
        raise _invalid(
            f"value {index}: data is not valid Unicode text (a lone surrogate)",
            f"标识值 {index}：data 不是有效的 Unicode 文本（含孤立代理项）",
        ) from None
    except orjson.JSONEncodeError as exc:
        raise _invalid(
            f"value {index}: data cannot be stored as JSON ({exc})",
            f"标识值 {index}：data 无法存为 JSON（{exc}）",
        ) from None
    # in nested data, as JSON writes a NUL in any string or key
    nul = "\x00" in raw_value if encoded is None else b"\\u0000" in encoded
    if nul:
        # Postgres text cannot hold a NUL (a searchable value becomes a text search term):
        # every path refuses it here, as the HTTP APIs do for the whole body
        raise _invalid(
            f"value {index}: data contains a NUL character (\\u0000)",
            f"标识值 {index}：data 含有 NUL 字符（\\u0000）",
        )
    if size > limits.max_value_bytes:
        raise _invalid(
            f"value {index}: data is {size} bytes, more than {limits.max_value_bytes}",
            f"标识值 {index}：data 为 {size} 字节，超过 {limits.max_value_bytes}",
        )
    if (
        (folded_type == "url" or folded_type.startswith("url."))
        and isinstance(raw_value, str)
        and has_control_characters(raw_value)
    ):
        # the web proxy sends a URL value as a Location header, which CR or LF would split
        raise _invalid(
            f"value {index}: a URL must not contain control characters (CR, LF, NUL, tab...)",
            f"标识值 {index}：URL 不能含有控制字符（CR、LF、NUL、tab 等）",
        )
    default = SECRET_PERMISSIONS if folded_type in SECRET_TYPES else DEFAULT_PERMISSIONS
    perms = value_permissions(raw.get("permissions"), default, index)
    stored: StoredValue = {
        "index": index,
        "type": value_type,
        "data": data,
        "ttl": parse_ttl(raw.get("ttl"), now),
        "timestamp": stamp or timestamp(now),
    }
    if perms != DEFAULT_PERMISSIONS:
        stored["permissions"] = perms
    refs = raw.get("references")
    if refs:
        if not isinstance(refs, list):
            raise _invalid(
                f"value {index}: references must be a list", f"标识值 {index}：references 必须是列表"
            )
        try:
            stored["references"] = [structured.reference(r, "references[]", limits) for r in refs]
        except structured.InvalidStructure as exc:
            raise _invalid(f"value {index}: {exc}", f"标识值 {index}：{exc.zh}") from None
    return stored


def values_from_body(body: object, url_key: str, limits: Limits) -> list[object]:
    """The raw value objects of a PUT body: an array, `{"values": [...]}`, or one value."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        if "values" in body:
            handle = body.get("handle")
            if handle is not None and (not isinstance(handle, str) or fold(handle) != url_key):
                raise HandleError(
                    RC.PROTOCOL_ERROR,
                    "the handle in the body differs from the URL's",
                    zh="请求体中的标识与 URL 中的不同",
                )
            values = body["values"]
            if not isinstance(values, list):
                raise HandleError(
                    RC.PROTOCOL_ERROR, "'values' must be a JSON array", zh="'values' 必须是 JSON 数组"
                )
            return values
        if "index" in body or "type" in body:
            return [body]
    raise HandleError(
        RC.PROTOCOL_ERROR,
        'the body must be a JSON array of values or {"values": [...]}',
        zh='请求体必须是标识值的 JSON 数组或 {"values": [...]}',
    )


def parse_values(
    raw_values: Iterable[object], limits: Limits, now: datetime, stamp: str | None = None
) -> list[StoredValue]:
    """Validate a list of values: each valid, indexes unique, not too many (`stamp`: the
    timestamp of `now`, when the caller already has it)."""
    stamp = stamp or timestamp(now)
    values = [parse_value(raw, limits, now, stamp) for raw in raw_values]
    if len(values) > limits.max_values_per_handle:
        raise _invalid(
            f"more than {limits.max_values_per_handle} values in one handle",
            f"一个标识的标识值超过 {limits.max_values_per_handle} 个",
        )
    seen: set[int] = set()
    for value in values:
        if value["index"] in seen:
            raise _invalid(f"index {value['index']} appears twice", f"索引 {value['index']} 重复出现")
        seen.add(value["index"])
    return sorted(values, key=lambda v: v["index"])


def is_public(value: StoredValue) -> bool:
    """True when anonymous readers may see the value."""
    return bool(value.get("permissions", DEFAULT_PERMISSIONS)[2] == "1")


def is_admin_readable(value: StoredValue) -> bool:
    """True when an administrator with read-value permission may see the value."""
    return bool(value.get("permissions", DEFAULT_PERMISSIONS)[0] == "1")


def type_matches(value_type: str, wanted: Iterable[str]) -> bool:
    """Type filter, as the reference's Util.isParentTypeInArray: ASCII letters compared without
    case; a wanted type ending in '.' matches its subtypes and the parent type itself
    (`URL.` matches `URL` and `URL.alt`, not `URLX`); any other wanted type matches only itself."""
    if not value_type:
        return False
    folded = fold(value_type)
    for want in wanted:
        w = fold(want)
        if folded == w or (w.endswith(".") and (folded.startswith(w) or folded == w[:-1])):
            return True
    return False


def select(values: Iterable[StoredValue], indexes: frozenset[int], types: Sequence[str]) -> list[StoredValue]:
    """Values matching any given index or type; all values when neither is given."""
    if not indexes and not types:
        return list(values)
    return [v for v in values if v["index"] in indexes or (types and type_matches(v["type"], types))]


def first_url(values: list[StoredValue]) -> tuple[str, float] | None:
    """The first public `URL` value (type case-insensitive) and its TTL, for redirects.

    A `URL.<subtype>` value is used only when there is no plain `URL` value.
    """
    now = time.time()
    candidates = [v for v in values if is_public(v) and isinstance(v["data"]["value"], str)]
    for subtypes in (False, True):
        for value in candidates:
            value_type = value["type"].upper()
            if value_type.startswith("URL.") if subtypes else value_type == "URL":
                return value["data"]["value"], ttl_seconds(value["ttl"], now)
    return None


def content(values: Sequence[StoredValue]) -> list[tuple[Any, ...]]:
    """What makes two records the same, timestamps aside (a repeated write of the same values is
    not a change)."""
    return sorted(
        (v["index"], v["type"], v["data"], v["ttl"], v.get("permissions"), v.get("references"))
        for v in values
    )


def same_content(existing: Sequence[StoredValue] | None, values: Sequence[StoredValue]) -> bool:
    """True when a stored record (None: there is none) already holds these values."""
    return existing is not None and content(existing) == content(values)
