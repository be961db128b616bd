"""Fixtures of the console tests: one gateway for the whole session (see gateway.py), one headless
Debian Chromium driven by Playwright's Python API, and pages that fail their test on any dialog, uncaught
error or console error (a CSP violation is one).

Chromium reports every HTTP error answer of a fetch as a console error ("Failed to load resource: the
server responded with a status of 404"). The console asks questions whose answer may be a 4xx (is there an
active policy? may this token list the filters?) and shows every such answer itself, so those lines alone
are not failures; any other console error is.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from e2e.processes import REPO_ROOT

from .gateway import Gateway, start_gateway

CHROMIUM = os.environ.get("INTENTGATE_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = REPO_ROOT / "tests" / "console" / "screenshots"
HTTP_ERROR_ANSWER = "Failed to load resource: the server responded with a status of 4"


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with ExitStack() as stack:
        yield start_gateway(stack, tmp_path_factory.mktemp("console-gateway"))


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Playwright gives the browser a fresh, throwaway profile of its own."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make console-test` installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    return SCREENSHOTS


class Watched:
    """A browser context whose pages record every dialog, page error and console error."""

    def __init__(self, context: BrowserContext) -> None:
        self.context = context
        self.problems: list[str] = []
        self.answers: list[str] = []
        context.on("page", self._watch)

    def _watch(self, page: Page) -> None:
        def dialog(d: Any) -> None:
            self.problems.append(f"dialog {d.type}: {d.message}")
            d.dismiss()

        def console(message: Any) -> None:
            if message.type != "error":
                return
            if message.text.startswith(HTTP_ERROR_ANSWER):
                self.answers.append(message.text)
            else:
                self.problems.append(f"console error: {message.text}")

        page.on("dialog", dialog)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("console", console)

    def new_page(self) -> Page:
        page = self.context.new_page()
        page.set_default_timeout(20_000)
        return page


@pytest.fixture
def watched(browser: Browser) -> Iterator[Callable[..., Watched]]:
    contexts: list[Watched] = []

    def make(**options: Any) -> Watched:
        watched = Watched(browser.new_context(viewport={"width": 1360, "height": 900}, **options))
        contexts.append(watched)
        return watched

    yield make
    problems = [p for w in contexts for p in w.problems]
    for w in contexts:
        w.context.close()
    assert not problems, "the console misbehaved:\n" + "\n".join(problems)


def sign_in(page: Page, gateway: Gateway, token: str, path: str = "") -> None:
    page.goto(gateway.console_url + path)
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Sign out").wait_for()


@pytest.fixture
def admin_page(gateway: Gateway, watched: Callable[..., Watched]) -> Page:
    """A page signed in with the superadmin token, on the acme-corp tenant."""
    page = watched().new_page()
    sign_in(page, gateway, gateway.cp.admin_token)
    choose_tenant(page, "acme-corp")
    return page


def choose_tenant(page: Page, tenant: str) -> None:
    page.get_by_label("Tenant", exact=True).select_option(tenant)
    page.get_by_role("heading", name=f"Tenant {tenant}").wait_for()


def open_screen(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Console").get_by_role("link", name=name, exact=True).click()
    page.get_by_role("heading", level=1, name=name).wait_for()
