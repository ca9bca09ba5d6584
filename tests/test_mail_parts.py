"""mail.mime_mail writes its parts without the email.mime classes: the bytes sent are the
very bytes MIMEMultipart and MIMEText (and set_param, add_header) give."""

from __future__ import annotations

import io
from email.generator import BytesGenerator
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from itertools import count
from unittest import mock

from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from expertbook import mail

# All mime_mail reads of the app is MAIL_FROM (a bare app: hypothesis calls the test many
# times over, and the suite's app fixture is made once a test).
BARE_APP = Flask(__name__)
BARE_APP.config["MAIL_FROM"] = "ExpertBook <no-reply@localhost>"


def reference_part(text: str, subtype: str) -> MIMEText:
    plain = text.isascii() and all(len(line) <= 900 for line in text.splitlines())
    return MIMEText(text, subtype, "us-ascii" if plain else "utf-8")


def reference_mail(*, subject, to, message_id, text, html, calendar=None, method=None):
    """mime_mail as it was, on the email.mime classes."""
    body = MIMEMultipart("alternative", boundary=mail._boundary(), policy=mail._POLICY)
    body.attach(reference_part(text, "plain"))
    body.attach(reference_part(html, "html"))
    if calendar is None:
        message = body
    else:
        message = MIMEMultipart("mixed", boundary=mail._boundary(), policy=mail._POLICY)
        message.attach(body)
        invite = reference_part(calendar.decode("utf-8"), "calendar")
        if method:
            invite.set_param("method", method)
        invite.add_header("Content-Disposition", "attachment", filename="invite.ics")
        message.attach(invite)
    message["Subject"] = subject
    message["From"] = mail.current_app.config["MAIL_FROM"]
    message["To"] = to
    message["Message-ID"] = message_id
    return message


def flattened(message) -> bytes:
    """The bytes smtplib's send_message sends (its BytesGenerator, CRLF)."""
    out = io.BytesIO()
    BytesGenerator(out).flatten(message, linesep="\r\n")
    return out.getvalue()


def built(build, **fields) -> bytes:
    boundaries = count()
    with mock.patch.object(mail, "_boundary", lambda: f"=_{next(boundaries):032x}"):
        return flattened(build(**fields))


# Bodies with what decides a part's encoding: non-ASCII, lines near SMTP's limit, lines
# beginning "From " (mangled to ">From "), CR and LF alone, nothing at all.
bodies = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.sampled_from(list("ab \r\n")), max_size=300),
    st.builds(lambda n, tail: "x" * n + tail, st.integers(880, 920), st.sampled_from(["", "\n"])),
    st.lists(st.sampled_from(["From here", "Zoë", "ok", "", ">From"])).map("\n".join),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=bodies,
    html=bodies,
    calendar=st.one_of(st.none(), bodies.map(lambda text: text.encode("utf-8"))),
    method=st.sampled_from([None, "REQUEST", "CANCEL"]),
    subject=st.sampled_from(["Booked: Call with Ann and Bob", "Zoë " * 30]),
)
def test_a_mail_is_the_email_mime_classes_mail_byte_for_byte(text, html, calendar, method, subject):
    fields = dict(
        subject=subject, to="ann@example.com", message_id="<u@h>", text=text, html=html,
        calendar=calendar, method=method,
    )  # fmt: skip
    with BARE_APP.app_context():
        assert built(mail.mime_mail, **fields) == built(reference_mail, **fields)


@settings(max_examples=100, deadline=None)
@given(text=bodies)
def test_a_part_decodes_to_its_text(text):
    part = mail._text_part(text, "plain")
    assert part.get_payload(decode=True) == reference_part(text, "plain").get_payload(decode=True)
    assert mail.text_of(part) == mail.text_of(reference_part(text, "plain"))
