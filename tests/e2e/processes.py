"""Child processes for the end-to-end peers: start, wait until ready, stop, read their logs.

Importable without pytest (scripts/run.py uses it too). Every process:
- runs in its own session (``start_new_session``) with stdin from /dev/null: started from a short-lived
  shell, Envoy once got an immediate SIGTERM otherwise;
- writes stdout and stderr to one log file, whose tail goes into every startup error;
- when started from the main thread, gets SIGTERM if this Python process dies (PR_SET_PDEATHSIG), so a
  killed test run leaves no Envoy or Node behind;
- is stopped with SIGTERM to its process group, then SIGKILL after a grace period.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

REPO_ROOT = Path(__file__).resolve().parents[2]

_T = TypeVar("_T")

_PR_SET_PDEATHSIG = 1


class ProcessStartError(RuntimeError):
    """A peer exited or did not become ready in time. The message carries the tail of its log."""


def tail(path: Path, lines: int = 60) -> str:
    """The last ``lines`` lines of a text file, or a note saying why there are none."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return f"(no log file at {path})"
    text = data[-256 * 1024 :].decode("utf-8", errors="replace")
    kept = text.splitlines()[-lines:]
    return "\n".join(kept) if kept else f"(log {path} is empty)"


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    def preexec() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        # The parent may have died between fork and prctl: then nobody would ever signal us.
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


class ManagedProcess:
    """One child process with its log file. Use as a context manager, or call ``stop()``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        highlight: re.Pattern[str] | None = None,
    ) -> None:
        """``highlight`` picks the log lines (errors, say) that a failure report quotes before the tail."""
        self.name = name
        self.highlight = highlight
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_path)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> ManagedProcess:
        if self.popen is not None:
            raise RuntimeError(f"{self.name} already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        preexec = None
        if threading.current_thread() is threading.main_thread():
            # PDEATHSIG fires when the *thread* that forked exits, so only the main thread may use it.
            preexec = _die_with_parent(os.getpid())
        with open(self.log_path, "ab") as log:
            log.write(f"--- {self.name}: {' '.join(self.argv)}\n".encode())
            log.flush()
            try:
                self.popen = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    cwd=self.cwd,
                    start_new_session=True,
                    preexec_fn=preexec,
                )
            except OSError as e:
                raise ProcessStartError(f"{self.name}: cannot run {self.argv[0]}: {e}") from e
        return self

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise RuntimeError(f"{self.name} not started")
        return self.popen.pid

    def is_running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def stop(self, grace_seconds: float = 10.0) -> int | None:
        """SIGTERM the process group, wait up to ``grace_seconds``, then SIGKILL. Idempotent."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.popen.wait(timeout=10)
        else:
            # The leader is gone; reap anything it left in its group.
            self._signal_group(signal.SIGKILL)
        return self.popen.returncode

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.popen is not None
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            # The group id may have been reused by an unrelated process: signal only our child.
            if self.popen.poll() is None:
                self.popen.send_signal(sig)

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- waiting ---------------------------------------------------------------------------------

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)

    def failure(self, what: str) -> ProcessStartError:
        """An error naming what went wrong, the exit status if any, and the tail of the log."""
        status = self.returncode
        state = "still running" if status is None else f"exited with status {status}"
        message = f"{self.name} {what} ({state}; pid {self.popen.pid if self.popen else '-'}; log {self.log_path})."
        if self.highlight is not None:
            marked = [line[:500] for line in self.log_tail(5000).splitlines() if self.highlight.search(line)]
            if marked:
                message += f"\n--- {self.log_path.name}: lines matching {self.highlight.pattern} ---\n"
                message += "\n".join(marked[-10:])
        return ProcessStartError(f"{message}\n--- last lines of {self.log_path.name} ---\n{self.log_tail()}")

    def wait_until(
        self,
        probe: Callable[[], _T | None],
        *,
        timeout: float,
        what: str,
        interval: float = 0.02,
        max_interval: float = 0.25,
    ) -> _T:
        """Poll ``probe`` until it returns something other than None (or False).

        Fails fast, with the log tail, if the process exits; fails with the log tail on timeout.
        Exceptions from the probe count as "not yet" and the last one is reported on timeout.
        """
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        while True:
            if not self.is_running():
                raise self.failure(f"exited before it {what}")
            try:
                result = probe()
            except Exception as e:  # noqa: BLE001 - any probe failure means "not ready yet"
                last_error = e
                result = None
            if result is not None and result is not False:
                return result
            if time.monotonic() >= deadline:
                detail = f"; last probe error: {last_error!r}" if last_error else ""
                raise self.failure(f"did not {what} within {timeout:g}s{detail}")
            time.sleep(interval)
            interval = min(interval * 1.5, max_interval)


def loopback_listening_ports(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state that process ``pid`` holds, from /proc.

    Addresses are printed as in ``ss``: ``127.0.0.1``, ``0.0.0.0``, ``::``, ``::1``, ``::ffff:127.0.0.1``.
    """
    inodes: set[str] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found: list[tuple[str, int]] = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            cols = row.split()
            local, state, inode = cols[1], cols[3], cols[9]
            if state != "0A" or inode not in inodes:  # 0A = TCP_LISTEN
                continue
            hex_addr, hex_port = local.split(":")
            found.append((_decode_proc_addr(hex_addr, v6), int(hex_port, 16)))
    return found


def _decode_proc_addr(hex_addr: str, v6: bool) -> str:
    import ipaddress

    raw = bytes.fromhex(hex_addr)
    if not v6:
        return str(ipaddress.IPv4Address(raw[::-1]))
    # /proc prints IPv6 as four host-order 32-bit words.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return str(ipaddress.IPv6Address(words))
