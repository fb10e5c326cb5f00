"""docker-compose.yml cannot run here (no Docker engine): check what can be checked — that it
parses, forms a 3-node CouchDB 3.5 cluster the way the official image expects, and agrees
with the configuration names the code reads."""

from __future__ import annotations

import configparser
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from carecouch.config import IMAGE_ONLY_VARIABLES, SETTINGS, parse_env_file

ROOT = Path(__file__).resolve().parent.parent
NODES = ["couchdb-1", "couchdb-2", "couchdb-3"]
# Names used only inside docker-compose.yml to wire its own services together.
COMPOSE_INTERNAL = {"CLUSTER_NODES"}
NAME = re.compile(r"\b((?:CARECOUCH|COUCHDB)_[A-Z0-9_]+)\b")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def env_file_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            names.add(line.split("=", 1)[0].strip())
    return names


def test_three_couchdb_35_nodes_with_own_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    volumes_seen = set()
    for name in NODES:
        node = services[name]
        assert re.fullmatch(r"couchdb:3\.5(\.\d+)?", node["image"]), node["image"]
        assert node["environment"]["NODENAME"] == node["hostname"]
        assert node["hostname"] in node["networks"]["carecouch"]["aliases"]
        data = [v for v in node["volumes"] if v.endswith(":/opt/couchdb/data")]
        assert len(data) == 1
        volume = data[0].split(":")[0]
        assert volume in compose["volumes"], f"{volume} is not a named volume"
        volumes_seen.add(volume)
        assert node["env_file"] == ["deploy/production.env"]
        assert "healthcheck" in node
    assert len(volumes_seen) == 3


def test_cluster_setup_joins_every_node(compose: dict[str, Any]) -> None:
    setup = compose["services"]["cluster-setup"]
    assert setup["restart"] == "no"
    assert set(setup["depends_on"]) == set(NODES)
    assert all(dep["condition"] == "service_healthy" for dep in setup["depends_on"].values())
    hostnames = [compose["services"][n]["hostname"] for n in NODES]
    assert setup["environment"]["CLUSTER_NODES"].split() == hostnames
    script = setup["volumes"][0].split(":")[0]
    assert (ROOT / script).is_file()
    subprocess.run(["bash", "-n", str(ROOT / script)], check=True)


def test_mounted_files_exist(compose: dict[str, Any]) -> None:
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
    assert (ROOT / "deploy/production.env.example").is_file()


def test_production_env_example_has_every_secret_and_no_value(compose: dict[str, Any]) -> None:
    names = env_file_names(ROOT / "deploy/production.env.example")
    assert {"COUCHDB_USER", "COUCHDB_PASSWORD", "COUCHDB_SECRET",
            "COUCHDB_ERLANG_COOKIE", "COUCHDB_URL"} <= names
    text = (ROOT / "deploy/production.env.example").read_text()
    for secret in ("COUCHDB_PASSWORD", "COUCHDB_SECRET", "COUCHDB_ERLANG_COOKIE"):
        assert f"{secret}=CHANGE-ME" in text


def test_compose_and_env_files_use_only_known_names(compose: dict[str, Any]) -> None:
    known = set(SETTINGS) | IMAGE_ONLY_VARIABLES | COMPOSE_INTERNAL
    used: set[str] = set()
    for service in compose["services"].values():
        used |= set(service.get("environment", {}))
    used |= env_file_names(ROOT / "deploy/production.env.example")
    used |= env_file_names(ROOT / ".env.example")
    assert used - known == set()


def test_code_reads_only_known_names() -> None:
    known = set(SETTINGS) | IMAGE_ONLY_VARIABLES
    sources = [p for pkg in ("carecouch", "admin_cli", "bridge", "mobile_stub")
               for p in (ROOT / pkg).rglob("*.py")]
    sources += [ROOT / "dev", ROOT / "embedded_server" / "server.js"]
    unknown = {}
    for path in sources:
        for name in NAME.findall(path.read_text()):
            if name not in known:
                unknown[name] = path.relative_to(ROOT)
    assert unknown == {}


def test_couchdb_ini_limits_attachments_for_both_servers(compose: dict[str, Any]) -> None:
    # deploy/couchdb.ini is every node's local.d/ file and the embedded server's defaults
    # (embedded_server/server.js), so both refuse the same attachments.
    ini = configparser.ConfigParser(inline_comment_prefixes=(";",))
    ini.read(ROOT / "deploy" / "couchdb.ini")
    assert int(ini["couchdb"]["max_attachment_size"]) > 0
    for name in NODES:
        assert any(v.startswith("./deploy/couchdb.ini:")
                   for v in compose["services"][name]["volumes"])
    assert "'deploy', 'couchdb.ini'" in (ROOT / "embedded_server" / "server.js").read_text()


