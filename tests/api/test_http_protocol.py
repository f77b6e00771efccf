"""The connection balancer of ``synib api --workers N`` (api/http_protocol.py): counting the
port's connections from the kernel's tables, and which connections a process hands back."""

from __future__ import annotations

from pathlib import Path

from api.http_protocol import Balancer, established_on_port

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"


def _line(local: str, remote: str, state: str) -> str:
    return f"   0: {local} {remote} {state} 00000000:00000000 00:00000000 00000000  0 0 123\n"


def test_established_connections_on_a_port_are_counted_from_the_kernel_tables(
    tmp_path: Path,
) -> None:
    """Port 8000 is 1F40: server ends in state 01 count (IPv4 and IPv6); the listening socket
    (0A), a closing one (06), another port and the client end of a connection do not."""
    tcp = tmp_path / "tcp"
    tcp.write_text(
        HEADER
        + _line("0100007F:1F40", "00000000:0000", "0A")
        + _line("0100007F:1F40", "0100007F:A001", "01")
        + _line("0100007F:1F40", "0100007F:A002", "01")
        + _line("0100007F:1F40", "0100007F:A003", "06")
        + _line("0100007F:A001", "0100007F:1F40", "01")
        + _line("0100007F:1F41", "0100007F:A004", "01")
    )
    tcp6 = tmp_path / "tcp6"
    tcp6.write_text(
        HEADER + _line("00000000000000000000000001000000:1F40", "0" * 32 + ":B000", "01")
    )
    assert established_on_port(8000, (tcp, tcp6)) == 3
    assert established_on_port(8000, (tcp, tmp_path / "missing")) == 2
    assert established_on_port(8000, (tmp_path / "missing",)) is None


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_process_over_its_share_hands_back_the_excess_once_per_count() -> None:
    """20 connections on 2 processes: one holding 14 closes 4 (share 10), then waits for the
    next count; once it holds its share it hands back none."""
    clock = _Clock()
    total = {"n": 20}
    balancer = Balancer(2, lambda: total["n"], refresh_s=0.25, clock=clock)
    assert [balancer.hand_back(14) for _ in range(6)] == [True] * 4 + [False] * 2
    clock.now += 0.1  # before the next count: nothing more, even if still over
    assert not balancer.hand_back(14)
    clock.now += 0.2
    assert not balancer.hand_back(10)  # counted again: at its share
    clock.now += 0.3
    total["n"] = 21  # an odd total: the share rounds up (11)
    assert [balancer.hand_back(12) for _ in range(2)] == [True, False]


def test_one_process_or_unknown_totals_never_hand_back() -> None:
    assert not any(Balancer(1, lambda: 20).hand_back(20) for _ in range(5))
    assert not any(Balancer(2, lambda: None).hand_back(20) for _ in range(5))
    assert not any(Balancer(2, lambda: 0).hand_back(3) for _ in range(5))


def test_the_protocol_balances_over_the_processes_uvicorn_runs() -> None:
    """The share comes from the server's own process count (``synib api --workers``), not from
    a setting another process may have read differently."""
    import asyncio

    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from api.http_protocol import BalancedHttpTools

    async def app(scope: object, receive: object, send: object) -> None:
        return None

    loop = asyncio.new_event_loop()
    try:
        for workers in (1, 3):
            config = Config(app, port=8123, workers=workers)
            protocol = BalancedHttpTools(config, ServerState(), {}, _loop=loop)
            assert protocol.balancer.processes == workers
    finally:
        loop.close()
