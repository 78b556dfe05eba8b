"""The harness's own promises: a request to another host is aborted and counted (the test then fails),
and an uncaught error in a page is caught."""

from __future__ import annotations

from playwright.sync_api import Page

from tests.browser.conftest import Live, Watch, accessibility_problems


def test_a_request_to_another_host_is_aborted_and_counted(page: Page, live: Live, watch: Watch) -> None:
    page.goto(live.url + "/")
    reached = page.evaluate(
        """async () => {
          try { await fetch("http://cdn.example.org/htmx.min.js"); return true; } catch { return false; }
        }"""
    )
    assert reached is False
    assert watch.foreign == ["http://cdn.example.org/htmx.min.js"]
    watch.foreign.clear()  # counted, as it should be: this test only checks that it is


def test_an_uncaught_page_error_is_caught(page: Page, live: Live, watch: Watch) -> None:
    page.goto(live.url + "/")
    page.evaluate("setTimeout(() => { throw new Error('boom from the page') }, 0)")
    page.wait_for_timeout(200)
    assert any("boom from the page" in error for error in watch.errors)
    watch.errors.clear()


def test_axe_reports_what_a_person_would_meet(page: Page, live: Live) -> None:
    """The accessibility check can fail: a field without a label, grey on grey, content outside the
    landmarks are each reported."""
    page.goto(live.url + "/")
    page.evaluate(
        """() => {
          const main = document.querySelector("main");
          main.insertAdjacentHTML("beforeend", '<input type="text" id="nameless">');
          main.insertAdjacentHTML("beforeend", '<p style="color:#999;background:#aaa">faint</p>');
          document.body.insertAdjacentHTML("afterbegin", "<div><p>outside every landmark</p></div>");
        }"""
    )
    found = " ".join(accessibility_problems(page))
    for rule in ("label", "color-contrast", "region"):
        assert f"{rule} (" in found, found
