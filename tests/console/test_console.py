"""The admin console in a real headless Chromium, through Envoy started from `envoy/standalone.yaml`, against
the real control plane, the real filter and real MCP peers: sign in, switch tenant, policies from a draft
with a compile error to a promotion, an approval that releases a real client's held call, audit with the
chain and an inclusion proof checked in the browser, tokens, and what a tenant admin may not see."""

from __future__ import annotations

import concurrent.futures
import re
from collections.abc import Callable
from urllib.parse import urlparse

import httpx
from playwright.sync_api import Page, expect

from .conftest import Watched, choose_tenant, open_screen, sign_in
from .gateway import ACME_ADMIN, OTHER, POLICY, TENANT, Gateway


def test_the_console_is_served_through_envoy_with_its_safety_headers(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.envoy.base_url, trust_env=False) as client:
        index = client.get("/console/")
        assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
        csp = index.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert "require-trusted-types-for 'script'" in csp
        assert index.headers["x-frame-options"] == "DENY"
        assert index.headers["referrer-policy"] == "no-referrer"
        assert index.headers["x-content-type-options"] == "nosniff"
        assert "<script type=\"module\" src=\"/console/app.js\">" in index.text
        screen = client.get("/console/audit")
        assert screen.status_code == 200 and screen.text == index.text, "a screen's path serves the index"
        module = client.get("/console/screens/audit.js")
        assert module.status_code == 200 and module.headers["content-type"].startswith("text/javascript")
        assert module.headers["content-security-policy"] == csp
        again = client.get("/console/screens/audit.js", headers={"if-none-match": module.headers["etag"]})
        assert again.status_code == 304
        assert client.get("/console/no-such.js").status_code == 404
        bare = client.get("/console")
        assert bare.status_code == 308 and bare.headers["location"] == "/console/"


