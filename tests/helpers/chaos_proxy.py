"""A TCP proxy that breaks connections on purpose, for fault-injection tests of replication.

It sits between a client and the real server and forwards bytes both ways. Two ways to fail:

- **random cuts** (``cut_probability``): each new connection is, with that probability, given
  a byte budget drawn from ``[0, max_bytes]``; when the bytes forwarded in either direction
  reach it, both sockets are reset. A cut therefore lands anywhere: before a request is
  complete, after the server acted but before its answer arrived, in the middle of a body,
  between keep-alive requests. Draws come from a seeded ``random.Random``, so a failing seed
  can be replayed (thread timing aside).
- **an outage** (``outage_after(n)``): after ``n`` more bytes, every connection is reset and
  new ones are refused until ``heal()``.

And one way to be slow: ``rate`` bytes a second each way, shared by every connection (a rural
mobile link for benchmarks, ``benchmarks/working_set.py``; bandwidth only, no added latency).
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from dataclasses import dataclass, field


@dataclass
class ProxyStats:
    connections: int = 0
    cuts: int = 0
    bytes_forwarded: int = 0


@dataclass
class _Connection:
    client: socket.socket
    upstream: socket.socket
    budget: int | None
    forwarded: int = 0
    pumps_done: int = 0
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Throttle:
    """``rate`` bytes a second (0: unlimited): each read waits for its share of the link."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.lock = threading.Lock()
        self.next_free = time.monotonic()

    def take(self, nbytes: int) -> None:
        if self.rate <= 0:
            return
        with self.lock:
            start = max(self.next_free, time.monotonic())
            self.next_free = start + nbytes / self.rate
            wait = self.next_free - time.monotonic()
        if wait > 0:
            time.sleep(wait)


class ChaosProxy:
    def __init__(self, target_host: str, target_port: int, *, seed: int = 0,
                 cut_probability: float = 0.0, max_bytes: int = 100_000,
                 rate: int = 0) -> None:
        self.target = (target_host, target_port)
        self._throttles = {"up": _Throttle(rate), "down": _Throttle(rate)}
        self.cut_probability = cut_probability
        self.max_bytes = max_bytes
        self.stats = ProxyStats()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._outage_budget: int | None = None
        self._down = False
        self._connections: list[_Connection] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ChaosProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._thread.join()
        self._listener.close()
        with self._lock:
            for conn in self._connections:
                _reset(conn)

    # -- controls ---------------------------------------------------------------------------

    def set_faults(self, probability: float) -> None:
        with self._lock:
            self.cut_probability = probability

    def outage_after(self, nbytes: int) -> None:
        with self._lock:
            self._outage_budget = nbytes

    def heal(self) -> None:
        with self._lock:
            self._outage_budget = None
            self._down = False

    @property
    def down(self) -> bool:
        return self._down

    # -- plumbing ---------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                if self._down:
                    _abort(client)
                    continue
                budget = None
                if self._random.random() < self.cut_probability:
                    budget = self._random.randint(0, self.max_bytes)
                self.stats.connections += 1
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                _abort(client)
                continue
            conn = _Connection(client, upstream, budget)
            with self._lock:
                self._connections = [c for c in self._connections if not c.closed] + [conn]
            for source, sink, way in ((client, upstream, "up"), (upstream, client, "down")):
                threading.Thread(target=self._pump,
                                 args=(conn, source, sink, self._throttles[way]),
                                 daemon=True).start()

    def _pump(self, conn: _Connection, source: socket.socket, sink: socket.socket,
              throttle: _Throttle) -> None:
        try:
            while True:
                data = source.recv(16384)
                if not data:
                    break
                throttle.take(len(data))
                with conn.lock:
                    if conn.closed:
                        break
                    allowed = len(data)
                    if conn.budget is not None:
                        allowed = max(0, min(allowed, conn.budget - conn.forwarded))
                    allowed = self._outage_allowance(allowed)
                    if allowed:
                        sink.sendall(data[:allowed])
                        conn.forwarded += allowed
                    if allowed < len(data):
                        with self._lock:
                            self.stats.cuts += 1
                        _reset(conn)
                        break
                with self._lock:
                    self.stats.bytes_forwarded += len(data)
        except OSError:
            pass
        with conn.lock:
            conn.pumps_done += 1
            if conn.closed:
                return
            if conn.pumps_done == 2:
                conn.closed = True
                conn.client.close()
                conn.upstream.close()
                return
            try:  # a clean end from one side: pass the half-close on
                sink.shutdown(socket.SHUT_WR)
            except OSError:
                _reset(conn)

    def _outage_allowance(self, wanted: int) -> int:
        with self._lock:
            if self._down:
                return 0
            if self._outage_budget is None:
                return wanted
            allowed = min(wanted, self._outage_budget)
            self._outage_budget -= allowed
            if self._outage_budget == 0:
                self._down = True  # every later byte, on any connection, resets it
            return allowed


def _reset(conn: _Connection) -> None:
    conn.closed = True
    _abort(conn.client)
    _abort(conn.upstream)


def _abort(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a dropped mobile connection looks to both ends."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # close() alone does not wake a thread blocked in recv() on this socket (and then no
        # RST is sent until it returns); shutting down the read side wakes it at once.
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
