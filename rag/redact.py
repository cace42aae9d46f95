"""Keeping secrets out of everything that is stored or shown: logs, feedback rows, evaluation runs,
reports and answers.

Secrets are the ``SecretStr`` settings and any credentials written inside a URL
(``https://user:password@host/…``, ``postgresql://app:pw@db/records``) — in a setting, an
article's source or an exception message alike.
"""

from __future__ import annotations

import logging
import re

from pydantic import SecretStr

# scheme://userinfo@host — everything up to the *last* "@" of the authority (which ends at the
# first "/", "?", "#" or whitespace) is userinfo, as URL parsers (httpx, urllib) read it: a
# password may itself hold "@" ("p@ssw0rd"), and a token (a JWT) may be any length. Linear: the
# class excludes "/", so a scan never runs past the next "scheme://".
URL_CREDENTIALS = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.\-]{0,20}://)[^/?#\s]*@")


def redact_text(text: str) -> str:
    """``https://svc:P@SSWORD@host/v1`` → ``https://***@host/v1``, wherever it occurs in ``text``."""
    return URL_CREDENTIALS.sub(r"\1***@", text)


def public_settings(settings) -> dict:
    """The settings as JSON for storing beside results: secret fields left out, URL credentials
    redacted in every value (including the record database URL, which is a property)."""
    secret = {name for name, value in settings if isinstance(value, SecretStr)}
    data = settings.model_dump(mode="json", exclude=secret)
    data["record_db_url"] = settings.record_db_url
    return {key: redact_text(value) if isinstance(value, str) else value for key, value in data.items()}


class RedactingFilter(logging.Filter):
    """Redacts URL credentials in every log record (messages and their arguments, tracebacks too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = redact_text(message), None
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


def redact_logs() -> None:
    """Install the filter on every handler of the root logger (call after ``basicConfig``)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
