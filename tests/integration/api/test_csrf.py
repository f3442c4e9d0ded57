"""Without DASHBOARD_PASSWORD the API trusts whoever reaches loopback, so a web page
the user happens to visit must not be able to drive it: a cross-site ``fetch`` POST
with no body is a "simple" request (no CORS preflight), and the browser sends it,
only hiding the answer. Mutating calls from a foreign Origin are refused, and so are
same-origin calls under a non-loopback host name (DNS rebinding)."""

from __future__ import annotations

from tests.fixtures.api import MakeApi


async def _action(api: object) -> str:
    r = await api.client.get("/api/emergency")  # type: ignore[attr-defined]
    return str(r.json()["action"])


async def test_cross_site_posts_cannot_pull_the_kill_switch_or_resume(make_api: MakeApi) -> None:
    api = await make_api(dashboard_password=None)
    evil = {"Origin": "https://evil.example"}
    r = await api.client.post("/api/emergency/close-all", headers=evil)
    assert r.status_code == 403, r.text
    assert "origin" in r.json()["detail"].lower()
    assert await _action(api) == "none"

    # the user's own stop, then a foreign page tries to resume
    assert (await api.client.post("/api/emergency/stop")).status_code == 200
    r = await api.client.post("/api/emergency/resume", headers={"Origin": "null"})
    assert r.status_code == 403
    assert await _action(api) == "stop"


async def test_dns_rebinding_is_refused_without_a_password(make_api: MakeApi) -> None:
    api = await make_api(dashboard_password=None)
    rebound = {"Origin": "http://evil.example:8000", "Host": "evil.example:8000"}
    r = await api.client.post("/api/emergency/close-all", headers=rebound)
    assert r.status_code == 403
    assert await _action(api) == "none"


async def test_the_dashboard_itself_still_works(make_api: MakeApi) -> None:
    api = await make_api(dashboard_password=None, cors_origins=["https://dash.example.com"])
    own = {"Origin": "http://127.0.0.1:8000", "Host": "127.0.0.1:8000"}
    assert (await api.client.post("/api/emergency/stop", headers=own)).status_code == 200
    listed = {"Origin": "https://dash.example.com"}
    assert (await api.client.post("/api/emergency/resume", headers=listed)).status_code == 200
    assert await _action(api) == "none"

    # with a password the token is the defence: a proxy rewriting Host must not break
    # the dashboard's kill switch
    authed = await make_api()
    h = {**(await authed.auth()), "Origin": "https://kt.example", "Host": "kubetrade-api:8000"}
    assert (await authed.client.post("/api/emergency/stop", headers=h)).status_code == 200
