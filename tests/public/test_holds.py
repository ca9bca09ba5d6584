"""Live holds on the pages without JavaScript: the confirm step holds its time, the booking
page shows other bookers' holds, and nothing a crawler or a prefetch does holds anything."""

import re

import pytest
import sqlalchemy as sa

from expertbook.extensions import db, socketio
from expertbook.models import Hold
from tests.public import london, london_expert, next_week, slots_on, zulu

HELD_RE = re.compile(r'<span class="slot held" data-start="([^"]+)"')


@pytest.fixture
def intro(make_user, make_event_type):
    return london_expert(make_user, make_event_type)


def holds() -> list[Hold]:
    return list(db.session.scalars(sa.select(Hold)))


def day_page(client) -> str:
    return client.get(f"/ann/intro?date={next_week()}&tz=Europe/London").text


def confirm_path(start) -> str:
    return f"/ann/intro/book?start={zulu(start)}&tz=Europe/London"


def test_the_holders_own_time_stays_a_link_for_them_and_held_for_others(app, client, intro):
    """Finding 9: a booker who goes back can pick their own time again."""
    ten = london(next_week(), 10)
    assert client.get(confirm_path(ten)).status_code == 200
    assert len(holds()) == 1
    mine = day_page(client)
    assert zulu(ten) in [start for start, _, _ in slots_on(mine)]
    assert HELD_RE.findall(mine) == []
    other = day_page(app.test_client())
    assert HELD_RE.findall(other) == [zulu(ten)]
    assert zulu(ten) not in [start for start, _, _ in slots_on(other)]
    # Going back to it holds it again for the same booker (their hold, renewed).
    assert client.get(confirm_path(ten)).status_code == 200
    assert len(holds()) == 1


def test_only_the_held_time_itself_shows_held_not_its_buffers_neighbours(
    app, client, make_user, make_event_type
):
    """Finding 9: as the live page draws it, a time only a buffer keeps is not offered, and
    not shown held either."""
    london_expert(make_user, make_event_type, buffer_after_minutes=15)
    day = next_week()
    ten = london(day, 10)
    assert client.get(confirm_path(ten)).status_code == 200
    other = day_page(app.test_client())
    assert HELD_RE.findall(other) == [zulu(ten)]
    offered = [start for start, _, _ in slots_on(other)]
    # 9:30 (its 15 minutes after reach 10:15) and 10:30 (the hold's 15 minutes after).
    assert zulu(london(day, 9, 30)) not in offered
    assert zulu(london(day, 10, 30)) not in offered
    assert zulu(london(day, 9)) in offered and zulu(london(day, 11)) in offered


def test_slot_links_are_nofollow_and_the_confirm_step_is_not_indexed(client, intro):
    """Finding 8: crawlers do not follow slot links nor index the confirm step."""
    page = day_page(client)
    assert slots_on(page)  # SLOT_RE reads only links with rel="nofollow"
    assert page.count('class="slot"') == page.count('rel="nofollow"')
    confirm = client.get(confirm_path(london(next_week(), 10))).text
    assert '<meta name="robots" content="noindex, nofollow">' in confirm


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Purpose": "prefetch"},
        {"Sec-Purpose": "prefetch;prerender"},
        {"Purpose": "prefetch"},
        {"X-Moz": "prefetch"},
    ],
)
def test_a_prefetch_of_the_confirm_step_holds_nothing(app, client, intro, headers):
    """Finding 8: a browser's prefetch shows the page but places no hold and tells nobody."""
    socket = socketio.test_client(app)
    socket.emit("join", {"event_type_id": intro.id})
    socket.get_received()
    response = client.get(confirm_path(london(next_week(), 10)), headers=headers)
    assert response.status_code == 200
    assert 'data-hold-id=""' in response.text
    assert holds() == []
    assert [e for e in socket.get_received() if e["name"] == "slot_held"] == []
    socket.disconnect()
    # The real visit holds it.
    assert client.get(confirm_path(london(next_week(), 10))).status_code == 200
    assert len(holds()) == 1