def test_every_setting_is_documented() -> None:
    doc = (ROOT / "docs/configuration.md").read_text()
    assert [name for name in SETTINGS if f"`{name}`" not in doc] == []


# -- the bridge ---------------------------------------------------------------------------------

BRIDGE_REQUIRED = {"COUCHDB_URL", "COUCHDB_USER", "COUCHDB_PASSWORD",
                   "CARECOUCH_BRIDGE_POLICY", "CARECOUCH_BRIDGE_IDP_KEYS_FILE",
                   "CARECOUCH_BRIDGE_IDP_ISSUER", "CARECOUCH_BRIDGE_IDP_AUDIENCE",
                   "CARECOUCH_BRIDGE_COUCHDB_PASSWORD"}


def test_bridge_runs_under_gunicorn_after_the_cluster_is_formed(
        compose: dict[str, Any]) -> None:
    bridge = compose["services"]["bridge"]
    assert bridge["build"] == "."
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert '"gunicorn"' in dockerfile and '"bridge.wsgi:app"' in dockerfile
    assert "pip install '.[server]'" in dockerfile
    assert (ROOT / "bridge" / "wsgi.py").is_file()
    assert bridge["depends_on"] == {"cluster-setup": {
        "condition": "service_completed_successfully"}}
    assert bridge["env_file"] == ["deploy/production.env"]
    assert bridge["ports"] == ["127.0.0.1:8765:8765"]
    assert "/healthz" in " ".join(bridge["healthcheck"]["test"])
    assert "carecouch" in bridge["networks"]


def test_bridge_gets_every_setting_it_requires_and_its_secrets_from_files(
        compose: dict[str, Any]) -> None:
    bridge = compose["services"]["bridge"]
    given = set(bridge["environment"]) | env_file_names(ROOT / "deploy/production.env.example")
    assert BRIDGE_REQUIRED - given == set()
    # The signing key is a compose secret (a file outside git), never an environment value.
    assert bridge["environment"]["CARECOUCH_BRIDGE_SIGNING_KEY_FILE"] == \
        "/run/secrets/bridge_signing_key"
    secret = compose["secrets"]["bridge_signing_key"]["file"]
    assert secret.startswith("./deploy/bridge/") and secret.endswith(".pem")
    assert "/deploy/bridge/*.pem" in (ROOT / ".gitignore").read_text()
    text = (ROOT / "deploy/production.env.example").read_text()
    assert "CARECOUCH_BRIDGE_COUCHDB_PASSWORD=CHANGE-ME" in text
    mounted = {v.split(":")[0]: v.split(":")[1] for v in bridge["volumes"]}
    assert mounted == {"./deploy/bridge": "/etc/carecouch"}
    for name in ("CARECOUCH_BRIDGE_POLICY", "CARECOUCH_BRIDGE_IDP_KEYS_FILE"):
        assert bridge["environment"][name].startswith("/etc/carecouch/")
    assert (ROOT / "deploy/bridge/policy.yaml").is_file()


def test_the_production_bridge_finds_clients_behind_its_one_proxy(
        compose: dict[str, Any]) -> None:
    # Only the TLS proxy on the host reaches the loopback-only port, so exactly one hop is
    # trusted: with none, every device would share the proxy's address (and one attacker
    # would spend the failure budget for all); with more, a client could forge its address.
    assert compose["services"]["bridge"]["ports"] == ["127.0.0.1:8765:8765"]
    values = parse_env_file(ROOT / "deploy/production.env.example")
    assert values["CARECOUCH_BRIDGE_TRUSTED_PROXIES"] == "1"


def test_the_shipped_production_policy_is_valid() -> None:
    from carecouch.policy import load_policy

    assert load_policy(ROOT / "deploy/bridge/policy.yaml").rules


def test_couchdb_ini_hashes_people_strongly_and_never_rehashes_device_sessions() -> None:
    # docs/deployment.md, "Password hashing": passwords CouchDB hashes get its 3.5 defaults;
    # device sessions, written pre-hashed, are neither refused nor upgraded at login.
    from carecouch.credentials import HASH_ITERATIONS

    ini = configparser.ConfigParser(inline_comment_prefixes=(";",))
    ini.read(ROOT / "deploy" / "couchdb.ini")
    auth = ini["chttpd_auth"]
    assert int(auth["iterations"]) >= 600000 and auth["pbkdf2_prf"] == "sha256"
    assert auth["upgrade_hash_on_auth"] == "false"
    assert int(auth.get("min_iterations", "1")) <= HASH_ITERATIONS
