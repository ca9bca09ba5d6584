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


def test_with_the_access_log_off_only_errors_are_written():
    """wsgi.py gives eventlet an empty line format then, so that its errors still reach
    the log: the empty lines are dropped, a traceback is kept."""
    out = io.StringIO()
    log = RedactedLog(out)
    log.write("\n")
    log.write("Traceback (most recent call last):\n  ...\nOperationalError: gone\n")
    assert out.getvalue() == "Traceback (most recent call last):\n  ...\nOperationalError: gone\n"


def test_one_click_links_are_not_logged():
    """A request mail's confirm and decline links answer the request: their signed part is
    as secret as a token; the signed-in buttons' paths (no token) stay as they are."""
    out = io.StringIO()
    log = RedactedLog(out)
    log.write('"GET /bookings/abc/confirm/WyJhYmMiLCJjb25maXJtIl0.Zz.sig HTTP/1.1" 200\n')
    log.write('"POST /bookings/abc/decline/eyJ0.x-y_z?x=1 HTTP/1.1" 200\n')
    log.write('"POST /bookings/abc/confirm HTTP/1.1" 302\n')
    assert out.getvalue() == (
        '"GET /bookings/abc/confirm/… HTTP/1.1" 200\n'
        '"POST /bookings/abc/decline/…?x=1 HTTP/1.1" 200\n'
        '"POST /bookings/abc/confirm HTTP/1.1" 302\n'
    )
