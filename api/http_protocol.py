"""Keep the connections of ``synib api --workers N`` spread evenly over its processes.

The N processes share one listening socket. The kernel hands each new connection to whichever
process accepts it first, and a keep-alive connection stays with that process for good. A few
busy clients can so end up on one process while another idles: with 20 closed-loop clients on
two processes, splits of 14/6 and 15/5 were common, and the busier process (one core at most,
the GIL) set everyone's latency.

Each process counts, four times a second, the connections established on the port (all
processes together, read from ``/proc/net/tcp``) and compares them with its own. A process
holding more than its share (total / N, rounded up) answers the next request of as many
connections as it holds too many with ``Connection: close``. Those clients connect again (HTTP
clients do that on their own) and the kernel places the new connections anew; the next
round of counting corrects what is still uneven. Nothing is lost: the answer is complete, only
the connection ends after it. One process, or a system without ``/proc/net/tcp``: no effect.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

PROTOCOL = "api.http_protocol:BalancedHttpTools"
REFRESH_S = 0.25
_ESTABLISHED = "01"


def established_on_port(port: int, tables: tuple[Path, ...] | None = None) -> int | None:
    """TCP connections in state ESTABLISHED whose local port is ``port`` (IPv4 and IPv6), or
    None when the kernel's tables cannot be read."""
    tables = tables or (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
    suffix = f":{port:04X}"
    count = 0
    readable = False
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        readable = True
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == _ESTABLISHED and fields[1].endswith(suffix):
                count += 1
    return count if readable else None


class Balancer:
    """One per API process: decides which connections to hand back (see the module's doc)."""

    def __init__(
        self,
        processes: int,
        count_all: Callable[[], int | None],
        refresh_s: float = REFRESH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.processes = processes
        self.count_all = count_all
        self.refresh_s = refresh_s
        self.clock = clock
        self.next_count = 0.0
        self.to_hand_back = 0

    def hand_back(self, mine: int) -> bool:
        """Whether the connection answering a request now should close after it; ``mine``:
        connections this process holds."""
        if self.processes < 2:
            return False
        now = self.clock()
        if now >= self.next_count:
            self.next_count = now + self.refresh_s
            total = self.count_all()
            share = math.ceil(total / self.processes) if total else mine
            self.to_hand_back = max(0, mine - share)
        if self.to_hand_back <= 0:
            return False
        self.to_hand_back -= 1
        return True


_balancers: dict[tuple[int, int], Balancer] = {}


def balancer_for(port: int, processes: int) -> Balancer:
    """The process's balancer for a server on ``port`` run as ``processes`` processes."""
    key = (port, processes)
    if key not in _balancers:
        _balancers[key] = Balancer(processes, lambda: established_on_port(port))
    return _balancers[key]


class BalancedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with :class:`Balancer` deciding keep-alive."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.balancer = balancer_for(self.config.port, self.config.workers)

    def on_headers_complete(self) -> None:
        previous = self.cycle
        super().on_headers_complete()
        if self.cycle is not previous and self.balancer.hand_back(len(self.connections)):
            self.cycle.keep_alive = False
