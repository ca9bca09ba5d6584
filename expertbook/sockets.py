"""A zero-timeout look at a socket, shared by the database pool and the Redis publisher."""

from __future__ import annotations

from eventlet.patcher import original

# The real select module, not eventlet's green one: no wait, no hub switch.
_select = original("select")


def has_input(fileno: int) -> bool:
    """Whether the socket has something to read, or has reached its end (the peer closed
    it), right now."""
    poller = _select.poll()
    poller.register(fileno, _select.POLLIN)
    return bool(poller.poll(0))
