"""Account mails: confirm the address, reset the password, and notices of changes.

One small function per mail, each called after the commit of the change it tells about.
Every mail leaves through mail.send_email: without MAIL_SERVER one log line (`mail to=...
subject=...`, never its link: the link is a key) and, in development, /dev/mail; with it,
SMTP in a background task, so a slow mail server delays no page and a page takes as long
whether or not a mail goes out.
"""

from __future__ import annotations

import logging
from email.message import EmailMessage

from flask import Flask, current_app, render_template

from ..extensions import socketio
from ..mail import send_email
from ..models import User
from ..outbox import DeliveryError

log = logging.getLogger("expertbook.mail")


def send_confirmation_mail(user: User, token: str) -> None:
    """The sign-up mail: a link to /auth/verify/<token> that confirms the address."""
    link = f"{current_app.config['BASE_URL']}/auth/verify/{token}"
    _send(user.email, "Confirm your email address", "confirm_email", user=user, link=link)


def send_address_taken_mail(user: User) -> None:
    """To an address someone tried to sign up with again: it has an account already."""
    base = current_app.config["BASE_URL"]
    _send(
        user.email,
        "You already have an ExpertBook account",
        "address_taken",
        user=user,
        login_link=f"{base}/auth/login",
        reset_link=f"{base}/auth/reset",
    )


def send_reset_mail(user: User, token: str) -> None:
    """A link to /auth/reset/<token>, which sets a new password once, within the hour."""
    link = f"{current_app.config['BASE_URL']}/auth/reset/{token}"
    _send(user.email, "Reset your password", "password_reset", user=user, link=link)


def send_password_changed_mail(user: User) -> None:
    """The notice after any password change, so a stolen account does not change silently."""
    link = f"{current_app.config['BASE_URL']}/auth/reset"
    _send(user.email, "Your password was changed", "password_changed", user=user, link=link)


def send_two_factor_mail(user: User, enabled: bool) -> None:
    """The notice after two-factor sign-in was turned on or off."""
    subject = f"Two-factor sign-in turned {'on' if enabled else 'off'}"
    link = f"{current_app.config['BASE_URL']}/auth/reset"
    _send(user.email, subject, "two_factor", user=user, enabled=enabled, link=link)


def _send(to: str, subject: str, template: str, **context) -> None:
    app = current_app._get_current_object()
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = app.config["MAIL_FROM"]
    message["To"] = to
    message.set_content(render_template(f"email/{template}.txt", **context))
    message.add_alternative(render_template(f"email/{template}.html", **context), subtype="html")
    if not app.config["MAIL_SERVER"] or app.config.get("DELIVER_INLINE"):
        _deliver(app, message)  # a log line (and /dev/mail), or the test's inbox
    else:
        socketio.start_background_task(_deliver, app, message)


def _deliver(app: Flask, message: EmailMessage) -> None:
    with app.app_context():
        try:
            send_email(message)
        except DeliveryError as error:
            log.error("could not send the mail %r: %s", message["Subject"], error.message)
