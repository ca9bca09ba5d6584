"""The JSON API, /api/v1."""

from flask import Blueprint

from ..extensions import csrf
from .auth import refuse_foreign_origin
from .errors import ApiError, error_response

bp = Blueprint("api", __name__, url_prefix="/api/v1")
# Bearer-token calls carry no cookie, so CSRF does not apply to them; calls authenticated by
# the browser session are checked by hand in `auth.api_user`; unauthenticated writes from
# another site's page are refused by their Origin.
csrf.exempt(bp)
bp.before_request(refuse_foreign_origin)


@bp.errorhandler(ApiError)
def api_error(error: ApiError):
    # RFC 6750: a 401 says which scheme to use.
    headers = {"WWW-Authenticate": 'Bearer realm="expertbook"'} if error.status == 401 else None
    return error_response(error.status, error.code, error.message, error.field, headers=headers)


from . import (  # noqa: E402,F401  (views)
    availability,
    bookings,
    calendars,
    confirmation,
    event_types,
    holds,
    routes,
    slots,
    webhooks,
)
