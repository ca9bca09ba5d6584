"""Maintainer commands: `flask users ...`, `flask tokens ...`, `flask demo seed`.

Every command exits 0 on success and, on bad input, non-zero with one line on stderr
(click's `Error: ...`), never a traceback.
"""

from __future__ import annotations

import click
import sqlalchemy as sa
from flask import Blueprint, current_app
from sqlalchemy.exc import IntegrityError

from .accounts import AccountError, commit_new_user, create_api_token, create_user
from .auth.two_factor import disable_two_factor
from .availability import set_availability
from .extensions import db
from .models import ApiToken, EventType, User, utcnow

bp = Blueprint("cli", __name__, cli_group=None)

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-expert"
DEMO_EMAIL = "demo@example.com"


def _user_or_fail(username: str) -> User:
    user = db.session.scalar(sa.select(User).where(User.username == username.strip().lower()))
    if user is None:
        raise click.ClickException(f"no user named '{username}'")
    return user


@bp.cli.group()
def users():
    """Create, promote and list users; turn off a user's two-factor sign-in."""


@users.command("create")
@click.argument("username")
@click.argument("email")
@click.option("--password", help="The password; prompted for (hidden) when left out.")
@click.option("--expert", is_flag=True, help="Make the user an expert at once.")
def users_create(username: str, email: str, password: str | None, expert: bool):
    """Create a user."""
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        # The maintainer vouches for the address: confirmed at once.
        user = create_user(username, email, password, expert=expert, confirmed=True)
        commit_new_user()
    except AccountError as error:
        db.session.rollback()
        raise click.ClickException(f"{error.field}: {error.message}") from None
    click.echo(f"created {user.username} <{user.email}>{' (expert)' if expert else ''}")


@users.command("promote")
@click.argument("username")
def users_promote(username: str):
    """Make a user an expert."""
    user = _user_or_fail(username)
    user.is_expert = True
    db.session.commit()
    click.echo(f"{user.username} is an expert")


@users.command("reset-2fa")
@click.argument("username")
def users_reset_2fa(username: str):
    """Turn two-factor sign-in off for a user locked out of it (lost phone and codes)."""
    user = _user_or_fail(username)
    disable_two_factor(user)
    db.session.commit()
    click.echo(f"two-factor sign-in is off for {user.username}")


@users.command("list")
def users_list():
    """One line a user: id, username, email, role."""
    for user in db.session.scalars(sa.select(User).order_by(User.id)):
        role = "expert" if user.is_expert else "client"
        click.echo(f"{user.id}\t{user.username}\t{user.email}\t{role}")


@bp.cli.group()
def tokens():
    """Personal API tokens."""


@tokens.command("create")
@click.argument("username")
@click.option("--name", default="cli", help="A label to recognise the token by.")
def tokens_create(username: str, name: str):
    """Print a new API token once, alone on its line (only its hash is stored)."""
    user = _user_or_fail(username)
    try:
        secret = create_api_token(user, name)
    except AccountError as error:
        raise click.ClickException(error.message) from None
    db.session.commit()
    click.echo(secret)


@tokens.command("list")
@click.argument("username")
def tokens_list(username: str):
    """One line a token of the user: id, name, created, state."""
    user = _user_or_fail(username)
    rows = db.session.scalars(
        sa.select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
    )
    for token in rows:
        state = "revoked" if token.revoked_at else "active"
        click.echo(f"{token.id}\t{token.name}\t{token.created_at:%Y-%m-%d %H:%M}Z\t{state}")


@tokens.command("revoke")
@click.argument("token_id", type=click.IntRange(1, 2**31 - 1))
def tokens_revoke(token_id: int):
    """Revoke a token by its id."""
    token = db.session.get(ApiToken, token_id)
    if token is None:
        raise click.ClickException(f"no token with id {token_id}")
    token.revoked_at = token.revoked_at or utcnow()
    db.session.commit()
    click.echo(f"token {token_id} revoked")


@bp.cli.group()
def demo():
    """Demo data."""


