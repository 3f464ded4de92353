"""A file uploaded in the portal, registered row by row as the enterprise (issue 18).

The rows are read as `resolver import` reads them (resolver.bulk: the same columns, templates,
encodings Excel and WPS save, workbooks), a chunk at a time in a thread so the event loop keeps
serving; each chunk is then registered through the enterprise API's batch service with the
uploader's identity, so ownership, the prefix's state, templates and signing are that service's
rules and an upload can do nothing the enterprise's token could not. Progress and the final
counts are written to Postgres (schema/0016), where every worker reads them; the rejected rows
become the report `resolver import` writes (the file's own header plus `拒绝原因`), for the
enterprise to fix and upload again. A re-upload is harmless: identical rows succeed again.

This is for the files a small manufacturer keeps (up to MAX_BYTES); the node's operator imports
millions with `resolver import`, which COPies.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import orjson

from resolver.bulk.columns import Shape
from resolver.bulk.reader import RowReader
from resolver.bulk.report import Report
from resolver.bulk.rows import Prepared
from resolver.bulk.sheets import Workbook
from resolver.bulk.source import detect_format
from resolver.bulk.userfiles import open_regular
from resolver.config import Config
from resolver.core.errors import RC, HandleError
from resolver.core.permissions import Identity
from resolver.core.templates import SHARED
from resolver.metrics import NodeMetrics
from resolver.services.accounts import Accounts
from resolver.services.batches import OK, Batches, count_new
from resolver.services.statistics import DailyCounter
from resolver.store import enterprises as enterprise_store
from resolver.store import templates as template_store
from resolver.store import uploads as db
from resolver.store.handles import HandleStore

log = logging.getLogger(__name__)

MAX_BYTES = 32 * 1024 * 1024  # about 200,000 rows of a general product template
MAX_ROWS = 200_000  # rows of a sheet (a workbook may claim a million empty ones)
# a workbook is a zip: what it may expand to before openpyxl reads it (its shared strings are read
# whole), and by how much one member may expand (ordinary sheets: 5 to 30 times)
MAX_EXPANDED = 256 * 1024 * 1024
MAX_RATIO = 100
HEARTBEAT = 10.0  # seconds between "still running" marks while a chunk is read
CHUNK = 1000  # rows per batch: a transaction of the batch service, then a progress update
RUNNING_PER_WORKER = 2  # uploads registering at once in one worker process


@dataclass(frozen=True)
class Started:
    upload_id: int
    fmt: str


def _busy() -> HandleError:
    return HandleError(
        RC.SERVER_TOO_BUSY,
        "another upload of this enterprise is still running; wait for it to finish",
        zh="本企业的另一个文件仍在导入，请等它完成后再上传",
        retry_after=10,
    )


def refuse_bombs(path: Path) -> None:
    """ValueError for a workbook that would expand far beyond its size when read."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"不是有效的 .xlsx 文件：{exc}") from None
    expanded = sum(m.file_size for m in members)
    swollen = [m for m in members if m.file_size > MAX_RATIO * max(m.compress_size, 1) + (1 << 20)]
    if expanded > MAX_EXPANDED or swollen:
        raise ValueError(
            f"工作簿解压后过大（{expanded // 2**20} MiB，或某个部件的压缩比超过 {MAX_RATIO} 倍），"
            "请另存为 CSV 后上传，或请节点运营方导入"
        )


def _count_rows(path: Path, fmt: str) -> int:
    """The data rows a file holds, for the progress bar (a CSV's quoted line breaks aside)."""
    with open_regular(path) as raw:
        if fmt == "xlsx":
            book = Workbook(raw, None)  # refuse_bombs has looked at it
            book.book.close()
            return max(book.rows_expected - 1, 0)
        lines = sum(block.count(b"\n") for block in iter(lambda: raw.read(1 << 20), b""))
    return max(lines - (0 if fmt == "jsonl" else 1), 0)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def _take(rows: Iterator[Any], count: int) -> list[Any]:
    return list(islice(rows, count))


