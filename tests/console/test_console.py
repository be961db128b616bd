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
