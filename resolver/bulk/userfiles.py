"""Files on an operator's path: the file an import reads, the report it writes, an export's output.

Operators run `resolver import` and `resolver export` as root, on files and in directories that
enterprises supply. A file to read must be a regular file: a FIFO would block the import forever,
a device such as /dev/zero would never end. A file is never written through a symbolic link, nor
into a file that another name shares: `create` makes a new file under a fresh name (O_CREAT |
O_EXCL | O_NOFOLLOW) and renames it over the path, so that whatever was there (a link to
/etc/shadow, a hard link to it) is replaced, not written; `append` (the report of a resumed import)
refuses anything but a regular file with a single name.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path
from typing import BinaryIO, TextIO


class RefusedFile(ValueError):
    """A file the node will not read or write; the message says why (shown to the operator)."""


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "命名管道（FIFO）"
    if stat.S_ISDIR(mode):
        return "目录"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "设备"
    if stat.S_ISSOCK(mode):
        return "套接字"
    return "特殊文件"


def _not_regular(path: Path | str, mode: int) -> RefusedFile:
    return RefusedFile(f"{path} 不是普通文件，而是{_kind(mode)}：只能导入普通文件")


def open_regular(path: Path | str) -> BinaryIO:
    """Open a file to read, refusing what is not a regular file without blocking on it."""
    # Checked before opening (opening a device may do something of its own), and again on what
    # was opened: a FIFO put in the file's place meanwhile does not block an O_NONBLOCK open.
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise _not_regular(path, mode)
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(path, mode)
        os.set_blocking(descriptor, True)
    except BaseException:
        os.close(descriptor)
        raise
    return open(descriptor, "rb")


def same_file(name: Path | str, path: Path | str) -> bool:
    """True when a new file at `name` would replace the file read as `path`, or the name (a link)
    it is read through."""
    try:
        written = os.lstat(name)
        return os.path.samestat(written, os.stat(path)) or os.path.samestat(written, os.lstat(path))
    except FileNotFoundError:
        return False


def create(path: Path | str) -> TextIO:
    """A new, empty text file at `path`, replacing (never writing into) whatever was there."""
    path = Path(path)
    fresh = f".{path.name}.{secrets.token_hex(8)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    # Every step relative to the directory opened once: a parent that someone turns into a link
    # to another directory meanwhile cannot split the file from its rename or its cleanup.
    directory = _open_directory(path)
    try:
        descriptor = os.open(fresh, flags, 0o666, dir_fd=directory)
        try:
            os.rename(fresh, path.name, src_dir_fd=directory, dst_dir_fd=directory)
        except BaseException as exc:
            os.close(descriptor)
            with contextlib.suppress(OSError):
                os.unlink(fresh, dir_fd=directory)
            if isinstance(exc, OSError):
                raise RefusedFile(f"无法写入 {path}：{exc.strerror}") from exc
            raise
    finally:
        os.close(directory)
    return open(descriptor, "w", encoding="utf-8", newline="")


def _open_directory(path: Path) -> int:
    try:
        return os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise RefusedFile(f"无法写入 {path}：{exc.strerror}") from exc


def append(path: Path | str) -> TextIO:
    """The text file at `path` to append to, if it is a regular file with one name (a new one
    when there is none); refused otherwise."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        return create(path)
    except OSError as exc:
        # a symbolic link (O_NOFOLLOW), a directory, a FIFO nobody reads (O_NONBLOCK)
        if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
            kind = {errno.ELOOP: "符号链接", errno.EISDIR: "目录", errno.ENXIO: "命名管道（FIFO）"}
            raise _refused(path, kind[exc.errno]) from None
        raise
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise _refused(path, _kind(info.st_mode))
        if info.st_nlink != 1:
            raise _refused(path, "与其他文件共用内容的硬链接")
        os.set_blocking(descriptor, True)
    except BaseException:
        os.close(descriptor)
        raise
    return open(descriptor, "a", encoding="utf-8", newline="")


def _refused(path: Path | str, kind: str) -> RefusedFile:
    return RefusedFile(
        f"不写入 {path}：它是{kind}，不是只有一个名字的普通文件；请移走它，或用 --report 另指定报告文件"
    )
