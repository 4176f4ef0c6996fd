"""One redaction function for every sink a string can leave the process through.

The bot's secrets (GITLAB_TOKEN, WEBHOOK_SECRET, WEBHOOK_SIGNING_TOKEN) are registered once at
start. `redact` then replaces each of them, in any of the spellings a string can carry it in,
wherever text reaches a sink: the log formatter (bot/logs.py), the journal's error column
(bot/store.py, bot/store_postgres.py), and what is published to GitLab (bot/publish.py). GitLab
error bodies that echo a request, an `Illegal header value b'...\\n'` from httpx, a URL with the
token in its query: each is scrubbed at the sink, whatever path it took to get there.

The set of secrets is process-wide on purpose: secrets are the process's environment, and a
string that reaches a sink through a path nobody foresaw (an exception's text) must be
scrubbed without that path having to carry the settings along.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

REDACTED = "[REDACTED]"
# Shorter values would redact ordinary words; the settings refuse none, but a secret this
# short protects nothing anyway.
MIN_SECRET_LENGTH = 4


def _spellings(secret: str) -> set[str]:
    """The ways `secret` can appear inside other text: as is, without surrounding
    whitespace, escaped by repr() of a str or of bytes (httpx's `Illegal header value
    b'...'`), URL-encoded, and JSON-escaped (inside a log line or an error body)."""
    plain = {secret, secret.strip()}
    escaped = set(plain)
    for value in plain:
        escaped.add(repr(value)[1:-1])
        escaped.add(repr(value.encode("utf-8", "backslashreplace"))[2:-1])
        escaped.add(quote(value, safe=""))
        escaped.add(quote_plus(value, safe=""))
    spellings = set(escaped)
    for value in escaped:
        spellings.add(json.dumps(value)[1:-1])
        spellings.add(json.dumps(value, ensure_ascii=False)[1:-1])
    return {s for s in spellings if len(s) >= MIN_SECRET_LENGTH}


class Redactor:
    """Replaces every registered secret, in each of its spellings, with REDACTED."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._needles: list[str] = []
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        needles = set(self._needles)
        for secret in secrets:
            if secret and len(secret.strip()) >= MIN_SECRET_LENGTH:
                needles |= _spellings(secret)
        # Longest first, so a spelling containing another is scrubbed whole.
        self._needles = sorted(needles, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for needle in self._needles:
            if needle in text:
                text = text.replace(needle, REDACTED)
        return text


_process_secrets = Redactor()


def register(*secrets: str | None) -> None:
    """Add the process's secrets (at start: the settings' tokens)."""
    _process_secrets.add(*secrets)


def redact(text: str) -> str:
    """`text` with every registered secret replaced by REDACTED."""
    return _process_secrets(text)


def redact_optional(text: str | None) -> str | None:
    return None if text is None else redact(text)
