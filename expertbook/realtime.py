"""Socket.IO handlers (default namespace) and the events the server sends."""
