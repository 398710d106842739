"""The shipped container files, run for real with podman: the image built from the
Dockerfile (tests/containers.sh, on local stand-ins for the official base images), the
compose file's offline flow through podman-compose, and the Helm chart's pod through
`podman kube play`. Every container uses the host's network (tests/containers.conf)."""

import base64
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import yaml

from conftest import ROOT
from cluster import free_port
from helpers import to_fake, token
from test_deploy import cargo_version, dockerfile_arg, render

CONTAINERS_CONF = ROOT / "tests" / "containers.conf"
ENV = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
PODMAN_COMPOSE = Path(sys.executable).parent / "podman-compose"
REPORT = ROOT / "target" / "containers-report.json"
PASSWORD = "compose-test-password"
COMPOSE_PROJECT = "token-sync-test"


def podman(*args, check=True, timeout=300):
    result = subprocess.run(["podman", *args], env=ENV, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def record(**measures):
    report = json.loads(REPORT.read_text()) if REPORT.exists() else {}
    report.update(measures)
    REPORT.write_text(json.dumps(report, indent=2))


@pytest.fixture(scope="module")
def images():
    subprocess.run(["bash", str(ROOT / "tests" / "containers.sh")], env=ENV, check=True, timeout=3000)
    version, major = cargo_version(), dockerfile_arg("PG_MAJOR")
    return {"db": f"token-sync:{version}-pg{major}", "emulator": f"token-sync-emulator:{version}", "major": major}


def wait_for(what, probe, timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = probe()
            if result:
                return result
        except (psycopg.OperationalError, OSError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def connect(port, password=PASSWORD):
    return psycopg.connect(host="127.0.0.1", port=port, user="postgres", password=password, dbname="tokens",
                           autocommit=True, connect_timeout=3)


def emulator_seeded(container):
    """The emulator's launcher prints its line once every sample row is in."""
    def seeded():
        logs = podman("logs", container, check=False)
        return "sample rows for" in logs.stdout + logs.stderr
    return seeded


def test_the_image_holds_postgresql_pg_cron_and_token_sync_and_no_build_tools(images):
    major = images["major"]
    out = podman("run", "--rm", images["db"], "bash", "-c",
                 f"postgres --version; ls /usr/share/postgresql/{major}/extension;"
                 f" dpkg-query -W -f='${{Package}} ${{Version}}\\n' postgresql-{major}-token-sync;"
                 " command -v cargo gcc clang || echo no build tools").stdout
    assert f"postgres (PostgreSQL) {major}." in out
    # Installed from its package, as on a server: one install path for both.
    assert f"postgresql-{major}-token-sync {cargo_version()}-1" in out
    assert "pg_cron.control" in out and "token_sync.control" in out
    assert f"token_sync--{cargo_version()}.sql" in out
    assert out.rstrip().endswith("no build tools")
    size = int(podman("image", "inspect", "--format", "{{.Size}}", images["db"]).stdout)
    emulator_size = int(podman("image", "inspect", "--format", "{{.Size}}", images["emulator"]).stdout)
    record(image=images["db"], image_mb=round(size / 1e6), emulator_image_mb=round(emulator_size / 1e6))
    assert size < 600e6


def test_the_image_refuses_to_initialise_without_a_password(images):
    result = podman("run", "--rm", images["db"], check=False, timeout=60)
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD is not set" in result.stderr


def test_an_unfinished_initialisation_is_refused_at_the_next_start(images, tmp_path):
    failing = tmp_path / "99-fail.sql"
    failing.write_text("SELECT 1 / 0;\n")
    failing.chmod(0o644)
    volume = "token-sync-test-unfinished"
    run = ["run", "--rm", "-e", "POSTGRES_PASSWORD=x", "-e", f"PGPORT={free_port()}",
           "-v", f"{volume}:/var/lib/postgresql/data", "-v", f"{failing}:/docker-entrypoint-initdb.d/99-fail.sql:ro",
           images["db"]]
    podman("volume", "rm", "-f", volume, check=False)
    try:
        first = podman(*run, check=False, timeout=120)
        assert first.returncode != 0 and "division by zero" in first.stderr
        second = podman(*run, check=False, timeout=60)
        assert second.returncode != 0
        assert "the initialisation of /var/lib/postgresql/data did not finish" in second.stderr
        assert "division by zero" not in second.stderr
    finally:
        podman("volume", "rm", "-f", volume, check=False)


def compose(*args, port, check=True, timeout=300):
    command = [str(PODMAN_COMPOSE), "-p", COMPOSE_PROJECT, "-f", str(ROOT / "docker-compose.yaml"),
               "-f", str(ROOT / "docker" / "compose.host-network.yaml"), "--profile", "offline", *args]
    env = {**ENV, "TOKEN_SYNC_PORT": str(port), "POSTGRES_PASSWORD": PASSWORD}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"podman-compose {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def snapshot(connection):
    return {
        "rows": connection.execute("SELECT count(*) FROM public.raw_tokens").fetchone()[0],
        "ledger": connection.execute("SELECT count(*) FROM token_sync.runs").fetchone()[0],
        "jobs": connection.execute("SELECT jobname, schedule FROM cron.job ORDER BY 1").fetchall(),
    }


def test_compose_offline_flow_loads_backfills_verifies_and_survives_a_restart(images):
    port = free_port()
    compose("down", "-v", port=port, check=False)
    started = time.monotonic()
    compose("up", "-d", port=port)
    try:
        wait_for("PostgreSQL in the compose service", lambda: connect(port).close() or True)
        wait_for("the emulator sidecar", emulator_seeded(f"{COMPOSE_PROJECT}_emulator_1"))
        # The README's command, as a user types it (-T: no terminal here).
        readme = compose("exec", "-T", "db", "psql", "-U", "postgres", "tokens", "-c",
                         "SELECT * FROM token_sync_day(current_date - 1)", port=port)
        record(compose_seconds_to_first_day=round(time.monotonic() - started, 1))
        assert re.search(r"^\(1 row\)$", readme.stdout, re.M), readme.stdout
        with connect(port) as db:
            day, rows_loaded = db.execute(
                "SELECT day - current_date, rows_loaded FROM token_sync.runs WHERE status = 'succeeded'").fetchone()
            assert day == -1 and rows_loaded > 0
            backfill = db.execute("SELECT day, status, error FROM token_backfill(current_date - 7, current_date - 1)"
                                  ).fetchall()
            assert [status for _, status, _ in backfill] == ["succeeded"] * 6 + ["unchanged"], backfill
            verified = db.execute("SELECT bool_and(v.matches), count(*), sum(v.local_rows) FROM generate_series("
                                  "current_date - 7, current_date - 1, '1 day') d,"
                                  " token_verify_day(d::date) v").fetchone()
            assert verified[:2] == (True, 7) and verified[2] > rows_loaded
            before = snapshot(db)
            assert before["jobs"] == [("token-sync-catch-up", "30 5 * * *"), ("token-sync-d1", "30 3 * * *"),
                                      ("token-sync-d2", "30 4 * * *")]
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            connect(port, password="wrong")
        first_logs = compose("logs", "db", port=port).stdout + compose("logs", "db", port=port).stderr
        assert first_logs.count("running /docker-entrypoint-initdb.d/50-token-sync.sh") == 1

        # A new container on the same volume: nothing lost, nothing initialised twice.
        compose("down", port=port)
        compose("up", "-d", port=port)
        wait_for("PostgreSQL after the restart", lambda: connect(port).close() or True)
        with connect(port) as db:
            assert snapshot(db) == before
            assert db.execute("SELECT count(*), bool_or(missing) FROM token_sync.day_status").fetchone() == (7, False)
        logs = compose("logs", "db", port=port)
        assert "docker-entrypoint-initdb.d" not in logs.stdout + logs.stderr
    finally:
        compose("down", "-v", port=port, check=False)


def pod_manifests(values, key_dir):
    """The chart's StatefulSet as the one pod it makes (named as its first replica, its
    claim as a PersistentVolumeClaim), on the host's network, with its ConfigMap. The
    containers' ports are left out: on the host's network they are the host's, so
    PostgreSQL gets a free one of them (PGPORT).

    podman 4.3 panics on a Secret volume and cannot read a Secret document's data for
    secretKeyRef: what a kubelet does with the chart's Secrets is done here, the password
    into the environment and each key file into key_dir, mounted as the chart says."""
    documents = render(values)
    statefulset = documents[("StatefulSet", "demo-token-sync")]
    secrets = {name: {key: base64.b64decode(value) for key, value in document["data"].items()}
               for (kind, name), document in documents.items() if kind == "Secret"}
    name = f'{statefulset["metadata"]["name"]}-0'
    claim = statefulset["spec"]["volumeClaimTemplates"][0]
    claim_name = f'{claim["metadata"]["name"]}-{name}'
    spec = dict(statefulset["spec"]["template"]["spec"], hostNetwork=True)
    for container in spec["containers"]:
        container.pop("ports")  # podman refuses port mappings on the host's network
        if container["name"] == "postgres":
            container["env"].append({"name": "PGPORT", "value": str(free_port())})
        for variable in container.get("env", []):
            reference = variable.get("valueFrom", {}).pop("secretKeyRef", None)
            if reference:
                variable.pop("valueFrom")
                variable["value"] = secrets[reference["name"]][reference["key"]].decode()
    volumes = [{"name": claim["metadata"]["name"], "persistentVolumeClaim": {"claimName": claim_name}}]
    for volume in spec.get("volumes", []):
        if "secret" in volume:
            for key, value in secrets[volume["secret"]["secretName"]].items():
                path = key_dir / key
                path.write_bytes(value)
                path.chmod(volume["secret"]["defaultMode"])
                os.chown(path, 0, 999)  # the pod's fsGroup owns the files of its volumes
            volume = {"name": volume["name"], "hostPath": {"path": str(key_dir), "type": "Directory"}}
        volumes.append(volume)
    spec["volumes"] = volumes
    pod = {"apiVersion": "v1", "kind": "Pod", "spec": spec,
           "metadata": {"name": name, "labels": statefulset["spec"]["template"]["metadata"]["labels"]}}
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim_name},
           "spec": claim["spec"]}
    config_map = documents[("ConfigMap", "demo-token-sync")]
    return [config_map, pvc, pod], config_map["data"], claim_name


@pytest.fixture
def play(tmp_path):
    played = []

    def start(values):
        key_dir = tmp_path / "key"
        key_dir.mkdir(exist_ok=True)
        key_dir.chmod(0o755)
        manifests, config, volume = pod_manifests(values, key_dir)
        path = tmp_path / "pod.yaml"
        path.write_text(yaml.safe_dump_all(manifests))
        podman("volume", "rm", "-f", volume, check=False)
        played.append((path, volume))
        podman("kube", "play", str(path))
        return config
    yield start
    for path, volume in played:
        podman("kube", "down", str(path), check=False)
        podman("volume", "rm", "-f", volume, check=False)


def in_pod(sql):
    return podman("exec", "demo-token-sync-0-postgres", "psql", "-X", "-At", "-U", "postgres", "-d", "tokens",
                  "-c", sql).stdout.strip()


def wait_for_pod_database():
    """Ready once it answers on TCP: while the init scripts run it listens on its socket only."""
    wait_for("PostgreSQL in the pod",
             lambda: podman("exec", "demo-token-sync-0-postgres", "pg_isready", "-q", "-h", "127.0.0.1",
                            check=False).returncode == 0)


def test_chart_pod_offline_runs_the_emulator_and_the_nightly_job_from_its_config_map(images, play):
    major = images["major"]
    config = play({"image": {"tag": f"{cargo_version()}-pg{major}"}, "emulator": {"enabled": True},
                   "database": {"name": "tokens"},
                   "tokenSync": {"schedule": {"d1": "* * * * *"}, "maxBytesBilled": "3GB"}})
    wait_for_pod_database()
    settings = dict(line.split("|", 1) for line in in_pod(
        "SELECT name, setting FROM pg_settings WHERE name IN ('token_sync.api_url', 'token_sync.source_table',"
        " 'token_sync.target_table', 'token_sync.max_bytes_billed', 'token_sync.location')").splitlines())
    assert settings["token_sync.api_url"] == config["TOKEN_SYNC_API_URL"] == "http://127.0.0.1:9050"
    assert settings["token_sync.source_table"] == config["TOKEN_SYNC_SOURCE_TABLE"]
    assert settings["token_sync.target_table"] == config["TOKEN_SYNC_TARGET_TABLE"]
    assert settings["token_sync.location"] == config["TOKEN_SYNC_LOCATION"]
    assert in_pod("SHOW token_sync.max_bytes_billed") == "3GB"
    assert in_pod("SELECT schedule FROM cron.job WHERE jobname = 'token-sync-d1'") == "* * * * *"
    wait_for("the emulator sidecar", emulator_seeded("demo-token-sync-0-bigquery-emulator"))
    # pg_cron starts the D-1 job at the next minute.
    loaded = wait_for("the D-1 job's first run", lambda: in_pod(
        "SELECT rows_loaded FROM token_sync.runs WHERE status = 'succeeded' AND day = current_date - 1"), timeout=150)
    assert int(loaded) > 0
    assert in_pod("SELECT count(*) FROM cron.job_run_details JOIN cron.job USING (jobid)"
                  " WHERE jobname = 'token-sync-d1' AND status = 'succeeded'") != "0"
    assert in_pod("SELECT (token_verify_day(current_date - 1)).matches") == "t"


def test_chart_pod_reads_its_key_from_the_secret_mounted_read_only(images, play, key_file, fake_google):
    path, _, _ = key_file
    yesterday = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
    midnight = dt.datetime.combine(yesterday, dt.time(), tzinfo=dt.timezone.utc)
    fake_google.rows = [to_fake(token(n, midnight + dt.timedelta(hours=n))) for n in range(1, 4)]
    config = play({"image": {"tag": f"{cargo_version()}-pg{images['major']}"},
                   "tokenSync": {"billingProject": "billing", "apiUrl": fake_google.base_url},
                   "credentials": {"keyJson": path.read_text()}})
    wait_for_pod_database()
    assert in_pod("SHOW token_sync.credentials") == config["TOKEN_SYNC_CREDENTIALS"] \
        == "/var/run/secrets/token-sync/key.json"
    refused = podman("exec", "demo-token-sync-0-postgres", "touch", "/var/run/secrets/token-sync/key.json",
                     check=False)
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    assert in_pod("SELECT rows_loaded FROM token_sync_day(current_date - 1)") == str(len(fake_google.rows))
    assert fake_google.token_requests, "the key from the Secret was not used"
