"""Handle names: parsing, case folding, and which prefix governs a handle."""

from __future__ import annotations

import re
from dataclasses import dataclass

from resolver.config import Limits
from resolver.core.errors import RC, HandleError

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_SCHEMES = ("info:hdl/", "urn:hdl:", "hdl:", "doi:")
_PREFIX_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-_")
PREFIX_NA = "0.na"


def fold(text: str) -> str:
    """Case-fold only the ASCII letters, as Handle.Net matches handles by default."""
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


def strip_scheme(text: str) -> str:
    """Remove one `hdl:`, `doi:`, `info:hdl/` or `urn:hdl:` in front of a handle."""
    head = fold(text[:9])
    for scheme in _SCHEMES:
        if head.startswith(scheme):
            return text[len(scheme) :]
    return text


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def has_control_characters(text: str) -> bool:
    """True when the text holds C0 or C1 control characters (or DEL)."""
    return _CONTROL.search(text) is not None


@dataclass(frozen=True, slots=True)
class HandleName:
    """A parsed handle: as the client wrote it, and its case-folded lookup key."""

    text: str
    key: str
    prefix: str
    suffix: str

    @property
    def is_prefix_handle(self) -> bool:
        """True for `0.NA/<prefix>` handles, which describe a prefix."""
        return self.prefix == PREFIX_NA


def check_prefix(prefix: str, limits: Limits) -> str:
    """Validate a prefix (without `0.NA/`) and return it case-folded."""
    if not prefix:
        raise HandleError(RC.INVALID_HANDLE, "the prefix is empty", zh="前缀为空")
    if len(prefix) > limits.max_prefix_length:
        raise HandleError(
            RC.INVALID_HANDLE,
            f"the prefix is longer than {limits.max_prefix_length} characters",
            zh=f"前缀超过 {limits.max_prefix_length} 个字符",
        )
    folded = fold(prefix)
    if not set(folded) <= _PREFIX_CHARS or folded.startswith(".") or folded.endswith(".") or ".." in folded:
        raise HandleError(
            RC.INVALID_HANDLE,
            "a prefix is made of letters, digits, '-' and '_' in segments separated by '.'",
            zh="前缀由字母、数字、'-' 和 '_' 组成，各段以 '.' 分隔",
        )
    return folded


def parse_handle(raw: str, limits: Limits, *, allow_empty_suffix: bool = False) -> HandleName:
    """Parse a handle as sent by a client, raising rc 102 with a reason when it is not valid.

    A handle without '/' is a bare prefix and names its prefix handle: `88.123` is `0.NA/88.123`
    (as the reference server resolves it: HandleServer.doResolution, doListHandles, doHomeNA use
    Util.convertSlashlessHandleToZeroNaHandle). `text` is then the prefix handle, so a write stores
    it under its full name; answers keep echoing what the client sent. A template to mint under
    (`allow_empty_suffix`) must still be `<prefix>/`."""
    text = strip_scheme(raw)
    if not text:
        raise HandleError(RC.INVALID_HANDLE, "the handle is empty", zh="标识为空")
    if len(text) > limits.max_handle_length:
        raise HandleError(
            RC.INVALID_HANDLE,
            f"the handle is longer than {limits.max_handle_length} characters",
            zh=f"标识超过 {limits.max_handle_length} 个字符",
        )
    if has_control_characters(text):
        raise HandleError(RC.INVALID_HANDLE, "the handle contains control characters", zh="标识含有控制字符")
    prefix, slash, suffix = text.partition("/")
    if not slash:
        if allow_empty_suffix:
            raise HandleError(
                RC.INVALID_HANDLE,
                "a handle is <prefix>/<suffix>; there is no '/'",
                zh="标识格式为 <前缀>/<后缀>；缺少 '/'",
            )
        prefix, suffix = "0.NA", text
        text = f"{prefix}/{suffix}"
    if not suffix and not allow_empty_suffix:
        raise HandleError(RC.INVALID_HANDLE, "the handle has an empty suffix", zh="标识的后缀为空")
    folded_prefix = check_prefix(prefix, limits)
    if folded_prefix == PREFIX_NA and suffix:
        check_prefix(suffix, limits)
    return HandleName(text=text, key=fold(text), prefix=folded_prefix, suffix=suffix)


def parent_prefix(prefix: str) -> str | None:
    """`88.123.45` -> `88.123`; a prefix with a single segment has no parent."""
    head, dot, _ = prefix.rpartition(".")
    return head if dot else None


class NodeScope:
    """Which handles this node answers for, and which prefix handles govern a handle."""

    def __init__(self, node_prefix: str) -> None:
        self.node_prefix = fold(node_prefix)
        self.node_prefix_handle = f"{PREFIX_NA}/{self.node_prefix}"

    def owns_prefix(self, prefix: str) -> bool:
        """True for the node prefix and any prefix below it (both case-folded)."""
        node = self.node_prefix
        return prefix == node or (prefix.startswith(node) and prefix[len(node)] == ".")

    def is_responsible(self, name: HandleName) -> bool:
        """True when the handle lives under the node prefix, or is the prefix handle of one."""
        if name.prefix == PREFIX_NA:
            return self.owns_prefix(fold(name.suffix))
        return self.owns_prefix(name.prefix)

    def governing_prefix_handles(self, name: HandleName) -> list[str]:
        """Keys of the prefix handles whose HS_ADMIN values govern `name`, nearest first.

        For `88.123.45/x` they are `0.na/88.123.45` and `0.na/88.123`; for the prefix handle
        `0.NA/88.123.45` itself they start at its parent, `0.na/88.123`.
        """
        prefix: str | None
        prefix = parent_prefix(fold(name.suffix)) if name.is_prefix_handle else name.prefix
        keys: list[str] = []
        while prefix is not None and self.owns_prefix(prefix):
            keys.append(f"{PREFIX_NA}/{prefix}")
            prefix = parent_prefix(prefix)
        return keys

    def prefix_handles_for_listing(self, prefix: str) -> list[str]:
        """Keys of the prefix handles that govern listing the handles under `prefix`."""
        keys: list[str] = []
        current: str | None = prefix
        while current is not None and self.owns_prefix(current):
            keys.append(f"{PREFIX_NA}/{current}")
            current = parent_prefix(current)
        return keys
