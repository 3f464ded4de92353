"""The server-drawn charts (resolver/portal/charts.py) and the label sheet's pieces
(resolver/services/labels.py), without a database."""

from __future__ import annotations

import io
from datetime import date

from pypdf import PdfReader

from resolver.portal.charts import _number, cumulative, daily_bars
from resolver.services.labels import GRIDS, Label, _font, _lines, build_pdf, qr_modules


def test_axis_labels_count_in_wan_and_yi():
    assert [_number(v) for v in (0, 37.5, 5000, 25000, 1e7, 2.5e8)] == [
        "0",
        "37.5",
        "5000",
        "2.5万",
        "1000万",
        "2.5亿",
    ]


def test_a_chart_escapes_its_texts_and_draws_a_bar_a_day():
    svg = str(daily_bars("<script>alert(1)</script>", date(2026, 12, 1), [1, 0, 5], line=10))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert svg.count("<rect") == 3 and 'stroke-dasharray="6 4"' in svg  # three days, the threshold
    assert "2026-12-03: 5" in svg  # each bar says its day and value


def test_the_running_total_ends_at_the_sum_and_the_pace_line_is_drawn():
    svg = str(cumulative("t", 2026, [1, 2, 3], 100.0))
    assert svg.count("<polyline") == 1 and "<line x1" in svg
    assert "2026-01" in svg and "2026-10" in svg


def test_a_qr_code_is_a_square_of_modules_with_its_three_finders():
    modules = qr_modules("http://127.0.0.1:8000/88.123.45/P-0001")
    size = len(modules)
    assert size >= 21 and all(len(row) == size for row in modules) and (size - 17) % 4 == 0
    for top, left in ((0, 0), (0, size - 7), (size - 7, 0)):  # finder patterns: a dark 7x7 ring
        assert all(modules[top][left + x] for x in range(7)) and all(modules[top + y][left] for y in range(7))


def test_long_names_wrap_and_are_cut_with_an_ellipsis():
    font = _font()
    lines = _lines("不锈钢六角头螺栓" * 10, font, 8, 80, 2)
    assert len(lines) == 2 and lines[-1].endswith("…")
    assert _lines("", font, 8, 80, 2) == []


def test_a_sheet_has_the_pages_its_grid_needs():
    labels = [Label(f"88.123.45/P-{n}", "螺栓", f"http://x/88.123.45/P-{n}") for n in range(41)]
    assert len(PdfReader(io.BytesIO(build_pdf(labels, GRIDS["4x10"]))).pages) == 2
    assert len(PdfReader(io.BytesIO(build_pdf(labels[:24], GRIDS["3x8"]))).pages) == 1
