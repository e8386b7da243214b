"""/dashboard in a real headless browser: Debian's Chromium, driven by Playwright.

The page must load from the query service alone (no request leaves its origin), run
without a console error or an uncaught exception, and show what /stats reports once
events are published: the same numbers, and charts that have drawn them. When /stats
fails it must say so in a banner, keep the last numbers, and recover by itself.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from helpers import serving, wait_until
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Request,
    Route,
    sync_playwright,
)
from processes import publish

from rtindex.consumers.behaviors import BehaviorConsumer
from rtindex.consumers.documents import DocumentConsumer
from rtindex.query.server import create_app
from rtindex.settings import Settings

pytestmark = pytest.mark.e2e

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Every headline number of /stats that the page shows, as element `v-<key>`.
HEADLINE = [
    "events_per_s",
    "documents_events_per_s",
    "behaviors_events_per_s",
    "lag_messages",
    "lag_seconds",
    "freshness_p50_ms",
    "freshness_p99_ms",
    "query_per_s",
    "query_p50_ms",
    "query_p99_ms",
    "documents",
    "postings",
    "terms",
    "tombstones",
    "users",
    "items",
    "redis_memory_bytes",
    "dlq_total",
]
CHARTS = ["events", "lag", "freshness", "query", "index", "dlq"]
TIMEOUT_MS = 20_000  # the page polls /stats every 2 s
DOCS, USERS, CLICKS_PER_USER = 40, 4, 5


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail(
            "the dashboard test needs Debian's Chromium: apt-get install chromium "
            f"(not found on PATH nor at {path})",
            pytrace=False,
        )
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class Dashboard:
    """One tab on /dashboard, recording what the browser reports about it."""

    def __init__(self, browser: Browser, api: httpx.Client) -> None:
        self.origin = str(api.base_url).rstrip("/")
        self.url = self.origin + "/dashboard"
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        self.page: Page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.console: list[str] = []  # error and warning messages
        self.errors: list[str] = []  # uncaught exceptions and unhandled rejections
        self.requests: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(f"{e.name}: {e.message}"))
        self.page.on("request", self._request)

    def _console(self, m: ConsoleMessage) -> None:
        if m.type in ("error", "warning"):
            self.console.append(f"{m.type}: {m.text} ({m.location.get('url', '')})")

    def _request(self, r: Request) -> None:
        self.requests.append(r.url)

    def open(self) -> None:
        response = self.page.goto(self.url)
        assert response is not None and response.status == 200, response and response.status
        assert response.headers["content-type"].startswith("text/html")
        self.wait_state("live")

    def wait_state(self, state: str) -> None:
        self.page.wait_for_function("s => document.body.dataset.state === s", arg=state)

    def values(self) -> dict[str, Any]:
        """What the page shows now: data-value and text of every headline element, the
        /stats sample it last rendered, and how many samples each chart holds."""
        return dict(
            self.page.evaluate(
                """keys => ({
                    at: document.body.dataset.at,
                    values: Object.fromEntries(keys.map(k => {
                        const el = document.getElementById('v-' + k);
                        return [k, el && {value: el.dataset.value, text: el.innerText}];
                    })),
                    charts: Object.fromEntries([...document.querySelectorAll('canvas.chart')]
                        .map(c => [c.id, {points: Number(c.dataset.points || 0),
                                          drawn: Number(c.dataset.drawn || 0)}])),
                })""",
                HEADLINE,
            )
        )

    def series_pixels(self, chart: str) -> int:
        """Pixels of the chart painted in the color of its first series (--c1, --ok…)."""
        return int(
            self.page.evaluate(
                """id => {
                    const c = document.getElementById(id);
                    const hex = c.dataset.color.replace('#', '');
                    const [r, g, b] = [0, 2, 4].map(i => parseInt(hex.slice(i, i + 2), 16));
                    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                    let n = 0;
                    for (let i = 0; i < d.length; i += 4) {
                        if (d[i + 3] > 200 && Math.abs(d[i] - r) < 24
                            && Math.abs(d[i + 1] - g) < 24 && Math.abs(d[i + 2] - b) < 24) n++;
                    }
                    return n;
                }""",
                "chart-" + chart,
            )
        )

    def assert_clean(self) -> None:
        assert self.errors == [], f"uncaught errors in the page: {self.errors}"
        assert self.console == [], f"console errors or warnings: {self.console}"
        foreign = [u for u in self.requests if not u.startswith(self.origin + "/")]
        assert foreign == [], f"the page loaded something from elsewhere: {foreign}"

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def dashboard(browser: Browser, api: httpx.Client) -> Iterator[Dashboard]:
    d = Dashboard(browser, api)
    try:
        yield d
    finally:
        d.close()


def document(i: int, now: int) -> bytes:
    event = {
        "op": "upsert",
        "id": f"dash-{i}",
        "version": 1,
        "ts": now,
        "doc": {"title": f"仪表盘 文档 {i}", "body": "实时 索引 dashboard", "category": "测试"},
    }
    return json.dumps(event, ensure_ascii=False).encode()


def click(user: int, n: int, now: int) -> bytes:
    event = {
        "event_id": f"dash-u{user}-{n}",
        "user_id": f"dash-u{user}",
        "item_id": f"dash-{(user * CLICKS_PER_USER + n) % DOCS}",
        "action": "click",
        "ts": now + n,
    }
    return json.dumps(event).encode()


def headline(api: httpx.Client) -> dict[str, Any]:
    r = api.get("/stats")
    assert r.status_code == 200, r.text
    return dict(r.json()["headline"])


def same(shown: str | None, reported: Any) -> bool:
    """data-value holds /stats's number exactly; a null is an empty attribute."""
    if reported is None:
        return shown == ""
    return shown not in (None, "") and float(shown) == float(reported)


