"""Connected calendars on the dashboard: connect CalDAV or an ICS address, choose which
calendars block time and which one receives bookings, sync now, remove."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, RadioField, SelectChoice, StringField
from wtforms.validators import Length, Optional

from ..auth.decorators import expert_required
from ..cache_control import no_store
from ..calendars.connections import connect_calendar, remove_connection, update_calendars
from ..calendars.models import CalendarConnection
from ..calendars.queries import connection_of, connections_of
from ..calendars.sync import SyncBusy, sync_now
from ..errors import FieldError
from ..forms import EmptyForm
from ..models import utcnow
from ..realtime import announce_slots_changed
from .routes import bp


class ConnectForm(FlaskForm):
    kind = RadioField(
        "Kind",
        choices=[
            SelectChoice("caldav", "CalDAV account"),
            SelectChoice("ics", "ICS address (read-only)"),
        ],
        default="caldav",
    )
    url = StringField("Address", validators=[Length(max=2048)])
    username = StringField("User name", validators=[Optional(), Length(max=255)])
    password = PasswordField("App password", validators=[Optional(), Length(max=1024)])


def own_connection_or_404(connection_id: int) -> CalendarConnection:
    return connection_of(current_user.id, connection_id) or abort(404)


@bp.route("/calendars", methods=["GET", "POST"])
@expert_required
@no_store  # a feed's address is its secret
def calendars():
    """The expert's connected calendars; POST connects one (after a first successful read)."""
    form = ConnectForm()
    if form.validate_on_submit():
        try:
            connect_calendar(
                current_user,
                form.kind.data,
                form.url.data or "",
                form.username.data or "",
                form.password.data or "",
                now=utcnow(),
            )
        except FieldError as error:
            target = getattr(form, error.field, None) or form.url
            target.errors = [*target.errors, error.message]
        else:
            announce_slots_changed(current_user.id)
            flash("Calendar connected: its busy times now block your booking pages.", "success")
            return redirect(url_for("dashboard.calendars"))
    return render_template(
        "dashboard/calendars.html",
        form=form,
        connections=connections_of(current_user.id),
        action_form=EmptyForm(),
    )


@bp.post("/calendars/<int:connection_id>/settings")
@expert_required
def calendar_settings(connection_id: int):
    """Save which calendars block time and which one receives bookings."""
    connection = own_connection_or_404(connection_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    writes = request.form.get("writes", type=int)
    blocks = set(request.form.getlist("blocks", type=int))
    changes = []
    for calendar in connection.calendars:
        change = {"id": calendar.id, "blocks": calendar.id in blocks}
        if connection.kind == CalendarConnection.CALDAV:
            change["writes"] = calendar.id == writes
        changes.append(change)
    try:
        changed, started = update_calendars(connection, changes)
    except FieldError as error:
        flash(error.message, "error")
        return redirect(url_for("dashboard.calendars"))
    message, category = "Calendar settings saved.", "success"
    if started:
        try:
            changed |= sync_now(connection).changed
        except SyncBusy as error:
            message, category = f"Settings saved; its busy times are not read yet: {error}", "error"
    if changed:
        announce_slots_changed(current_user.id)
    flash(message, category)
    return redirect(url_for("dashboard.calendars"))


@bp.post("/calendars/<int:connection_id>/sync")
@expert_required
def calendar_sync(connection_id: int):
    """Sync now."""
    connection = own_connection_or_404(connection_id)
    if EmptyForm().validate_on_submit():
        try:
            result = sync_now(connection)
        except SyncBusy as error:
            flash(str(error), "error")
            return redirect(url_for("dashboard.calendars"))
        if result.changed:
            announce_slots_changed(current_user.id)
        if result.connection is None:
            flash("That calendar was removed meanwhile.", "error")
        elif result.connection.status == "error":
            flash(f"The sync failed: {result.connection.error}", "error")
        else:
            flash("Synced.", "success")
    return redirect(url_for("dashboard.calendars"))


@bp.post("/calendars/<int:connection_id>/remove")
@expert_required
def calendar_remove(connection_id: int):
    """Disconnect the calendar; its busy times stop blocking."""
    connection = own_connection_or_404(connection_id)
    if EmptyForm().validate_on_submit():
        if remove_connection(connection):
            announce_slots_changed(current_user.id)
        flash("Calendar removed.", "success")
    return redirect(url_for("dashboard.calendars"))
