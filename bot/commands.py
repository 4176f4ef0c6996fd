"""MR commands in comments: `/compliance recheck`, `help`, `waive` and `unwaive`. Pure
parsing, and the limit on how many the bot answers."""

from __future__ import annotations

import re
from collections import OrderedDict, deque
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

PREFIX = "/compliance"


class Command(StrEnum):
    RECHECK = "recheck"
    HELP = "help"
    WAIVE = "waive"
    UNWAIVE = "unwaive"


HELP_TEXT = """\
**compliance-bot** commands, as a comment on the merge request:

| Command | What it does |
| --- | --- |
| `/compliance recheck` | Check the current head again, reading everything afresh. |
| `/compliance waive RULE [LOCATION] [for Nd \\| until YYYY-MM-DD] REASON` | Waive the \
findings of `RULE` on the current head (or only those at `LOCATION`: a commit's short sha \
or a path), with a reason. Maintainers only; 30 days unless said otherwise. |
| `/compliance unwaive RULE` | Withdraw the waivers of `RULE` on this merge request. |
| `/compliance help` | Show this list. |

The bot acknowledges a command with an :eyes: reaction. Its rules come from
`.gitlab/compliance.yml` on the target branch.
"""

_COMMAND = re.compile(r"^/compliance(?:[ \t]+(\S+))?[ \t]*$")
# `waive` and `unwaive` take arguments (checked by `parse_waiver`).
_WITH_ARGUMENTS = re.compile(r"^/compliance[ \t]+((?i:waive|unwaive))(?:[ \t]|$)")


def parse(body: str) -> Command | None:
    """The command a comment gives, from its first line; None when it gives none.

    A comment that starts with `/compliance` and names no known word asks for help."""
    first = body.strip().split("\n", 1)[0].strip()
    with_arguments = _WITH_ARGUMENTS.match(first)
    if with_arguments is not None:
        return Command(with_arguments.group(1).lower())
    match = _COMMAND.match(first)
    if match is None:
        return None
    word = (match.group(1) or "help").lower()
    return Command(word) if word in Command._value2member_map_ else Command.HELP


@dataclass(frozen=True)
class CommandLimits:
    """How many commands the bot answers per window: per MR, and per commenter."""

    per_merge_request: int = 5
    per_user: int = 10
    window_seconds: float = 600.0
    # Targets remembered at most (MRs and users); the oldest are forgotten first.
    max_tracked: int = 10_000


class CommandLimiter:
    """A sliding window of answered commands per MR and per user, in this process's memory.

    Memory, not the journal: the limit only keeps a burst of comments from becoming a burst
    of GitLab writes, so forgetting it on restart is harmless, and it costs no write per
    comment. With several replicas each keeps its own, so the bound is per replica. The
    table is bounded (`max_tracked` keys of at most `per_*` timestamps each).
    """

    def __init__(self, limits: CommandLimits | None = None) -> None:
        self.limits = limits or CommandLimits()
        self._answered: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, *, project_id: int, mr_iid: int, user: str, now: float) -> bool:
        """True (and counted) when the command may be answered; False past either limit."""
        limits = self.limits
        keys = (
            (f"mr {project_id}!{mr_iid}", limits.per_merge_request),
            (f"user {user}", limits.per_user),
        )
        windows = [self._window(key, now) for key, _ in keys]
        if any(len(window) >= limit for window, (_, limit) in zip(windows, keys, strict=True)):
            return False
        for window, (key, _) in zip(windows, keys, strict=True):
            window.append(now)
            self._answered[key] = window
            self._answered.move_to_end(key)
        while len(self._answered) > limits.max_tracked:
            self._answered.popitem(last=False)
        return True

    def _window(self, key: str, now: float) -> deque[float]:
        window = self._answered.get(key, deque())
        while window and now - window[0] >= self.limits.window_seconds:
            window.popleft()
        return window


# -- waive and unwaive: strict parsing ------------------------------------------------------

