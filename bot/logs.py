"""Structured logs: one JSON object per line, with secrets scrubbed as a last line of defence.

The bot never puts a token in a log call; the redacting formatter makes sure that a value
that slipped into a message or an exception (a URL, a header dump, GitLab's error text) still
never leaves the process. A warning repeated in a flood (a client hammering the server) is
collapsed by `RepeatFilter`, so the logs cannot be used to fill a disk or drown the rest.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bot import redaction
from bot.redaction import REDACTED

__all__ = ["REDACTED", "JsonFormatter", "RepeatFilter", "TextFormatter", "configure"]

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._own = redaction.Redactor(secrets)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return self.redact(json.dumps(entry, default=str))

    def redact(self, text: str) -> str:
        # The secrets given here (tests, a formatter of its own) and the process's own.
        return redaction.redact(self._own(text))


class TextFormatter(JsonFormatter):
    """Plain lines for a terminal, with the same redaction."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{k}={v}"
            for k, v in record.__dict__.items()
            if k not in _STANDARD and not k.startswith("_")
        )
        line = f"{record.levelname} {record.name} {record.getMessage()} {extras}".rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return self.redact(line)


@dataclass
class _Window:
    started: float
    count: int = 0
    dropped: int = 0


class RepeatFilter(logging.Filter):
    """Collapses repeats of one warning (or error): at most `burst` lines of it per `window`
    seconds. The first line after a window in which some were dropped carries
    `repeated`: how many were not logged. Info lines (one per delivery, one per check) are
    never collapsed.

    Lines are "the same" when logger, level, message template and `outcome` agree, so a
    flood of 401s does not hide a 413, nor one logger's line another's.
    """

    MAX_KEYS = 1024

    def __init__(
        self,
        *,
        burst: int = 5,
        window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.burst = burst
        self.window = window
        self._clock = clock
        self._windows: dict[tuple[str, int, str, str], _Window] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, str(record.msg), str(getattr(record, "outcome", "")))
        now = self._clock()
        current = self._windows.get(key)
        if current is None or now - current.started >= self.window:
            if current is None and len(self._windows) >= self.MAX_KEYS:
                self._forget_old(now)
            self._windows[key] = _Window(started=now, count=1)
            if current is not None and current.dropped:
                record.repeated = current.dropped
            return True
        current.count += 1
        if current.count <= self.burst:
            return True
        current.dropped += 1
        return False

    def _forget_old(self, now: float) -> None:
        # Bounded: old windows go first; a flood of distinct templates clears the table.
        self._windows = {k: w for k, w in self._windows.items() if now - w.started < self.window}
        if len(self._windows) >= self.MAX_KEYS:
            self._windows.clear()


def configure(*, level: str, json_lines: bool, secrets: Iterable[str]) -> None:
    secrets = list(secrets)
    redaction.register(*secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(secrets) if json_lines else TextFormatter(secrets))
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request at INFO; the bot logs what matters about its calls itself.
    logging.getLogger("httpx").setLevel(logging.WARNING)
