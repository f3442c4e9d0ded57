"""Every outgoing chat message fits 4,096 UTF-16 units (issue 17 item 6)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kubetrade.notify.paging import MAX_MESSAGE, MAX_PAGES, fit, pages, units


def test_a_short_text_is_one_unchanged_message() -> None:
    assert pages("hello\nworld") == ["hello\nworld"]


def test_a_long_list_is_split_at_line_ends_and_numbered() -> None:
    lines = [f"[strategy-{i:02d}] BTC/USDT qty 1234.56789000 @ 0.01 stop 0.01" for i in range(90)]
    out = pages("\n".join(lines))
    assert len(out) == 2 and out[0].startswith("(1/2)\n") and out[1].startswith("(2/2)\n")
    assert all(units(p) <= MAX_MESSAGE for p in out)
    body = [line for p in out for line in p.split("\n")[1:]]
    assert body == lines  # nothing lost, nothing cut mid-line, order kept


def test_past_the_page_limit_the_rest_is_summed_up() -> None:
    lines = [f"line {i} " + "x" * 90 for i in range(1000)]
    out = pages("\n".join(lines))
    assert len(out) == MAX_PAGES and all(units(p) <= MAX_MESSAGE for p in out)
    shown = sum(len(p.split("\n")) - 1 for p in out) - 1
    assert out[-1].endswith(f"… and {1000 - shown} more lines (see the dashboard or /api "
                            "for the full list)")


def test_emoji_count_double_as_telegram_counts_them() -> None:
    text = "🚨" * 3000  # 3,000 characters but 6,000 UTF-16 units
    out = pages(text)
    assert all(units(p) <= MAX_MESSAGE for p in out) and len(out) == 2
    assert units(fit(text)) <= MAX_MESSAGE and fit(text).endswith("…")


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=20_000))
def test_any_text_fits(text: str) -> None:
    out = pages(text)
    assert out and all(units(p) <= MAX_MESSAGE for p in out)
    assert units(fit(text)) <= MAX_MESSAGE
