"""axe-core on every screen, as the superadmin and as a tenant admin: no serious or critical violation.
axe is injected into a context that bypasses the console's CSP for the check only (every other test runs
under the real policy). A screenshot of each screen is kept in tests/console/screenshots/."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page

from e2e.processes import REPO_ROOT

from .conftest import Watched, choose_tenant, open_screen, sign_in
from .gateway import ACME_ADMIN, TENANT, Gateway

AXE = REPO_ROOT / "tests" / "node_modules" / "axe-core" / "axe.min.js"
SCREENS = ["Overview", "Approvals", "Policies", "Audit", "Tokens", "Keys & filters", "Discovery", "Reports"]


def serious_violations(page: Page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    results = page.evaluate("() => axe.run(document, { resultTypes: ['violations'] })")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:5]}"
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def check(page: Page, name: str, screenshots: Path, found: dict[str, list[str]]) -> None:
    page.wait_for_load_state("networkidle")
    assert page.locator(".status.error").count() == 0, f"{name}: {page.locator('.status.error').first.text_content()}"
    page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)
    violations = serious_violations(page)
    if violations:
        found[name] = violations


def test_every_screen_has_no_serious_accessibility_violation(
    gateway: Gateway, watched: Callable[..., Watched], screenshots: Path
) -> None:
    found: dict[str, list[str]] = {}
    page = watched(bypass_csp=True).new_page()
    page.goto(gateway.console_url)
    check(page, "sign-in", screenshots, found)
    sign_in(page, gateway, gateway.cp.admin_token)
    choose_tenant(page, TENANT)
    for screen in SCREENS:
        open_screen(page, screen)
        check(page, screen.lower().replace(" & ", "-"), screenshots, found)
    open_screen(page, "Policies")
    page.get_by_role("button", name="New draft").click()
    check(page, "policy-editor", screenshots, found)
    open_screen(page, "Audit")
    page.get_by_role("button", name="Details").first.click()
    page.get_by_role("button", name="Check inclusion proof").click()
    page.locator(".proof .verdict").wait_for()
    check(page, "audit-proof", screenshots, found)

    tenant_page = watched(bypass_csp=True).new_page()
    sign_in(tenant_page, gateway, ACME_ADMIN)
    check(tenant_page, "tenant-admin-overview", screenshots, found)
    assert not found, "\n".join(f"{screen}: {v}" for screen, items in found.items() for v in items)
