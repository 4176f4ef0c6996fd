"""User-supplied patterns, made safe.

Regexes from a config file run on text an MR author controls (titles, descriptions, commit
messages), so they are compiled with RE2, whose matching time is linear in the input: no
pattern can make the bot hang. Sizes are capped as GitLab caps push-rule regexes (511).
https://docs.gitlab.com/user/project/repository/push_rules/
"""

from __future__ import annotations

from typing import Annotated, Any

import re2
from pydantic import AfterValidator

MAX_PATTERN_LENGTH = 511
# Text longer than this is judged on its first MAX_TEXT_LENGTH characters.
MAX_TEXT_LENGTH = 1_000_000

_OPTIONS = re2.Options()
_OPTIONS.max_mem = 8 << 20  # bound the compiled program's memory
_OPTIONS.log_errors = False  # errors are raised and reported; RE2 need not print them too


def compile_regex(pattern: str) -> Any:
    """Compile with RE2 or raise ValueError naming the pattern and RE2's reason."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"pattern longer than {MAX_PATTERN_LENGTH} characters")
    try:
        return re2.compile(pattern, options=_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(f"pattern {pattern!r} is not valid RE2: {reason}") from None


def search(pattern: str, text: str) -> bool:
    return compile_regex(pattern).search(text[:MAX_TEXT_LENGTH]) is not None


def _valid(pattern: str) -> str:
    compile_regex(pattern)
    return pattern


# A config field holding a user regex: validated (compiled by RE2) when the config loads.
Regex = Annotated[str, AfterValidator(_valid)]