# A command longer than this is refused before it is read further.
MAX_COMMAND_CHARS = 2000
MAX_REASON_CHARS = 500
MAX_LOCATION_CHARS = 300
MAX_WAIVER_DAYS = 3650  # what the `for Nd` syntax accepts at all; the config caps it lower
_SHORT_SHA = re.compile(r"^[0-9a-f]{7,40}$")
_DAYS = re.compile(r"^(\d{1,4})d$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Waive:
    """`/compliance waive RULE [LOCATION] [for Nd | until DATE] REASON…`, as written."""

    rule: str
    reason: str
    location: str | None = None  # a short sha or a path; None: every finding of the rule
    days: int | None = None  # `for Nd`
    until: date | None = None  # `until YYYY-MM-DD`: through the end of that day, UTC


@dataclass(frozen=True)
class Unwaive:
    rule: str


@dataclass(frozen=True)
class Refused:
    """A command the bot will not carry out, and why (said in one short reply)."""

    reason: str


def _is_location(token: str) -> bool:
    """A commit's short sha, or a path (it has a `/` or a `.`): anything else after the rule
    is the start of the reason."""
    return bool(_SHORT_SHA.match(token)) or "/" in token or "." in token


def parse_waiver(body: str, known_rules: Collection[str]) -> Waive | Unwaive | Refused:
    """The waive or unwaive command of a comment (`parse` said which), strictly: an unknown
    rule, a missing reason, a malformed expiry is refused with its reason. The reason is the
    rest of the comment, its whitespace collapsed."""
    if len(body) > MAX_COMMAND_CHARS:
        return Refused(f"the command is longer than {MAX_COMMAND_CHARS} characters")
    tokens = body.split()
    if len(tokens) < 2 or tokens[0] != PREFIX or tokens[1].lower() not in ("waive", "unwaive"):
        return Refused("not a waive or unwaive command")
    word, rest = tokens[1].lower(), tokens[2:]
    if not rest:
        return Refused(f"name the rule: `/compliance {word} RULE`")
    rule = rest[0].lower()
    if rule not in known_rules:
        return Refused(f"unknown rule `{rest[0][:80]}`")
    rest = rest[1:]
    if word == "unwaive":
        if rest:
            return Refused("`/compliance unwaive` takes only the rule")
        return Unwaive(rule)
    location = None
    if rest and _is_location(rest[0]):
        location = rest[0]
        if len(location) > MAX_LOCATION_CHARS:
            return Refused(f"the location is longer than {MAX_LOCATION_CHARS} characters")
        rest = rest[1:]
    days: int | None = None
    until: date | None = None
    if rest and rest[0].lower() == "for":
        match = _DAYS.match(rest[1].lower()) if len(rest) > 1 else None
        if match is None:
            return Refused("write the duration as `for Nd`, e.g. `for 14d`")
        days = int(match.group(1))
        if not 1 <= days <= MAX_WAIVER_DAYS:
            return Refused("a waiver lasts at least 1 day")
        rest = rest[2:]
    elif rest and rest[0].lower() == "until":
        text = rest[1] if len(rest) > 1 else ""
        try:
            until = date.fromisoformat(text) if _DATE.match(text) else None
        except ValueError:
            until = None
        if until is None:
            return Refused("write the date as `until YYYY-MM-DD`")
        rest = rest[2:]
    reason = " ".join(rest)
    if not reason:
        return Refused("a waiver needs a reason: `/compliance waive RULE … REASON`")
    if len(reason) > MAX_REASON_CHARS:
        return Refused(f"the reason is longer than {MAX_REASON_CHARS} characters")
    return Waive(rule=rule, reason=reason, location=location, days=days, until=until)


def waiver_expiry(
    command: Waive, *, now: float, default_days: int, max_days: int
) -> float | Refused:
    """When the waiver ends (seconds since the epoch): `for Nd` from now, `until DATE` at the
    end of that day (UTC), the default otherwise; past the cap, or in the past, refused."""
    if command.until is not None:
        end = datetime.combine(command.until + timedelta(days=1), datetime.min.time(), UTC)
        expires = end.timestamp()
        if expires <= now:
            return Refused(f"{command.until.isoformat()} is in the past")
    else:
        expires = now + (command.days or default_days) * 86400
    if expires - now > max_days * 86400:
        return Refused(f"a waiver lasts at most {max_days} days here")
    return expires
