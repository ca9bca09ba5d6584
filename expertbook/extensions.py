"""Extension instances, created unbound and attached to the app in `create_app`."""

import ipaddress

from flask import current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_socketio import SocketIO
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Named constraints, so Alembic migrations can drop them on SQLite and PostgreSQL alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# Objects stay readable after a commit without a reload: a view commits, then emits and
# answers from the same objects (one round trip less per object on the booking path).
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
socketio = SocketIO()


class _Limiter(Limiter):
    """Flask-Limiter, except that a limited view costs nothing while the app's limits are
    off (RATELIMIT_ENABLED false, as behind a proxy that limits): the library evaluates a
    view's limits all the same, about 2% of a booking's CPU. The app's own setting, not
    the extension's (which the last app initialized sets for all)."""

    def _check_request_limit(self, *args, **kwargs) -> None:
        if current_app.config.get("RATELIMIT_ENABLED", True):
            super()._check_request_limit(*args, **kwargs)


limiter = _Limiter(key_func=get_remote_address, default_limits=[])

# Public booking, by the JSON API or the booking page's form: one budget per client address.
public_booking_limit = limiter.shared_limit(
    "60 per minute", scope="public-booking", methods=["POST"]
)


def _not_placing_a_hold() -> bool:
    """The confirm step's POST books (public_booking_limit counts it); its GET places a hold."""
    return request.method not in ("GET", "POST") or (
        request.method == "POST" and request.endpoint == "public.confirm"
    )


def client_network(address: str) -> str:
    """The network a client address stands for: the /64 of an IPv6 address (what one host,
    say a cloud VM, is given, so it has as many addresses as it likes), the address itself
    for IPv4 (an IPv4-mapped IPv6 address too); anything unreadable as it is."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _hold_client() -> str:
    return client_network(get_remote_address() or "")


# Live holds (expertbook/holds.py), placed by the holds API or the confirm page: one budget
# per client network (client_network), so that nobody can keep an expert's week held.
hold_limit = limiter.shared_limit(
    "20 per minute", scope="holds", key_func=_hold_client, exempt_when=_not_placing_a_hold
)