def test_dashboard_shows_stats_after_events(
    topics: Settings,
    consumer: DocumentConsumer,
    behavior_consumer: BehaviorConsumer,
    api: httpx.Client,
    dashboard: Dashboard,
    tmp_path: Path,
) -> None:
    s = topics
    dashboard.open()
    page = dashboard.page

    now = int(time.time() * 1000)
    publish(s, s.kafka.documents_topic, [document(i, now) for i in range(DOCS)], "id")
    clicks = [click(u, n, now) for u in range(USERS) for n in range(CLICKS_PER_USER)]
    publish(s, s.kafka.behaviors_topic, clicks, "user_id")

    # /stats, asked by the test, reports the events (rates come with the consumers' next
    # status report, every ops.report_interval_s)...
    def reported_all() -> dict[str, Any] | None:
        h = headline(api)
        counted = h["documents"] == DOCS and h["users"] == USERS
        moving = h["documents_events_per_s"] > 0 and h["behaviors_events_per_s"] > 0
        return h if counted and moving else None

    reported = wait_until(
        reported_all, timeout=30, message=lambda: f"/stats: {api.get('/stats').text}"
    )
    # ...and the page shows the same numbers, by itself, within a couple of polls.
    page.wait_for_function(
        """([docs, users]) => {
            const v = id => document.getElementById(id).dataset.value;
            return v('v-documents') === String(docs) && v('v-users') === String(users)
                && Number(v('v-documents_events_per_s')) > 0 && Number(v('v-events_per_s')) > 0;
        }""",
        arg=[DOCS, USERS],
    )
    shown = dashboard.values()["values"]
    assert same(shown["documents"]["value"], reported["documents"])
    assert same(shown["users"]["value"], reported["users"])
    assert shown["documents"]["text"] == f"{DOCS:,}"
    assert float(shown["behaviors_events_per_s"]["value"]) > 0

    # Every headline number equals the one in the /stats answer the page rendered last.
    def matches_last_answer() -> bool:
        with page.expect_response(lambda r: urlsplit(r.url).path.endswith("/stats")) as info:
            pass
        answer = info.value.json()
        page.wait_for_function("at => document.body.dataset.at === String(at)", arg=answer["at_ms"])
        now_shown = dashboard.values()
        if now_shown["at"] != str(answer["at_ms"]):
            return False  # a newer answer came in meanwhile: try again
        for key in HEADLINE:
            value = now_shown["values"][key]
            assert value is not None, f"no #v-{key} on the page"
            assert same(value["value"], answer["headline"][key]), (key, value, answer)
            if answer["headline"][key] is None:
                assert value["text"] == "—", (key, value)
        return True

    wait_until(matches_last_answer, timeout=30, interval=0)

    # The charts have drawn: at least two samples, and the lines are on the canvas.
    page.wait_for_function(
        """charts => charts.every(id => Number(
            document.getElementById('chart-' + id).dataset.points || 0) >= 2)""",
        arg=CHARTS,
    )
    charts = dashboard.values()["charts"]
    assert charts["chart-events"]["drawn"] >= 2, charts
    assert charts["chart-index"]["drawn"] >= 2, charts
    assert dashboard.series_pixels("events") > 20
    assert dashboard.series_pixels("index") > 20

    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    print(f"dashboard screenshot: {shot}")

    dashboard.assert_clean()
    stats_requests = [u for u in dashboard.requests if urlsplit(u).path == "/stats"]
    assert len(stats_requests) >= 2, dashboard.requests


