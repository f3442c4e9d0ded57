"""The dashboard in a real browser (Debian's headless Chromium driven by Playwright)
against the real system: ``kubetrade local`` paper-trading replayed BTC/USDT candles
into the test bed's Redis, with a dashboard password.

A user logs in, sees open positions and the equity chart fill in from the running
runners, disables a strategy, presses emergency stop and sees the runners halt.
Screenshots go to test-artifacts/dashboard/.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.fixtures.api import free_port

REPO = Path(__file__).resolve().parents[3]
KUBETRADE = str(Path(sys.executable).with_name("kubetrade"))
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts" / "dashboard"
PASSWORD = "browser-test-password"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# No skip when chromium is missing: `make test` installs it (scripts/system-deps.sh), so
# its absence is a broken set-up and must fail, not pass silently.
pytestmark = [pytest.mark.browser]


@pytest.fixture(autouse=True, scope="module")
def _chromium_present() -> None:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: run scripts/system-deps.sh"


@dataclass
class System:
    url: str
    prefix: str
    proc: subprocess.Popen[bytes]
    log: Path
    redis_url: str


@pytest.fixture
def local_system(tmp_path: Path, redis_url: str) -> Iterator[System]:
    port = free_port()
    prefix = f"ui-{uuid.uuid4().hex[:8]}"
    strategies = tmp_path / "strategies"
    strategies.mkdir()
    for name in ("btc-sma.yaml", "btc-rsi.yaml"):
        shutil.copy(REPO / "examples" / "strategies" / name, strategies / name)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KUBETRADE_MARKET_DATA", "TELEGRAM_BOT_TOKEN", "KUBECONFIG")
    }
    env.update(
        REDIS_URL=redis_url,
        KUBETRADE_REDIS_PREFIX=prefix,
        DASHBOARD_PASSWORD=PASSWORD,
        JWT_SECRET="browser-test-jwt-secret-" + "z" * 32,
        PYTHONUNBUFFERED="1",
    )
    log = tmp_path / "local.log"
    proc = subprocess.Popen(
        [
            KUBETRADE,
            "local",
            "--port",
            str(port),
            "--market-data",
            "replay:bundled",
            "--replay-interval",
            "0.1",
            "--strategies",
            str(strategies),
        ],
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        yield System(f"http://127.0.0.1:{port}", prefix, proc, log, redis_url)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


async def test_dashboard_login_positions_chart_toggle_and_emergency_stop(
    local_system: System,
) -> None:
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    system = local_system
    r = redis.Redis.from_url(system.redis_url, decode_responses=True)
    async with httpx.AsyncClient(base_url=system.url, timeout=5) as http:
        async with _deadline(60):
            while True:
                try:
                    if (await http.get("/health")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert system.proc.poll() is None, system.log.read_text()[-3000:]
                await _tick()

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1400, "height": 1500})
            console_errors: list[str] = []
            page.on(
                "console", lambda m: console_errors.append(m.text) if m.type == "error" else None
            )
            try:
                await page.goto(system.url + "/")
                await expect(page.locator("#login-view")).to_be_visible()
                await page.screenshot(path=str(ARTIFACTS / "01-login.png"))
                await page.fill("#login-password", "wrong")
                await page.click("#login-submit")
                await expect(page.locator("#login-error")).to_contain_text("wrong")
                await page.fill("#login-password", PASSWORD)
                await page.click("#login-submit")
                await expect(page.locator("#main-view")).to_be_visible()
                await expect(page.locator("#live")).to_have_text("live", timeout=15_000)

                # open positions and the equity chart fill in from the running runners
                await expect(page.locator("#positions-table tbody tr").first).to_be_visible(
                    timeout=120_000
                )
                # more than 5 points; a regex, not wait_for_function: the page's CSP
                # (script-src 'self') refuses the eval Playwright uses for a predicate
                await expect(page.locator("#equity-chart")).to_have_attribute(
                    "data-points", re.compile(r"^([6-9]|[1-9]\d+)$"), timeout=60_000
                )
                await expect(page.locator("#equity-empty")).to_be_hidden()
                await expect(page.locator("#status-badge")).to_have_text("running")
                await page.screenshot(path=str(ARTIFACTS / "02-dashboard.png"), full_page=True)

                # toggle a strategy off: desired state changes and the audit log says who
                toggle = page.locator('button[data-strategy="btc-rsi"]')
                await expect(toggle).to_have_attribute("aria-pressed", "true", timeout=30_000)
                await toggle.click()
                await expect(page.locator('button[data-strategy="btc-rsi"]')).to_have_attribute(
                    "aria-pressed", "false", timeout=15_000
                )
                desired = json.loads(
                    r.hget(f"{system.prefix}:desired:strategies", "btc-rsi") or "{}"
                )
                assert desired["spec"]["enabled"] is False
                await expect(page.locator("#audit-table")).to_contain_text("strategy.enabled")
                await expect(page.locator("#audit-table")).to_contain_text("api:admin")
                # the running runner applies it (it audits the disable itself)
                async with _deadline(30):
                    while not _audited(r, system.prefix, "strategy.disabled", "btc-rsi"):
                        await _tick()
                await page.screenshot(path=str(ARTIFACTS / "03-toggled.png"), full_page=True)

                # emergency stop, with confirmation: the runners halt and acknowledge
                await page.click("#btn-stop")
                await expect(page.locator("#confirm-dialog")).to_be_visible()
                await page.screenshot(path=str(ARTIFACTS / "04-confirm-stop.png"))
                await page.fill("#confirm-reason", "browser drill")
                await page.click("#confirm-ok")
                await expect(page.locator("#status-badge")).to_have_text("stopped", timeout=15_000)
                await expect(page.locator("#emergency")).to_contain_text(
                    "btc-sma: stop acknowledged", timeout=30_000
                )
                ack = json.loads(r.hget(f"{system.prefix}:emergency:acks", "btc-sma") or "{}")
                assert ack["action"] == "stop"
                async with _deadline(30):
                    while r.hget(f"{system.prefix}:strategy:btc-sma:summary", "phase") != "Halted":
                        await _tick()
                await page.reload()
                await expect(page.locator("#main-view")).to_be_visible()
                await expect(page.locator("#strategies-table")).to_contain_text("Halted")
                await page.screenshot(path=str(ARTIFACTS / "05-stopped.png"), full_page=True)
                assert not [e for e in console_errors if "Content Security Policy" in e]
            finally:
                await browser.close()
                r.close()


def _audited(r: redis.Redis, prefix: str, action: str, strategy: str) -> bool:
    entries: Any = r.xrange(f"{prefix}:audit")
    return any(f["action"] == action and f["strategy"] == strategy for _, f in entries)


def _deadline(seconds: float) -> asyncio.Timeout:
    return asyncio.timeout(seconds)


async def _tick() -> None:
    await asyncio.sleep(0.2)  # polling a condition (bounded by _deadline), not a wait-and-hope