def test_sign_in_keeps_the_token_in_session_storage_only_and_switches_tenant(
    gateway: Gateway, watched: Callable[..., Watched]
) -> None:
    context = watched()
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(gateway.console_url)
    page.get_by_label("Admin token").fill("not-a-token-at-all-0123456789")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("401")
    sign_in(page, gateway, gateway.cp.admin_token)
    token = gateway.cp.admin_token
    assert page.evaluate("() => sessionStorage.getItem('intentgate.console.token')") == token
    assert page.evaluate("() => Object.keys(localStorage).length") == 0
    assert not any(token in url for url in requests), "the token never appears in a URL"
    assert all(urlparse(url).netloc == urlparse(gateway.console_url).netloc for url in requests), "no request leaves the gateway"
    choose_tenant(page, OTHER)
    expect(page.get_by_text("globex-baseline")).to_be_visible()
    choose_tenant(page, TENANT)
    expect(page.get_by_text("baseline (")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    assert page.evaluate("() => sessionStorage.length") == 0
    page.get_by_label("Admin token").wait_for()


CANDIDATE = POLICY + """
decision := {"allow": true, "rule": "env_for_ops"} if { input.tool == "get-env" }
"""
BROKEN = """package intentgate.policy
import rego.v1

default decision := {"allow": false, "rule": "default"}

decision := {"allow": true, "rule": "echo"} if {
    input.tool ==
}
"""


def wait_for_event(gateway: Gateway, **query: str) -> dict:
    from e2e.test_control_plane import wait_for

    return wait_for(lambda: next(iter(gateway.cp.audit(TENANT, **query)), None), f"an audit event {query}", timeout=30)


def test_a_draft_with_a_compile_error_shows_it_at_its_line_then_dry_runs_and_promotes(gateway: Gateway, admin_page: Page) -> None:
    page = admin_page
    token = gateway.token("agent-policy")["token"]
    gateway.call_tool(token, "echo", {"message": "before the change"})
    assert gateway.call_refused(token, "get-env", {}) == -32012
    wait_for_event(gateway, subject="agent-policy", tool="get-env", decision="deny")

    open_screen(page, "Policies")
    page.get_by_role("button", name="New draft").click()
    page.get_by_label("Name", exact=True).fill("console-v2")
    page.get_by_label("Rego source").fill(BROKEN)
    page.get_by_role("button", name="Save draft").click()
    problem = page.locator(".compile-error")
    expect(problem).to_contain_text("Line 8, column")
    expect(problem).to_contain_text("expecting expression")
    expect(page.locator(".gutter span.error")).to_have_text("8")
    expect(page.get_by_label("Rego source")).to_have_attribute("aria-invalid", "true")
    assert not any(d["name"] == "console-v2" for d in gateway.cp.ok("GET", "/v1/admin/policies/drafts", params={"tenant": TENANT}))

    page.get_by_label("Rego source").fill(CANDIDATE)
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_text("Saved: compiled")).to_be_visible()
    expect(page.locator(".gutter span.error")).to_have_count(0)

    page.get_by_label("Replay the last").fill("50")
    page.get_by_role("button", name="Dry run").click()
    summary = page.locator(".dry-run .summary")
    expect(summary).to_contain_text("would be decided differently")
    changed = page.get_by_role("table").filter(has_text="Decisions that would change")
    row = changed.get_by_role("row").filter(has_text="agent-policy").filter(has_text="get-env").first
    expect(row).to_contain_text("deny")
    expect(row).to_contain_text("allow")
    expect(row).to_contain_text("env_for_ops")
    assert "1 would" in summary.text_content() or re.search(r"\b[1-9]\d* would", summary.text_content())

    page.get_by_role("button", name="Promote").click()
    dialog = page.get_by_role("dialog", name="Promote console-v2?")
    dialog.get_by_role("button", name="Promote").click()
    expect(page.get_by_text("Promoted console-v2")).to_be_visible()
    assert gateway.cp.ok("GET", "/v1/admin/policies/active", params={"tenant": TENANT})["name"] == "console-v2"
    history = page.get_by_role("region", name="Promotion history")
    expect(history.get_by_role("row").filter(has_text="console-v2")).to_contain_text("active")
    expect(history.get_by_role("row").filter(has_text="baseline").first).to_contain_text("earlier")
    gateway.wait_in_sync()
    assert "PATH" in gateway.call_tool(token, "get-env", {}), "the promoted policy is what the filter enforces"

    active = page.get_by_role("region", name="Active policy")
    active.get_by_role("button", name="Roll back").click()
    page.get_by_role("dialog", name="Roll back the active policy?").get_by_role("button", name="Roll back").click()
    expect(active).to_contain_text("baseline")
    expect(history.get_by_role("row").filter(has_text="console-v2")).to_contain_text("rolled back")
    active.get_by_role("button", name="Clear").click()
    page.get_by_role("dialog", name="Clear the active policy?").get_by_role("button", name="Clear").click()
    expect(page.get_by_role("region", name="Active policy")).to_contain_text("No active policy")
    gateway.wait_in_sync()
    assert gateway.call_refused(token, "echo", {"message": "cleared"}) == -32012, "a cleared tenant fails closed"
    page.get_by_role("region", name="Active policy").get_by_role("button", name="Roll back").click()
    page.get_by_role("dialog", name="Roll back the active policy?").get_by_role("button", name="Roll back").click()
    expect(page.get_by_role("region", name="Active policy")).to_contain_text("baseline")
    gateway.wait_in_sync()