def test_dashboard_reports_a_failing_stats_and_recovers(
    topics: Settings, api: httpx.Client, dashboard: Dashboard
) -> None:
    dashboard.open()
    page = dashboard.page
    banner = page.locator("#banner")
    assert banner.is_hidden()
    before = dashboard.values()["values"]["documents"]["value"]
    assert before not in (None, "")

    # The service cannot be reached.
    page.route("**/stats", lambda route: route.abort())
    dashboard.wait_state("error")
    banner.wait_for(state="visible")
    assert "Cannot load /stats" in banner.inner_text()
    assert dashboard.values()["values"]["documents"]["value"] == before  # kept, not zeroed
    page.unroute("**/stats")
    dashboard.wait_state("live")
    banner.wait_for(state="hidden")

    # It answers, but not with JSON.
    def garbage(route: Route) -> None:
        route.fulfill(status=200, content_type="application/json", body="<html>proxy</html>")

    page.route("**/stats", garbage)
    dashboard.wait_state("error")
    assert "not JSON" in banner.inner_text()
    page.unroute("**/stats")
    dashboard.wait_state("live")
    banner.wait_for(state="hidden")

    assert dashboard.errors == [], f"uncaught errors in the page: {dashboard.errors}"
    # An aborted request is logged by Chromium itself ("Failed to load resource"); the
    # page's own code must log nothing.
    own = [m for m in dashboard.console if "Failed to load resource" not in m]
    assert own == [], own


def test_dashboard_renders_nulls_as_gaps(api: httpx.Client, dashboard: Dashboard) -> None:
    """No data in the window (or Redis down) is a gap and a dash, never a zero."""
    at = [int(time.time() * 1000)]
    empty: dict[str, Any] = dict.fromkeys(HEADLINE)
    empty |= {"documents": 7, "postings": 70, "terms": 9, "tombstones": 0, "users": 0}
    empty |= {"items": 0, "dlq_total": 0}

    def fake(route: Route) -> None:
        at[0] += 2000
        ready = {"ready": False, "reasons": ["redis: connection refused"]}
        body = {"at_ms": at[0], "window_s": 60, "headline": empty, "ready": ready}
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    dashboard.page.route("**/stats", fake)
    dashboard.open()
    page = dashboard.page
    page.wait_for_function(
        "() => Number(document.getElementById('chart-freshness').dataset.points) >= 2"
    )
    shown = dashboard.values()
    for key, value in empty.items():
        v = shown["values"][key]
        assert same(v["value"], value), (key, v)
        if value is None:
            assert v["text"] == "—", (key, v)
    assert shown["values"]["documents"]["text"] == "7"
    for chart in ("events", "lag", "freshness", "query"):
        assert shown["charts"][f"chart-{chart}"]["drawn"] == 0, shown["charts"]
    assert shown["charts"]["chart-index"]["drawn"] >= 2
    assert dashboard.series_pixels("freshness") == 0  # nothing drawn at zero
    assert page.get_attribute("#ready", "data-ready") == "false"
    assert "connection refused" in page.inner_text("#ready-detail")
    dashboard.assert_clean()


def test_dashboard_with_a_bearer_token(browser: Browser, settings: Settings) -> None:
    """With api.token set, the page asks for the token (or takes it from #token=…) and
    sends it with every /stats call."""
    token = "dashboard-token-" + "z" * 16
    app = create_app(settings.with_overrides({"api": {"token": token}}))
    with serving(app) as base_url, httpx.Client(base_url=base_url) as api:
        # From the fragment: no 401 at all, and the token leaves the address bar.
        d = Dashboard(browser, api)
        try:
            d.url += f"#token={token}"
            d.open()
            assert d.page.url.endswith("/dashboard")
            assert d.values()["values"]["documents"]["value"] == "0"
            d.assert_clean()
        finally:
            d.close()
        # Typed in, after /stats answered 401.
        d = Dashboard(browser, api)
        try:
            d.page.goto(d.url)
            d.page.wait_for_selector("#auth:not([hidden])")
            d.page.fill("#auth-token", token)
            d.page.click("#auth button")
            d.wait_state("live")
            assert d.page.is_hidden("#auth")
            assert d.errors == []
        finally:
            d.close()
