"""The portal's upload pages (issue 18): send a CSV, .xlsx or JSON Lines file, watch its progress
(the page reloads itself from the server's counts, no script), then read the counts and download
the rejected rows to fix and send again. The work is resolver/services/uploads.py's."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import BodyPartReader, web

from resolver.core.errors import RC, BodyTimeout, HandleError, UnsupportedEncoding
from resolver.http.keys import CONFIG, STORE, UPLOADS
from resolver.portal import pages
from resolver.portal.records import _message, _templates, _writable_prefixes
from resolver.services.uploads import MAX_BYTES, upload_path
from resolver.store import uploads as db

# a file is given this many times the body timeout of a form to arrive (32 MiB on a slow line)
UPLOAD_TIMEOUT_FACTOR = 10
FIELD_OCTETS = 1024  # the CSRF token and a template version
SUFFIXES = {"csv": ".rejected.csv", "xlsx": ".rejected.csv", "jsonl": ".rejected.jsonl"}


def routes() -> list[tuple[str, dict[str, Any]]]:
    return [
        ("/portal/upload", {"GET": upload_page, "POST": upload}),
        (r"/portal/upload/{id:\d{1,18}}", {"GET": progress_page}),
        (r"/portal/upload/{id:\d{1,18}}/rejected", {"GET": rejected_rows}),
    ]


def _too_large() -> HandleError:
    exc = HandleError(
        RC.PROTOCOL_ERROR,
        f"the file is larger than {MAX_BYTES // 2**20} MiB; split it, or ask the operator to import it",
        zh=f"文件超过 {MAX_BYTES // 2**20} MiB：请拆分后分次上传，或请节点运营方用 resolver import 导入",
    )
    exc.status = 413
    return exc


async def upload_page(
    request: web.Request, error: str | None = None, status: int = 200
) -> web.StreamResponse:
    session = await pages._signed_in(request)
    if session is None:
        return pages._to_login(request)
    identity, token = session
    assert identity.enterprise_id is not None
    prefixes = await _writable_prefixes(request, identity)
    templates = await _templates(request, prefixes[0]) if prefixes else []
    context = {
        "title": pages._t(request, "批量导入", "Upload identifiers"),
        "user": identity.text,
        "csrf": pages._session_csrf(token),
        "templates": templates,
        "uploads": await db.uploads_of(request.app[STORE], identity.enterprise_id),
        "max_mib": MAX_BYTES // 2**20,
        "error": error,
    }
    return pages._page(request, "upload.html", context, status)


async def upload(request: web.Request) -> web.StreamResponse:
    """multipart/form-data: `csrf` first, then `template` (may be empty), then `file`."""
    if pages._cross_site(request):
        return pages._forbidden(request)
    if request.content_type != "multipart/form-data":
        raise pages.BadForm("files are sent as multipart/form-data", "文件须以 multipart/form-data 上传", 415)
    session = await pages._signed_in(request)
    if session is None:
        return pages._to_login(request)
    identity, token = session
    if request.content_length is not None and request.content_length > MAX_BYTES + 64 * 1024:
        raise _too_large()
    coding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if coding not in ("", "identity"):
        raise UnsupportedEncoding(coding)
    seconds = request.app[CONFIG].body_timeout * UPLOAD_TIMEOUT_FACTOR
    try:
        async with asyncio.timeout(seconds if seconds > 0 else None):
            found = await _fields_before_the_file(request)
    except TimeoutError:
        raise BodyTimeout(seconds) from None
    if found is None:
        return await upload_page(request, pages._t(request, "请选择文件", "Choose a file"), 400)
    fields, part = found
    if not pages._same(fields.get("csrf", ""), pages._session_csrf(token)):
        return pages._forbidden(request)  # checked before a byte of the file is kept
    file_name = (part.filename or "upload")[-200:]
    path = upload_path()
    try:
        async with asyncio.timeout(seconds if seconds > 0 else None):
            size = await _save(part, path)
    except TimeoutError:
        await asyncio.to_thread(path.unlink, True)
        raise BodyTimeout(seconds) from None
    except BaseException:
        await asyncio.to_thread(path.unlink, True)
        raise
    if size == 0:
        await asyncio.to_thread(path.unlink, True)
        return await upload_page(request, pages._t(request, "文件是空的", "The file is empty"), 400)
    try:
        started = await request.app[UPLOADS].start(identity, path, file_name, fields.get("template") or None)
    except HandleError as exc:
        if exc.rc == RC.SERVER_TOO_BUSY:
            raise
        return await upload_page(request, _message(request, exc), 400)
    return pages._see_other(f"/portal/upload/{started.upload_id}")


async def _fields_before_the_file(request: web.Request) -> tuple[dict[str, str], BodyPartReader] | None:
    """The form's small fields (each once, at most FIELD_OCTETS) and the file part that follows
    them; None when the form ends without a file."""
    reader = await request.multipart()
    fields: dict[str, str] = {}
    while True:
        part = await reader.next()
        if part is None:
            return None
        if not isinstance(part, BodyPartReader):
            raise pages.BadForm("nested multipart is not a form", "表单格式不正确")
        if part.name == "file":
            return fields, part
        if part.name not in ("csrf", "template") or part.name in fields:
            raise pages.BadForm("unexpected or repeated form field", "表单字段不正确或重复")
        value = b""
        while chunk := await part.read_chunk(FIELD_OCTETS):
            value += chunk
            if len(value) > FIELD_OCTETS:
                raise pages.BadForm("a form field is too long", "表单字段过长")
        fields[part.name] = value.decode("utf-8", "replace")


async def _save(part: BodyPartReader, path: Path) -> int:
    """Write the file part to `path` within MAX_BYTES; the number of octets."""
    size = 0
    with open(path, "wb") as out:  # noqa: ASYNC230 - a local temporary file, written a chunk at a time
        while chunk := await part.read_chunk(1 << 16):
            size += len(chunk)
            if size > MAX_BYTES:
                raise _too_large()
            out.write(chunk)
    return size


async def _own_upload(request: web.Request) -> tuple[Any, Any, str] | web.Response:
    session = await pages._signed_in(request)
    if session is None:
        return pages._to_login(request)
    identity, token = session
    assert identity.enterprise_id is not None
    found = await db.upload_of(request.app[STORE], int(request.match_info["id"]), identity.enterprise_id)
    if found is None:  # another enterprise's upload is as absent as one that never was
        exc = HandleError(RC.HANDLE_NOT_FOUND, "no such upload", zh="没有这次上传")
        exc.status = 404
        raise exc
    return identity, found, token


async def progress_page(request: web.Request) -> web.StreamResponse:
    own = await _own_upload(request)
    if isinstance(own, web.Response):
        return own
    identity, found, token = own
    context = {
        "title": pages._t(request, "导入进度", "Upload progress"),
        "user": identity.text,
        "csrf": pages._session_csrf(token),
        "upload": found,
        "download": f"/portal/upload/{found.id}/rejected",
    }
    response = pages._page(request, "upload_job.html", context)
    if found.state == "running" and not found.interrupted:
        response.headers["Refresh"] = "1"  # the page asks the server again every second
    return response


async def rejected_rows(request: web.Request) -> web.StreamResponse:
    own = await _own_upload(request)
    if isinstance(own, web.Response):
        return own
    identity, found, _token = own
    report = await db.report_of(request.app[STORE], found.id, identity.enterprise_id)
    if report is None:
        exc = HandleError(
            RC.HANDLE_NOT_FOUND, "this upload has no rejected rows", zh="这次上传没有被拒绝的行"
        )
        exc.status = 404
        raise exc
    body, fmt = report
    name = found.file_name.rsplit(".", 1)[0] + SUFFIXES.get(fmt, ".rejected.csv")
    kind = "application/x-ndjson" if fmt == "jsonl" else "text/csv"
    return web.Response(
        body=body,
        headers={
            "Content-Type": f"{kind}; charset=utf-8",
            "Content-Disposition": f"attachment; filename=\"rejected.{'jsonl' if fmt == 'jsonl' else 'csv'}\"; filename*=UTF-8''{quote(name, safe='')}",
        },
    )
