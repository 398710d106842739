"""Fixtures: a real PostgreSQL 15 cluster with token_sync and pg_cron, the bqemulator
BigQuery emulator, and the fake Google server for what the emulator cannot do.

The extension must be installed into PostgreSQL first (tests/run.sh does that).
"""

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests" / "support"))

from bq_emulator import Emulator  # noqa: E402
from cluster import DATABASE, PG_ROOT, Cluster, free_port, pg_config  # noqa: E402
from fake_google import FakeGoogle  # noqa: E402
from helpers import to_emulator  # noqa: E402



def pytest_configure(config):
    # tests/run.sh ends a suite still running beside a failed step with SIGTERM: stop as on
    # Ctrl-C, so that the fixtures stop the servers they started.
    signal.signal(signal.SIGTERM, interrupt)


def interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_report_header():
    return f"server: {pg_config('--version')} ({PG_ROOT or 'this system'})"


@pytest.fixture(scope="session")
def cluster():
    cluster = Cluster().start()
    with cluster.connect() as conn:
        running = conn.execute("SHOW server_version").fetchone()[0]
    assert pg_config("--version").split()[1] == running.split()[0], "the server is the one PG_BIN names"
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    log = tmp_path_factory.mktemp("emulator") / "bqemulator.log"
    emulator = Emulator(free_port(), free_port(), "billing", log_path=str(log)).start()
    yield emulator
    emulator.stop()


def set_database_defaults(cluster, emulator):
    """What every session (pg_cron's too) starts with: the emulator, no auth."""
    with cluster.connect() as conn:
        for name, value in [("billing_project", "billing"), ("api_url", emulator.base_url),
                            ("credentials", "none"), ("http_timeout", "20"), ("retry_delay", "10ms")]:
            conn.execute(f"ALTER DATABASE {DATABASE} SET token_sync.{name} = '{value}'")


@pytest.fixture(scope="session", autouse=True)
def database_defaults(cluster, emulator):
    set_database_defaults(cluster, emulator)


@pytest.fixture
def db(cluster):
    with cluster.connect() as conn:
        conn.execute("DROP TABLE IF EXISTS public.raw_tokens")
        conn.execute("TRUNCATE token_sync.runs CASCADE")
        yield conn


_tables = itertools.count(1)


class Source:
    """A fresh source table in the emulator, which the session's token_sync reads."""

    def __init__(self, emulator, conn, required=True):
        self.emulator = emulator
        self.table = f"tokens_{os.getpid()}_{next(_tables)}"
        self.name = emulator.create_table(self.table, required=required)
        conn.execute(f"SET token_sync.source_table = '{self.name}'")

    def insert(self, rows):
        self.emulator.insert_rows([to_emulator(r) for r in rows], table=self.table)

    def delete_where(self, where):
        self.emulator.delete_rows(where, table=self.table)

    def add_column(self, name, kind):
        self.emulator.add_column(name, kind, table=self.table)


@pytest.fixture
def source(emulator, db):
    return Source(emulator, db)


@pytest.fixture
def fake_google(db):
    fake = FakeGoogle().start()
    db.execute(f"SET token_sync.api_url = '{fake.base_url}'")
    db.execute("SET token_sync.source_table = 'bigquery-public-data.crypto_ethereum.tokens'")
    yield fake
    fake.stop()


def run_psql(cluster, path, user="postgres", **variables):
    """Runs one of the project's SQL files with psql, as a user would."""
    command = ["psql", "-X", "-q", "-h", str(cluster.root), "-p", str(cluster.port), "-U", user,
               "-d", DATABASE, "-f", str(ROOT / path)]
    for name, value in variables.items():
        command += ["-v", f"{name}={value}"]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def psql(cluster):
    return lambda path, **kw: run_psql(cluster, path, **kw)


@pytest.fixture
def server_dir():
    """A directory the postgres OS user can read (pytest's tmp_path is private to root)."""
    path = tempfile.mkdtemp(prefix="token_sync_keys_")
    os.chmod(path, 0o755)
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def key_file(server_dir, fake_google):
    """A service-account key made now, its token_uri pointing at the fake token endpoint."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    key = {
        "type": "service_account", "project_id": "billing", "private_key_id": "k1",
        "private_key": pem, "client_email": "token-sync@billing.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": fake_google.token_uri,
    }
    path = server_dir / "key.json"
    path.write_text(json.dumps(key))
    os.chmod(path, 0o644)
    return path, private_key, pem
