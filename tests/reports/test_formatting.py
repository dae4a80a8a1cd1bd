"""Units and escaping in what operators read."""

from __future__ import annotations

import pandas as pd

from reports.evaluation import markdown_table
from reports.operator import _md_table, count, dollars, mtokens, rate, utc


def test_values_carry_units_and_times_say_utc() -> None:
    assert utc(pd.Timestamp("2024-06-17 00:00")) == "2024-06-17 00:00 UTC"  # midnight too
    assert utc(None) == "n/a"
    assert dollars(10960.2) == "$10,960" and dollars(12.5) == "$12.50"
    assert rate(1234.4) == "1,234 tok/s"
    assert mtokens(1000.0) == "3.60 M tok"  # (tokens/s)·h → tokens
    assert count(3.0) == "3" and count(2.5) == "~2.5"


def test_a_bar_in_a_cell_does_not_break_markdown_tables() -> None:
    frame = pd.DataFrame({"series": ["us-east|llama|IW-F"], "n": [1]})
    for text in (markdown_table(frame), _md_table(frame)):
        row = text.splitlines()[2]
        assert row.count("|") - row.count("\\|") == 3
