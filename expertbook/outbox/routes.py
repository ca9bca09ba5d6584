"""The outbox's pages: /dev/mail, the mails this process wrote to the log (development
only), and the inline delivery that tests use (DELIVER_INLINE)."""

from __future__ import annotations

import ipaddress

from flask import Blueprint, abort, current_app, render_template, request

from ..cache_control import no_store
from ..mail import dev_mails

bp = Blueprint("outbox", __name__)


def _from_loopback() -> bool:
    """Whether the request comes from this machine (127.0.0.0/8 or ::1). Behind a proxy
    (TRUSTED_PROXIES) remote_addr is the forwarded client, so the proxy's own address
    does not count."""
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False


@bp.get("/dev/mail")
@no_store
def dev_mail():
    """The last mails 'sent' without a mail server, with their text and links (not in
    production, and only to this machine: they hold sign-in and manage links)."""
    config = current_app.config
    if config.get("PRODUCTION") or not _from_loopback():
        abort(404)
    return render_template(
        "dev/mail.html",
        mails=list(dev_mails(current_app)),
        mail_server=config["MAIL_SERVER"],
    )


@bp.after_app_request
def deliver_inline(response):
    """DELIVER_INLINE: what this request committed is delivered before it answers."""
    if current_app.config.get("DELIVER_INLINE"):
        from .worker import deliver_committed, load_handlers

        load_handlers()
        deliver_committed(current_app._get_current_object())
    return response
