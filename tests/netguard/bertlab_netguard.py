"""The tests' socket guard: any connection (or UDP datagram) to a non-loopback address fails
at once with :class:`NetworkBlocked`, so no test can reach the network by accident, and none
waits on a network timeout. Loopback stays open: SLURM, DDP (gloo's rendezvous), W&B's
local service, a test's own server.

Allowed: AF_UNIX and other non-IP sockets; 127.0.0.0/8, ::1 and ::ffff:127.x; the unspecified
address (0.0.0.0, ::, which Linux connects to this machine); the names ``localhost`` and
this machine's own host name (SLURM and Lightning may set MASTER_ADDR to it). Any other host
name is refused without resolving it: ``socket.getaddrinfo`` of such a name raises too (a
DNS lookup is network access).

Installed by ``tests/conftest.py`` in the pytest process and, through ``sitecustomize.py``
next to this file (``tests/netguard`` is put first on PYTHONPATH), in every Python
subprocess a test starts. Native code that opens sockets itself (torch's TCPStore and gloo,
libcurl, the wandb-core binary, sbatch) is not intercepted: it is configured for loopback
or offline by the tests. ``BERTLAB_ALLOW_NETWORK=1`` turns the guard off.
"""

from __future__ import annotations

import ipaddress
import os
import socket

ALLOW_ENV = "BERTLAB_ALLOW_NETWORK"
GUARD_DIR = os.path.dirname(os.path.abspath(__file__))
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
_ORIGINAL: dict[str, object] = {}


class NetworkBlocked(RuntimeError):
    """A test tried to reach a non-loopback address."""


def is_local_host(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.strip("[]").split("%", 1)[0].lower()  # [::1], fe80::1%eth0
    if name in _LOCAL_NAMES or name == socket.gethostname().lower():
        return True
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return False  # another host name: refused without a DNS lookup
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


def _check(sock: socket.socket, address: object, what: str) -> None:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    host = address[0] if isinstance(address, tuple) and address else address
    if not is_local_host(host):
        raise NetworkBlocked(
            f"network access blocked by the tests' socket guard: {what} to {address!r} "
            f"(only loopback is allowed; tests/netguard/bertlab_netguard.py)"
        )


def install() -> None:
    """Patch socket.socket (idempotent; a no-op when BERTLAB_ALLOW_NETWORK=1)."""
    if _ORIGINAL or os.environ.get(ALLOW_ENV) == "1":
        return
    cls = socket.socket
    _ORIGINAL.update(connect=cls.connect, connect_ex=cls.connect_ex, sendto=cls.sendto, getaddrinfo=socket.getaddrinfo)

    def connect(self, address):
        _check(self, address, "connect")
        return _ORIGINAL["connect"](self, address)

    def connect_ex(self, address):
        _check(self, address, "connect")
        return _ORIGINAL["connect_ex"](self, address)

    def sendto(self, data, *args):
        if args:  # sendto(data, address) or sendto(data, flags, address)
            _check(self, args[-1], "sendto")
        return _ORIGINAL["sendto"](self, data, *args)

    def getaddrinfo(host, *args, **kwargs):
        if host not in (None, "", b"") and not _is_ip_literal(host) and not is_local_host(host):
            raise NetworkBlocked(
                f"network access blocked by the tests' socket guard: DNS lookup of {host!r} "
                f"(only loopback is allowed; tests/netguard/bertlab_netguard.py)"
            )
        return _ORIGINAL["getaddrinfo"](host, *args, **kwargs)

    cls.connect, cls.connect_ex, cls.sendto = connect, connect_ex, sendto
    socket.getaddrinfo = getaddrinfo


def _is_ip_literal(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    try:
        ipaddress.ip_address(str(host).strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def uninstall() -> None:
    if _ORIGINAL:
        socket.getaddrinfo = _ORIGINAL.pop("getaddrinfo")
        for name, fn in _ORIGINAL.items():
            setattr(socket.socket, name, fn)
        _ORIGINAL.clear()


def with_guard_path(pythonpath: str | None) -> str:
    """PYTHONPATH with tests/netguard first (so that its sitecustomize.py runs at start-up)."""
    parts = [p for p in (pythonpath or "").split(os.pathsep) if p and p != GUARD_DIR]
    return os.pathsep.join([GUARD_DIR, *parts])
