"""The Debian packages (scripts/package.sh), as a database administrator meets them: each
major version's .deb installed with apt into a clean root of its own Debian suite (a
container from the stand-in base image: no Rust, no compiler), a server made with Debian's
own cluster tools, a day from the emulator loaded and verified, an upgrade from the previous
version's package, and the package removed with the data left in place. lintian checks each.

The previous version's package is made here from this one: the previous release's SQL
(tests/fixtures) in place of this version's, and the version numbers. Its library is this
build's. A server keeps the library it preloaded until it restarts, and the upgrade script
needs the new one, so the upgrade restarts before `ALTER EXTENSION token_sync UPDATE`; from
that restart on, what serves the database is exactly this build's library under the previous
release's SQL, as here."""

import datetime as dt
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from cluster import free_port
from conftest import ROOT
from helpers import UTC, notices, token
from test_containers import ENV, podman
from test_deploy import cargo_version

SUITES = {"15": "bookworm", "17": "trixie", "18": "sid"}
MAJORS = ["15", *os.environ.get("TOKEN_SYNC_PG_VERSIONS", "17 18").split()]
PACKAGES = ROOT / "target" / "packages"
PREVIOUS = "0.4.0"
DAYS = [dt.date(2026, 11, 20), dt.date(2026, 11, 21)]
ARCH = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()


def package_name(major):
    return f"postgresql-{major}-token-sync"


def deb_path(major, version=None, directory=PACKAGES):
    return directory / f"{package_name(major)}_{version or cargo_version()}-1_{ARCH}.deb"


@pytest.fixture(params=MAJORS)
def major(request):
    return request.param


@pytest.fixture
def deb(major):
    path = deb_path(major)
    assert path.exists(), f"{path} is missing: `bash scripts/package.sh {major}` builds it"
    return path


def deb_field(deb, field):
    return subprocess.run(["dpkg-deb", "--field", str(deb), field], capture_output=True, text=True,
                          check=True).stdout.strip()


