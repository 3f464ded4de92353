"""--log-format (resolver/logs.py): json is one object a line with the fields log pipelines index;
text names the request id too. Both carry resolver/http/requestid.current while a request is
handled."""

from __future__ import annotations

import io
import logging

import orjson

from resolver import logs
from resolver.http import requestid


def _emit(formatter: logging.Formatter, *, rid: str | None, exc: bool = False) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(logs._with_request_id)
    logger = logging.getLogger("resolver.test_log_format")
    logger.propagate = False
    logger.addHandler(handler)
    token = requestid.current.set(rid)
    try:
        if exc:
            try:
                raise ValueError("boom\nsecond line")
            except ValueError:
                logger.exception("failed for %s", "88.123/x")
        else:
            logger.warning("answered %s", "88.123/日本")
    finally:
        requestid.current.reset(token)
        logger.removeHandler(handler)
    return stream.getvalue()


def test_json_lines_carry_the_fields_and_the_request_id() -> None:
    out = _emit(logs.JsonFormatter(), rid="trace-1")
    assert out.count("\n") == 1
    entry = orjson.loads(out)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "resolver.test_log_format"
    assert entry["message"] == "answered 88.123/日本"
    assert entry["request_id"] == "trace-1"
    assert isinstance(entry["pid"], int)
    assert entry["time"].endswith("Z") and "T" in entry["time"]


def test_an_exception_stays_inside_its_json_line() -> None:
    out = _emit(logs.JsonFormatter(), rid=None, exc=True)
    assert out.count("\n") == 1
    entry = orjson.loads(out)
    assert "request_id" not in entry
    assert "ValueError: boom\nsecond line" in entry["exception"]
    assert entry["message"] == "failed for 88.123/x"


def test_text_lines_name_the_request() -> None:
    assert "resolver.test_log_format [trace-2]: answered" in _emit(
        logging.Formatter(logs.TEXT_FORMAT), rid="trace-2"
    )
    assert "resolver.test_log_format: answered" in _emit(logging.Formatter(logs.TEXT_FORMAT), rid=None)
