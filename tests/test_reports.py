"""The one text-table layout demo, compare, profile --compare and info print."""

from edgelstm.reports import format_table


def test_columns_padded_to_the_widest_cell_with_a_rule():
    rows = [["format", "size"], ["tflite", "1.5 KiB"], ["c", 12]]
    assert format_table(rows) == ["format  size",
                                  "------  -------",
                                  "tflite  1.5 KiB",
                                  "c       12"]


def test_figures_right_aligned_under_their_heading():
    rows = [["", "a.json", "b.json"], ["p50 us", "3.5", "120.0"]]
    assert format_table(rows, rule=False, right_align=True) == ["        a.json  b.json",
                                                                "p50 us     3.5   120.0"]