def deb_files(deb):
    listing = subprocess.run(["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True, check=True).stdout
    return [line.split()[-1].lstrip(".") for line in listing.splitlines() if not line.startswith("d")]


def test_the_package_holds_the_extension_its_scripts_and_nothing_of_the_build(major, deb):
    name, version = package_name(major), cargo_version()
    assert deb_field(deb, "Package") == name
    assert deb_field(deb, "Version") == f"{version}-1"
    depends = [d.strip() for d in deb_field(deb, "Depends").split(",")]
    assert depends[0] == f"postgresql-{major}"
    assert any(re.fullmatch(r"libc6 \(>= [0-9.]+\)", d) for d in depends), depends
    assert deb_field(deb, "Recommends") == f"postgresql-{major}-cron"

    files = deb_files(deb)
    share = f"/usr/share/postgresql/{major}"
    upgrades = sorted(p.name for p in (ROOT / "sql").glob("token_sync--*--*.sql"))
    assert sorted(f for f in files if f.startswith(f"{share}/extension/")) == sorted(
        [f"{share}/extension/token_sync.control", f"{share}/extension/token_sync--{version}.sql",
         *(f"{share}/extension/{u}" for u in upgrades)])
    assert f"/usr/lib/postgresql/{major}/lib/token_sync.so" in files
    for schedule in (ROOT / "pg_cron").glob("*.sql"):
        assert f"{share}/contrib/token_sync/pg_cron/{schedule.name}" in files
    assert f"{share}/contrib/token_sync/sql/crypto_ethereum.sql" in files
    assert f"/usr/share/doc/{name}/copyright" in files and f"/usr/share/doc/{name}/changelog.Debian.gz" in files
    allowed = ("/usr/lib/postgresql/", f"{share}/", f"/usr/share/doc/{name}/", "/usr/share/lintian/overrides/")
    assert [f for f in files if not f.startswith(allowed)] == []
    # Its dates are the commit's, so a rebuild of one commit is the same package.
    committed = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%ct"], capture_output=True, text=True,
                               check=True).stdout.strip()
    stamp = dt.datetime.fromtimestamp(int(committed)).strftime("%Y-%m-%d %H:%M")
    listing = subprocess.run(["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True, check=True).stdout
    assert {" ".join(line.split()[3:5]) for line in listing.splitlines()} == {stamp}
    assert not [f for f in files if re.search(r"\.(rs|toml|rlib|o|d)$|/target/|/src/", f)]


def test_lintian_says_nothing_that_is_not_explained(major, deb):
    result = subprocess.run(["lintian", "--pedantic", "--display-info", "--show-overrides", str(deb)],
                            capture_output=True, text=True, timeout=300)
    lines = [line for line in (result.stdout + result.stderr).splitlines()
             if line and not line.startswith("running with root privileges")]
    assert result.returncode == 0, lines
    tags = [line for line in lines if not line.startswith(("N:", "O:"))]
    assert tags == [], "lintian has something to say that the package does not explain"
    # Each override comes with its reason, which lintian prints as a note above it.
    overridden = [i for i, line in enumerate(lines) if line.startswith("O:")]
    assert overridden, "the package's overrides were not read"
    assert all(i > 0 and lines[i - 1].startswith("N: ") for i in overridden), lines


def previous_package(deb, major, directory):
    """This package with the previous release's SQL and version, as that release shipped it."""
    tree = directory / "tree"
    subprocess.run(["dpkg-deb", "--raw-extract", str(deb), str(tree)], check=True)
    extension = tree / f"usr/share/postgresql/{major}/extension"
    for script in extension.glob("token_sync--*.sql"):
        upgrade_to = script.name.removesuffix(".sql").split("--")[-1]
        if upgrade_to == cargo_version():
            script.unlink()
    shutil.copy(ROOT / "tests" / "fixtures" / f"token_sync--{PREVIOUS}.sql", extension)
    control = extension / "token_sync.control"
    control.write_text(control.read_text().replace(f"'{cargo_version()}'", f"'{PREVIOUS}'"))
    debian_control = tree / "DEBIAN" / "control"
    debian_control.write_text(debian_control.read_text().replace(f"Version: {cargo_version()}-1",
                                                                  f"Version: {PREVIOUS}-1"))
    md5sums = subprocess.run("find usr -type f -print0 | sort -z | xargs -0 md5sum", shell=True, cwd=tree,
                             capture_output=True, text=True, check=True).stdout
    (tree / "DEBIAN" / "md5sums").write_text(md5sums)
    path = deb_path(major, PREVIOUS, directory)
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(path)], check=True,
                   capture_output=True)
    return path


class CleanRoot:
    """A container of the suite's stand-in base image, on the host's network, with the
    packages' directory mounted: a Debian root where nothing but the base system is installed."""

    def __init__(self, suite, packages):
        self.name = f"token-sync-package-{suite}-{os.getpid()}"
        subprocess.run(["bash", str(ROOT / "tests" / "base-images.sh"), suite], env=ENV, check=True, timeout=900)
        podman("rm", "-f", self.name, check=False)
        podman("run", "-d", "--rm", "--name", self.name, "-v", f"{packages}:/packages:ro",
               f"debian:{suite}-slim", "sleep", "infinity")

    def sh(self, script, check=True, timeout=900):
        result = podman("exec", self.name, "bash", "-ec", script, check=False, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"in the root: {script}\n{result.stdout}\n{result.stderr}")
        return result

    def apt_install(self, *what):
        return self.sh("DEBIAN_FRONTEND=noninteractive apt-get install -y -q " + " ".join(what))

    def remove(self):
        podman("rm", "-f", self.name, check=False, timeout=120)


def settings(emulator, source_name):
    return {"billing_project": "billing", "api_url": emulator.base_url, "credentials": "none",
            "http_timeout": "20", "retry_delay": "10ms", "source_table": source_name}


def database(port, name, emulator, source_name):
    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
        for setting, value in settings(emulator, source_name).items():
            admin.execute(f"ALTER DATABASE {name} SET token_sync.{setting} = '{value}'")


def connect(port, name):
    return psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname=name, autocommit=True)


def extension_version(conn):
    return conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'token_sync'").fetchone()[0]


def sync_and_verify(conn, day, rows):
    (loaded,) = conn.execute("SELECT rows_loaded FROM token_sync_day(%s)", (day,)).fetchone()
    assert loaded == rows
    (matches, local_rows) = conn.execute("SELECT matches, local_rows FROM token_verify_day(%s)", (day,)).fetchone()
    assert (matches, local_rows) == (True, rows)


