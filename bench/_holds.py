"""bench/booking.py's part on live holds (issue 18).

8a. A booking's cost with a hold and without: on a fresh server pair, N bookings of distinct
    free slots of the 8 experts, each sending the X-Hold-Token of a live hold of its own
    slot, against N bookings of other free slots without any hold (same pair, same threads,
    without first, then with, then without again: the two "without" runs are averaged).
    The holds are written straight into the database beforehand, untimed: one live hold per
    client address and expert allows no other way to have N live at once. Target: a booking
    with a hold costs at most 10% more server CPU than one without (the rates are shown
    too, but on a shared machine they move with whatever else runs).
8b. slot_held fan-out against slot_taken's, measured back to back under the same load: on
    a fresh pair, S sockets in one event type's room and R booking POSTs one at a time,
    timed to the last socket hearing `slot_taken` (as 3.); then on another fresh pair the
    same with R hold POSTs and `slot_held`, each from an address of its own (behind one
    trusted proxy, X-Forwarded-For): from one address, each hold would also end the one
    before, a second announcement (slot_released) in the same request.
    Target: slot_held's last-socket p99 within 1.1x slot_taken's.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import datetime, timedelta

from _servers import percentile, run_load, verdict

HOLD_COST_TARGET = 1.1
HOLD_FANOUT_TARGET = 1.1


def write_holds(database_url: str, event_type_ids: list[int], starts: list[str], tokens: list[str]):
    """Live holds (an hour to go) of start i of expert i % len(ids), token i."""
    import sqlalchemy as sa

    from expertbook.models import hash_token

    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        experts = dict(
            conn.execute(
                sa.text("SELECT id, expert_id FROM event_type WHERE id = ANY(:ids)"),
                {"ids": event_type_ids},
            ).all()
        )
        now = datetime.now().astimezone()
        rows = []
        for i, (start, token) in enumerate(zip(starts, tokens, strict=True)):
            event_type_id = event_type_ids[i % len(event_type_ids)]
            begins = datetime.fromisoformat(start)
            rows.append(
                {
                    "id": secrets.token_hex(16),
                    "expert_id": experts[event_type_id],
                    "event_type_id": event_type_id,
                    "start_at": begins,
                    "end_at": begins + timedelta(minutes=15),
                    "expires_at": now + timedelta(hours=1),
                    "token_hash": hash_token(token),
                    "address": f"bench-{i}",
                    "created_at": now,
                }
            )
        conn.execute(
            sa.text(
                "INSERT INTO slot_hold (id, expert_id, event_type_id, start_at, end_at,"
                " expires_at, token_hash, session_key, address, created_at) VALUES (:id,"
                " :expert_id, :event_type_id, :start_at, :end_at, :expires_at, :token_hash, '',"
                " :address, :created_at)"
            ),
            rows,
        )
    engine.dispose()


def hold_cost(group, env, database_url, event_type_ids, day0, size, slot, json_body) -> list[str]:
    """8a. Bookings with a hold of their own slot against bookings without any."""
    n, cap, threads = size.bookings, size.phase_cap, size.threads
    k = len(event_type_ids)

    def bookings(offset: int, tag: str, tokens: list[str] | None = None):
        day = day0 + timedelta(minutes=offset)

        def build(i: int):
            body = json_body(
                {"start": slot(day, i // k), "name": f"Held {i}", "email": f"{tag}{i}@example.com"}
            )
            path = f"/api/v1/event-types/{event_type_ids[i % k]}/bookings"
            headers = {"X-Hold-Token": tokens[i]} if tokens else {}
            return "POST", path, body, headers

        return build

    tokens = [secrets.token_urlsafe(24) for _ in range(n)]
    held_day = day0 + timedelta(minutes=120)
    write_holds(database_url, event_type_ids, [slot(held_day, i // k) for i in range(n)], tokens)
    pair = group.start("wsgi.py", 2, env)
    try:
        run_load(pair, lambda i: ("GET", "/api/v1/ping", None), threads * 2, threads, deadline=10)
        warm = bookings(150, "hw")
        run_load(pair, warm, threads * 2, threads, deadline=10)
        without = run_load(pair, bookings(105, "h0-"), n, threads, deadline=cap)
        with_hold = run_load(pair, bookings(120, "h1-", tokens), n, threads, deadline=cap)
        again = run_load(pair, bookings(135, "h2-"), n, threads, deadline=cap)
    finally:
        group.stop()
    lines = [
        without.line("booking, no hold", "bookings"),
        with_hold.line("booking, its own hold (X-Hold-Token)", "bookings"),
        again.line("booking, no hold (again)", "bookings"),
    ]
    for result in (without, with_hold, again):
        if result.statuses.get(201, 0) != result.count:
            lines.append(f"  NOT all 201: {dict(result.statuses)}  e.g. {result.sample_error}")
    base_rate = (without.rate + again.rate) / 2
    cost = base_rate / with_hold.rate

    def cpu(result) -> float:
        return 1000 * result.server_cpu / max(result.count, 1)

    base_cpu = (cpu(without) + cpu(again)) / 2
    cpu_cost = cpu(with_hold) / base_cpu
    lines.append(
        f"a booking with a hold costs {cpu_cost:.2f}x one without in server CPU "
        f"({cpu(with_hold):.2f} vs {base_cpu:.2f} ms per booking; by rate {cost:.2f}x; target "
        f"<= {HOLD_COST_TARGET}): {verdict(cpu_cost <= HOLD_COST_TARGET)}"
    )
    return lines


def hold_fan_out(group, env, fan_out, size, event_type_id, day0, slot) -> list[str]:
    """8b. slot_held to S sockets, against slot_taken measured right before it."""
    rooms = {"event_type_id": event_type_id}

    def book(r: int):
        start = slot(day0 + timedelta(minutes=180), r)
        payload = {"start": start, "name": f"Fan {r}", "email": f"hfan{r}@example.com"}
        return f"/api/v1/event-types/{event_type_id}/bookings", payload, start

    def hold(r: int):
        start = slot(day0 + timedelta(minutes=165), r)
        address = {"X-Forwarded-For": f"10.0.{r // 256}.{r % 256}"}
        return f"/api/v1/event-types/{event_type_id}/holds", {"start": start}, start, address

    fans = {}
    for event, post in (("slot_taken", book), ("slot_held", hold)):
        pair = group.start("wsgi.py", 2, {**env, "PROXY_COUNT": "1"})
        try:
            fans[event] = asyncio.run(
                fan_out(pair, size.sockets, size.rounds, rooms, post, event=event)
            )
        finally:
            group.stop()
    lines = fans["slot_taken"].lines("ExpertBook (booking POST, slot_taken)")
    lines += fans["slot_held"].lines("ExpertBook (hold POST, slot_held)")
    for fan in fans.values():
        if fan.incomplete or fan.failed_posts:
            lines.append(f"  problems: {fan.failed_posts[:2]} {fan.incomplete} incomplete")
    held_p99 = percentile(fans["slot_held"].last_ms, 99)
    taken_p99 = percentile(fans["slot_taken"].last_ms, 99)
    ratio = held_p99 / taken_p99
    lines.append(
        f"slot_held last-socket p99 {held_p99:.1f} ms vs slot_taken {taken_p99:.1f} ms: "
        f"{ratio:.2f}x (target <= {HOLD_FANOUT_TARGET}): {verdict(ratio <= HOLD_FANOUT_TARGET)}"
    )
    return lines