def test_approving_in_the_console_releases_a_real_clients_held_call(gateway: Gateway, admin_page: Page) -> None:
    page = admin_page
    token = gateway.token("agent-held")["token"]
    open_screen(page, "Approvals")
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        held = pool.submit(gateway.call_tool, token, "get-sum", {"a": 500, "b": 1})
        card = page.locator("article.approval").filter(has_text="agent-held")
        card.wait_for(timeout=30_000)
        expect(card).to_contain_text("large_sum")
        expect(card).to_contain_text('"a": 500')
        assert not held.done(), "the call waits for a human"
        card.get_by_label("Reason").fill("checked with finance")
        card.get_by_role("button", name="Approve").click()
        answer = held.result(timeout=60)
    assert "501" in answer, answer
    expect(card).to_be_hidden()
    decided = wait_for_event(gateway, decision="approve", subject="agent-held")
    assert decided["decided_by"] == "superadmin" and decided["reason"] == "checked with finance"


def test_audit_finds_the_allow_event_verifies_the_chain_and_checks_its_inclusion_proof(gateway: Gateway, admin_page: Page) -> None:
    page = admin_page
    token = gateway.token("agent-audit")["token"]
    gateway.call_tool(token, "echo", {"message": "audited"})
    event = wait_for_event(gateway, subject="agent-audit", decision="allow", tool="echo")

    open_screen(page, "Audit")
    page.get_by_label("Decision").select_option("allow")
    page.get_by_label("Tool").fill("echo")
    page.get_by_label("Subject (agent)").fill("agent-audit")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("button", name=f"Details of event {event['id']}").click()
    detail = page.get_by_role("region", name=f"Event {event['id']}")
    expect(detail).to_contain_text("audited")
    detail.get_by_role("button", name="Check inclusion proof").click()
    verdict = detail.locator(".verdict")
    expect(verdict).to_have_attribute("data-verified", "true")
    expect(verdict.locator("li.ok")).to_have_count(4)
    expect(verdict).to_contain_text("Ed25519 signature by")

    page.get_by_role("button", name="Verify chain").click()
    chain = page.get_by_role("region", name="Chain verification").locator(".verdict")
    expect(chain).to_have_attribute("data-verified", "true")
    expect(chain).to_contain_text("events checked")

    with page.expect_download() as download:
        page.get_by_role("button", name="Export NDJSON").click()
    exported = open(download.value.path(), encoding="utf-8").read()
    assert event["id"] in exported and "agent-audit" in exported


def test_a_token_is_minted_shown_once_and_revoked(gateway: Gateway, admin_page: Page) -> None:
    page = admin_page
    open_screen(page, "Tokens")
    page.get_by_label("Subject (agent)").fill("agent-console-minted")
    page.get_by_label("Tools", exact=True).fill("echo")
    page.get_by_role("button", name="Mint token").click()
    shown = page.get_by_role("textbox", name="Minted token")
    token = shown.input_value()
    assert token.startswith("igt1."), token
    jti = page.locator(".once .facts dd").first.text_content()
    assert "echoed" in gateway.call_tool(token, "echo", {"message": "echoed"}).lower()
    stored = page.evaluate("() => JSON.stringify({...sessionStorage, ...localStorage})")
    assert token not in stored, "the minted token is not kept by the console"
    page.get_by_role("button", name="Done, hide it").click()
    expect(shown).to_have_count(0)

    page.get_by_label("Token id (jti)").fill(jti)
    page.get_by_label("Reason").fill("console test")
    page.get_by_role("button", name="Revoke", exact=True).click()
    expect(page.get_by_text(f"Revoked {jti}")).to_be_visible()
    expect(page.get_by_role("region", name="Revocations").get_by_role("row").filter(has_text=jti)).to_contain_text("console test")
    gateway.wait_in_sync()
    assert gateway.call_refused(token, "echo", {"message": "after revoke"}) == -32010