def test_a_clean_server_installs_upgrades_and_removes_the_package(major, deb, emulator, source, tmp_path):
    for number, day in enumerate(DAYS, start=1):
        moment = dt.datetime.combine(day, dt.time(12), UTC)
        source.insert([token(number * 100 + i, moment + dt.timedelta(seconds=i)) for i in range(number * 3)])
    rows = {DAYS[0]: 3, DAYS[1]: 6}
    mounted = tmp_path / "packages"
    mounted.mkdir()
    mounted.chmod(0o755)
    shutil.copy(deb, mounted)
    previous = previous_package(deb, major, mounted)
    version, name = cargo_version(), package_name(major)

    root = CleanRoot(SUITES[major], mounted)
    try:
        started = time.monotonic()
        root.sh("apt-get update -qq")
        # As in the image: Debian's packages must not start a cluster of their own on this network.
        root.apt_install("--no-install-recommends", "postgresql-common")
        root.sh("sed -ri 's/^#?\\s*create_main_cluster\\s*=.*/create_main_cluster = false/'"
                " /etc/postgresql-common/createcluster.conf")
        # The previous release, as a server has it: the package brings the server and, recommended, pg_cron.
        root.apt_install(f"/packages/{previous.name}")
        assert root_version(root, name) == f"{PREVIOUS}-1"
        assert root_version(root, f"postgresql-{major}-cron"), "apt installs what the package recommends"
        assert root.sh("command -v cargo rustc gcc cc clang || echo none").stdout.strip() == "none"

        port = free_port()
        # As the README's install section has it: a cluster, then token_sync and pg_cron preloaded.
        root.sh(f"pg_createcluster {major} main -p {port} --locale C.UTF-8 -e UTF8"
                " -- --auth-host=trust --auth-local=peer >/dev/null"
                f" && printf '%s\\n' \"listen_addresses = '127.0.0.1'\" \"timezone = 'UTC'\""
                " \"shared_preload_libraries = 'pg_cron,token_sync'\""
                f" >/etc/postgresql/{major}/main/conf.d/token_sync.conf"
                f" && pg_ctlcluster {major} main start")
        database(port, "upgraded", emulator, source.name)
        with connect(port, "upgraded") as conn:
            conn.execute("CREATE EXTENSION token_sync")
            assert extension_version(conn) == PREVIOUS
            sync_and_verify(conn, DAYS[0], rows[DAYS[0]])

        # The new package over the old one, and the restart that loads its library (Upgrading in
        # the README): the database keeps the old SQL, served by the new library, until it is updated.
        root.apt_install(f"/packages/{deb.name}")
        assert root_version(root, name) == f"{version}-1"
        root.sh(f"pg_ctlcluster {major} main restart")
        with connect(port, "upgraded") as conn:
            (matches,) = conn.execute("SELECT matches FROM token_verify_day(%s)", (DAYS[0],)).fetchone()
            assert matches is True, "the new library serves the previous version's SQL"
            # and re-syncs a day with it, the ledger as that version made it
            conn.execute("SELECT token_sync_day(%s)", (DAYS[0],))
            conn.execute("ALTER EXTENSION token_sync UPDATE")
            assert extension_version(conn) == version
            sync_and_verify(conn, DAYS[1], rows[DAYS[1]])
            (matches,) = conn.execute("SELECT matches FROM token_verify_day(%s)", (DAYS[0],)).fetchone()
            assert matches is True, "the day loaded before the upgrade still verifies"
            assert conn.execute("SELECT day, status FROM token_sync.runs ORDER BY day, run_id").fetchall() == \
                [(DAYS[0], "succeeded"), (DAYS[0], "unchanged"), (DAYS[1], "succeeded")]

        database(port, "fresh", emulator, source.name)
        with connect(port, "fresh") as conn:
            conn.execute("CREATE EXTENSION token_sync")
            assert extension_version(conn) == version
            sync_and_verify(conn, DAYS[1], rows[DAYS[1]])
            assert notices(conn) == []

        # Removing it: token_sync leaves the preload first (or the server cannot start), data stays.
        with connect(port, "upgraded") as conn:
            conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_cron'")
        root.sh(f"DEBIAN_FRONTEND=noninteractive apt-get remove -y -q {name}"
                f" && pg_ctlcluster {major} main restart")
        assert root_version(root, name) == ""
        assert root.sh(f"ls /usr/share/postgresql/{major}/extension/ | grep -c token_sync || true").stdout.strip() \
            == "0"
        with connect(port, "upgraded") as conn:
            assert conn.execute("SELECT count(*) FROM public.raw_tokens").fetchone() == (sum(rows.values()),)
            assert conn.execute("SELECT count(*) FROM token_sync.runs").fetchone() == (3,)
            with pytest.raises(psycopg.errors.UndefinedFile, match="token_sync"):
                conn.execute("SELECT * FROM token_sync_day(%s)", (DAYS[0],))
        print(f"PostgreSQL {major}: clean root to removed package in {time.monotonic() - started:.0f} s")
    finally:
        root.remove()


def root_version(root, package):
    """The installed version of a package in the root, or "" when it is not installed."""
    return root.sh(f"dpkg-query -W -f='${{db:Status-Abbrev}}${{Version}}' {package} 2>/dev/null | sed -n 's/^ii *//p'"
                   ).stdout.strip()
