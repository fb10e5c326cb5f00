"""Starting the bridge: a missing or bad secret refuses to start with one line (no built-in
fallback); the console script serves and writes its pid file; keys can be generated."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from bridge.app import create_app
from bridge.cli import main as bridge_cli
from carecouch.errors import ConfigError
from tests.helpers.bridges import BridgeEnv, World, bridge_config
from tests.helpers.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def installed(program: str) -> Path:
    """A console script of the installation this interpreter runs (the venv's bin/, wherever
    that venv is)."""
    found = shutil.which(program, path=str(Path(sys.executable).parent))
    assert found is not None, f"{program} is not installed beside {sys.executable}"
    return Path(found)


@pytest.fixture
def policy_file(world: World, tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(world.policy())
    return path


@pytest.mark.parametrize(("missing", "message"), [
    ("CARECOUCH_BRIDGE_SIGNING_KEY_FILE", "CARECOUCH_BRIDGE_SIGNING_KEY (or "
     "CARECOUCH_BRIDGE_SIGNING_KEY_FILE) not set: the bridge's Ed25519 signing key is required"),
    ("CARECOUCH_BRIDGE_IDP_KEYS_FILE", "CARECOUCH_BRIDGE_IDP_KEYS_FILE not set"),
    ("CARECOUCH_BRIDGE_COUCHDB_PASSWORD", "CARECOUCH_BRIDGE_COUCHDB_PASSWORD (or "
     "CARECOUCH_BRIDGE_COUCHDB_PASSWORD_FILE) not set"),
    ("CARECOUCH_BRIDGE_POLICY", "CARECOUCH_BRIDGE_POLICY not set"),
    ("CARECOUCH_BRIDGE_IDP_AUDIENCE", "CARECOUCH_BRIDGE_IDP_AUDIENCE not set"),
    ("COUCHDB_PASSWORD", "COUCHDB_PASSWORD not set"),
])
def test_a_missing_secret_refuses_to_start(server: Any, bridge_env: BridgeEnv,
                                           policy_file: Path, missing: str,
                                           message: str) -> None:
    config = bridge_config(server, bridge_env, policy_file)
    config[missing] = ""
    with pytest.raises(ConfigError) as info:
        create_app(config)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


@pytest.mark.parametrize(("setting", "content", "message"), [
    ("CARECOUCH_BRIDGE_SIGNING_KEY_FILE", b"not a key", "not an Ed25519 private key"),
    ("CARECOUCH_BRIDGE_IDP_KEYS_FILE", b"-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY"
     b"-----\n", "is not a PEM bundle or JWKS"),
    ("CARECOUCH_BRIDGE_POLICY", b"version: 1\nrules: nope\n", ":2: rules must be a non-empty"),
])
def test_an_unusable_file_refuses_to_start(server: Any, bridge_env: BridgeEnv,
                                           policy_file: Path, tmp_path: Path, setting: str,
                                           content: bytes, message: str) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        create_app(bridge_config(server, bridge_env, policy_file, **{setting: str(bad)}))
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(("setting", "value", "message"), [
    ("CARECOUCH_BRIDGE_FAILURE_LIMIT", "600", "CARECOUCH_BRIDGE_FAILURE_LIMIT must be "
     "<failures>/<seconds>, e.g. 600/600"),
    ("CARECOUCH_BRIDGE_FAILURE_LIMIT", "0/60", "CARECOUCH_BRIDGE_FAILURE_LIMIT must be"),
    ("CARECOUCH_BRIDGE_TRUSTED_PROXIES", "-1", "CARECOUCH_BRIDGE_TRUSTED_PROXIES must be a "
     "whole number of proxy hops from 0 to 10"),
    ("CARECOUCH_BRIDGE_TRUSTED_PROXIES", "yes", "CARECOUCH_BRIDGE_TRUSTED_PROXIES must be"),
])
def test_a_bad_limit_or_proxy_count_refuses_to_start(server: Any, bridge_env: BridgeEnv,
                                                     policy_file: Path, setting: str,
                                                     value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        create_app(bridge_config(server, bridge_env, policy_file, **{setting: value}))
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["someone~tablet-1", "org.couchdb.user:x"])
def test_a_bridge_user_name_couchdb_cannot_keep_apart_is_refused(
        server: Any, bridge_env: BridgeEnv, policy_file: Path, name: str) -> None:
    config = bridge_config(server, bridge_env, policy_file,
                           CARECOUCH_BRIDGE_COUCHDB_USER=name)
    with pytest.raises(ConfigError) as info:
        create_app(config)
    assert str(info.value).startswith("CARECOUCH_BRIDGE_COUCHDB_USER: bad user id")


def test_the_bridge_does_not_take_over_someone_elses_couchdb_account(
        server: Any, bridge_env: BridgeEnv, policy_file: Path, admin: Any,
        make_user: Any) -> None:
    clinician = make_user(["clinical:nurse"])
    before = admin.db("_users").get(f"org.couchdb.user:{clinician.name}")
    config = bridge_config(server, bridge_env, policy_file,
                           CARECOUCH_BRIDGE_COUCHDB_USER=clinician.name)
    with pytest.raises(ConfigError) as info:
        create_app(config)
    assert "exists and is not the bridge's" in str(info.value)
    assert admin.db("_users").get(f"org.couchdb.user:{clinician.name}") == before


def test_secrets_may_come_from_the_environment_and_files(
        server: Any, bridge_env: BridgeEnv, policy_file: Path, tmp_path: Path) -> None:
    secret = tmp_path / "couch-password"
    secret.write_text(bridge_env.couch_password + "\n")
    config = bridge_config(server, bridge_env, policy_file,
                           CARECOUCH_BRIDGE_COUCHDB_PASSWORD="",
                           CARECOUCH_BRIDGE_COUCHDB_PASSWORD_FILE=str(secret))
    os.environ.update({k: v for k, v in config.items() if isinstance(v, str)})
    app = create_app()  # defaults -> environment: nothing passed in
    try:
        assert app.extensions["carecouch"].settings.bridge_password == bridge_env.couch_password
    finally:
        app.extensions["carecouch"].close()


def test_serve_refuses_to_start_with_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(bridge_cli, ["serve"], env={
        "COUCHDB_USER": "a", "COUCHDB_PASSWORD": "b", "CARECOUCH_BRIDGE_POLICY": ""})
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("carecouch-bridge: error: ")


def test_gunicorn_entry_point_refuses_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty.env").touch()
    env = {"PATH": os.environ["PATH"], "CARECOUCH_ENV_FILE": str(tmp_path / "empty.env")}
    result = subprocess.run([sys.executable, "-c", "import bridge.wsgi"], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr == "carecouch-bridge: error: COUCHDB_USER and COUCHDB_PASSWORD not " \
        "set: the CouchDB admin credentials are required (see .env.example)\n"


def test_serve_runs_and_writes_its_pid_file(server: Any, bridge_env: BridgeEnv,
                                            policy_file: Path, tmp_path: Path) -> None:
    env = {**os.environ, **{k: str(v) for k, v in bridge_config(
        server, bridge_env, policy_file).items()}}
    pid_file = tmp_path / "bridge.pid"
    # A suite started as a background job of a shell without job control (`sh -c '... &'`,
    # nohup, some CI runners) runs with SIGINT ignored, and an ignored signal stays ignored
    # across exec: the bridge would never see the Ctrl-C this test sends, and the wait below
    # timed out. A handled signal is reset to the default in the child instead.
    ignored = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen(
            [str(installed("carecouch-bridge")), "serve", "--port", "0",
             "--pid-file", str(pid_file)], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, ignored)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), process.stderr.read() if \
            process.stderr else ""
        assert httpx.get(url + "/healthz").json()["status"] == "ok"
        assert int(pid_file.read_text()) == process.pid
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()  # leave no bridge behind, then fail
            process.wait()
            raise
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    wait_until(lambda: not pid_file.exists(), timeout=5, what=f"{pid_file} is removed")


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    key = tmp_path / "keys" / "signing.pem"
    runner = CliRunner()
    result = runner.invoke(bridge_cli, ["keygen", str(key), "--public", str(tmp_path / "p.pem")])
    assert result.exit_code == 0, result.output
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    again = runner.invoke(bridge_cli, ["keygen", str(key)])
    assert again.exit_code == 1 and "exists; use --force" in again.stderr
