"""/dashboard in a real headless browser: Debian's Chromium, driven by Playwright.

The page must load from the query service alone (no request leaves its origin), run
without a console error or an uncaught exception, and show what /stats reports once
events are published: the same numbers, and charts that have drawn them. When /stats
fails it must say so in a banner, keep the last numbers, and recover by itself.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
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
LAGGED = 12  # documents published while the consumer's writes are held
SEARCHES = ["仪表盘", "文档", "dashboard", "实时 索引", "nothing-matches"]
# Dead letters: two on the documents topic, one on the behaviors topic.
BAD_DOCUMENTS, BAD_CLICKS = [b"{not json", b"\xff\xfe"], [b'{"bad": 1}']


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A window longer than the test: the query latency of its searches cannot age out of
    # /stats between two answers (no race with the clock). Quick consumer reports.
    return settings.with_overrides({"ops": {"window_s": 3600, "report_interval_s": 0.2}})


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
        """What the page shows now, read at one instant: data-value and text of every
        headline element, the /stats sample it last rendered, how many samples each chart
        holds, the cells of the partition and endpoint tables and the DLQ reasons."""
        return dict(
            self.page.evaluate(
                """keys => {
                    const rows = id => [...document.querySelectorAll(`#${id} tr`)]
                        .map(tr => [...tr.cells].map(td => td.innerText));
                    return {
                        at: document.body.dataset.at,
                        values: Object.fromEntries(keys.map(k => {
                            const el = document.getElementById('v-' + k);
                            return [k, el && {value: el.dataset.value, text: el.innerText}];
                        })),
                        charts: Object.fromEntries([...document.querySelectorAll('canvas.chart')]
                            .map(c => [c.id, {points: Number(c.dataset.points || 0),
                                              drawn: Number(c.dataset.drawn || 0)}])),
                        partitions: rows('partitions'),
                        endpoints: rows('endpoints'),
                        dlq: document.getElementById('dlq-reasons').innerText,
                    };
                }""",
                HEADLINE,
            )
        )

    def rendered(self, accept: Callable[[dict[str, Any]], bool]) -> tuple[Any, dict[str, Any]]:
        """The next /stats answer the page fetches that ``accept`` takes, once the page
        shows it, and what the page shows then; every headline number is checked to be
        the answer's."""

        def next_answer() -> tuple[Any, dict[str, Any]] | None:
            with self.page.expect_response(
                lambda r: urlsplit(r.url).path.endswith("/stats")
            ) as info:
                pass
            answer = info.value.json()
            if not accept(answer):
                return None
            self.page.wait_for_function(
                "at => document.body.dataset.at === String(at)", arg=answer["at_ms"]
            )
            shown = self.values()
            if shown["at"] != str(answer["at_ms"]):
                return None  # a newer answer came in meanwhile: try again
            for key in HEADLINE:
                value = shown["values"][key]
                assert value is not None, f"no #v-{key} on the page"
                assert same(value["value"], answer["headline"][key]), (key, value, answer)
                if answer["headline"][key] is None:
                    assert value["text"] == "—", (key, value)
            return answer, shown

        return wait_until(next_answer, timeout=60, interval=0)

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
    documents = [document(i, now) for i in range(DOCS)]
    publish(s, s.kafka.documents_topic, documents + BAD_DOCUMENTS, "id")
    clicks = [click(u, n, now) for u in range(USERS) for n in range(CLICKS_PER_USER)]
    publish(s, s.kafka.behaviors_topic, clicks + BAD_CLICKS, "user_id")
    dead = len(BAD_DOCUMENTS) + len(BAD_CLICKS)

    # /stats, asked by the test, reports the events (rates come with the consumers' next
    # status report, every ops.report_interval_s)...
    def reported_all() -> dict[str, Any] | None:
        h = headline(api)
        counted = (h["documents"], h["users"], h["dlq_total"]) == (DOCS, USERS, dead)
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

    # Query latency: searches (the page's own /stats polling is not query traffic).
    for q in SEARCHES:
        assert api.get("/search", params={"q": q}).status_code == 200
    answer, page_now = dashboard.rendered(lambda a: a["headline"]["query_p50_ms"] is not None)
    h = answer["headline"]
    assert 0 < h["query_p50_ms"] <= h["query_p99_ms"], h
    # The same figures as /stats gives now: the window holds the same requests.
    now_h = headline(api)
    assert (h["query_p50_ms"], h["query_p99_ms"]) == (now_h["query_p50_ms"], now_h["query_p99_ms"])
    assert answer["query"]["endpoints"]["/search"]["requests"] == len(SEARCHES)
    assert [row[:2] for row in page_now["endpoints"]] == [["/search", str(len(SEARCHES))]]
    # Dead letters: the total and each reason.
    assert h["dlq_total"] == now_h["dlq_total"] == dead
    assert answer["dlq"]["reasons"] == {"not_json": 1, "not_utf8": 1, "invalid_event": 1}
    for reason, n in answer["dlq"]["reasons"].items():
        assert f"{reason.replace('_', ' ')} {n}" in page_now["dlq"], page_now["dlq"]

    # Lag: the document consumer's writes are held, so what it polls stays behind.
    gate = threading.Event()
    apply_events = consumer.apply_events

    def held(batch: Any) -> Any:
        assert gate.wait(60), "the test never opened the gate"
        return apply_events(batch)

    consumer.apply_events = held  # type: ignore[method-assign]
    try:
        late = [document(i, int(time.time() * 1000)) for i in range(DOCS, DOCS + LAGGED)]
        publish(s, s.kafka.documents_topic, late, "id")
        answer, page_now = dashboard.rendered(lambda a: (a["headline"]["lag_messages"] or 0) > 0)
    finally:
        gate.set()
    # The partition table shows each reported partition's lag, adding up to the headline.
    expected = [
        [kind, str(p["partition"]), "—" if p["lag_messages"] is None else f"{p['lag_messages']:,}"]
        for kind, c in answer["consumers"].items()
        for p in c["partitions"]
    ]
    assert [row[:3] for row in page_now["partitions"]] == expected
    behind = [p["lag_messages"] or 0 for p in answer["consumers"]["documents"]["partitions"]]
    assert sum(behind) == answer["headline"]["lag_messages"] > 0
    # Caught up once the writes go through.
    dashboard.rendered(
        lambda a: a["headline"]["lag_messages"] == 0 and a["headline"]["documents"] == DOCS + LAGGED
    )

    # The charts have drawn: at least two samples, and the lines are on the canvas.
    page.wait_for_function(
        """charts => charts.every(id => Number(
            document.getElementById('chart-' + id).dataset.points || 0) >= 2)""",
        arg=CHARTS,
    )
    charts = dashboard.values()["charts"]
    for chart in ("events", "index", "query", "lag", "dlq"):
        assert charts[f"chart-{chart}"]["drawn"] >= 2, charts
        assert dashboard.series_pixels(chart) > 20, chart

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
