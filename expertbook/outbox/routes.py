"""The outbox's pages: /dev/mail, the mails this process wrote to the log (development
only), and the inline delivery that tests use (DELIVER_INLINE)."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template

from ..cache_control import no_store
from ..mail import dev_mails

bp = Blueprint("outbox", __name__)


@bp.get("/dev/mail")
@no_store
def dev_mail():
    """The last mails 'sent' without a mail server, with their text and links (not in
    production: they hold sign-in and manage links)."""
    config = current_app.config
    if config.get("PRODUCTION"):
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
