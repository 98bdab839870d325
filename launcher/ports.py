"""Free TCP ports on the loopback interface, for servers started by tests and launchers.

A port is free when the kernel lets us bind it. Between closing our probe socket and the server
binding the port another process may take it; callers detect that from the server's own error
and retry with fresh ports.
"""

from __future__ import annotations

import contextlib
import socket

LOOPBACK = "127.0.0.1"


def pick_free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """Return `count` distinct ports that are bindable on `host` right now.

    All probe sockets stay open until every port is chosen, so the kernel never hands out the
    same ephemeral port twice in one call.
    """
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            probe = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            probe.bind((host, 0))
            ports.append(probe.getsockname()[1])
        return ports


def pick_free_port(host: str = LOOPBACK) -> int:
    """Return one port that is bindable on `host` right now."""
    return pick_free_ports(1, host)[0]


def is_port_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether `port` can be bound on `host`; lets callers fail early with a clear message.

    SO_REUSEADDR matches what servers set, so a port left in TIME_WAIT by a server that just
    stopped counts as free (a restart on the same port works) while a live listener does not.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def pick_free_port_run(count: int, host: str = LOOPBACK, attempts: int = 100) -> int:
    """The first of `count` consecutive ports that are all bindable on `host` right now (a
    ranker's workers serve metrics on consecutive ports)."""
    for _ in range(attempts):
        first = pick_free_port(host)
        if first + count <= 65536 and all(
            is_port_free(port, host) for port in range(first + 1, first + count)
        ):
            return first
    raise RuntimeError(f"found no {count} consecutive free ports on {host}")
