"""Gitignore-style path patterns, matched as git matches them.

The file rules select paths with the patterns of `.gitignore` (`paths`, `exclude`, `when`,
`require`), and a pattern must mean there what `git check-ignore --no-index` says it means: the
test suite checks a few hundred generated cases against real git. This follows git's own code
(git/git dir.c: add_patterns_from_buffer, trim_trailing_spaces, parse_path_pattern,
last_matching_pattern_from_list, prep_exclude; wildmatch.c: dowild):

- trailing spaces are dropped unless escaped with a backslash; a trailing `/` matches
  directories only; `!` re-includes; a pattern without a `/` (a trailing one aside) matches the
  last component at any depth, any other is anchored at the root;
- `*`, `?` and `[...]` never match `/`; `**` matches across directories when it is a whole
  component (`**/x`, `x/**/y`, `x/**`) and is a plain `*` otherwise; brackets take ranges,
  `!`/`^` negation and POSIX classes (`[[:digit:]]`, ASCII only, as git's ctype);
- a file under an excluded directory stays excluded: a later `!dir/file` cannot re-include it,
  since git never looks inside an excluded directory;
- paths are compared byte by byte (UTF-8), case-sensitively, so `?` matches one byte.

Each pattern becomes one RE2 regex (linear time, whatever the pattern), and a list of patterns
one RE2 set, so a list is matched in one pass per path component.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import re2

# git's ctype (git-compat-util.h, ctype.c), ASCII only as wildmatch.c's ISASCII() guard says.
_PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
_CLASSES: dict[str, str] = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "blank": " \t",
    "cntrl": "\x00-\x1f\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": _PUNCT,
    "space": "\t\n\r ",
    "upper": "A-Z",
    "xdigit": "0-9A-Fa-f",
}
_NOTHING = r"[^\x00-\x{ff}]"  # RE2 has no (?!): a class that matches no byte


class PatternError(ValueError):
    """A pattern git would accept but that can never match: almost surely a mistake."""


@dataclass(frozen=True)
class _Pattern:
    text: str  # as written
    negative: bool
    directory_only: bool
    regex: str | None  # over whole paths as byte-chars; None: never matches


def _bytes(text: str) -> str:
    """`text` as one character per UTF-8 byte, so that regexes count bytes as git does."""
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def _trim_trailing_spaces(line: str) -> str:
    """git's trim_trailing_spaces: unescaped trailing spaces go (tabs stay)."""
    last_space: int | None = None
    i = 0
    while i < len(line):
        char = line[i]
        if char == " ":
            if last_space is None:
                last_space = i
        elif char == "\\":
            i += 1
            if i == len(line):
                return line
            last_space = None
        else:
            last_space = None
        i += 1
    return line if last_space is None else line[:last_space]


def _literal(char: str) -> str:
    return char if char.isascii() and char.isalnum() else f"\\x{{{ord(char):02x}}}"


def _members(spec: str) -> set[int]:
    """The byte values of a _CLASSES entry (`a-z` ranges and single characters)."""
    out: set[int] = set()
    i = 0
    while i < len(spec):
        if i + 2 < len(spec) and spec[i + 1] == "-":
            out.update(range(ord(spec[i]), ord(spec[i + 2]) + 1))
            i += 3
        else:
            out.add(ord(spec[i]))
            i += 1
    return out


def _byte_class(values: set[int]) -> str:
    """A regex class of exactly these byte values, as ranges."""
    if not values:
        return _NOTHING
    parts: list[str] = []
    ordered = sorted(values)
    low = previous = ordered[0]
    for value in [*ordered[1:], -2]:
        if value != previous + 1:
            parts.append(
                _literal(chr(low))
                if low == previous
                else f"{_literal(chr(low))}-{_literal(chr(previous))}"
            )
            low = value
        previous = value
    return "[" + "".join(parts) + "]"


def _bracket(pattern: str, start: int) -> tuple[set[int] | None, int]:
    """The bytes the class opening at `pattern[start] == "["` matches, as wildmatch.c parses
    it, and the index after its `]`; None when git aborts the match there (no closing `]`,
    an unknown `[:class:]`, a trailing `\\`)."""
    i = start + 1
    negated = i < len(pattern) and pattern[i] in "!^"
    if negated:
        i += 1
    matched: set[int] = set()
    previous: int | None = None  # the last single character, which may start a range
    first = True
    while True:
        if i >= len(pattern):
            return None, i
        char = pattern[i]
        if char == "]" and not first:
            break
        first = False
        if char == "\\":
            i += 1
            if i >= len(pattern):
                return None, i
            previous = ord(pattern[i])
            matched.add(previous)
        elif char == "-" and previous is not None and pattern[i + 1 : i + 2] not in ("", "]"):
            i += 1
            high = pattern[i]
            if high == "\\":
                i += 1
                if i >= len(pattern):
                    return None, i
                high = pattern[i]
            matched.update(range(previous, ord(high) + 1))  # empty when reversed, as in git
            previous = None
        elif char == "[" and pattern[i + 1 : i + 2] == ":":
            end = pattern.find("]", i + 2)
            if end < 0:
                return None, i
            name = pattern[i + 2 : end]
            if not name.endswith(":"):
                # No `:]` before the `]`: the `[` is a plain member, parsing goes on after it.
                previous = ord("[")
                matched.add(previous)
                i += 1
                continue
            members = _CLASSES.get(name[:-1])
            if members is None:
                return None, i
            matched |= _members(members)
            previous = None
            i = end
        else:
            previous = ord(char)
            matched.add(previous)
        i += 1
    if negated:
        matched = set(range(256)) - matched
    # With WM_PATHNAME a class never matches `/` (and a basename holds none).
    matched.discard(ord("/"))
    return matched, i + 1


