"""What can be checked here of the Docker image, compose file and Helm chart (no Docker
engine, no Kubernetes): the chart lints, renders, and validates against the Kubernetes
schemas; values flow into the manifests; the release fits in 1 GiB; compose, Dockerfile,
chart and code name the same version, settings and schedule; the image's init and
entrypoint scripts do what they say; every shell script passes shellcheck."""

import os
import re
import subprocess
import tomllib

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from conftest import DATABASE, ROOT

CHART = ROOT / "deploy" / "helm" / "token-sync"
KUBE_VERSION = "1.30.0"
KEY_VALUES = {"tokenSync": {"billingProject": "my-project"}, "credentials": {"keyJson": '{"type": "service_account"}'}}
VARIANTS = {
    "key from values": KEY_VALUES,
    "existing key secret": {"tokenSync": {"billingProject": "p"}, "credentials": {"existingSecret": "gcp-key"},
                            "database": {"existingSecret": "db-password"}},
    "workload identity": {"tokenSync": {"billingProject": "p"}, "credentials": {"mode": "workloadIdentity"},
                          "serviceAccount": {"annotations": {
                              "iam.gke.io/gcp-service-account": "sync@p.iam.gserviceaccount.com"}}},
    "offline": {"emulator": {"enabled": True}},
}


def render(values):
    manifests = helm.Chart.load(str(CHART)).render(values, name="demo", namespace="tokens", is_install=True)
    documents = []
    for path, text in manifests.items():
        if path.endswith(".yaml"):
            documents += [d for d in yaml.safe_load_all(text) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in documents}


def cargo_version():
    return tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"]


def dockerfile_arg(name):
    return re.search(rf"^ARG {name}=(\S+)$", (ROOT / "Dockerfile").read_text(), re.M).group(1)


def schedule_defaults():
    text = (ROOT / "pg_cron" / "schedule.sql").read_text()
    return dict(re.findall(r"\\set (d[12])_schedule '([^']+)'", text))


@pytest.mark.parametrize("variant", VARIANTS)
def test_chart_lints_without_warnings(variant):
    report = helm.lint(str(CHART), VARIANTS[variant], strict=True, kube_version=f"v{KUBE_VERSION}")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_rendered_manifests_are_valid_kubernetes(variant):
    documents = render(VARIANTS[variant])
    assert {kind for kind, _ in documents} >= {"StatefulSet", "Service", "ConfigMap", "ServiceAccount"}
    for document in documents.values():
        kubernetes_validate.validate(document, KUBE_VERSION, strict=True)


def test_values_flow_into_the_manifests():
    values = {**KEY_VALUES, "image": {"tag": "9.9.9"}, "persistence": {"size": "7Gi"},
              "tokenSync": {"billingProject": "my-project", "schedule": {"d1": "5 1 * * *"}}}
    documents = render(values)
    config = documents[("ConfigMap", "demo-token-sync")]["data"]
    assert config["TOKEN_SYNC_BILLING_PROJECT"] == "my-project"
    assert config["TOKEN_SYNC_D1_SCHEDULE"] == "5 1 * * *"
    assert config["TOKEN_SYNC_CREDENTIALS"] == "/var/run/secrets/token-sync/key.json"
    assert config["TOKEN_SYNC_API_URL"] == "https://bigquery.googleapis.com"
    statefulset = documents[("StatefulSet", "demo-token-sync")]
    pod = statefulset["spec"]["template"]["spec"]
    postgres, = pod["containers"]
    assert postgres["image"] == "token-sync:9.9.9"
    assert {"name": "key", "mountPath": "/var/run/secrets/token-sync", "readOnly": True} in postgres["volumeMounts"]
    assert pod["volumes"] == [{"name": "key", "secret": {"secretName": "demo-token-sync-key", "defaultMode": 0o440}}]
    assert statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "7Gi"
    assert "key.json" in documents[("Secret", "demo-token-sync-key")]["data"]


def test_workload_identity_uses_adc_and_the_annotated_service_account():
    documents = render(VARIANTS["workload identity"])
    assert documents[("ConfigMap", "demo-token-sync")]["data"]["TOKEN_SYNC_CREDENTIALS"] == "adc"
    account = documents[("ServiceAccount", "demo-token-sync")]
    assert account["metadata"]["annotations"] == {"iam.gke.io/gcp-service-account": "sync@p.iam.gserviceaccount.com"}
    assert "volumes" not in documents[("StatefulSet", "demo-token-sync")]["spec"]["template"]["spec"]
    assert ("Secret", "demo-token-sync-key") not in documents


