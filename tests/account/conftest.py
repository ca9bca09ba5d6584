from tests.auth.conftest import inbox, smtp_inbox  # noqa: F401  (account mails)
