"""Personal API tokens on the dashboard: create (shown once), list, revoke."""

from __future__ import annotations

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, url_for
from flask_limiter.util import get_remote_address
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from ..accounts import AccountError, create_api_token
from ..auth.decorators import expert_required
from ..cache_control import no_store
from ..extensions import db, limiter
from ..forms import EmptyForm
from ..models import ApiToken, utcnow
from .routes import bp


class TokenForm(FlaskForm):
    name = StringField("Token name", validators=[DataRequired(), Length(max=100)])


def _account_key() -> str:
    return f"user:{current_user.get_id() or get_remote_address()}"


def tokens_of(user) -> list[ApiToken]:
    return list(
        db.session.scalars(
            sa.select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())
        )
    )


@bp.route("/tokens", methods=["GET", "POST"])
@limiter.limit("10 per hour", methods=["POST"], key_func=_account_key)
@expert_required
@no_store
def tokens():
    """List the expert's API tokens; POST makes a new one and shows it once."""
    form = TokenForm()
    secret = None
    if form.validate_on_submit():
        try:
            secret = create_api_token(current_user, form.name.data.strip())
        except AccountError as error:
            form.name.errors.append(error.message)
        else:
            db.session.commit()
            form.name.data = ""
    return render_template(
        "dashboard/tokens.html", form=form, secret=secret, tokens=tokens_of(current_user),
        revoke_form=EmptyForm(),
    )  # fmt: skip


@bp.post("/tokens/<int:token_id>/revoke")
@expert_required
def revoke_token(token_id: int):
    """Revoke one of the expert's tokens; another user's id is a 404."""
    token = db.session.get(ApiToken, token_id)
    if token is None or token.user_id != current_user.id:
        abort(404)
    if EmptyForm().validate_on_submit() and token.revoked_at is None:
        token.revoked_at = utcnow()
        db.session.commit()
        flash(f"Token “{token.name}” revoked.", "success")
    return redirect(url_for("dashboard.tokens"))