def test_offline_release_runs_the_emulator_beside_postgres_on_loopback():
    documents = render(VARIANTS["offline"])
    config = documents[("ConfigMap", "demo-token-sync")]["data"]
    assert config["TOKEN_SYNC_API_URL"] == "http://127.0.0.1:9050"
    assert "TOKEN_SYNC_CREDENTIALS" not in config  # the entrypoint's offline mode
    containers = documents[("StatefulSet", "demo-token-sync")]["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["postgres", "bigquery-emulator"]
    assert containers[1]["image"] == f"token-sync-emulator:{cargo_version()}"


def test_the_whole_release_fits_in_one_gibibyte():
    containers = render(VARIANTS["offline"])[("StatefulSet", "demo-token-sync")]["spec"]["template"]["spec"]["containers"]

    def mebibytes(quantity):
        number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()
        return int(number) * (1024 if unit == "Gi" else 1)
    assert sum(mebibytes(c["resources"]["limits"]["memory"]) for c in containers) <= 1024


@pytest.mark.parametrize("values, words", [
    ({}, "billingProject is required"),
    ({"tokenSync": {"billingProject": "p"}}, "existingSecret or credentials.keyJson"),
    ({"tokenSync": {"billingProject": "p"}, "credentials": {"mode": "magic"}}, "credentials.mode"),
])
def test_chart_refuses_incomplete_values(values, words):
    with pytest.raises(helm.HelmError) as error:
        render(values)
    assert words in str(error.value)


def test_compose_file_has_the_database_the_secret_and_the_offline_emulator():
    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    db, emulator = compose["services"]["db"], compose["services"]["emulator"]
    assert db["build"]["context"] == "."
    assert db["image"] == f"token-sync:{cargo_version()}-pg${{TOKEN_SYNC_PG_MAJOR:-{dockerfile_arg('PG_MAJOR')}}}"
    assert db["build"]["args"] == {"PG_MAJOR": f"${{TOKEN_SYNC_PG_MAJOR:-{dockerfile_arg('PG_MAJOR')}}}",
                                   "DEBIAN_SUITE": f"${{TOKEN_SYNC_DEBIAN_SUITE:-{dockerfile_arg('DEBIAN_SUITE')}}}"}
    assert "pgdata:/var/lib/postgresql/data" in db["volumes"] and "pgdata" in compose["volumes"]
    assert db["secrets"] == ["gcp_key"] and "gcp_key" in compose["secrets"]
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert emulator["profiles"] == ["offline"]
    assert emulator["network_mode"] == "service:db"
    assert emulator["build"]["dockerfile"] == "docker/emulator.Dockerfile"
    empty_key = ROOT / compose["secrets"]["gcp_key"]["file"].split(":-", 1)[1].rstrip("}")
    assert empty_key.exists() and empty_key.stat().st_size == 0


def test_dockerfile_compose_chart_and_code_agree():
    version = cargo_version()
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert chart["appVersion"] == values["emulator"]["image"]["tag"] == version
    assert values["image"]["tag"] == f"{version}-pg{dockerfile_arg('PG_MAJOR')}"

    defaults = schedule_defaults()
    compose_env = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())["services"]["db"]["environment"]
    assert defaults == {"d1": "30 3 * * *", "d2": "30 4 * * *"}
    assert values["tokenSync"]["schedule"] == defaults
    assert (compose_env["TOKEN_SYNC_D1_SCHEDULE"], compose_env["TOKEN_SYNC_D2_SCHEDULE"]) == (defaults["d1"], defaults["d2"])

    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'RUN bash scripts/install-deps.sh --build-only "$PG_MAJOR"' in dockerfile
    assert '"postgresql-$PG_MAJOR-cron"' in dockerfile
    # The default version is one CI builds and tests in a root of the same Debian suite.
    assert f"{dockerfile_arg('PG_MAJOR')}) suite={dockerfile_arg('DEBIAN_SUITE')} ;;" in \
        (ROOT / "scripts" / "pg-root.sh").read_text()
    # One install path: the image installs the package its build stage made, as a server does,
    # and the init script schedules with the schedule the package ships.
    assert 'bash scripts/package.sh "$PG_MAJOR" --out /packages' in dockerfile
    assert '"/tmp/token_sync-packages/postgresql-$PG_MAJOR-token-sync_"*.deb' in dockerfile
    assert "TOKEN_SYNC_SHARE=/usr/share/postgresql/${PG_MAJOR}/contrib/token_sync" in dockerfile
    assert 'contrib=$tree$sharedir/contrib/token_sync' in (ROOT / "scripts" / "package.sh").read_text()
    assert '-f "$share/pg_cron/schedule.sql"' in (ROOT / "docker" / "initdb.sh").read_text()
    pgrx = tomllib.loads((ROOT / "Cargo.toml").read_text())["dependencies"]["pgrx"]
    assert f'PGRX_VERSION={pgrx.lstrip("=")}' in (ROOT / "scripts" / "install-deps.sh").read_text()
    emulator_image = (ROOT / "docker" / "emulator.Dockerfile").read_text()
    assert "scripts/emulator-requirements.txt" in emulator_image and "scripts/bq_emulator.py" in emulator_image