def test_a_tenant_admin_sees_neither_other_tenants_nor_superadmin_actions(
    gateway: Gateway, watched: Callable[..., Watched]
) -> None:
    page = watched().new_page()
    sign_in(page, gateway, ACME_ADMIN)
    expect(page.get_by_text(f"tenant admin · {TENANT}")).to_be_visible()
    page.get_by_role("heading", name=f"Tenant {TENANT}").wait_for()
    expect(page.get_by_label("Tenant", exact=True)).to_have_count(0)
    expect(page.get_by_role("heading", name="Tenants", exact=True)).to_have_count(0)
    expect(page.get_by_text("Filters in sync")).to_have_count(0)
    nav = page.get_by_role("navigation", name="Console")
    expect(nav.get_by_role("link", name="Keys & filters")).to_have_count(0)
    page.goto(gateway.console_url + "keys")
    page.get_by_role("heading", level=1, name="Overview").wait_for()
    expect(page.get_by_role("button", name="Rotate signing key")).to_have_count(0)
    for screen in ("Audit", "Policies", "Reports", "Discovery", "Tokens"):
        open_screen(page, screen)
        page.wait_for_load_state("networkidle")
        assert OTHER not in page.locator("main").inner_text(), f"{screen} shows another tenant"
    open_screen(page, "Reports")
    posture = page.get_by_role("region", name="Coverage (posture)")
    expect(posture.get_by_role("row").filter(has_text=TENANT)).to_have_count(1)
    expect(page.get_by_label("Reports cover")).to_have_count(0)


def test_keys_rotate_and_retire_and_filters_show_their_versions(gateway: Gateway, admin_page: Page) -> None:
    page = admin_page
    before = gateway.cp.ok("GET", "/v1/admin/keys")
    old = next(k["kid"] for k in before if k["status"] == "active")
    open_screen(page, "Keys & filters")
    filters = page.get_by_role("region", name="Filters")
    expect(filters.get_by_role("row").filter(has_text="current").first).to_be_visible()
    page.get_by_role("button", name="Rotate signing key").click()
    page.get_by_role("dialog", name="Rotate the signing key?").get_by_role("button", name="Rotate").click()
    keys = page.get_by_role("region", name="Signing keys")
    expect(keys.get_by_role("row").filter(has_text=old)).to_contain_text("trusted")
    new = next(k["kid"] for k in gateway.cp.ok("GET", "/v1/admin/keys") if k["status"] == "active")
    assert new != old
    keys.get_by_role("button", name=f"Retire {old}").click()
    page.get_by_role("dialog", name=f"Retire key {old}?").get_by_role("button", name="Retire").click()
    expect(keys.get_by_role("row").filter(has_text=old)).to_contain_text("retired")
    gateway.wait_in_sync()
    token = gateway.token("agent-after-rotation")["token"]
    assert gateway.call_tool(token, "echo", {"message": "new key"}).endswith("new key")


def test_a_campaign_is_started_and_answered_and_a_report_downloads(gateway: Gateway, admin_page: Page) -> None:
    page = admin_page
    gateway.call_tool(gateway.token("agent-reviewed")["token"], "echo", {"message": "seen"})
    wait_for_event(gateway, subject="agent-reviewed")
    open_screen(page, "Discovery")
    campaigns = page.get_by_role("region", name="Attestation campaigns")
    campaigns.get_by_label("Name").fill("Q4 agent review")
    campaigns.get_by_role("button", name="Start campaign").click()
    campaign = page.get_by_role("region", name="Campaign Q4 agent review")
    row = campaign.get_by_role("row").filter(has_text="agent-reviewed")
    row.get_by_label("Evidence for agent-reviewed").fill("CAB-7: still needed")
    row.get_by_role("button", name="Certify").click()
    expect(campaign.get_by_role("row").filter(has_text="agent-reviewed")).to_contain_text("certify")
    expect(campaign.get_by_role("row").filter(has_text="agent-reviewed")).to_contain_text("CAB-7: still needed")
    open_screen(page, "Reports")
    expect(page.get_by_role("region", name="Attestation")).to_contain_text("Q4 agent review")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download attestation CSV").click()
    csv = open(download.value.path(), encoding="utf-8").read()
    assert "Q4 agent review" in csv and "CAB-7: still needed" in csv
