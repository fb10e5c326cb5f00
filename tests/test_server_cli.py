"""``carecouch server start|stop|status``: the embedded server as a developer runs it.

Each test starts its own server (port 0: a free one) in a temporary data directory, through
the installed ``carecouch`` command, as a newcomer would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from carecouch.couch import CouchClient
from carecouch.errors import CouchUnauthorized

CARECOUCH = str(Path(sys.executable).parent / "carecouch")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CARECOUCH, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "couch"
    os.environ.update(COUCHDB_USER="admin", COUCHDB_PASSWORD="first-password")
    yield path
    run("server", "stop", "--data-dir", str(path))


def start(data_dir: Path, port: int = 0, **env: str) -> str:
    result = run("server", "start", "--port", str(port), "--data-dir", str(data_dir), env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_start_status_stop(data_dir: Path) -> None:
    url = start(data_dir)
    assert url.startswith("http://127.0.0.1:")
    status = run("server", "status", "--data-dir", str(data_dir), "--json")
    assert status.returncode == 0
    assert json.loads(status.stdout)["url"] == url
    with CouchClient(url, "admin", "first-password") as client:
        assert "_admin" in client.session()["userCtx"]["roles"]
    stop = run("server", "stop", "--data-dir", str(data_dir))
    assert stop.returncode == 0 and "stopped" in stop.stderr
    after = run("server", "status", "--data-dir", str(data_dir))
    assert after.returncode == 1 and after.stdout.startswith("stopped")


def test_second_start_says_it_is_running(data_dir: Path) -> None:
    url = start(data_dir)
    again = run("server", "start", "--port", "0", "--data-dir", str(data_dir))
    assert again.returncode == 1
    assert again.stderr.strip() == (
        f"error: a server for {data_dir.resolve()} is already running at {url} "
        f"(pid {json.loads((data_dir / 'carecouch-server.json').read_text())['pid']})")


def test_busy_port_is_said_plainly(data_dir: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run("server", "start", "--port", str(port), "--data-dir", str(data_dir))
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: port {port} on 127.0.0.1 is already in use"


def test_restart_keeps_data_and_takes_the_new_admin_password(data_dir: Path) -> None:
    url = start(data_dir)
    with CouchClient(url, "admin", "first-password") as client:
        client.db("kept").create()
    run("server", "stop", "--data-dir", str(data_dir))
    url = start(data_dir, COUCHDB_PASSWORD="second-password")
    with CouchClient(url, "admin", "second-password") as client:
        assert client.db("kept").exists()
    with CouchClient(url, "admin", "first-password", retries=0) as client:
        with pytest.raises(CouchUnauthorized):
            client.all_dbs()
    config = (data_dir / "config.json").read_text()
    assert "second-password" not in config and "first-password" not in config


def test_status_of_a_dead_server_shows_its_log(data_dir: Path) -> None:
    start(data_dir)
    pid = json.loads((data_dir / "carecouch-server.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    result = run("server", "status", "--data-dir", str(data_dir))
    assert result.returncode == 1
    assert "died; server log tail:" in result.stdout
    assert "carecouch embedded server listening on" in result.stdout


def test_missing_admin_credentials_refuse_to_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUCHDB_")}
    result = subprocess.run([CARECOUCH, "server", "start", "--port", "0", "--data-dir",
                             str(tmp_path / "x")], capture_output=True, text=True, env=env,
                            timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: COUCHDB_USER and COUCHDB_PASSWORD not set")
    assert "Traceback" not in result.stderr
