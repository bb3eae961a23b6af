"""Charts drawn as SVG on the server: one bar a point, scaled to a round top, labels
escaped, no script and no style attribute."""
import re

from services.web.charts import bar_chart, line_chart


def test_bars_are_scaled_to_a_round_top_and_titled():
    svg = str(bar_chart([("2024-01-01", 3), ("2024-01-02", 7), ("<b>", 0)], "archived"))
    heights = [float(h) for h in re.findall(r'<rect class="bar"[^>]* height="([\d.]+)"', svg)]
    assert len(heights) == 3 and heights[2] == 0 and abs(heights[1] / heights[0] - 7 / 3) < 0.01
    assert ">10</text>" in svg and ">0</text>" in svg  # the axis goes to 10
    assert "<title>2024-01-02: 7</title>" in svg and "&lt;b&gt;" in svg and "<b>" not in svg
    assert "<script" not in svg and "style=" not in svg


def test_a_line_has_a_point_a_day_and_says_no_data_when_empty():
    svg = str(line_chart([("a", 1024), ("b", 2048)], "stored", lambda v: f"{v:.0f} B"))
    assert svg.count('<circle class="point"') == 2 and "<title>b: 2048 B</title>" in svg
    assert "no data" in str(line_chart([], "stored"))
