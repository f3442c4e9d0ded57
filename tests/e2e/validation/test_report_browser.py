"""The HTML validation report in a real browser (Debian's headless Chromium driven by
Playwright): the three plots render, nothing is fetched, no console error. The
screenshot goes to test-artifacts/validation/report.png."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kubetrade.cli import main
from tests.unit.validation._data import filters_dir, shared_data, strategy_yaml

REPO = Path(__file__).resolve().parents[3]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts" / "validation"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update"]

# No skip when chromium is missing: `make test` installs it (scripts/system-deps.sh).
pytestmark = [pytest.mark.browser]


def test_report_page_renders_its_plots_without_errors(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: run scripts/system-deps.sh"
    spec = tmp_path / "s.yaml"
    spec.write_text(strategy_yaml("page", "rsi-mean-reversion",
                                  "{period: 5, oversold: 20, overbought: 60}", "LTC/BTC", "5m"))
    main(["validate", "--strategy-file", str(spec), "--replay",
          str(shared_data("freqtrade-LTCBTC-5m-2018-01.csv")), "--report-dir",
          str(tmp_path / "reports"), "--datadir", str(filters_dir(tmp_path))])
    (page_path,) = (tmp_path / "reports").glob("validation_report_*.html")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    async def browse() -> tuple[list[str], list[str], dict[str, int], str]:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1200, "height": 1600})
            errors: list[str] = []
            requests: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            await page.goto(page_path.as_uri(), wait_until="load")
            drawn = {}
            for name in ("equity", "drawdown", "trades"):
                fig = page.locator(f"#plot-{name} svg")
                box = await fig.bounding_box()
                assert box is not None and box["width"] > 300 and box["height"] > 100, name
                drawn[name] = await page.locator(f"#plot-{name} svg path").count()
            title = await page.locator("h1").inner_text()
            await page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
            await browser.close()
            return errors, requests, drawn, title

    errors, requests, drawn, title = asyncio.run(browse())
    assert errors == []
    assert requests == [page_path.as_uri()]  # self-contained: nothing else is fetched
    assert all(n > 5 for n in drawn.values()), drawn
    assert title.startswith("Validation of page: ") and title.split(": ")[1] in ("GO", "NO-GO")
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000
