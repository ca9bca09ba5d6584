import io

from expertbook.access_log import RedactedLog


def test_secrets_in_urls_are_not_logged():
    out = io.StringIO()
    log = RedactedLog(out)
    log.write('"GET /bookings/abc?token=s3cr3t-_x&tz=UTC HTTP/1.1" 200\n')
    log.write('"GET /calendar/FEEDSECRET.ics HTTP/1.1" 200\n')
    assert out.getvalue() == (
        '"GET /bookings/abc?token=…&tz=UTC HTTP/1.1" 200\n"GET /calendar/….ics HTTP/1.1" 200\n'
    )
