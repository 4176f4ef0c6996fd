"""MR commands in comments: `/compliance recheck` and `/compliance help`. Pure parsing."""

from __future__ import annotations

import re
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
