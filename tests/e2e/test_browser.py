"""The staff pages in a real browser: Debian's headless Chromium, driven by Playwright.

One app runs for the module (``esitieto serve``); a synthetic caller is played through the
webhooks while a nurse watches the worklist, and the case then goes through the nurse's
actions. Screenshots are kept in ``test-artifacts/browser/`` for a human to look at.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from tests.e2e.conftest import ESITIETO, app_environment, running_app

playwright = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]'")

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
PASSWORD = "e2e-password"


@dataclass(frozen=True)
class Site:
    url: str
    env: dict[str, str]
    database: Path


@dataclass(frozen=True)
class LiveCase:
    case_id: str
    seconds_to_appear: float
    page_was_reloaded: bool
    state_shown: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data = tmp_path_factory.mktemp("browser") / "var"
    env = app_environment(data)
    with running_app(env, data.parent / "serve.log") as url:
        yield Site(url, env, data / "esitieto.sqlite3")


def _context(browser: Any, site: Site) -> Any:
    context = browser.new_context(
        base_url=site.url, locale="fi-FI", viewport={"width": 1280, "height": 900}
    )
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url)
    context.set_default_timeout(15_000)
    return context


@pytest.fixture
def page(browser: Any, site: Site) -> Iterator[Any]:
    context = _context(browser, site)
    yield context.new_page()
    context.close()


def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Any, username: str) -> None:
    page.goto("/login")
    page.get_by_label("Käyttäjätunnus").fill(username)
    page.get_by_label("Salasana").fill(PASSWORD)
    page.get_by_role("button", name="Kirjaudu").click()
    page.wait_for_url("**/")


def _query(site: Site, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with sqlite3.connect(site.database) as db:
        return db.execute(sql, args).fetchall()


@contextmanager
def _session(site: Site) -> Iterator[Session]:
    """The running app's database through the models, for data a caller cannot make."""
    engine = create_engine(f"sqlite:///{site.database}", connect_args={"timeout": 30})
    try:
        with Session(engine) as session, session.begin():
            yield session
    finally:
        engine.dispose()


HELSINKI = ZoneInfo("Europe/Helsinki")
"""The demo station's time zone."""


