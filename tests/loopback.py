"""A loopback server run in a thread for the length of a block (mirrors, webhook receivers)."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def running(server: socketserver.BaseServer) -> Iterator[None]:
    """Serve ``server`` in a thread during the block, then stop and close it.

    The loop polls for shutdown every 20 ms: with the default 0.5 s, every stop waited
    up to half a second for the next poll.
    """
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
