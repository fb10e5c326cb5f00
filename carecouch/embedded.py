"""Start, stop and inspect the embedded CouchDB-protocol server (``embedded_server/server.js``).

Used by ``carecouch server ...`` and by the test harness, so both start the server the same way.
A server is identified by its data directory: ``server.js`` writes
``DIR/carecouch-server.json`` (pid, port, url) once it listens and removes it when it stops
cleanly; its stdout and stderr go to ``DIR/server.log``. A state file whose process is gone
means the server died, and the tail of that log says why.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .couch import CouchClient, Timeouts
from .errors import CarecouchError, CouchError

STATE_FILE = "carecouch-server.json"
CONFIG_FILE = "config.json"  # express-pouchdb's configuration: wins over deploy/couchdb.ini
# V8 options for the server's node (the one place its command line is made). A member's Mango
# `$regex` runs in the server's only thread: after 50,000 backtracks V8 finishes the match on
# its linear-time engine instead of backtracking for hours, and the `l` flag lets
# embedded_server/fixes/selectors.js ask V8 which patterns that engine can run.
NODE_OPTIONS = (
    "--enable-experimental-regexp-engine-on-excessive-backtracks",
    "--enable-experimental-regexp-engine",
)
LOG_FILE = "server.log"
EXIT_PORT_IN_USE = 3


# Servers started by this process, kept so they are reaped when stopped (no zombies, and no
# ResourceWarning from a Popen collected while its detached server still runs).
_children: dict[int, subprocess.Popen[bytes]] = {}


class EmbeddedServerError(CarecouchError):
    """The embedded server could not be started, stopped or found."""


@dataclass(frozen=True)
class ServerState:
    pid: int
    port: int
    url: str
    data_dir: Path


def project_root() -> Path:
    """Where ``embedded_server/`` and ``node_modules/`` live (``$CARECOUCH_HOME`` overrides)."""
    named = os.environ.get("CARECOUCH_HOME")
    return Path(named) if named else Path(__file__).resolve().parent.parent


def log_tail(data_dir: Path, lines: int = 20) -> str:
    path = Path(data_dir) / LOG_FILE
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no server log)"
    tail = text.strip().splitlines()[-lines:]
    return "\n".join(tail) if tail else "(server log is empty)"


def read_state(data_dir: Path) -> ServerState | None:
    path = Path(data_dir) / STATE_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return ServerState(pid=int(raw["pid"]), port=int(raw["port"]), url=str(raw["url"]),
                           data_dir=Path(raw["data_dir"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not a running server.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _is_our_server(pid: int, data_dir: Path) -> bool:
    """Guard against a recycled pid: the process must be server.js for this data dir."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return _alive(pid)  # no /proc (not Linux): trust the pid
    args = [a.decode(errors="replace") for a in cmdline]
    if not any(a.endswith("server.js") for a in args):
        return False
    try:
        index = args.index("--data-dir")
        return Path(args[index + 1]).resolve() == Path(data_dir).resolve()
    except (ValueError, IndexError):
        return False


def status(data_dir: Path) -> tuple[str, ServerState | None]:
    """``("running", state)``, ``("stopped", None)`` or ``("dead", state)``."""
    state = read_state(data_dir)
    if state is None:
        return "stopped", None
    if _alive(state.pid) and _is_our_server(state.pid, data_dir):
        return "running", state
    return "dead", state


def write_settings(data_dir: Path, settings: Mapping[str, Mapping[str, str]]) -> None:
    """Set CouchDB settings (``{section: {key: value}}``) in the data directory's config,
    where they win over deploy/couchdb.ini; takes effect when the server next starts."""
    path = Path(data_dir) / CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        config = {}
    except (OSError, ValueError) as exc:
        raise EmbeddedServerError(f"{path} is unreadable: {exc}") from exc
    for section, values in settings.items():
        config.setdefault(section, {}).update({k: str(v) for k, v in values.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    tmp.chmod(0o600)  # it holds the admin's password hash
    tmp.replace(path)


def start(data_dir: Path, port: int, admin_user: str, admin_password: str, *,
          timeout: float = 30.0, node: str | None = None,
          settings: Mapping[str, Mapping[str, str]] | None = None) -> ServerState:
    """Start a server in the background and wait until it answers as the admin.

    ``settings`` (``{section: {key: value}}``) are written to the data directory's config
    first (:func:`write_settings`).
    """
    data_dir = Path(data_dir).resolve()
    current, state = status(data_dir)
    if current == "running" and state is not None:
        raise EmbeddedServerError(
            f"a server for {data_dir} is already running at {state.url} (pid {state.pid})")
    root = project_root()
    script = root / "embedded_server" / "server.js"
    if not (root / "node_modules" / "pouchdb-server").is_dir():
        raise EmbeddedServerError(
            f"the embedded server is not installed: run `npm ci` in {root}")
    node = node or shutil.which("node")
    if node is None:
        raise EmbeddedServerError("node (Node.js 20+) is not on PATH")
    data_dir.mkdir(parents=True, exist_ok=True)
    if settings:
        write_settings(data_dir, settings)
    (data_dir / STATE_FILE).unlink(missing_ok=True)
    env = {**os.environ, "COUCHDB_USER": admin_user, "COUCHDB_PASSWORD": admin_password}
    with open(data_dir / LOG_FILE, "ab") as log:
        process = subprocess.Popen(
            [node, *NODE_OPTIONS, str(script), "--port", str(port), "--data-dir",
             str(data_dir)],
            cwd=data_dir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True)  # survives the CLI that started it
    _children[process.pid] = process
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            _children.pop(process.pid, None)
            if code == EXIT_PORT_IN_USE:
                raise EmbeddedServerError(f"port {port} on 127.0.0.1 is already in use")
            raise EmbeddedServerError(
                f"the embedded server exited with code {code}; log tail:\n"
                f"{log_tail(data_dir)}")
        state = read_state(data_dir)
        if state is not None and state.pid == process.pid and _answers(state, admin_user,
                                                                        admin_password):
            return state
        time.sleep(0.1)
    process.kill()
    process.wait()
    _children.pop(process.pid, None)
    raise EmbeddedServerError(
        f"the embedded server did not answer within {timeout:.0f}s; log tail:\n"
        f"{log_tail(data_dir)}")


def _answers(state: ServerState, user: str, password: str) -> bool:
    with CouchClient(state.url, user, password, retries=0,
                     timeouts=Timeouts(connect=1.0, read=2.0)) as client:
        try:
            return "_admin" in client.session()["userCtx"]["roles"]
        except CouchError:
            return False


def stop(data_dir: Path, *, timeout: float = 10.0) -> ServerState | None:
    """Stop the server of ``data_dir``; returns its state, or None if none was running."""
    data_dir = Path(data_dir).resolve()
    current, state = status(data_dir)
    if state is None:
        return None
    if current == "dead":
        (data_dir / STATE_FILE).unlink(missing_ok=True)
        return None
    os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(state.pid):
        time.sleep(0.05)
    if _alive(state.pid):
        os.kill(state.pid, signal.SIGKILL)
    child = _children.pop(state.pid, None)
    if child is not None:
        child.wait()
    (data_dir / STATE_FILE).unlink(missing_ok=True)
    return state
