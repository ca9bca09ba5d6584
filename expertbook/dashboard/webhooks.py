"""Webhooks on the dashboard: add an endpoint (its secret shown once), see recent
deliveries, send a test event, remove."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import SelectChoice, SelectMultipleField, StringField
from wtforms.validators import Length
from wtforms.widgets import CheckboxInput, ListWidget

from ..auth.decorators import expert_required
from ..cache_control import no_store
from ..errors import FieldError
from ..forms import EmptyForm
from ..models import utcnow
from ..outbox.models import WebhookEndpoint
from ..webhooks.endpoints import (
    MAX_ENDPOINTS,
    add_endpoint,
    endpoint_of,
    endpoints_of,
    recent_deliveries,
    remove_endpoint,
    send_test,
)
from ..webhooks.events import CANCELLED, CONFIRMED, CREATED, DECLINED, REQUESTED, RESCHEDULED
from ..webhooks.limits import webhook_add_limit, webhook_test_limit
from .routes import bp

RECENT = 10  # deliveries shown per endpoint
EVENT_LABELS = {
    CREATED: "Booking created",
    RESCHEDULED: "Booking rescheduled",
    CANCELLED: "Booking cancelled",
    REQUESTED: "Booking requested (waits for your confirmation)",
    CONFIRMED: "Booking request confirmed",
    DECLINED: "Booking request declined",
}


class WebhookForm(FlaskForm):
    url = StringField("Address (URL)", validators=[Length(max=2048)])
    events = SelectMultipleField(
        "Events",
        choices=[SelectChoice(event, label) for event, label in EVENT_LABELS.items()],
        default=list(EVENT_LABELS),
        option_widget=CheckboxInput(),
        widget=ListWidget(prefix_label=False),
        validate_choice=False,  # add_endpoint says what is wrong, in the same words as the API
    )


def own_endpoint_or_404(endpoint_id: int) -> WebhookEndpoint:
    return endpoint_of(current_user.id, endpoint_id) or abort(404)


@bp.route("/webhooks", methods=["GET", "POST"])
@webhook_add_limit
@expert_required
@no_store  # the page right after adding shows the secret
def webhooks():
    """The expert's webhooks and their recent deliveries; POST adds one and shows its
    secret, this once."""
    form = WebhookForm()
    secret = None
    if form.validate_on_submit():
        try:
            new = add_endpoint(current_user, form.url.data or "", form.events.data, now=utcnow())
        except FieldError as error:
            if error.code == "limit_reached":  # the page then shows no form to mark
                flash(error.message, "error")
            target = getattr(form, error.field, None) or form.url
            target.errors = [*target.errors, error.message]
        else:
            secret = new.secret
            flash("Webhook added. Copy its signing secret now: it is shown only once.", "success")
            form = WebhookForm(formdata=None)
    endpoints = endpoints_of(current_user.id)
    return render_template(
        "dashboard/webhooks.html",
        form=form,
        secret=secret,
        endpoints=endpoints,
        deliveries=recent_deliveries([e.id for e in endpoints], per_endpoint=RECENT),
        event_labels=EVENT_LABELS,
        max_endpoints=MAX_ENDPOINTS,
        action_form=EmptyForm(),
    )


@bp.post("/webhooks/<int:endpoint_id>/test")
@webhook_test_limit
@expert_required
def webhook_test(endpoint_id: int):
    """Send a test event (`ping`) to the endpoint."""
    endpoint = own_endpoint_or_404(endpoint_id)
    if EmptyForm().validate_on_submit():
        send_test(endpoint, now=utcnow())
        flash("Test event queued: it shows below in a moment.", "success")
    return redirect(url_for("dashboard.webhooks"))


@bp.post("/webhooks/<int:endpoint_id>/remove")
@expert_required
def webhook_remove(endpoint_id: int):
    """Remove the endpoint; nothing more is sent to it."""
    endpoint = own_endpoint_or_404(endpoint_id)
    if EmptyForm().validate_on_submit():
        remove_endpoint(endpoint)
        flash("Webhook removed.", "success")
    return redirect(url_for("dashboard.webhooks"))
