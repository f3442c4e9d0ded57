"""The HTML validation report in a real browser (Debian's headless Chromium driven by
Playwright): the three plots render (uPlot's canvas holds each series' points and its
colour is painted on it), nothing is fetched, no console error. The screenshot goes to
test-artifacts/validation/report.png."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from kubetrade.cli import main
from tests.unit.validation._data import filters_dir, shared_data, strategy_yaml

# per plot: the series (uPlot's index 0 is x), how many of its points are not null, and
# how many canvas pixels are painted in its exact colour
_INSPECT = """(name) => {
  const u = window.kubetradePlots[name];
  const c = u.ctx.canvas;
  const px = u.ctx.getImageData(0, 0, c.width, c.height).data;
  const painted = (hex) => {
    const [r, g, b] = [1, 3, 5].map(i => parseInt(hex.slice(i, i + 2), 16));
    let n = 0;
    for (let i = 0; i < px.length; i += 4)
      if (px[i] === r && px[i + 1] === g && px[i + 2] === b && px[i + 3] > 0) n++;
    return n;
  };
  return u.series.slice(1).map((s, k) => [s.label,
    u.data[k + 1].filter(v => v !== null).length, painted(s._stroke || s.stroke())]);
}"""

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

    async def browse() -> tuple[list[str], list[str], dict[str, list[Any]], str]:
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
                fig = page.locator(f"#plot-{name} canvas")
                box = await fig.bounding_box()
                assert box is not None and box["width"] > 300 and box["height"] > 100, name
                drawn[name] = await page.evaluate(_INSPECT, name)
            title = await page.locator("h1").inner_text()
            await page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
            await browser.close()
            return errors, requests, drawn, title

    errors, requests, drawn, title = asyncio.run(browse())
    assert errors == []
    assert requests == [page_path.as_uri()]  # self-contained: nothing else is fetched
    assert {name: [s[0] for s in series] for name, series in drawn.items()} == {
        "equity": ["strategy equity", "buy and hold"], "drawdown": ["drawdown"],
        "trades": ["price", "entry", "exit"]}, drawn
    # every series has points, and each is painted: lines over many pixels, the trade
    # markers (8 px dots) over at least a few dozen
    assert all(points > 5 and pixels > 30 for series in drawn.values()
               for _, points, pixels in series), drawn
    assert title.startswith("Validation of page: ") and title.split(": ")[1] in ("GO", "NO-GO")
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000
