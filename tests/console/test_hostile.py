"""Attacker-controlled text (tool arguments, agent names, discovery records) reaches the audit log and the
inventory through the real gateway and the real ingest endpoint, and the console shows it as text: no
dialog opens, no script runs, no element it describes exists. The `watched` fixture fails the test on any
dialog, page error or console error."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from playwright.sync_api import expect

from .conftest import Watched, choose_tenant, open_screen, sign_in
from .gateway import TENANT, Gateway
from e2e.test_control_plane import wait_for

SCRIPT = "<script>alert('xss-script')</script>"
IMG = "<img src=x onerror=alert('xss-img')>"
LINK = "javascript:alert('xss-link')"
UNICODE = "\u202eevil\u202c ｗｉｄｅ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 👩‍💻 ﷽ " * 12
AGENT = "<img src=x onerror=alert('agent')>"


def test_hostile_arguments_and_discovery_records_render_as_text(gateway: Gateway, watched: Callable[..., Watched]) -> None:
    token = gateway.token(AGENT)["token"]
    message = f"{SCRIPT} {IMG} {LINK}"
    gateway.call_tool(token, "echo", {"message": UNICODE})
    gateway.call_tool(token, "echo", {"message": message})
    event = wait_for(
        lambda: next((e for e in gateway.cp.audit(TENANT, subject=AGENT) if e["arg_values"].get("message") == message), None),
        "the hostile call's audit event",
    )

    source = gateway.cp.ok(
        "POST", "/v1/admin/discovery/sources", json={"name": SCRIPT, "vendor": "generic", "tenant": TENANT}
    )
    records = [
        {"agent": SCRIPT, "user": IMG, "device": LINK, "url": "https://api.openai.com/v1/responses", "user_agent": UNICODE[:200]},
        {"agent": LINK, "user": SCRIPT, "host": "api.anthropic.com", "app": IMG},
        {"agent": UNICODE[:120], "host": "mcp.example.com", "url": "https://mcp.example.com/mcp"},
    ]
    with httpx.Client(trust_env=False) as client:
        ingested = client.post(
            gateway.envoy.url("/api/discovery/ingest"),
            headers={"authorization": f"Bearer {source['token']}"},
            json={"records": records},
        )
    assert ingested.status_code == 200 and ingested.json()["imported"] == 3, ingested.text

    context = watched()
    page = context.new_page()
    sign_in(page, gateway, gateway.cp.admin_token)
    choose_tenant(page, TENANT)

    open_screen(page, "Audit")
    page.get_by_label("Subject (agent)").fill(AGENT)
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("cell", name=AGENT).first).to_be_visible()
    page.get_by_role("button", name=f"Details of event {event['id']}").click()
    detail = page.get_by_role("region", name=f"Event {event['id']}")
    for text in (SCRIPT, IMG, LINK):
        expect(detail).to_contain_text(text)

    open_screen(page, "Discovery")
    inventory = page.get_by_role("region", name="Agent inventory")
    for name in (SCRIPT, LINK, AGENT):
        expect(inventory.get_by_text(name, exact=True).first).to_be_visible()
    expect(inventory).to_contain_text("𝔘𝔫𝔦𝔠𝔬𝔡𝔢")
    # An agent named with a "/" cannot be addressed through Envoy (it refuses escaped slashes in paths).
    inventory.get_by_role("button", name=f"Assign an owner to {LINK}").click()
    page.get_by_label("Owner", exact=True).fill(IMG)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    owned = gateway.cp.ok("GET", "/v1/admin/discovery/agents", params={"tenant": TENANT, "limit": 1000})["items"]
    assert next(a for a in owned if a["agent"] == LINK)["owner"] == IMG

    open_screen(page, "Reports")
    expect(page.get_by_role("region", name="Access")).to_contain_text(SCRIPT)

    for screen in ("Audit", "Discovery", "Reports"):
        open_screen(page, screen)
        page.wait_for_load_state("networkidle")
        assert page.locator("img[src='x'], main script, main a[href^='javascript']").count() == 0
        assert page.evaluate("() => document.scripts.length") == 1, "only the console's own module"
