"""The signed-in user's profile, password, address confirmation and Become an Expert."""

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user
from flask_login.config import COOKIE_NAME

from ..accounts import set_password
from ..auth.mail import send_confirmation_mail, send_password_changed_mail
from ..auth.tokens import issue_email_token
from ..extensions import db, limiter
from ..forms import EmptyForm
from ..models import EmailToken, utcnow
from ..passwords import verify_password
from ..text import multiline
from .forms import PasswordChangeForm, ProfileForm

bp = Blueprint("account", __name__)


def account_key() -> str:
    """Rate limits per signed-in account (a stolen session guessing the password)."""
    return f"account:{current_user.get_id()}"


def save_profile(form: ProfileForm) -> None:
    """Copy a valid profile form onto the signed-in user; the caller commits."""
    current_user.name = (form.name.data or "").strip()
    current_user.timezone = form.timezone.data
    current_user.bio = multiline(form.bio.data or "")


def render_profile(form: ProfileForm):
    return render_template("account/profile.html", form=form)


@bp.route("/profile", methods=["GET", "POST"])
@login_required
def profile():
    """Show and edit name, time zone and bio."""
    form = ProfileForm(obj=current_user)
    if form.validate_on_submit():
        save_profile(form)
        db.session.commit()
        flash("Profile saved.", "success")
        return redirect(url_for("account.profile"))
    return render_profile(form)


@bp.post("/profile/become-expert")
@login_required
def become_expert():
    """Give the user the expert role and send them to their dashboard. The profile page's
    button sends its details along: what was typed there is saved with the promotion, not
    dropped (a bare POST with only the CSRF token promotes alone)."""
    if "timezone" in request.form:
        form = ProfileForm(obj=current_user)
        if not form.validate_on_submit():
            return render_profile(form)
        save_profile(form)
    elif not EmptyForm().validate_on_submit():
        return redirect(url_for("account.profile"))
    if not current_user.email_confirmed:
        db.session.commit()  # the details, if any: they are kept either way
        # Clients' bookings are mailed to this address: it must be the expert's own.
        flash("Confirm your email address first: the link is in your inbox.", "error")
        return redirect(url_for("account.profile"))
    if not current_user.is_expert:
        current_user.is_expert = True
        flash("You are an expert now: set your hours and create your first event type.", "success")
    db.session.commit()
    return redirect(url_for("dashboard.index"))


@bp.post("/account/confirm-email")
@login_required
@limiter.limit("3 per hour", key_func=account_key)
def resend_confirmation():
    """Mail the address confirmation link again (the banner's button)."""
    if EmptyForm().validate_on_submit() and not current_user.email_confirmed:
        token = issue_email_token(current_user, EmailToken.CONFIRM, utcnow())
        db.session.commit()
        send_confirmation_mail(current_user, token)
        flash(f"We sent a new link to {current_user.email}.", "info")
    return redirect(url_for("account.profile"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
@limiter.limit("10 per hour", methods=["POST"], key_func=account_key)
def change_password():
    """Change the password; every other session and remember-me cookie ends, this one stays."""
    form = PasswordChangeForm()
    if form.validate_on_submit():
        user = current_user._get_current_object()
        if not verify_password(user.password_hash, form.current_password.data):
            form.current_password.errors.append("That is not your current password.")
        else:
            cookie = current_app.config.get("REMEMBER_COOKIE_NAME", COOKIE_NAME)
            had_remember_cookie = cookie in request.cookies
            set_password(user, form.password.data)
            db.session.commit()
            # The new session_version signs out every copy of every session; this one is
            # signed in again under it (with a new remember-me cookie if it had one).
            login_user(user, remember=had_remember_cookie)
            send_password_changed_mail(user)
            flash("Password changed. Every other session of your account is signed out.", "success")
            return redirect(url_for("account.profile"))
    return render_template("account/password.html", form=form)


# Two-factor enrolment: its views join this blueprint.
from . import two_factor  # noqa: E402, F401