DEMO_EVENT_TYPES = [
    dict(
        slug="15min",
        title="15-minute sync",
        duration_minutes=15,
        description="A quick call to unblock a question.",
        location="zoom",
    ),
    dict(
        slug="deep-dive",
        title="60-minute deep dive",
        duration_minutes=60,
        description="A working session on your problem, with time to go deep.",
        location="google_meet",
        buffer_after_minutes=15,
        min_notice_minutes=120,
    ),
]


@demo.command("seed")
@click.option("--if-empty", is_flag=True, help="Only seed a database that has no users yet.")
def demo_seed(if_empty: bool):
    """Create the demo expert with weekday hours and two event types; safe to repeat."""
    if current_app.config.get("PRODUCTION"):
        # Its password is printed in the README: in production it would be an open door.
        raise click.ClickException("demo seed refused: EXPERTBOOK_ENV is production")
    if if_empty and db.session.scalar(sa.select(User.id).limit(1)) is not None:
        click.echo("database has users; demo seed skipped")
        return
    user = db.session.scalar(sa.select(User).where(User.username == DEMO_USERNAME))
    if user is not None and user.email != DEMO_EMAIL:
        # Someone's own account named "demo": leave it alone.
        raise click.ClickException(
            f"a user '{DEMO_USERNAME}' exists that the demo seed did not make; nothing changed"
        )
    try:
        if user is None:
            user = create_user(
                DEMO_USERNAME,
                DEMO_EMAIL,
                DEMO_PASSWORD,
                name="Dana Demo",
                timezone="Europe/London",
                expert=True,
                confirmed=True,
            )
            user.bio = "Product coach. Book a slot and let's talk."
            nine_to_five = [(9 * 60, 12 * 60), (13 * 60, 17 * 60)]
            set_availability(user, "Europe/London", {day: nine_to_five for day in range(5)}, {})
        existing = {e.slug for e in user.event_types}
        for fields in DEMO_EVENT_TYPES:
            if fields["slug"] not in existing:
                user.event_types.append(EventType(**fields))
        commit_new_user()
    except AccountError as error:
        db.session.rollback()
        raise click.ClickException(f"demo seed: {error.field}: {error.message}") from None
    except IntegrityError:  # another seed at the same moment
        db.session.rollback()
        raise click.ClickException("demo seed: a concurrent change; run it again") from None
    click.echo(f"demo expert '{DEMO_USERNAME}' ready (password: {DEMO_PASSWORD})")


@bp.cli.command("worker")
def worker():
    """Deliver the outbox (mail, reminders, webhooks, calendar write-back) until stopped."""
    from .logs import log_to_stderr
    from .outbox.worker import run_forever

    log_to_stderr()
    click.echo("outbox worker running; Ctrl-C or SIGTERM stops it")
    run_forever(current_app._get_current_object())
    click.echo("outbox worker stopped")


@bp.cli.command("check-invariants")
@click.option(
    "--late-minutes",
    type=click.IntRange(1, 7 * 24 * 60),
    default=15,
    show_default=True,
    help="A pending message deliverable, or a request past its deadline, for longer than"
    " this is stuck.",
)
@click.option(
    "--failed-days",
    type=click.IntRange(1, 3650),
    default=7,
    show_default=True,
    help="Failed messages written within this many days count as stuck.",
)
def check_invariants(late_minutes: int, failed_days: int):
    """Exit 1 naming each problem, one a line: two bookings of one expert that overlap, a
    stuck outbox message (failed: given up after its retry window or refused for good, in
    the last --failed-days; or pending and deliverable for over --late-minutes, so no worker
    is delivering it), a confirmed or pending booking made since the outbox's first message
    without its mail, a request still pending over --late-minutes past its deadline. Exit 0
    with one line when all is well."""
    from datetime import timedelta

    from .invariants import violations

    try:
        found = violations(utcnow(), late=timedelta(minutes=late_minutes), failed_days=failed_days)
    except sa.exc.SQLAlchemyError as error:  # unreachable, or not migrated: say so in one line
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise click.ClickException(f"could not read the database: {reason}") from None
    finally:
        db.session.rollback()
    if found:
        for line in found:
            click.echo(line)
        raise click.ClickException(f"{len(found)} invariant violation(s)")
    click.echo(
        "OK: no overlapping bookings, no stuck messages, no booking without its mail,"
        " no overdue request"
    )
