"""The command line: every option has an environment variable, shown in --help."""

from __future__ import annotations

import pytest

from resolver.cli import SERVE_OPTIONS, build_config, parser


def test_every_serve_option_names_its_environment_variable(capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in SERVE_OPTIONS:
        assert option.flag in text and option.env in text


def test_environment_and_flags(monkeypatch):
    monkeypatch.setenv("RESOLVER_NODE_PREFIX", "88.999")
    monkeypatch.setenv("RESOLVER_CACHE_MAX_ENTRIES", "123")
    monkeypatch.setenv("RESOLVER_MAX_HANDLE_LENGTH", "100")
    args = parser().parse_args(["serve", "--port", "9001", "--workers", "3"])
    config = build_config(args, SERVE_OPTIONS)
    assert config.node_prefix == "88.999" and config.port == 9001 and config.workers == 3
    assert config.cache.max_entries == 123 and config.limits.max_handle_length == 100
    assert config.dsn is None and config.host == "127.0.0.1"


def test_secret_is_not_shown_in_help(monkeypatch, capsys):
    monkeypatch.setenv("RESOLVER_ADMIN_SECRET", "do-not-print-me")
    with pytest.raises(SystemExit):
        parser().parse_args(["serve", "--help"])
    assert "do-not-print-me" not in capsys.readouterr().out


def test_every_response_code_has_its_http_status():
    from resolver.core.errors import RC
    from resolver.http.errors import HTTP_STATUS

    expected = {
        1: 200,
        2: 500,
        3: 503,
        4: 400,
        5: 501,
        7: 503,
        100: 404,
        101: 409,
        102: 400,
        200: 400,
        201: 409,
        202: 400,
        301: 400,
        400: 403,
        401: 403,
        402: 401,
        403: 403,
        404: 403,
    }
    assert {int(rc): status for rc, status in HTTP_STATUS.items()} == expected
    assert set(HTTP_STATUS) == set(RC)


def test_siteinfo_prints_the_site_record_a_handle_client_reads(capsys):
    """The fields hdllib reads (GsonUtility.java, SiteInfoGsonTypeAdapter.deserialize: `primarySite`;
    ServerInfoGsonTypeAdapter.deserialize: `publicKey` through deserializeData, base64 for no key)."""
    import json

    from resolver.cli import main

    assert main(["siteinfo", "--public-url", "http://resolver.example.cn:8080", "--native-port", "2641"]) == 0
    site = json.loads(capsys.readouterr().out)
    server = site["servers"][0]
    assert site["protocolVersion"] == "2.11" and site["primarySite"] is True
    assert server["publicKey"] == {"format": "base64", "value": ""}
    assert server["address"] == "resolver.example.cn"
    assert {(i["protocol"], i["port"]) for i in server["interfaces"]} == {
        ("TCP", 2641),
        ("UDP", 2641),
        ("HTTP", 8080),
    }


def test_every_command_in_the_table_is_documented(capsys):
    import resolver.cli

    with pytest.raises(SystemExit):
        parser().parse_args(["--help"])
    text = capsys.readouterr().out
    assert resolver.cli.__doc__ is not None
    for name in resolver.cli.COMMANDS:
        assert f"`{name}`" in resolver.cli.__doc__ and name in text


def test_serve_defaults_are_those_of_config(monkeypatch):
    import os
    from dataclasses import fields

    from resolver.config import Config

    for name in list(os.environ):
        if name.startswith("RESOLVER_"):
            monkeypatch.delenv(name)
    config = build_config(parser().parse_args(["serve"]), SERVE_OPTIONS)
    default = Config()
    for f in fields(Config):
        assert getattr(config, f.name) == getattr(default, f.name), f.name


def test_options_are_derived_from_the_configuration_fields():
    """One definition per setting (resolver/config.py): the option is the field's name with dashes
    after its group's prefix, the environment variable the option in capitals; every field that
    is a setting is an option of `serve`, and nothing else is."""
    from dataclasses import fields

    from resolver.config import CacheSettings, Config, Limits, RateLimits, settings

    expected = set()
    for cls, group in ((Config, ""), (Limits, "limits"), (CacheSettings, "cache"), (RateLimits, "rate")):
        for f in fields(cls):
            if "help" in f.metadata:
                expected.add(f"{group}.{f.name}" if group else f.name)
    found = {s.target: s for s in settings()}
    assert set(found) == expected and {s.target for s in SERVE_OPTIONS} == expected
    prefixes = {"": "", "limits": "", "cache": "cache-", "rate": "rate-"}
    for target, setting in found.items():
        group, _, name = target.rpartition(".")
        assert setting.flag == f"--{prefixes[group]}{name.replace('_', '-')}"
        assert setting.env == "RESOLVER_" + setting.flag[2:].upper().replace("-", "_")
    assert found["native_port"].default == Config().native_port == 2641


def _readme_default(text: str) -> object:
    text = text.strip().strip("`")
    if text in ("none", "off", "false"):
        return None if text == "none" else False
    try:
        return float(text)
    except ValueError:
        return text


def test_the_readme_table_agrees_with_the_settings():
    """README's configuration table is written by hand: each of its rows names a real option, its
    environment variable and its default (defaults the README explains in words are skipped)."""
    import re
    from pathlib import Path

    from resolver.config import settings

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(--[a-z0-9-]+)` \| `(RESOLVER_[A-Z0-9_]+)` \| ([^|]*) \|", readme, re.M)
    by_flag = {s.flag: s for s in settings()}
    assert len(rows) > 40
    explained = {"--workers", "--data-dir", "--public-url"}
    for flag, env, default in rows:
        assert flag in by_flag, flag
        assert by_flag[flag].env == env, flag
        if flag in explained:
            continue
        actual = by_flag[flag].default
        actual = ",".join(actual) or None if isinstance(actual, tuple) else actual
        expected = _readme_default(default)
        if isinstance(expected, float):
            assert float(actual) == expected, flag
        else:
            assert actual == expected, (flag, actual, expected)