def run_entrypoint(tmp_path, **env):
    """The image's entrypoint with the official one replaced by a stub that prints its arguments."""
    stub = tmp_path / "docker-entrypoint.sh"
    stub.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    stub.chmod(0o755)
    environment = {"PATH": f"{tmp_path}:{os.environ['PATH']}", **env}
    result = subprocess.run(["bash", str(ROOT / "docker" / "entrypoint.sh"), "postgres"], env=environment,
                            capture_output=True, text=True, check=True)
    arguments = result.stdout.split("\n")
    return dict(a.split("=", 1) for a in arguments[2::2] if "=" in a), result.stderr


def test_entrypoint_sets_only_real_settings_and_picks_the_mode(tmp_path, db):
    offline, message = run_entrypoint(tmp_path, POSTGRES_DB="tokens")
    assert "offline mode" in message
    assert (offline["token_sync.api_url"], offline["token_sync.credentials"]) == ("http://127.0.0.1:9050", "none")
    keyed, _ = run_entrypoint(tmp_path, TOKEN_SYNC_CREDENTIALS="/keys/key.json", TOKEN_SYNC_BILLING_PROJECT="p")
    assert keyed["token_sync.credentials"] == "/keys/key.json"
    assert keyed["token_sync.api_url"] == "https://bigquery.googleapis.com"
    adc, _ = run_entrypoint(tmp_path, TOKEN_SYNC_CREDENTIALS="adc", TOKEN_SYNC_BILLING_PROJECT="p")
    assert adc["token_sync.credentials"] == ""
    assert offline["shared_preload_libraries"] == "pg_cron,token_sync"
    known = {name for name, in db.execute("SELECT name FROM pg_settings WHERE name LIKE 'token_sync.%'")}
    assert {name for name in offline if name.startswith("token_sync.")} <= known
    # Each value the entrypoint gives must be one PostgreSQL accepts for that setting.
    for name, value in {**offline, **keyed}.items():
        if name.startswith("token_sync."):
            db.execute("SELECT set_config(%s, %s, false)", (name, value))


def test_image_init_script_creates_the_extensions_and_schedules_the_jobs(cluster, db):
    env = {**os.environ, "POSTGRES_USER": "postgres", "POSTGRES_DB": DATABASE, "PGHOST": str(cluster.root),
           "PGPORT": str(cluster.port), "TOKEN_SYNC_SHARE": str(ROOT), "TOKEN_SYNC_D1_SCHEDULE": "15 2 * * *"}
    try:
        subprocess.run(["bash", str(ROOT / "docker" / "initdb.sh")], env=env, check=True, capture_output=True)
        assert db.execute("SELECT jobname, schedule FROM cron.job ORDER BY 1").fetchall() == [
            ("token-sync-catch-up", "30 5 * * *"), ("token-sync-d1", "15 2 * * *"), ("token-sync-d2", "30 4 * * *")]
        assert db.execute("SELECT count(*) FROM pg_extension WHERE extname IN ('pg_cron', 'token_sync')"
                          ).fetchone() == (2,)
    finally:
        db.execute("SELECT cron.unschedule(jobid) FROM cron.job")


def test_shell_scripts_pass_shellcheck():
    scripts = [*ROOT.glob("scripts/*.sh"), *ROOT.glob("docker/*.sh"), *ROOT.glob("bench/*.sh"),
               *ROOT.glob("tests/*.sh"), ROOT / ".ci" / "run"]
    result = subprocess.run(["shellcheck", "--shell=bash", *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
