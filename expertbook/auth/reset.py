"""Password reset by mail, and the address confirmation link (views of the auth blueprint)."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from ..accounts import find_user, normalize_email, set_password
from ..errors import FieldError
from ..extensions import db, limiter
from ..models import EmailToken, utcnow
from .forms import ResetPasswordForm, ResetRequestForm
from .mail import send_password_changed_mail, send_reset_mail
from .routes import bp, kept_form_page
from .tokens import confirm_email, find_email_token, issue_email_token

RESET_GONE = "This reset link is unknown, used or more than an hour old. Ask for a new one."
CONFIRM_GONE = (
    "This confirmation link is unknown or more than two days old. Log in and send yourself "
    "a new one from your profile."
)


def _reset_key() -> str:
    """Per account: an address has at most one, however it is typed."""
    typed = (request.form.get("email") or "").strip()[:254]
    try:
        return "reset:" + normalize_email(typed)
    except FieldError:
        return "reset:" + typed.lower()


@bp.route("/reset", methods=["GET", "POST"])
@limiter.limit(
    "10 per hour",
    methods=["POST"],
    on_breach=kept_form_page("auth/reset_request.html", ResetRequestForm),
)
@limiter.limit(
    "3 per hour",
    methods=["POST"],
    key_func=_reset_key,
    on_breach=kept_form_page("auth/reset_request.html", ResetRequestForm),
)
def reset_request():
    """Mail a reset link; the same answer whether or not the address has an account."""
    form = ResetRequestForm()
    if form.validate_on_submit():
        user = find_user(form.email.data)
        if user is not None:
            token = issue_email_token(user, EmailToken.RESET, utcnow())
            db.session.commit()
            send_reset_mail(user, token)  # in the background with a mail server
        flash(
            f"If {form.email.data} has an account, a link to choose a new password is on its "
            "way. It works once, within the hour.",
            "info",
        )
        return redirect(url_for("auth.login"))
    return render_template("auth/reset_request.html", form=form)


@bp.route("/reset/<token>", methods=["GET", "POST"])
@limiter.limit("20 per minute", methods=["POST"])
def reset_password(token: str):
    """Choose a new password with a mailed link; every session of the account ends."""
    email_token = find_email_token(token, EmailToken.RESET, utcnow())
    if email_token is None or email_token.used_at is not None:
        abort(404, description=RESET_GONE)
    form = ResetPasswordForm()
    if form.validate_on_submit():
        user = email_token.user
        set_password(user, form.password.data)  # retires this link and every other one
        db.session.commit()
        send_password_changed_mail(user)
        flash("Your password is changed: log in with it.", "success")
        return redirect(url_for("auth.login"))
    return render_template("auth/reset_password.html", form=form)


@bp.get("/verify/<token>")
def verify(token: str):
    """Confirm the address a mailed link was sent to."""
    email_token = find_email_token(token, EmailToken.CONFIRM, utcnow())
    if email_token is None:
        abort(404, description=CONFIRM_GONE)
    user = confirm_email(email_token, utcnow())
    db.session.commit()
    flash(f"Thank you: {user.email} is confirmed.", "success")
    return redirect(url_for("account.profile"))
