"""The console's server-side SVG charts: well-formed, escaped, gaps where data is missing."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from registry.console.charts import Series, bar_chart, line_chart

SVG = "{http://www.w3.org/2000/svg}"


def test_line_chart_is_valid_svg_with_gaps_and_escaped_text() -> None:
    svg = line_chart(
        "power <balance>",
        ["a", "b", "c", "d"],
        [Series("metered & more", [1.0, None, 3.0, 4.0]), Series("cap", [5, 5, 5, 5], True)],
        "kW",
    )
    root = ET.fromstring(str(svg))
    assert root.find(f"{SVG}title").text == "power <balance>"  # type: ignore[union-attr]
    lines = root.findall(f"{SVG}polyline")
    # The first series is broken by its gap: a lone point, then a line of two; the cap's line.
    assert len(lines) == 2 and len(root.findall(f"{SVG}circle")) == 1
    assert lines[1].get("stroke-dasharray") == "6 4"
    assert "metered & more" in "".join(t.text or "" for t in root.iter(f"{SVG}text"))


def test_bar_chart_heights_follow_values() -> None:
    root = ET.fromstring(str(bar_chart("reports", ["w1", "w2"], [10, 20], "reports")))
    heights = [float(r.get("height", "0")) for r in root.findall(f"{SVG}rect")]
    assert heights[1] == 2 * heights[0] > 0


def test_empty_chart_draws_axes_only() -> None:
    root = ET.fromstring(str(line_chart("nothing", [], [Series("x", [])], "kW")))
    assert root.findall(f"{SVG}polyline") == []
