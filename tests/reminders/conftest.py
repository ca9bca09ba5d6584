import pytest

from expertbook.availability import set_availability
from expertbook.extensions import db


@pytest.fixture
def expert(make_user):
    """Berta, an expert in Berlin who takes bookings at any hour of any day. Tests name
    their app fixture (app, any_app) before this one."""
    user = make_user("berta", expert=True, name="Berta Coach", timezone="Europe/Berlin")
    set_availability(user, "Europe/Berlin", {day: [(0, 1440)] for day in range(7)})
    db.session.commit()
    return user


@pytest.fixture
def coaching(expert, make_event_type):
    """60 minutes, reminded a day and an hour before, bookable up to two years ahead."""
    return make_event_type(
        expert,
        slug="coaching",
        title="Coaching",
        duration_minutes=60,
        max_days_ahead=730,
        reminder_minutes=[1440, 60],
    )
