"""Two-factor sign-in for the signed-in user: enrol, new recovery codes, turn off."""

from flask import flash, redirect, render_template, url_for
from flask_login import current_user, login_required

from ..auth.mail import send_two_factor_mail
from ..auth.two_factor import (
    TwoFactorError,
    disable_two_factor,
    enable_two_factor,
    new_recovery_codes,
    qr_code,
    recovery_codes_left,
    start_enrolment,
)
from ..extensions import db, limiter
from ..models import utcnow
from ..passwords import verify_password
from .forms import EnableTwoFactorForm, PasswordCheckForm
from .routes import account_key, bp


@bp.route("/account/two-factor", methods=["GET", "POST"])
@login_required
@limiter.limit("10 per minute", methods=["POST"], key_func=account_key)
def two_factor():
    """Its state and how to turn it off; or enrolment: a QR code, then a first code."""
    user = current_user._get_current_object()
    if user.two_factor_enabled:
        return render_template(
            "account/two_factor_on.html",
            form=PasswordCheckForm(),
            codes_left=recovery_codes_left(user),
        )
    secret = start_enrolment(user)
    db.session.commit()
    form = EnableTwoFactorForm()
    if form.validate_on_submit():
        try:
            codes = enable_two_factor(user, form.code.data, utcnow())
        except TwoFactorError as error:
            form.code.errors.append(error.message)
        else:
            db.session.commit()
            send_two_factor_mail(user, enabled=True)
            # Shown this once, in the answer to the POST: never in a URL or a later page.
            return render_template("account/recovery_codes.html", codes=codes, first=True)
    return render_template(
        "account/two_factor_enrol.html", form=form, secret=secret, qr=qr_code(user)
    )


@bp.post("/account/two-factor/recovery-codes")
@login_required
@limiter.limit("10 per minute", key_func=account_key)
def recovery_codes():
    """Ten new recovery codes, shown once; the old ones stop working."""
    user = current_user._get_current_object()
    form = PasswordCheckForm()
    if not user.two_factor_enabled or not form.validate_on_submit():
        return redirect(url_for("account.two_factor"))
    if not verify_password(user.password_hash, form.password.data):
        flash("That is not your password; the recovery codes stay as they were.", "error")
        return redirect(url_for("account.two_factor"))
    codes = new_recovery_codes(user)
    db.session.commit()
    return render_template("account/recovery_codes.html", codes=codes, first=False)


@bp.post("/account/two-factor/disable")
@login_required
@limiter.limit("10 per minute", key_func=account_key)
def disable():
    """Turn two-factor sign-in off (the password again, not just the session)."""
    user = current_user._get_current_object()
    form = PasswordCheckForm()
    if user.two_factor_enabled and form.validate_on_submit():
        if verify_password(user.password_hash, form.password.data):
            disable_two_factor(user)
            db.session.commit()
            send_two_factor_mail(user, enabled=False)
            flash("Two-factor sign-in is off.", "info")
        else:
            flash("That is not your password; two-factor sign-in stays on.", "error")
    return redirect(url_for("account.two_factor"))
