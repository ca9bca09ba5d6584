"""Raw Socket.IO packets against a real server process (eventlet), over HTTP long-polling:
what a hostile client can send that the test client cannot."""

from __future__ import annotations

import http.client
import json

from tests.e2e.conftest import Server


def poll(server: Server, method: str, sid: str | None = None, body: str | None = None) -> str:
    path = "/socket.io/?EIO=4&transport=polling" + (f"&sid={sid}" if sid else "")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        headers = {"Content-Type": "text/plain;charset=UTF-8"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        text = response.read().decode()
        assert response.status == 200, text
        return text
    finally:
        conn.close()


def test_unreadable_packets_get_error_events_and_leave_no_traceback(sqlite_site, start_server):
    server = start_server(sqlite_site.database_url)
    sid = json.loads(poll(server, "GET")[1:])["sid"]
    poll(server, "POST", sid, "40")  # connect to the default namespace
    assert poll(server, "GET", sid).startswith("40")
    for raw in ('42["join",', "42" + "[" * 30_000, '42{"a": 1}', "42[]"):
        assert poll(server, "POST", sid, "4" + raw) == "OK"
        answer = poll(server, "GET", sid)
        assert answer.startswith('42["error",') and '"code":"bad_packet"' in answer.replace(
            " ", ""
        ), answer
    log = server.log.read_text()
    assert "Traceback" not in log and "RecursionError" not in log