class Uploads:
    """Starts uploads and registers their rows in the background of this worker."""

    def __init__(
        self, config: Config, store: HandleStore, batches: Batches, metrics: NodeMetrics, daily: DailyCounter
    ) -> None:
        self.config = config
        self.store = store
        self.batches = batches
        self.metrics = metrics
        self.daily = daily
        self.accounts: Accounts | None = None  # set by the app: an upload stops with its user
        self.tasks: set[asyncio.Task[None]] = set()
        self.active = 0  # uploads starting or running in this worker

    async def start(self, identity: Identity, path: Path, file_name: str, version: str | None) -> Started:
        """Check the file's header and start registering it; the file is this object's from now
        on (removed when done). Raises HandleError for a file that cannot be read."""
        assert identity.enterprise_id is not None
        if self.active >= RUNNING_PER_WORKER:  # counted before the first wait: starts included
            _remove(path)
            raise HandleError(
                RC.SERVER_TOO_BUSY,
                "the node is busy with uploads",
                zh="节点正忙于其他导入，请稍后再试",
                retry_after=10,
            )
        self.active += 1
        try:
            fmt = detect_format(path, None)
            reader = await self._reader(identity.enterprise_id)
            try:
                if fmt == "xlsx":
                    await asyncio.to_thread(refuse_bombs, path)
                shape = await asyncio.to_thread(reader.shape, path, fmt, version, None, None)
                total = await asyncio.to_thread(_count_rows, path, fmt)
            except (ValueError, OSError) as exc:
                raise HandleError(
                    RC.INVALID_VALUE, f"the file cannot be read: {exc}", zh=f"文件无法读取：{exc}"
                ) from None
            if fmt != "jsonl" and shape is None:
                raise HandleError(RC.INVALID_VALUE, "the file is empty", zh="文件是空的")
            async with self.store.write() as tx:
                upload_id = await db.start(tx, identity.enterprise_id, identity.text, file_name, fmt, total)
            if upload_id is None:
                raise _busy()
        except BaseException:
            self.active -= 1
            _remove(path)
            raise
        task = asyncio.get_running_loop().create_task(
            self._run(upload_id, identity, path, fmt, version, reader, shape)
        )
        self.tasks.add(task)
        task.add_done_callback(self._done)
        return Started(upload_id, fmt)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.active -= 1

    async def _reader(self, enterprise_id: int) -> RowReader:
        """The importer's row reader with the templates this enterprise may use."""
        own = [p.prefix for p in await enterprise_store.prefixes_of(self.store, enterprise_id)]
        templates = await template_store.templates_of(self.store, [SHARED, *own])
        return RowReader(self.config, {}, {(t.prefix, t.version): t for t in templates})

    async def _run(
        self,
        upload_id: int,
        identity: Identity,
        path: Path,
        fmt: str,
        version: str | None,
        reader: RowReader,
        shape: Shape | None,
    ) -> None:
        out = io.StringIO()
        done = accepted = rejected = 0
        state, message = "done", ""
        rows: Iterator[Any] | None = None
        try:
            report = Report(out, shape, restoring=shape is not None and shape.node_written and fmt == "csv")
            rows = reader.rows(path, fmt, version)
            while chunk := await self._read(upload_id, rows):
                if self.accounts is not None and not await self.accounts.active(identity):
                    raise HandleError(
                        RC.AUTHENTICATION_NEEDED,
                        "the uploading user was disabled or removed",
                        zh="上传的用户已被停用或删除，导入停止；已导入的行已保存",
                    )
                if chunk[-1][0] > MAX_ROWS + 1:
                    raise ValueError(
                        f"超过 {MAX_ROWS} 行：请拆分后分次上传，或请节点运营方用 resolver import 导入"
                    )
                good, refused = self._items(chunk)
                results = await self.batches.create(identity, [item for _, _, item in good]) if good else []
                self.metrics.registered("portal", "upload", [r.code == OK for r in results])
                count_new(self.daily, results)
                for (line, original, _), result in zip(good, results, strict=True):
                    if result.code != OK:
                        refused.append((line, result.handle, result.msg, original))
                refused.sort(key=lambda r: r[0])
                report.write(refused)
                done += len(chunk)
                rejected += len(refused)
                accepted += len(chunk) - len(refused)
                async with self.store.write() as tx:
                    await db.progress(tx, upload_id, done, accepted, rejected)
        except (ValueError, OSError) as exc:
            state, message = "failed", f"文件无法继续读取：{exc}"
        except HandleError as exc:
            state, message = "failed", exc.zh or exc.message
        except asyncio.CancelledError:
            state, message = "failed", "节点停止，导入中断；已导入的行已保存，重新上传同一文件即可继续"
            raise
        except Exception:
            log.exception("upload %d failed", upload_id)
            state, message = "failed", "导入出错；已导入的行已保存，重新上传同一文件即可继续"
        finally:
            if rows is not None:
                with contextlib.suppress(Exception):
                    rows.close()  # type: ignore[attr-defined]  # the reader's file, when it stopped early
            _remove(path)
            with contextlib.suppress(Exception):
                async with self.store.write() as tx:
                    body = out.getvalue().encode("utf-8") if rejected else None
                    await db.finish(tx, upload_id, state, (done, accepted, rejected), message, body)

    async def _read(self, upload_id: int, rows: Iterator[Any]) -> list[Any]:
        """The next chunk of rows, read in a thread; the upload marked alive every HEARTBEAT
        seconds meanwhile (a slow chunk is not an interrupted upload)."""
        reading = asyncio.ensure_future(asyncio.to_thread(_take, rows, CHUNK))
        while True:
            done, _ = await asyncio.wait({reading}, timeout=HEARTBEAT)
            if done:
                return reading.result()
            async with self.store.write() as tx:
                await db.touch(tx, upload_id)

    def _items(self, chunk: list[Any]) -> tuple[list[Any], list[Any]]:
        """The chunk's rows the batch service will try, and those refused as they were read."""
        readable: list[tuple[int, Any, str, list[Any]]] = []
        refused: list[Any] = []
        for line, handle, item, original in chunk:
            if isinstance(item, str):
                refused.append((line, handle, item, original))
                continue
            values = orjson.loads(item.json) if isinstance(item, Prepared) else item
            readable.append((line, original, handle, values))
        items = self.batches.stored_items([(handle, values) for _, _, handle, values in readable])
        good: list[Any] = []
        for (line, original, handle, _), item in zip(readable, items, strict=True):
            if item.error:
                refused.append((line, handle, item.error, original))
            else:
                good.append((line, original, item))
        return good, refused

    async def close(self) -> None:
        """Stop the uploads of this worker (their rows so far are stored; they show as failed)."""
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def upload_path(directory: str | None = None) -> Path:
    """A new private file for an upload's bytes."""
    import tempfile

    handle, name = tempfile.mkstemp(prefix="portal-upload-", dir=directory)
    os.close(handle)
    return Path(name)
