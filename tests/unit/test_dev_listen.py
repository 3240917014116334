"""`vettra dev` binds its own listening socket (so a busy port is one clear line); the
connections asyncio accepts on it must still get TCP_NODELAY, or every answer waits for
a delayed ACK (~40 ms here)."""

from __future__ import annotations

import asyncio
import socket

from vettra.cli import _listen


def test_connections_accepted_on_the_dev_socket_have_nodelay() -> None:
    sock = _listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    seen: list[int] = []

    async def main() -> None:
        accepted = asyncio.Event()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                conn = transport.get_extra_info("socket")
                seen.append(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                accepted.set()
                transport.close()

        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.wait_for(accepted.wait(), 5)
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(main())
    assert seen and seen[0] != 0
