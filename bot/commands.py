"""MR commands in comments: `/compliance recheck` and `/compliance help`. Pure parsing, and
the limit on how many the bot answers."""

from __future__ import annotations

import re
from collections import OrderedDict, deque
from dataclasses import dataclass
from enum import StrEnum

PREFIX = "/compliance"


class Command(StrEnum):
    RECHECK = "recheck"
    HELP = "help"


HELP_TEXT = """\
**compliance-bot** commands, as a comment on the merge request:

| Command | What it does |
| --- | --- |
| `/compliance recheck` | Check the current head again, reading everything afresh. |
| `/compliance help` | Show this list. |

The bot acknowledges a command with an :eyes: reaction. Its rules come from
`.gitlab/compliance.yml` on the target branch.
"""

_COMMAND = re.compile(r"^/compliance(?:[ \t]+(\S+))?[ \t]*$")


def parse(body: str) -> Command | None:
    """The command a comment gives, from its first line; None when it gives none.

    A comment that starts with `/compliance` and names no known word asks for help."""
    first = body.strip().split("\n", 1)[0].strip()
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
