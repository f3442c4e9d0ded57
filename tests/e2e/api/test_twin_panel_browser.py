"""The dashboard's "Live vs paper twin" panel (issue 20) in a real browser (Debian's
headless Chromium driven by Playwright): kubetrade/api/static/twin.js renders what
``GET /api/live-vs-paper`` answers (a comparison from kubetrade.domain.twin) as both
books' figures, the execution figures, the size step, the validation reference and one
chart with both equity curves, without a console error. Screenshot in
test-artifacts/dashboard/twin-panel.png."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

import pytest

from kubetrade.domain.twin import LIVE, TWIN, BookFigures, OrderOutcome, compare, outcomes_total

REPO = Path(__file__).resolve().parents[3]
STATIC = REPO / "kubetrade" / "api" / "static"
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts" / "dashboard"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update"]
D = Decimal

pytestmark = [pytest.mark.browser]


def _row() -> dict[str, object]:
    totals = outcomes_total([
        (LIVE, OrderOutcome("BTC/USDT", "buy", 60_000, "filled", D("0.01"), D("100.1"), 60_250)),
        (TWIN, OrderOutcome("BTC/USDT", "buy", 60_000, "filled", D("0.01"), D("100"), 60_000)),
        (LIVE, OrderOutcome("BTC/USDT", "buy", 120_000, "rejected")),
        (TWIN, OrderOutcome("BTC/USDT", "buy", 120_000, "filled", D("0.01"), D("99"), 120_000)),
    ])
    comparison = compare(BookFigures(D("9990"), D("10000"), D("2"), 1),
                         BookFigures(D("10030"), D("10000"), D("1.5"), 2), totals, D("0.25"))
    live = [[60_000 * i, str(10_000 - i)] for i in range(1, 11)]
    twin = [[60_000 * i, str(10_000 + 3 * i)] for i in range(1, 11)]
    return {"name": "btc-live", "comparison": comparison.to_dict(), "size_pct": 25,
            "ramp": {"step": 0, "period_start_ms": 60_000}, "started_ms": 60_000,
            "ramp_change": {"action": "held", "from_pct": 25, "to_pct": 25,
                            "reason": "reconciliation (periodic): 1 mismatch(es)"},
            "updated_ms": 600_000, "equity": {"live": live, "twin": twin},
            "reference": {"decision": "GO", "validation": {"total_return": 0.02,
                                                           "win_rate": 0.6},
                          "live": {"total_return": -0.001, "win_rate": 0.0}}}


def test_twin_panel_renders_figures_and_both_curves(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: run scripts/system-deps.sh"
    page_path = tmp_path / "panel.html"
    page_path.write_text(
        "<!doctype html><html><head><link rel='stylesheet' href='"
        f"{(STATIC / 'style.css').as_uri()}'></head><body><main>"
        "<section class='card'><div id='live-vs-paper'></div></section></main>"
        f"<script src='{(STATIC / 'chart.js').as_uri()}'></script>"
        f"<script src='{(STATIC / 'dom.js').as_uri()}'></script>"
        f"<script src='{(STATIC / 'twin.js').as_uri()}'></script>"
        f"<script>renderLiveVsPaper(document.getElementById('live-vs-paper'), "
        f"{json.dumps([_row()])});</script></body></html>")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    async def browse() -> tuple[list[str], str, str]:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1200, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(page_path.as_uri(), wait_until="load")
            canvas = page.locator("canvas[data-strategy='btc-live']")
            await canvas.wait_for()
            await page.wait_for_function(
                "document.querySelector('canvas[data-strategy=\"btc-live\"]').dataset.points"
                " === '20'", timeout=30_000)
            text = await page.locator("#live-vs-paper").inner_text()
            points = await canvas.get_attribute("data-points") or ""
            await page.screenshot(path=str(ARTIFACTS / "twin-panel.png"), full_page=True)
            await browser.close()
            return errors, text, points

    errors, text, points = asyncio.run(browse())
    assert errors == []
    assert points == "20"  # both curves, 10 points each
    for shown in ("btc-live", "paper twin", "-10.00", "30.00", "1 / 1 / 0", "10.00 bps",
                  "250 ms avg", "0.40 % of 0.25 %", "Size step", "25 % (held: reconciliation",
                  "vs validation (GO)", "return -0.10 % vs 2.00 %"):
        assert shown in text, (shown, text)
