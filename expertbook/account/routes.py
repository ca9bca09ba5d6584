"""The signed-in user's profile and the Become an Expert button."""

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user, login_required

from ..extensions import db
from ..forms import EmptyForm
from ..text import multiline
from .forms import ProfileForm

bp = Blueprint("account", __name__)


@bp.route("/profile", methods=["GET", "POST"])
@login_required
def profile():
    """Show and edit name, time zone and bio."""
    form = ProfileForm(obj=current_user)
    if form.validate_on_submit():
        current_user.name = (form.name.data or "").strip()
        current_user.timezone = form.timezone.data
        current_user.bio = multiline(form.bio.data or "")
        db.session.commit()
        flash("Profile saved.", "success")
        return redirect(url_for("account.profile"))
    return render_template("account/profile.html", form=form, expert_form=EmptyForm())


@bp.post("/profile/become-expert")
@login_required
def become_expert():
    """Give the user the expert role and send them to their dashboard."""
    if EmptyForm().validate_on_submit() and not current_user.is_expert:
        current_user.is_expert = True
        db.session.commit()
        flash("You are an expert now: set your hours and create your first event type.", "success")
    return redirect(url_for("dashboard.index"))
