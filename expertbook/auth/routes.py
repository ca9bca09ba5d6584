"""Sign up, log in (with the second step for two-factor accounts) and log out."""

from __future__ import annotations

import math
import time
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_limiter import RequestLimit
from flask_limiter.errors import RateLimitExceeded
from flask_login import current_user, login_required, login_user, logout_user

from ..accounts import AccountError, EmailTaken, commit_new_user, create_user, find_user
from ..extensions import db, limiter
from ..forms import EmptyForm
from ..models import EmailToken, User, utcnow
from ..passwords import verify_password
from .forms import LoginForm, RegisterForm, SecondFactorForm
from .mail import send_address_taken_mail, send_confirmation_mail
from .tokens import issue_email_token
from .two_factor import passes_second_factor

bp = Blueprint("auth", __name__, url_prefix="/auth")

# The session key of a log-in that passed the password and waits for its second factor.
PENDING = "second_factor"
SECOND_STEP_SECONDS = 300


def safe_next(target: str | None, default: str) -> str:
    """`target` when it is a path on this site, else `default` (no open redirects)."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target:
        return default
    return target


def kept_form_page(template: str, form_class):
    """An `on_breach` for a form's rate limit: its page again with 429, the form as sent
    and how long to wait, instead of a bare error page."""

    def breached(limit: RequestLimit):
        seconds = max(1, math.ceil(limit.reset_at - time.time()))
        wait = f"{seconds} seconds" if seconds < 120 else f"{math.ceil(seconds / 60)} minutes"
        message = f"Too many tries from here: please wait {wait}, then send the form again."
        page = render_template(template, form=form_class(), limited=message)
        return make_response(page, 429)

    return breached


@bp.errorhandler(RateLimitExceeded)
def rate_limited(error: RateLimitExceeded):
    """Over a limit: the page `kept_form_page` made, or the plain error page."""
    if error.response is not None:
        return error.response
    return render_template("errors/error.html", code=429, message=error.description), 429


def _login_key() -> str:
    """Per account, by whichever name the form gives it (finding 4: `bob` and
    `bob@example.com` share one budget); per typed string where no account has it."""
    typed = (request.form.get("login") or "").strip().lower()[:254]
    user = find_user(typed)
    return f"login:user:{user.id}" if user else f"login:{typed}"


def _second_step_key() -> str:
    pending = session.get(PENDING)
    return f"second-factor:{pending.get('user_id') if isinstance(pending, dict) else None}"


def _signed_up(response) -> bool:
    """Registration's budget counts sign-ups that went through (finding 11), not forms
    sent back with errors. A sign-up with a taken address answers and counts the same."""
    return response.status_code == 302


def _start_session(user, remember: bool) -> None:
    # A fresh session at log-in: nothing from the anonymous session carries over.
    session.clear()
    login_user(user, remember=remember)


@bp.route("/register", methods=["GET", "POST"])
@limiter.limit(
    "10 per hour",
    methods=["POST"],
    deduct_when=_signed_up,
    on_breach=kept_form_page("auth/register.html", RegisterForm),
)
def register():
    """Create an account and mail a confirmation link; the same answer for a taken address."""
    if current_user.is_authenticated:
        return redirect(url_for("account.profile"))
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            user = create_user(
                form.username.data,
                form.email.data,
                form.password.data,
                timezone=form.timezone.data,
            )
            token = issue_email_token(user, EmailToken.CONFIRM, utcnow())
            commit_new_user()
        except EmailTaken:
            db.session.rollback()
            # The page must not tell a stranger that the address has an account: its owner
            # hears of it by mail instead.
            owner = find_user(form.email.data)
            if owner is not None:
                send_address_taken_mail(owner)
        except AccountError as error:
            db.session.rollback()
            getattr(form, error.field, form.username).errors.append(error.message)
            return render_template("auth/register.html", form=form)
        else:
            send_confirmation_mail(user, token)
        flash(
            f"Check your inbox: we sent a link to {form.email.data} to confirm the address. "
            "Log in with your new account meanwhile.",
            "info",
        )
        return redirect(url_for("auth.login"))
    return render_template("auth/register.html", form=form)


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(
    "20 per minute", methods=["POST"], on_breach=kept_form_page("auth/login.html", LoginForm)
)
@limiter.limit(
    "10 per minute",
    methods=["POST"],
    key_func=_login_key,
    on_breach=kept_form_page("auth/login.html", LoginForm),
)
def login():
    """Sign in by username or email; a two-factor account goes on to the code."""
    if current_user.is_authenticated:
        return redirect(url_for("bookings.index"))
    form = LoginForm()
    if form.validate_on_submit():
        user = find_user(form.login.data)
        if verify_password(user.password_hash if user else None, form.password.data):
            default = url_for("dashboard.index" if user.is_expert else "bookings.index")
            target = safe_next(request.args.get("next"), default)
            if user.two_factor_enabled:
                # Not signed in yet: the session only remembers who passed the password.
                session.clear()
                session[PENDING] = {
                    "user_id": user.id,
                    "version": user.session_version,
                    "remember": bool(form.remember.data),
                    "next": target,
                    "at": int(time.time()),
                }
                return redirect(url_for("auth.second_factor"))
            _start_session(user, remember=form.remember.data)
            return redirect(target)
        flash("Wrong email, username or password.", "error")
    return render_template("auth/login.html", form=form)


def _pending_user() -> User | None:
    """The user who passed the password in this session, within the last five minutes."""
    pending = session.get(PENDING)
    if not isinstance(pending, dict) or not isinstance(pending.get("user_id"), int):
        return None
    if not isinstance(pending.get("at"), int) or time.time() - pending["at"] > SECOND_STEP_SECONDS:
        return None
    user = db.session.get(User, pending["user_id"])
    if user is None or user.session_version != pending.get("version"):
        return None
    return user if user.two_factor_enabled else None


@bp.route("/two-factor", methods=["GET", "POST"])
@limiter.limit(
    "20 per minute",
    methods=["POST"],
    on_breach=kept_form_page("auth/second_factor.html", SecondFactorForm),
)
@limiter.limit(
    "5 per minute;30 per hour",
    methods=["POST"],
    key_func=_second_step_key,
    on_breach=kept_form_page("auth/second_factor.html", SecondFactorForm),
)
def second_factor():
    """The second step of a two-factor log-in: a TOTP code or a recovery code."""
    user = _pending_user()
    if user is None:
        session.pop(PENDING, None)
        flash("Please log in again.", "info")
        return redirect(url_for("auth.login"))
    form = SecondFactorForm()
    if form.validate_on_submit():
        passed = passes_second_factor(user, form.code.data, utcnow())
        db.session.commit()
        if passed:
            pending = session[PENDING]
            _start_session(user, remember=pending.get("remember") is True)
            return redirect(safe_next(pending.get("next"), url_for("bookings.index")))
        form.code.errors.append("That code is not right, or was used already.")
    return render_template("auth/second_factor.html", form=form)


@bp.post("/logout")
@login_required
def logout():
    """Sign out everywhere (the button says so): this session and every copy of it."""
    if EmptyForm().validate_on_submit():
        # The session lives in a signed cookie, so a copy of it would outlive the log-out;
        # a new session_version makes every copy (and every remember-me cookie) invalid.
        current_user.session_version += 1
        db.session.commit()
        # Cleared first: logout_user() then leaves its note to delete the remember cookie.
        session.clear()
        logout_user()
        flash("You are signed out on every device and browser.", "info")
    return redirect(url_for("auth.login"))


# Password reset and address confirmation: their views join this blueprint.
from . import reset  # noqa: E402, F401
