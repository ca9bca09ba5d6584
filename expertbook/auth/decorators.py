"""View decorators for roles."""

from functools import wraps

from flask import flash, redirect, url_for
from flask_login import current_user, login_required


def expert_required(view):
    """Signed-in experts only; a client is sent to the profile's Become an Expert button."""

    @wraps(view)
    @login_required
    def wrapper(*args, **kwargs):
        if not current_user.is_expert:
            flash("Become an expert first to open the dashboard.", "info")
            return redirect(url_for("account.profile"))
        return view(*args, **kwargs)

    return wrapper
