"""A throwaway PostgreSQL cluster with pg_cron and token_sync preloaded, run as the
postgres OS user (PostgreSQL refuses to run as root). Used by the tests and the benchmark.

PG_BIN picks the server (default: this system's PostgreSQL 15). With TOKEN_SYNC_PG_ROOT
(set by `scripts/pg-root.sh MAJOR host ...`) the server's programs run inside that root
file system, which shares /tmp, the network and the postgres uid with this one."""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_ROOT = os.environ.get("TOKEN_SYNC_PG_ROOT")
DATABASE = "token_sync_test"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_postgres(command):
    """Runs a server command as the postgres OS user: PostgreSQL refuses to run as root."""
    env = None
    if PG_ROOT:
        user = pwd.getpwnam("postgres")
        command = ["chroot", f"--userspec={user.pw_uid}:{user.pw_gid}", PG_ROOT, *command]
        # The postgres user's own home, as sudo gives it: libpq in the server (Citus's
        # connections to its workers) looks there for client certificates.
        env = {**os.environ, "HOME": user.pw_dir}
    elif os.geteuid() == 0:
        command = ["sudo", "-u", "postgres", *command]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)


def server_path(path):
    """Where a path of the server's file system is seen from here."""
    return Path(f"{PG_ROOT}{path}") if PG_ROOT else Path(path)


def pg_config(option):
    command = [str(PG_BIN / "pg_config"), option]
    if PG_ROOT:
        command = ["chroot", PG_ROOT, *command]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


class Cluster:
    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="token_sync_pg_"))
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        self.data = self.root / "data"
        self.log = self.root / "server.log"

    def start(self, *settings, preload="pg_cron,token_sync", extensions=()):
        """Starts the server with `settings` (name=value) and makes the test database, with
        pg_cron, token_sync and `extensions` (created first) in it."""
        as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                     "--no-sync", "-E", "UTF8", "--locale", "C"])
        options = " ".join([
            f"-p {self.port}", f"-k {self.root}", "-c listen_addresses=localhost",
            f"-c shared_preload_libraries={preload}", f"-c cron.database_name={DATABASE}",
            "-c fsync=off", "-c timezone=UTC", *(f"-c {s}" for s in settings),
        ])
        as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
                     "-o", options, "start"])
        with self.connect("postgres") as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        with self.connect() as conn:
            for extension in extensions:
                conn.execute(f"CREATE EXTENSION {extension}")
            conn.execute("CREATE EXTENSION pg_cron")
            conn.execute("CREATE EXTENSION token_sync")
        return self

    def stop(self):
        as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"])
        shutil.rmtree(self.root, ignore_errors=True)

    def connect(self, dbname=DATABASE, user="postgres", **kwargs):
        return psycopg.connect(host=str(self.root), port=self.port, dbname=dbname, user=user,
                               autocommit=True, **kwargs)


