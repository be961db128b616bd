"""The discovery scheduler on Kubernetes (deploy/kubernetes/base/cronjob.yaml): a CronJob that runs every few
minutes, one run at a time, and calls the control plane's REST Service with the token the control plane checks;
its script, run here with this machine's sh and curl against the real control plane, polls the due pull sources,
fails when the call or a source fails, and keeps the token off every command line."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from e2e.control_plane import ControlPlane
from e2e.http_peers import RecordingServer, serve
from e2e.processes import REPO_ROOT

from .support import env_of, find

APPLIED = ("trial", "production")
CRONJOB = "intentgate-discovery-sync"
# Quotes and backslashes would end curl's quoted configuration value early if the script did not escape them.
SYNC_TOKEN = 'discovery-sync-"token"-with-\\backslash-0123456789'
EXPORT_TOKEN = "export-secret-0123456789"
TENANT = "acme-corp"
EXPORT = (REPO_ROOT / "tests" / "fixtures" / "discovery" / "generic.json").read_bytes()


def cronjob(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return find(resources, "CronJob", CRONJOB)


def sync_container(resources: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = cronjob(resources)["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("name", APPLIED)
def test_discovery_sync_runs_every_few_minutes_one_at_a_time(name: str, rendered: dict[str, Any]) -> None:
    spec = cronjob(rendered[name])["spec"]
    minutes, *rest = spec["schedule"].split()
    assert rest == ["*", "*", "*", "*"] and re.fullmatch(r"\*/([1-9]|1[0-5])", minutes), spec["schedule"]
    assert spec["concurrencyPolicy"] == "Forbid"
    job = spec["jobTemplate"]["spec"]
    # The next run is the retry; a run never outlives the time between two runs by much.
    assert job["backoffLimit"] == 0 and job["template"]["spec"]["restartPolicy"] == "Never"
    assert 0 < job["activeDeadlineSeconds"] <= 900


@pytest.mark.parametrize("name", APPLIED)
def test_discovery_sync_calls_the_control_plane_service_with_the_token_it_checks(
    name: str, rendered: dict[str, Any]
) -> None:
    resources = rendered[name]
    env = env_of(sync_container(resources))
    url = urlparse(env["INTENTGATE_CONTROL_PLANE_URL"]["value"])
    service = find(resources, "Service", url.hostname or "")
    assert service["metadata"]["namespace"] == cronjob(resources)["metadata"]["namespace"]
    ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    assert (url.scheme, url.port) == ("http", ports["http"])
    pod = find(resources, "Deployment", "intentgate-control-plane")["spec"]["template"]["spec"]
    (control_plane,) = pod["containers"]
    token = env["INTENTGATE_DISCOVERY_SYNC_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert token == env_of(control_plane)["INTENTGATE_DISCOVERY_SYNC_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert not token.get("optional", False)
    # Kubernetes would expand $(VAR) into the process's arguments, where anyone on the node can read them.
    container = sync_container(resources)
    assert "$(INTENTGATE_DISCOVERY_SYNC_TOKEN)" not in json.dumps([container["command"], container["args"]])


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    workdir = tmp_path_factory.mktemp("discovery-sync")
    with ControlPlane(
        workdir, f"sqlite://{workdir}/cp.db?mode=rwc", extra_env={"INTENTGATE_DISCOVERY_SYNC_TOKEN": SYNC_TOKEN}
    ) as running:
        yield running.start()


def export(path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
    """A vendor export: records for the right token; /broken always fails."""
    if path == "/broken":
        return 500, {"content-type": "text/plain"}, b"export backend down"
    if headers.get("authorization") != f"Bearer {EXPORT_TOKEN}":
        return 401, {"content-type": "text/plain"}, b"bad token"
    return 200, {"content-type": "application/json"}, EXPORT


def pull_source(control_plane: ControlPlane, exports: RecordingServer, path: str) -> str:
    source = control_plane.ok(
        "POST",
        "/v1/admin/discovery/sources",
        json={
            "name": f"export {path}",
            "vendor": "generic",
            "mode": "pull",
            "tenant": TENANT,
            "endpoint": f"http://127.0.0.1:{exports.port}{path}",
            "credentials": {"type": "token", "token": EXPORT_TOKEN},
            "interval_seconds": 3600,
        },
    )
    return source["id"]


def run_sync(rendered: dict[str, Any], url: str, token: str) -> subprocess.CompletedProcess[str]:
    """The CronJob's container command, as the manifest gives it, with the environment it would have."""
    container = sync_container(rendered["production"])
    env = {"PATH": os.environ["PATH"], "INTENTGATE_CONTROL_PLANE_URL": url, "INTENTGATE_DISCOVERY_SYNC_TOKEN": token}
    return subprocess.run(
        [*container["command"], *container["args"]], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_sync_script_polls_due_sources_and_fails_when_the_call_or_a_source_fails(
    control_plane: ControlPlane, rendered: dict[str, Any], tmp_path: Path
) -> None:
    with serve(export) as exports:
        source = pull_source(control_plane, exports, "/export")
        done = run_sync(rendered, control_plane.url, SYNC_TOKEN)
        assert done.returncode == 0, done.stdout + done.stderr
        report = json.loads(done.stdout)
        assert (report["ok"], report["polled"], report["results"][0]["source"]) == (True, 1, source)
        assert report["imported"] > 0
        assert [(p, h["authorization"]) for p, h, _ in exports.requests] == [("/export", f"Bearer {EXPORT_TOKEN}")]

        again = run_sync(rendered, control_plane.url, SYNC_TOKEN)
        assert again.returncode == 0 and json.loads(again.stdout)["polled"] == 0, "nothing is due twice"

        pull_source(control_plane, exports, "/broken")
        failed = run_sync(rendered, control_plane.url, SYNC_TOKEN)
        assert failed.returncode != 0 and json.loads(failed.stdout)["ok"] is False, failed.stdout + failed.stderr
        assert "a polled source failed" in failed.stderr

    refused = run_sync(rendered, control_plane.url, SYNC_TOKEN + "-wrong")
    assert refused.returncode != 0, refused.stdout
    assert "error" in json.loads(refused.stdout) and "the call failed" in refused.stderr