@pytest.fixture(scope="module")
def live_case(browser: Any, site: Site, finnish_caller_wav: Path) -> Iterator[LiveCase]:
    """A nurse has the worklist open while a caller phones in; the case must appear on it
    without a reload."""
    context = _context(browser, site)
    page = context.new_page()
    sign_in(page, "hoitaja")
    assert page.locator("tr.case").count() == 0
    page.evaluate("window.__sameDocument = true")
    started = time.monotonic()
    caller = subprocess.Popen(
        [*ESITIETO, "simulate-call", "--station", "demo", "--url", site.url,
         str(finnish_caller_wav)],
        env=site.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    page.locator("tr.case").first.wait_for(timeout=180_000)
    appeared = time.monotonic() - started
    out, err = caller.communicate(timeout=300)
    assert caller.returncode == 0, err
    case = json.loads(out)
    row = page.locator(f'tr.case:has(a[href="/cases/{case["case_id"]}"])')
    # the finished case replaces the in-call row, still without a reload
    row.locator("td", has_text="Valmis").wait_for(timeout=30_000)
    shot(page, "01-worklist-live")
    yield LiveCase(
        case["case_id"],
        appeared,
        page_was_reloaded=not page.evaluate("window.__sameDocument === true"),
        state_shown=row.locator("td").last.inner_text(),
    )
    context.close()


def test_sign_in_rejects_a_wrong_password_and_lets_the_nurse_in(page: Any) -> None:
    page.goto("/login")
    page.get_by_label("Käyttäjätunnus").fill("hoitaja")
    page.get_by_label("Salasana").fill("not the password")
    page.get_by_role("button", name="Kirjaudu").click()
    assert page.get_by_role("alert").inner_text() == "Väärä käyttäjätunnus tai salasana."
    shot(page, "00-sign-in-failed")
    sign_in(page, "hoitaja")
    assert page.get_by_role("heading", level=1).inner_text() == "Työjono"
    assert page.get_by_role("link", name="Pilotin seuranta").count() == 0  # a nurse's menu
    page.get_by_role("button", name="Kirjaudu ulos").click()
    page.wait_for_url("**/login")


def test_a_simulated_call_appears_live_on_the_worklist(live_case: LiveCase) -> None:
    assert not live_case.page_was_reloaded
    assert live_case.state_shown == "Valmis"
    assert live_case.seconds_to_appear < 180


def test_the_case_page_links_facts_to_words_and_plays_the_recording(
    page: Any, live_case: LiveCase
) -> None:
    sign_in(page, "hoitaja")
    page.locator(f'a[href="/cases/{live_case.case_id}"]').click()
    page.wait_for_url(f"**/cases/{live_case.case_id}")
    facts = page.locator("ul.facts-list a")
    assert facts.count() >= 1
    facts.first.click()
    assert page.evaluate("document.querySelector(':target').tagName") == "MARK"
    assert page.locator("mark:target").inner_text().strip()
    assert page.locator("ul.reasons li").count() >= 1  # pretriage's reasons
    # the page's words for pretriage are the note's: the heading and "sääntökanta"
    assert page.get_by_role("heading", level=2, name="Pretriage", exact=True).count() == 1
    assert "Sääntökanta" in page.locator("p.decision").first.inner_text()
    note = page.locator("#note").inner_text()
    assert "Pretriage" in note and "sääntökanta" in note
    assert "Esiarvio" not in page.locator("main").inner_text()
    segment = page.locator("li.segment").last
    start = float(segment.get_attribute("data-start") or 0)
    segment.click()
    page.wait_for_function(
        "s => { const a = document.querySelector('audio');"
        " return a && !a.paused && a.currentTime >= s; }",
        arg=start,
    )
    shot(page, "02-case")


def test_the_note_is_copied_in_one_click(page: Any, live_case: LiveCase) -> None:
    sign_in(page, "hoitaja")
    page.goto(f"/cases/{live_case.case_id}")
    note = page.locator("#note").inner_text()
    assert note.strip()
    page.get_by_role("button", name="Kopioi kirjaus").click()
    page.get_by_role("button", name="Kopioitu").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == note


def test_the_nurse_says_how_the_summary_was_used(
    page: Any, site: Site, live_case: LiveCase
) -> None:
    sign_in(page, "hoitaja")
    page.goto(f"/cases/{live_case.case_id}")
    form = page.locator("#usage-form")
    form.get_by_label("Muokattuna").check()
    form.get_by_label("Miksi (vapaaehtoinen)").fill("lisäsin lääkityksen")
    form.get_by_role("button", name="Tallenna").click()
    assert page.get_by_role("status").inner_text() == "Tallennettu."
    rows = _query(
        site, "SELECT usage, comment FROM summary_feedback WHERE call_id = ?", live_case.case_id
    )
    assert rows == [("edited", "lisäsin lääkityksen")]


def test_the_nurse_overrides_pretriage_with_a_reason(
    page: Any, site: Site, live_case: LiveCase
) -> None:
    sign_in(page, "hoitaja")
    page.goto(f"/cases/{live_case.case_id}")
    page.get_by_text("Muuta arviota").click()
    form = page.locator("#override-form")
    form.get_by_label("Kiireellinen", exact=True).check()
    form.get_by_label("Hoitajajono").check()
    form.get_by_label("Perustelu").fill("Kuume noussut, soitan heti")
    form.get_by_role("button", name="Tallenna arvio").click()
    assert page.get_by_role("status").inner_text() == "Tallennettu."
    nurse = page.locator("p.decision-nurse")
    assert "Kiireellinen" in nurse.inner_text() and "Hoitajajono" in nurse.inner_text()
    assert page.locator("p.decision-pretriage").count() == 1  # kept beside it
    shot(page, "03-case-overridden")
    actions = {a for (a,) in _query(site, "SELECT action FROM audit_events")}
    assert {"view_case", "summary_feedback", "override_triage", "login"} <= actions


def test_the_dashboard_draws_its_charts_for_the_station_lead(
    page: Any, live_case: LiveCase
) -> None:
    sign_in(page, "osastonhoitaja")
    page.get_by_role("link", name="Pilotin seuranta").click()
    # a week, not a day: the call made just before midnight still counts after it
    page.locator('select[name="period"]').select_option("week")
    page.get_by_role("button", name="Näytä").click()
    page.wait_for_url("**period=week**")
    assert int(page.locator("#fig-calls").inner_text()) >= 1
    for chart in ("#chart-timeline", "#chart-routing"):
        box = page.locator(chart).bounding_box()
        assert box and box["width"] > 200 and box["height"] > 10, chart
        assert page.locator(f"{chart} rect").count() >= 1, chart
    bars = page.locator("#chart-timeline rect")
    assert sum(bars.nth(i).bounding_box()["height"] for i in range(bars.count())) > 0
    # a route has one colour on every chart and in the legend
    compared = 0
    for route in ("nurse_queue", "callback", "digital_path"):
        colours = {
            _colour(page, f"#chart-routing rect.r-{route}", "fill"),
            _colour(page, f"#chart-timeline rect.r-{route}", "fill"),
            _colour(page, f"ul.legend .swatch.r-{route}", "backgroundColor"),
        } - {None}
        assert len(colours) == 1, (route, colours)
        colour = colours.pop()
        assert colour and _contrast(colour, "rgb(255, 255, 255)") >= 3, (route, colour)
        compared += page.locator(f"#chart-routing rect.r-{route}").count()
    assert compared >= 1  # the live case's route is on the routing chart
    # decimals the Finnish way: a comma, never a point
    tiles = page.locator("section.tiles").inner_text()
    assert not re.search(r"\d\.\d", tiles), tiles
    assert re.fullmatch(r"–|\d+(,\d)?", page.locator("#fig-processing").inner_text())
    page.get_by_text("Näytä taulukkona").click()
    assert page.locator("#timeline-table tbody tr").count() == 7  # by day
    shot(page, "04-dashboard")


def _colour(page: Any, selector: str, prop: str) -> str | None:
    """The computed colour of the first element matching ``selector`` (None: there is none)."""
    found = page.locator(selector)
    if found.count() == 0:
        return None
    return str(found.first.evaluate(f"el => getComputedStyle(el).{prop}"))


def _contrast(a: str, b: str) -> float:
    def luminance(colour: str) -> float:
        rgb = [int(x) / 255 for x in re.findall(r"\d+", colour)[:3]]
        lin = [x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4 for x in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


@pytest.fixture(scope="module")
def empty_station(site: Site) -> str:
    """A second station of the station lead's, where nobody has called yet."""
    from models import Station, StationMembership, User

    with _session(site) as s:
        s.add(Station(id="tyhja", name="Tyhjä asema", phone_number="+358900000999"))
        lead = s.scalar(select(User.id).where(User.username == "osastonhoitaja"))
        assert lead is not None
        s.flush()
        s.add(StationMembership(user_id=lead, station_id="tyhja"))
    return "tyhja"


def test_an_empty_dashboard_says_so_instead_of_drawing_blank_charts(
    page: Any, empty_station: str
) -> None:
    sign_in(page, "osastonhoitaja")
    page.goto(f"/dashboard?station={empty_station}&period=week")
    assert page.locator("#fig-calls").inner_text() == "0"
    message = page.locator("#chart-timeline-empty")
    assert message.is_visible() and message.inner_text() == "Ei puheluita tällä jaksolla."
    for chart in ("chart-routing", "chart-usage", "chart-survey"):
        assert page.locator(f"#{chart}-empty").is_visible(), chart
    assert page.locator("main svg").count() == 0  # no empty chart box
    assert page.get_by_text("Näytä taulukkona").count() == 0  # nor an empty table
    assert page.evaluate(CONTRAST_JS) == []
    shot(page, "06-dashboard-empty")


def test_the_pages_switch_to_swedish_and_english(page: Any) -> None:
    sign_in(page, "paakayttaja")
    page.get_by_role("button", name="På svenska").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Arbetslista"
    assert page.locator("html").get_attribute("lang") == "sv"
    page.get_by_role("link", name="Användare").click()
    assert page.locator("#staff").inner_text().count("Skötare") >= 1
    shot(page, "05-staff-sv")
    page.get_by_role("button", name="In English").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Users"
    page.get_by_role("button", name="Suomeksi").click()


def test_keyboard_only_sign_in_and_skip_link(page: Any, live_case: LiveCase) -> None:
    page.goto("/login")
    # the username field has focus on arrival; Tab moves to the password, Enter signs in
    page.wait_for_function("document.activeElement && document.activeElement.id === 'username'")
    page.keyboard.type("hoitaja")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/")
    page.goto("/?state=all")  # earlier tests may have handled the case
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    assert page.locator("a.skip").is_visible()  # shown when focused
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # from there, Tab reaches the filters and then the case link, and Enter opens it
    visited = []
    for _ in range(20):
        page.keyboard.press("Tab")
        visited.append(page.evaluate("document.activeElement.outerHTML.slice(0, 80)"))
        if page.evaluate("document.activeElement.getAttribute('href') || ''").startswith("/cases/"):
            break
    else:
        raise AssertionError(visited)
    page.keyboard.press("Enter")
    page.wait_for_url("**/cases/**")
    focus_ring = page.evaluate(
        "(() => { const b = document.getElementById('copy-note'); b.focus();"
        " return getComputedStyle(b).outlineStyle; })()"
    )
    assert focus_ring != "none"


CONTRAST_JS = """
() => {
  function rgb(c) { const m = c.match(/[\\d.]+/g); return m ? m.map(Number) : [0, 0, 0, 0]; }
  function lum(c) {
    const v = c.slice(0, 3).map(x => { x /= 255;
      return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); });
    return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2];
  }
  function background(el) {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c;
    }
    return [255, 255, 255];
  }
  const bad = [];
  for (const el of document.querySelectorAll('body *')) {
    if (el.closest('svg') || !el.checkVisibility()) continue;
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;
    const fg = lum(rgb(getComputedStyle(el).color)), bg = lum(background(el));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    if (ratio < 4.5) bad.push(el.tagName + '.' + el.className + ' ' + ratio.toFixed(2));
  }
  return bad;
}
"""


def test_every_text_on_the_pages_has_enough_contrast(page: Any, live_case: LiveCase) -> None:
    """WCAG AA: at least 4.5:1 between each visible text and what is behind it."""
    page.goto("/login")
    assert page.evaluate(CONTRAST_JS) == []
    # the check itself can fail: light grey on white is 2.3:1
    page.evaluate(  # through the CSSOM: the pages' policy refuses inline style attributes
        "(() => { const p = document.createElement('p'); p.className = 'probe';"
        " p.textContent = 'harmaa'; p.style.color = '#aaa';"
        " document.querySelector('main').append(p); })()"
    )
    assert page.evaluate(CONTRAST_JS) == ["P.probe 2.32"]
    sign_in(page, "paakayttaja")
    for path in ("/", f"/cases/{live_case.case_id}", "/dashboard?period=week", "/admin/staff"):
        page.goto(path)
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        assert page.evaluate(CONTRAST_JS) == [], path


def test_a_case_link_opened_signed_out_leads_to_the_case_after_sign_in(
    page: Any, site: Site, live_case: LiveCase
) -> None:
    page.goto(f"/cases/{live_case.case_id}")
    page.wait_for_url("**/login")
    page.get_by_label("Käyttäjätunnus").fill("hoitaja")
    page.get_by_label("Salasana").fill(PASSWORD)
    page.get_by_role("button", name="Kirjaudu").click()
    page.wait_for_url(f"**/cases/{live_case.case_id}")
    assert page.get_by_role("heading", level=1).inner_text().startswith("Yhteydenotto")
    # a link that would take the nurse to another site after sign-in lands on the worklist
    page.context.clear_cookies()
    page.goto("/login?next=//evil.example/")
    page.get_by_label("Käyttäjätunnus").fill("hoitaja")
    page.get_by_label("Salasana").fill(PASSWORD)
    page.get_by_role("button", name="Kirjaudu").click()
    page.wait_for_url(f"{site.url}/")
    assert page.get_by_role("heading", level=1).inner_text() == "Työjono"


@pytest.fixture(scope="module")
def callback_case(site: Site, live_case: LiveCase) -> str:
    """A case with an open callback (made after the live case, which stays first in line)."""
    from models import Call, Callback, CallState

    with _session(site) as s:
        call = Call(
            station_id="demo",
            call_sid="CA" + "b" * 32,
            to_number="+358900000000",
            from_number="+358401111111",
            state=CallState.READY,
            route="callback",
            reason="Takaisinsoitto luvattu myöhemmäksi",
        )
        s.add(call)
        s.flush()
        s.add(Callback(call_id=call.id, station_id="demo", state="open"))
        return call.id


def _promise_for(site: Site, case_id: str, day: date) -> None:
    """The callback's window: 8–9 o'clock on ``day`` in Helsinki."""
    from models import Callback

    start = datetime.combine(day, clock_time(8), HELSINKI).astimezone(UTC)
    with _session(site) as s:
        cb = s.scalar(select(Callback).where(Callback.call_id == case_id))
        assert cb is not None
        cb.window_start, cb.window_end = start, start + timedelta(hours=1)


def test_the_worklist_says_which_day_a_callback_is_promised(
    page: Any, site: Site, callback_case: str
) -> None:
    sign_in(page, "hoitaja")
    row = page.locator(f'tr.case:has(a[href="/cases/{callback_case}"])')
    cell = row.locator("td").nth(4)  # the callback column
    for _ in range(2):  # once more if midnight passes in Helsinki meanwhile
        today = datetime.now(HELSINKI).date()
        _promise_for(site, callback_case, today + timedelta(days=1))
        page.goto("/")
        shown = cell.inner_text()
        if datetime.now(HELSINKI).date() == today:
            break
    assert shown == "huomenna 8.00–9.00"
    shot(page, "07-worklist-tomorrow")
    page.locator(f'a[href="/cases/{callback_case}"]').click()
    assert page.locator("#callback-window").inner_text() == "huomenna 8.00–9.00"


def test_the_account_form_says_how_long_a_password_must_be(page: Any) -> None:
    sign_in(page, "paakayttaja")
    page.goto("/admin/staff")
    assert page.locator("#pw-help").inner_text().startswith("Vähintään 12 merkkiä.")
    form = page.locator('form[action="/admin/staff"]')
    form.get_by_label("Käyttäjätunnus").fill("lyhyt.salasana")
    form.get_by_label("Nimi", exact=True).fill("Lyhyt Salasana")
    form.get_by_label("Salasana", exact=True).fill("lyhyt")
    # past the browser's own check, as if it had none: the server's answer must say the rule
    form.evaluate("f => { f.noValidate = true; }")
    form.get_by_role("button", name="Luo käyttäjä").click()
    alert = page.get_by_role("alert").inner_text()
    assert "vähintään 12 merkkiä" in alert, alert
    shot(page, "08-staff-password-rule")


def test_the_site_has_an_icon_without_signing_in(page: Any) -> None:
    ico = page.request.get("/favicon.ico")
    assert ico.ok and ico.headers["content-type"] == "image/x-icon"
    assert "max-age=" in ico.headers["cache-control"]
    assert ico.body()[:4] == b"\x00\x00\x01\x00"
    page.goto("/login")
    href = page.locator('link[rel="icon"]').first.get_attribute("href", timeout=1000)
    assert href
    icon = page.request.get(href)
    assert icon.ok and icon.headers["content-type"].startswith("image/svg+xml")


def test_what_pretriage_did_not_understand_is_unclear_never_green(
    page: Any, site: Site, live_case: LiveCase
) -> None:
    from models import Call, CallState

    ids = {}
    with _session(site) as s:
        for name, uncertain in (("tavallinen", False), ("epaselva", True)):  # unclear one later
            call = Call(
                station_id="demo",
                call_sid="CA" + name.encode().hex().ljust(32, "0")[:32],
                to_number="+358900000000",
                from_number="+358401111111",
                state=CallState.READY,
                urgency="non_urgent",
                urgency_rank=0,
                uncertain=uncertain,
                route="callback",
                reason=f"Asia {name}",
            )
            s.add(call)
            s.flush()
            ids[name] = call.id
    sign_in(page, "hoitaja")
    rows = page.locator("tr.case")
    order = [rows.nth(i).locator("a").first.get_attribute("href") for i in range(rows.count())]
    assert order.index(f"/cases/{ids['epaselva']}") < order.index(f"/cases/{ids['tavallinen']}")
    badge = page.locator(f'tr.case:has(a[href="/cases/{ids["epaselva"]}"]) .badge')
    assert badge.inner_text() == "Epäselvä – hoitaja arvioi" and badge.is_visible()
    colour = badge.evaluate("b => getComputedStyle(b).backgroundColor")
    plain = page.locator(f'tr.case:has(a[href="/cases/{ids["tavallinen"]}"]) .badge')
    assert colour != plain.evaluate("b => getComputedStyle(b).backgroundColor")  # not green
    assert page.evaluate(CONTRAST_JS) == []
    shot(page, "09-worklist-unclear")
    page.locator(f'a[href="/cases/{ids["epaselva"]}"]').click()
    assert page.locator(".badge").first.inner_text() == "Epäselvä – hoitaja arvioi"
    assert not page.locator('input[name="urgency"]:checked').count()  # the nurse chooses


def test_the_pages_keep_to_their_own_content_security_policy(
    page: Any, live_case: LiveCase
) -> None:
    """The strict policy (no inline script or style) breaks nothing the pages do, and
    refuses what a page must never run."""
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Security Policy" in m.text else None)
    sign_in(page, "paakayttaja")
    for path in ("/", f"/cases/{live_case.case_id}", "/dashboard?period=week", "/admin/staff"):
        response = page.goto(path)
        assert response is not None
        headers = response.headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        assert headers["cache-control"] == "no-store" and headers["x-frame-options"] == "DENY"
    assert violations == []
    # an inline handler smuggled into a page does not run (ours, added after it, does)
    ran = page.evaluate(
        """new Promise(done => {
            document.body.insertAdjacentHTML(
                'beforeend', '<img id="probe" src="/nothing-here" onerror="window.ran = 1">');
            document.getElementById('probe').addEventListener(
                'error', () => done(window.ran === undefined ? 'refused' : 'ran'));
        })"""
    )
    assert ran == "refused"
