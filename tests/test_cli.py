import pytest
import sqlalchemy as sa

from expertbook.extensions import db
from expertbook.models import ApiToken, EventType, User, hash_token


def one_line_error(result) -> str:
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def test_users_create_with_password(runner):
    result = runner.invoke(
        args=["users", "create", "Ann", "Ann@Example.com", "--password", "long enough", "--expert"]
    )
    assert result.exit_code == 0, result.output
    user = db.session.scalar(sa.select(User))
    assert (user.username, user.email, user.is_expert) == ("ann", "ann@example.com", True)


def test_users_create_prompts_for_the_password(runner):
    result = runner.invoke(
        args=["users", "create", "ann", "ann@example.com"], input="long enough\nlong enough\n"
    )
    assert result.exit_code == 0, result.output
    assert db.session.scalar(sa.select(User.username)) == "ann"


@pytest.mark.parametrize(
    "args, message",
    [
        (["users", "create", "ann", "bad-email", "--password", "long enough"], "email"),
        (["users", "create", "api", "a@example.com", "--password", "long enough"], "reserved"),
        (["users", "create", "Bad Name", "a@example.com", "--password", "long enough"], "username"),
        (["users", "create", "ann", "a@example.com", "--password", "short"], "password"),
        (["users", "create", "taken", "new@example.com", "--password", "long enough"], "taken"),
        (["users", "create", "newbie", "TAKEN@example.com", "--password", "long enough"], "exists"),
        (["users", "promote", "nobody"], "no user named 'nobody'"),
        (["tokens", "create", "nobody"], "no user named 'nobody'"),
        (["tokens", "list", "nobody"], "no user named 'nobody'"),
        (["tokens", "revoke", "999"], "no token with id 999"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(runner, make_user, args, message):
    make_user("taken")
    before = db.session.scalar(sa.select(sa.func.count(User.id)))
    line = one_line_error(runner.invoke(args=args))
    assert line.startswith("Error:") and message in line
    assert db.session.scalar(sa.select(sa.func.count(User.id))) == before


def test_users_promote_and_list(runner, make_user):
    make_user("ann")
    make_user("bob", expert=True)
    assert runner.invoke(args=["users", "promote", "ANN"]).exit_code == 0
    lines = runner.invoke(args=["users", "list"]).output.splitlines()
    assert lines == [
        "1\tann\tann@example.com\texpert",
        "2\tbob\tbob@example.com\texpert",
    ]


def test_tokens_create_prints_the_secret_alone_and_stores_its_hash(runner, make_user):
    make_user("ann")
    result = runner.invoke(args=["tokens", "create", "ann"])
    assert result.exit_code == 0
    secret = result.stdout.strip()
    assert result.stdout == secret + "\n"
    token = db.session.scalar(sa.select(ApiToken))
    assert token.token_hash == hash_token(secret) and secret not in token.token_hash


def test_tokens_list_and_revoke(runner, make_user):
    make_user("ann")
    runner.invoke(args=["tokens", "create", "ann", "--name", "laptop"])
    assert "laptop" in runner.invoke(args=["tokens", "list", "ann"]).output
    assert runner.invoke(args=["tokens", "revoke", "1"]).exit_code == 0
    assert "revoked" in runner.invoke(args=["tokens", "list", "ann"]).output


def test_demo_seed_is_idempotent(runner):
    for _ in range(2):
        result = runner.invoke(args=["demo", "seed"])
        assert result.exit_code == 0, result.output
    demo = db.session.scalar(sa.select(User).where(User.username == "demo"))
    assert demo.is_expert
    assert sorted(e.slug for e in demo.event_types) == ["15min", "deep-dive"]
    assert db.session.scalar(sa.select(sa.func.count(EventType.id))) == 2
    assert {r.weekday for r in demo.availability_rules} == {0, 1, 2, 3, 4}


def test_demo_seed_if_empty_leaves_a_used_database_alone(runner, make_user):
    make_user("ann")
    result = runner.invoke(args=["demo", "seed", "--if-empty"])
    assert result.exit_code == 0
    assert db.session.scalar(sa.select(User).where(User.username == "demo")) is None


def test_demo_page_answers_after_seed(runner, client):
    runner.invoke(args=["demo", "seed"])
    page = client.get("/demo")
    assert page.status_code == 200
    assert "15-minute sync" in page.text and "60-minute deep dive" in page.text


def test_demo_seed_leaves_someone_elses_demo_account_alone(runner, make_user):
    make_user("demo", email="someone@example.com")  # registered before any seed
    assert "did not make" in one_line_error(runner.invoke(args=["demo", "seed"]))
    demo = db.session.scalar(sa.select(User).where(User.username == "demo"))
    assert not demo.is_expert and demo.event_types == []


def test_demo_seed_with_its_email_taken_is_one_line(runner):
    result = runner.invoke(
        args=["users", "create", "dana", "demo@example.com", "--password", "long enough"]
    )
    assert result.exit_code == 0
    assert "already exists" in one_line_error(runner.invoke(args=["demo", "seed"]))
    assert db.session.scalar(sa.select(sa.func.count(EventType.id))) == 0


def test_demo_seed_refuses_in_production(app, runner):
    app.config["PRODUCTION"] = True
    assert "production" in one_line_error(runner.invoke(args=["demo", "seed", "--if-empty"]))
    assert db.session.scalar(sa.select(User.id)) is None


@pytest.mark.parametrize("env, seeds", [("production", False), ("development", True)])
def test_make_run_seeds_the_demo_only_outside_production(tmp_path, env, seeds):
    """`make run` with stand-ins for the venv's flask and python that log their arguments."""
    import os
    import shutil
    import subprocess
    from pathlib import Path

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for name in ("flask", "python"):
        (bin_dir / name).write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\n')
        (bin_dir / name).chmod(0o755)
    (tmp_path / ".run-deps").touch()  # newer than requirements.txt: nothing to install
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        ["make", "--no-print-directory", "run", f"VENV={tmp_path}", f"BIN={bin_dir}"],
        cwd=root,
        env={**os.environ, "EXPERTBOOK_ENV": env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    calls = log.read_text()
    assert "flask --app wsgi db upgrade" in calls and "python wsgi.py" in calls
    assert ("demo seed" in calls) is seeds


def test_tokens_create_stops_at_the_cap_of_live_tokens(runner, make_user):
    from expertbook.accounts import MAX_LIVE_TOKENS

    make_user("ann")
    for _ in range(MAX_LIVE_TOKENS):
        assert runner.invoke(args=["tokens", "create", "ann"]).exit_code == 0
    assert "active tokens" in one_line_error(runner.invoke(args=["tokens", "create", "ann"]))
    assert db.session.scalar(sa.select(sa.func.count(ApiToken.id))) == MAX_LIVE_TOKENS
