"""The short form of bench/faults.py: the same run and checks with a smaller crowd.

Three app processes on a PostgreSQL and a Redis of the run's own, booking clients racing for
the same times and open pages; one process killed and started again, Redis restarted,
PostgreSQL restarted. Every check of the bench (overlaps, 201s and rows, pages converged
within 5 s, only 503 with Retry-After and the kill's connection errors in the fault windows,
`flask check-invariants`) is a violation in its report, and there must be none.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from bench.faults import CONVERGE_WITHIN, Options, run
from tests.faults.conftest import _need

pytestmark = pytest.mark.e2e


def test_bookings_and_pages_come_through_a_kill_a_redis_and_a_postgres_restart():
    _need("initdb", "pg_ctl", "redis-server")
    options = Options(duration=16, clients=8, sockets=24, days=2, outage=2, log=False)
    # A thread of its own: the session's Chromium (Playwright's sync API) keeps an asyncio
    # loop running on the main thread, where the bench's asyncio.run would be refused.
    with ThreadPoolExecutor(max_workers=1) as pool:
        report = pool.submit(run, options).result()
    summary = "\n".join(report.lines)
    assert report.violations == [], summary

    # The run did what it is for: bookings raced, each fault happened under load, and the
    # pages were all measured after each one.
    figures = report.figures
    assert figures["bookings"] > 10 and figures["conflicts"] > 0, summary
    assert figures["check-invariants"] == [0, 0, 0, 0], summary
    kill, redis, postgres = report.faults
    assert kill.port is not None and redis.port is None and postgres.port is None
    for fault in report.faults:
        assert len(fault.convergence) == 24, summary
        assert all(t is not None and t <= CONVERGE_WITHIN for t in fault.convergence), summary
    assert figures["status_503"] > 0, "PostgreSQL away answers 503\n" + summary
