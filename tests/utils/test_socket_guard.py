"""The tests' socket guard (tests/netguard, installed by tests/conftest.py): a connection to a
non-loopback address fails at once, in this process and in a subprocess started with or
without its own env; loopback (TCP and UDP, IPv4 and IPv6) keeps working."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import bertlab_netguard as guard  # tests/netguard, put on sys.path by conftest
import pytest

OUTSIDE = "192.0.2.1"  # TEST-NET-1 (RFC 5737): never routed


def _echo_server(family: int, host: str) -> tuple[socket.socket, int]:
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.bind((host, 0))
    srv.listen(1)

    def serve():
        conn, _ = srv.accept()
        with conn:
            conn.sendall(conn.recv(16).upper())

    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1]


def test_non_loopback_connections_are_refused_at_once():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        with pytest.raises(guard.NetworkBlocked, match="192.0.2.1"):
            s.connect((OUTSIDE, 80))
        with pytest.raises(guard.NetworkBlocked):
            s.connect_ex((OUTSIDE, 80))
    with pytest.raises(guard.NetworkBlocked, match="DNS lookup of 'example.com'"):  # no DNS lookup either
        socket.create_connection(("example.com", 443), timeout=5)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        with pytest.raises(guard.NetworkBlocked):
            u.sendto(b"x", ("8.8.8.8", 53))
    if socket.has_ipv6:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s6:
            with pytest.raises(guard.NetworkBlocked):
                s6.connect(("2001:db8::1", 80, 0, 0))


@pytest.mark.parametrize(
    "family,host,name", [(socket.AF_INET, "127.0.0.1", "localhost"), (socket.AF_INET6, "::1", "::1")]
)
def test_loopback_stays_open(family, host, name):
    if family == socket.AF_INET6 and not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        srv, port = _echo_server(family, host)
    except OSError as err:
        pytest.skip(f"cannot listen on {host}: {err}")
    with srv, socket.create_connection((name, port), timeout=10) as c:
        c.sendall(b"ping")
        assert c.recv(16) == b"PING"
    with socket.socket(family, socket.SOCK_DGRAM) as a, socket.socket(family, socket.SOCK_DGRAM) as b:
        b.bind((host, 0))
        a.sendto(b"dgram", b.getsockname())
        assert b.recv(16) == b"dgram"


def test_address_rules():
    assert all(
        guard.is_local_host(h)
        for h in [
            "127.0.0.1",
            "127.3.2.1",
            "::1",
            "[::1]",
            "::ffff:127.0.0.1",
            "0.0.0.0",
            "localhost",
            "LOCALHOST",
            socket.gethostname(),
        ]
    )
    assert not any(
        guard.is_local_host(h)
        for h in ["10.0.0.1", "192.168.1.1", "8.8.8.8", "::ffff:8.8.8.8", "2001:db8::1", "pypi.org", None]
    )
    assert socket.getaddrinfo("localhost", 80) and socket.getaddrinfo("192.0.2.1", 80)  # numeric: no lookup


_CHILD = r"""
import socket, sys
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
socket.create_connection(srv.getsockname(), timeout=10).close()   # loopback: fine
try:
    socket.create_connection(("192.0.2.1", 80), timeout=10)
except Exception as err:
    print(type(err).__name__, err)
    sys.exit(0)
sys.exit(3)
"""


@pytest.mark.parametrize("env", ["inherited", "own env", "own env with PYTHONPATH"])
def test_subprocesses_get_the_guard(env):
    envs = {
        "inherited": None,
        "own env": {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        "own env with PYTHONPATH": {**os.environ, "PYTHONPATH": os.getcwd()},
    }
    res = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, env=envs[env], timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith("NetworkBlocked network access blocked by the tests' socket guard"), res.stdout
