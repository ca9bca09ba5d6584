"""Sign up, log in and log out."""

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from ..accounts import AccountError, commit_new_user, create_user, find_user
from ..extensions import db, limiter
from ..forms import EmptyForm
from ..passwords import verify_password
from .forms import LoginForm, RegisterForm

bp = Blueprint("auth", __name__, url_prefix="/auth")


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


def _login_key() -> str:
    return "login:" + (request.form.get("login") or "").strip().lower()[:254]


def _start_session(user, remember: bool) -> None:
    # A fresh session at log-in: nothing from the anonymous session carries over.
    session.clear()
    login_user(user, remember=remember)


@bp.route("/register", methods=["GET", "POST"])
@limiter.limit("10 per hour", methods=["POST"])
def register():
    """Create an account and sign it in."""
    if current_user.is_authenticated:
        return redirect(url_for("account.profile"))
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            user = create_user(form.username.data, form.email.data, form.password.data)
            commit_new_user()
        except AccountError as error:
            db.session.rollback()
            getattr(form, error.field, form.username).errors.append(error.message)
        else:
            _start_session(user, remember=False)
            flash(f"Welcome to ExpertBook, {user.username}!", "success")
            return redirect(url_for("account.profile"))
    return render_template("auth/register.html", form=form)


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("20 per minute", methods=["POST"])
@limiter.limit("10 per minute", methods=["POST"], key_func=_login_key)
def login():
    """Sign in by username or email."""
    if current_user.is_authenticated:
        return redirect(url_for("bookings.index"))
    form = LoginForm()
    if form.validate_on_submit():
        user = find_user(form.login.data)
        if verify_password(user.password_hash if user else None, form.password.data):
            _start_session(user, remember=form.remember.data)
            default = url_for("dashboard.index" if user.is_expert else "bookings.index")
            return redirect(safe_next(request.args.get("next"), default))
        flash("Wrong email, username or password.", "error")
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
@login_required
def logout():
    """Sign out and drop the whole session."""
    if EmptyForm().validate_on_submit():
        # The session lives in a signed cookie, so a copy of it would outlive the log-out;
        # a new session_version makes every copy (and every remember-me cookie) invalid.
        current_user.session_version += 1
        db.session.commit()
        # Cleared first: logout_user() then leaves its note to delete the remember cookie.
        session.clear()
        logout_user()
        flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))
