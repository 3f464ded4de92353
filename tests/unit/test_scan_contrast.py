"""The scan page for the people who scan (issue 16): readable contrast, times in the node's zone.

Contrast as WCAG 2.x defines it (relative luminance of sRGB, ratio (L1 + 0.05) / (L2 + 0.05)); body
text needs 4.5:1. Every colour the stylesheet names is one of the declared pairs."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from resolver.http import scan


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_the_formula_on_known_pairs() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)  # the classic near miss


@pytest.mark.parametrize("use, ink, ground", scan.COLOUR_PAIRS, ids=[p[0] for p in scan.COLOUR_PAIRS])
def test_every_text_colour_is_readable_on_its_background(use: str, ink: str, ground: str) -> None:
    assert contrast(ink, ground) >= 4.5, (use, ink, ground, round(contrast(ink, ground), 2))


def test_the_stylesheet_uses_only_declared_colours() -> None:
    declared = {c for _, ink, ground in scan.COLOUR_PAIRS for c in (ink, ground)}
    rules = re.findall(r"(?<![-\w])(color|background):(#[0-9a-fA-F]{6})", scan.STYLE)
    assert rules, "the stylesheet names its colours"
    assert {colour for _, colour in rules} <= declared, rules


def test_times_are_beijing_time_by_default_and_name_other_zones() -> None:
    moment = datetime(2026, 12, 3, 2, 15, tzinfo=UTC)
    assert scan.shown_time(moment, "Asia/Shanghai") == "2026-12-03 10:15 北京时间"
    assert scan.shown_time(moment, "Asia/Shanghai", "en") == "2026-12-03 10:15 Beijing time (UTC+08:00)"
    assert scan.shown_time(moment, "Europe/Berlin") == "2026-12-03 03:15 Europe/Berlin (UTC+01:00)"
    assert scan.shown_time(datetime(2026, 7, 1, 0, 0, tzinfo=UTC), "Europe/Berlin").endswith("(UTC+02:00)")
    assert scan.shown_time(None, "Asia/Shanghai") == "—"
