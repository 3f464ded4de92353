"""One language per API (issue 16): the Handle API and the native protocol speak English, as
Handle.Net does; the enterprise and operator APIs speak Chinese, wholly (no "标识不存在: handle not
found"). Every error the node raises therefore carries both: HandleError(rc, English, zh=Chinese),
InvalidStructure(English, Chinese), and the helpers built on them take (English, Chinese).

This test reads the source: every call that builds one of those errors with a literal message
gives a literal in each language, so no new raise can fall back to the other API's language;
modules that answer one audience only (the handlers of one API) write its language alone."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from resolver.core.errors import RC, HandleError, RateLimited, Unavailable, in_chinese

ROOT = Path(__file__).resolve().parents[2] / "resolver"
# the constructors and the helpers that wrap them (each takes the English message, then the Chinese)
BUILDERS = {"HandleError", "InvalidStructure", "_invalid", "_bad", "_failed", "_missing"}
# modules whose errors reach one audience only: they write that language alone
CHINESE_ONLY = {  # the enterprise and operator APIs' own handlers, the importer's reports
    "http/enterprise_api.py",
    "http/operator_api.py",
    "bulk/reader.py",
}
ENGLISH_ONLY = {  # the Handle API's own handlers, recursion (a Handle API answer), the native protocol
    "http/handles.py",
    "http/errors.py",
    "http/health.py",
    "http/search.py",
    "upstream/recursion.py",
    "native/admin.py",
}


def _has_cjk(node: ast.AST) -> bool:
    return any(
        isinstance(n, ast.Constant)
        and isinstance(n.value, str)
        and any("\u4e00" <= c <= "\u9fff" for c in n.value)
        for n in ast.walk(node)
    )


def _is_text(node: ast.AST) -> bool:
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def _one_language_calls() -> list[str]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if name not in BUILDERS:
                continue
            texts = [a for a in [*node.args, *(k.value for k in node.keywords)] if _is_text(a)]
            if not texts:
                continue  # a message passed on (exc.message, exc.zh): checked where it was written
            english = [t for t in texts if not _has_cjk(t)]
            chinese = [t for t in texts if _has_cjk(t)]
            module = path.relative_to(ROOT).as_posix()
            if module in CHINESE_ONLY:
                wrong = bool(english) or not chinese
            elif module in ENGLISH_ONLY or module.startswith("native/"):
                wrong = bool(chinese) or not english
            else:
                wrong = not english or not chinese
            if wrong:
                found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} {name}")
    return found


def test_every_error_message_is_written_in_both_languages() -> None:
    missing = _one_language_calls()
    assert not missing, f"{len(missing)} errors in one language only:\n" + "\n".join(missing)


@pytest.mark.parametrize(
    "exc",
    [
        HandleError(RC.HANDLE_NOT_FOUND, "handle not found", zh="标识不存在"),
        Unavailable(),
        Unavailable(uncertain=True),
        RateLimited(3),
    ],
)
def test_each_api_reads_its_own_language(exc: HandleError) -> None:
    assert not any("\u4e00" <= c <= "\u9fff" for c in exc.message), exc.message
    assert in_chinese(exc) == exc.zh and not any("a" <= c <= "z" for c in in_chinese(exc)), in_chinese(exc)


def test_a_message_without_chinese_gets_a_chinese_summary_not_english() -> None:
    # passed-on errors from libraries: the Chinese of the response code, never the English text
    assert in_chinese(HandleError(RC.HANDLE_NOT_FOUND, "handle not found")) == "标识不存在"
