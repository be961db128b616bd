"""A throwaway PostgreSQL cluster for tests and benchmarks: initdb into a temporary directory, run
as the `postgres` OS user when we are root (Postgres refuses root), listen on a free loopback port
with the socket inside that directory, and remove everything on stop."""

import os
import shutil
import socket
import subprocess
import tempfile


def _as_postgres(args):
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return list(args)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="intentgate-pg-")
        self.data = os.path.join(self.root, "data")
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(
            _as_postgres(["initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]),
            check=True, capture_output=True,
        )
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        subprocess.run(
            _as_postgres(["pg_ctl", "-D", self.data, "-l", os.path.join(self.root, "postgres.log"),
                          "-w", "-o", options, "start"]),
            check=True, capture_output=True,
        )

    @property
    def url(self):
        """The cluster's default `postgres` database."""
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self):
        subprocess.run(_as_postgres(["pg_ctl", "-D", self.data, "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
