"""sockets.has_input: nothing to read, data, and a peer that closed."""

from __future__ import annotations

import socket

from expertbook.sockets import has_input


def test_has_input_sees_data_and_a_closed_peer_at_once():
    ours, theirs = socket.socketpair()
    try:
        assert not has_input(ours.fileno())
        theirs.send(b"x")
        assert has_input(ours.fileno())
        ours.recv(1)
        assert not has_input(ours.fileno())
        theirs.close()
        assert has_input(ours.fileno())  # the end of the stream is readable
    finally:
        ours.close()
        theirs.close()