def _wildmatch(pattern: str, pathname: bool) -> str | None:
    """wildmatch.c's language as an RE2 regex matching whole strings, or None when the pattern
    never matches. `pathname` is WM_PATHNAME (`*` stops at `/`; `**` components)."""
    out: list[str] = []
    i = 0
    n = len(pattern)
    # match_pathname compares the literal prefix (up to the first of `*?[\\`) itself and
    # hands wildmatch only the rest, so a `**` right after that prefix counts as the start of
    # a pattern there: `foo**/bar` matches `foobar` in git.
    prefix = next((k for k, c in enumerate(pattern) if c in "*?[\\"), n)
    while i < n:
        char = pattern[i]
        if char == "*":
            j = i
            while j < n and pattern[j] == "*":
                j += 1
            at_component_start = i in (0, prefix) or pattern[i - 1] == "/"
            rest = pattern[j:]
            if (
                pathname
                and j - i >= 2
                and at_component_start
                and (rest == "" or rest.startswith(("/", "\\/")))
            ):
                if rest.startswith("/"):
                    out.append("(?:.*/)?")  # zero or more whole directories
                    j += 1
                else:
                    out.append(".*")
            else:
                out.append("[^/]*")
            i = j
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[":
            members, i = _bracket(pattern, i)
            if members is None:
                return None
            out.append(_byte_class(members))
        elif char == "\\":
            if i + 1 >= n:
                return None  # a trailing backslash: git's match aborts
            out.append(_literal(pattern[i + 1]))
            i += 2
        else:
            out.append(_literal(char))
            i += 1
    return "".join(out)


def _parse(line: str) -> _Pattern | None:
    """One pattern line as git's add_patterns_from_buffer and parse_path_pattern read it."""
    text = line[:-1] if line.endswith("\r") else line
    if not text or text.startswith("#"):
        return None
    body = _bytes(_trim_trailing_spaces(text))
    negative = body.startswith("!")
    if negative:
        body = body[1:]
    directory_only = body.endswith("/")
    if directory_only:
        body = body[:-1]
    if "/" not in body:
        # No slash: the last path component, at any depth (match_basename, flags 0).
        inner = _wildmatch(body, pathname=False)
        regex = None if inner is None else "(?:.*/)?" + inner
    else:
        # Anchored at the root; a leading `/` only says so (match_pathname, WM_PATHNAME).
        regex = _wildmatch(body.removeprefix("/"), pathname=True)
    if not body:
        regex = None
    return _Pattern(line, negative, directory_only, regex)


@dataclass(frozen=True)
class GitIgnore:
    """A list of gitignore patterns, matched as git does."""

    patterns: tuple[_Pattern, ...]
    file_set: Any  # RE2 set of the patterns that can match a file
    file_index: tuple[int, ...]  # set index -> pattern index
    dir_set: Any
    dir_index: tuple[int, ...]

    def _last_match(self, path: str, directory: bool) -> _Pattern | None:
        regexes, index = (
            (self.dir_set, self.dir_index) if directory else (self.file_set, self.file_index)
        )
        if regexes is None:
            return None
        hits = regexes.Match(path.encode("latin-1"))
        return self.patterns[index[max(hits)]] if hits else None

    def match_file(self, path: str) -> bool:
        """Whether git ignores the file `path` (relative to the root, `/`-separated)."""
        key = _bytes(path.strip("/"))
        parts = key.split("/")
        # prep_exclude: a directory that is ignored hides everything below it.
        for depth in range(1, len(parts)):
            hit = self._last_match("/".join(parts[:depth]), directory=True)
            if hit is not None and not hit.negative:
                return True
        hit = self._last_match(key, directory=False)
        return hit is not None and not hit.negative


def _set(regexes: list[str]) -> Any:
    if not regexes:
        return None
    options = re2.Options()
    options.log_errors = False
    # LATIN1: one input byte per character, as _bytes() made the path and the patterns.
    options.encoding = re2.Options.Encoding.LATIN1
    regex_set = re2.Set.FullMatchSet(options)
    for regex in regexes:
        regex_set.Add(regex.encode("ascii"))  # _literal() escapes every non-ASCII byte
    regex_set.Compile()
    return regex_set


@lru_cache(maxsize=512)
def compile_patterns(lines: tuple[str, ...]) -> GitIgnore:
    patterns = tuple(p for line in lines if (p := _parse(line)) is not None)
    file_index = tuple(i for i, p in enumerate(patterns) if p.regex and not p.directory_only)
    dir_index = tuple(i for i, p in enumerate(patterns) if p.regex)
    return GitIgnore(
        patterns=patterns,
        file_set=_set([str(patterns[i].regex) for i in file_index]),
        file_index=file_index,
        dir_set=_set([str(patterns[i].regex) for i in dir_index]),
        dir_index=dir_index,
    )


def validate(lines: Sequence[str]) -> None:
    """Refuse patterns that git would take but never match, and multi-line ones."""
    for line in lines:
        if "\n" in line:
            raise PatternError(f"{line!r}: a pattern is one line")
        parsed = _parse(line)
        if parsed is not None and parsed.regex is None and line.strip("!/ "):
            raise PatternError(
                f"{line!r} can never match, as git reads it (an unclosed `[`, an unknown "
                "`[:class:]` or a trailing `\\`)"
            )
    compile_patterns(tuple(lines))
