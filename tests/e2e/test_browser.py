"""The staff pages in a real browser: Debian's headless Chromium, driven by Playwright.

One app runs for the module (``esitieto serve``); a synthetic caller is played through the
webhooks while a nurse watches the worklist, and the case then goes through the nurse's
actions. Screenshots are kept in ``test-artifacts/browser/`` for a human to look at.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ESITIETO, app_environment, running_app

playwright = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]'")

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
PASSWORD = "e2e-password"
CHROMIUM_ARGS = [
    # As root in a container, and with no network beyond localhost: no sandbox, no GPU, no
    # background calls home (they would be refused, many at a time).
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


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


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("Debian's chromium is not installed (make system-deps installs it)")
    with playwright.sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


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
    assert "Sääntöversio" in page.locator("p.decision").first.inner_text()
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
    page.get_by_text("Näytä taulukkona").click()
    assert page.locator("#timeline-table tbody tr").count() == 7  # by day
    shot(page, "04-dashboard")


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
    page.evaluate(
        "document.querySelector('main').insertAdjacentHTML('beforeend',"
        ' \'<p class="probe" style="color:#aaa">harmaa</p>\')'
    )
    assert page.evaluate(CONTRAST_JS) == ["P.probe 2.32"]
    sign_in(page, "paakayttaja")
    for path in ("/", f"/cases/{live_case.case_id}", "/dashboard?period=week", "/admin/staff"):
        page.goto(path)
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        assert page.evaluate(CONTRAST_JS) == [], path
