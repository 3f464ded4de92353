"""Domain errors, each carrying the Handle response code that describes it.

The HTTP layer maps them to the documented error body in one place (`resolver.http.errors`).
"""

from __future__ import annotations

from enum import IntEnum

_MARKUP = str.maketrans({"<": "\\x3c", ">": "\\x3e", "&": "\\x26"})


def quoted(raw: object, limit: int = 40) -> str:
    """A client's value as an error message repeats it: its repr cut to `limit` characters, with
    `<`, `>` and `&` written as escapes, so no message reflects markup a careless page might render
    (the fuzzers send `<script>` in every field)."""
    return f"{raw!r:.{limit}}".translate(_MARKUP)


class RC(IntEnum):
    """Handle.Net response codes."""

    SUCCESS = 1
    ERROR = 2
    SERVER_TOO_BUSY = 3
    PROTOCOL_ERROR = 4
    OPERATION_NOT_SUPPORTED = 5
    SERVER_BACKUP = 7
    HANDLE_NOT_FOUND = 100
    HANDLE_ALREADY_EXISTS = 101
    INVALID_HANDLE = 102
    VALUES_NOT_FOUND = 200
    VALUE_ALREADY_EXISTS = 201
    INVALID_VALUE = 202
    SERVER_NOT_RESPONSIBLE = 301
    INVALID_ADMIN = 400
    INSUFFICIENT_PERMISSIONS = 401
    AUTHENTICATION_NEEDED = 402
    AUTHENTICATION_FAILED = 403
    INVALID_CREDENTIAL = 404


class HandleError(Exception):
    """An operation failed with a Handle response code and a human-readable message."""

    # A transport status to use instead of the one the response code maps to (e.g. 413).
    status: int | None = None
    # For 405: the methods that are allowed.
    allow: str | None = None

    def __init__(
        self, rc: RC, message: str, *, zh: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.rc = rc
        self.message = message  # English: the Handle API and the native protocol say this
        self.zh = zh  # Chinese: what the enterprise and operator APIs say (services/batches.in_chinese)
        self.retry_after = retry_after


class Unavailable(HandleError):
    """The database cannot be reached; the client should retry later.

    `uncertain`: the connection was lost while the transaction committed, so whether the write is
    stored cannot be known here; the client reads before it retries (a retried create then says
    the handle exists, a retried replace is harmless).
    """

    UNCERTAIN = "the identifier database went away while committing: the write may or may not be stored"
    UNCERTAIN_ZH = "提交时数据库连接中断，写入可能已保存也可能未保存，请先查询再重试"

    def __init__(
        self,
        message: str = "the identifier database is unavailable",
        retry_after: int = 2,
        *,
        uncertain: bool = False,
    ):
        super().__init__(
            RC.SERVER_TOO_BUSY,
            self.UNCERTAIN if uncertain else message,
            zh=self.UNCERTAIN_ZH if uncertain else "数据库暂不可用，请稍后重试",
            retry_after=retry_after,
        )
        self.uncertain = uncertain


class PayloadTooLarge(HandleError):
    """The request body exceeds the configured limit."""

    status = 413

    def __init__(self, limit: int) -> None:
        super().__init__(
            RC.PROTOCOL_ERROR, f"request body larger than {limit} bytes", zh=f"请求体超过 {limit} 字节"
        )
        self.limit = limit


class BodyTimeout(HandleError):
    """The request body did not arrive in time."""

    status = 408

    def __init__(self, seconds: float) -> None:
        super().__init__(
            RC.PROTOCOL_ERROR,
            f"the request body did not arrive within {seconds:g} seconds",
            zh=f"请求体未在 {seconds:g} 秒内传完",
        )
        self.seconds = seconds


class UnsupportedEncoding(HandleError):
    """A request body in a content coding (gzip, br, ...): the node takes bodies as sent."""

    status = 415

    def __init__(self, coding: str) -> None:
        super().__init__(
            RC.PROTOCOL_ERROR,
            f"Content-Encoding {quoted(coding)} is not accepted; send the body as is",
            zh=f"不接受 Content-Encoding {quoted(coding)}，请直接发送原始请求体",
        )


class MethodNotAllowed(HandleError):
    """The path exists, the method does not."""

    status = 405

    def __init__(self, method: str, allow: str) -> None:
        super().__init__(
            RC.PROTOCOL_ERROR,
            f"method {method} is not allowed here; use {allow}",
            zh=f"此处不支持 {method} 方法，请使用 {allow}",
        )
        self.allow = allow


class RateLimited(HandleError):
    """The caller sent more requests than its token bucket allows."""

    status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            RC.SERVER_TOO_BUSY,
            f"too many requests; retry in {retry_after} seconds",
            zh=f"请求过于频繁，请 {retry_after} 秒后重试",
            retry_after=retry_after,
        )


# What a Handle response code means, for the Chinese messages of the enterprise API.
_ZH = {
    RC.INVALID_HANDLE: "标识格式不正确",
    RC.INVALID_VALUE: "标识值不合法",
    RC.PROTOCOL_ERROR: "请求格式不正确",
    RC.SERVER_NOT_RESPONSIBLE: "该前缀不在本节点",
    RC.HANDLE_ALREADY_EXISTS: "标识已存在",
    RC.HANDLE_NOT_FOUND: "标识不存在",
    RC.INSUFFICIENT_PERMISSIONS: "无权操作",
    RC.VALUES_NOT_FOUND: "标识值不存在",
    RC.VALUE_ALREADY_EXISTS: "标识值已存在",
    RC.ERROR: "操作失败",
    RC.SERVER_TOO_BUSY: "服务繁忙，请稍后重试",
    RC.OPERATION_NOT_SUPPORTED: "不支持该操作",
    RC.INVALID_ADMIN: "管理员记录不正确",
    RC.AUTHENTICATION_NEEDED: "需要登录认证",
    RC.AUTHENTICATION_FAILED: "认证失败",
    RC.INVALID_CREDENTIAL: "凭据不正确",
}


def in_chinese(exc: HandleError) -> str:
    """The message for enterprise and operator API users: the error's Chinese text
    (tests/unit/test_message_languages.py checks that every error the node raises has one:
    the enterprise and operator APIs, the importer's reports); an error without one says in
    Chinese what its response code means, never the English text."""
    if exc.zh is not None:
        return exc.zh
    if any("\u4e00" <= c <= "\u9fff" for c in exc.message):
        return exc.message
    return _ZH.get(exc.rc, "操作失败")
