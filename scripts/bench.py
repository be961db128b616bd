#!/usr/bin/env python3
"""`make bench`: runs every scripts/bench_*.py module's `run() -> str` (a markdown section) and writes
BENCHMARKS.md. Benchmarks report ratios and numbers; they never pass or fail a build."""

from __future__ import annotations

import importlib.util
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "scripts"))


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
        platform.processor(),
    )
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip()
    return f"{cpu}, {cores} cores; commit {commit}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"


def main() -> None:
    only = set(sys.argv[1:])
    sections = []
    for path in sorted((REPO / "scripts").glob("bench_*.py")):
        name = path.stem.removeprefix("bench_")
        if only and name not in only:
            continue
        print(f"== {name}", flush=True)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        assert spec.loader is not None
        spec.loader.exec_module(module)
        sections.append(module.run())
    out = REPO / "BENCHMARKS.md"
    out.write_text(
        "# Benchmarks\n\nWritten by `make bench` (scripts/bench.py); numbers from one run on "
        f"{machine()}.\n\n" + "\n\n".join(sections) + "\n"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
