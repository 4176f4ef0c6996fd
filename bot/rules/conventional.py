# Ported from conventional-changelog/commitlint@1fd1be00701ab48c9baa964e3b8c0c36a451ccc4
# (see the docstring for every source file and the other repositories read).
"""Judge a commit message the way commitlint's ``@commitlint/config-conventional`` does.

The goal is *the same verdict as commitlint* (same failing rule names, same levels), with one
deliberate difference: ``header-max-length`` defaults to 72 here instead of 100.

Everything below was ported from the real sources, not from documentation.  Sources read:

* conventional-changelog/commitlint @ 1fd1be00701ab48c9baa964e3b8c0c36a451ccc4
  (config-conventional 21.2.2):
  ``@commitlint/config-conventional/src/index.ts`` (rules, levels, type list),
  ``@commitlint/is-ignored/src/defaults.ts`` (default ignores),
  ``@commitlint/lint/src/lint.ts`` (ignore -> parse -> rules flow),
  ``@commitlint/parse/src/index.ts`` (parser options merge),
  ``@commitlint/rules/src/*.ts``, ``@commitlint/ensure/src/{case,to-case,max-line-length}.ts``,
  ``@commitlint/to-lines/src/index.ts``.
  Cross-checked against the published npm packages @commitlint/lint 21.2.4,
  @commitlint/config-conventional 21.2.4, whose compiled code for all of the above is the same.
* conventional-changelog/conventional-changelog @ 340ad83ee93939fc4a8c8f2da1bf728111299941:
  ``packages/conventional-changelog-conventionalcommits/src/parser.js`` (headerPattern,
  breakingHeaderPattern, noteKeywords) and ``packages/conventional-commits-parser/src/
  {CommitParser,regex,utils,options}.ts`` (how header/body/footer are split).  The published
  conventional-commits-parser 7.1.4 splits body/footer identically.
* npm/node-semver @ 6e05b7637396ac66522cff8731f07cfe0ef49a29 (7.8.5): ``internal/re.js``,
  ``classes/semver.js`` (``semver.valid``, used by the "version bump" ignore).
* es-toolkit 1.53.2 as published on npm (``dist/compat/_internal/words.mjs``,
  ``dist/compat/string/{startCase,camelCase,deburr}.mjs``): ``ensure/case`` delegates
  start-case / pascal-case to these, and they are a port of lodash's ``words``/``deburr``.

Why the JavaScript details matter: commitlint's verdicts depend on JS regex semantics, so the
regexes below spell out JS meanings explicitly instead of using Python's defaults:

* JS ``\\w``/``\\d``/``\\b`` (no ``u`` flag) are ASCII-only; Python's are Unicode -> explicit
  ASCII classes / ``re.ASCII``.
* JS ``\\s`` and ``String.prototype.trim`` use the ECMAScript WhiteSpace + LineTerminator set,
  which differs from ``str.isspace`` (e.g. U+FEFF vs U+001C) -> ``_JS_WHITESPACE``.
* JS ``.`` excludes ``\\n \\r \\u2028 \\u2029``; Python's excludes only ``\\n`` -> ``_DOT``.
* JS ``$`` without the ``m`` flag is end-of-input; Python's also matches before a final
  ``\\n`` -> ``\\Z``.
* JS ``String.length`` counts UTF-16 code units (an emoji is 2) -> ``_js_len`` for the
  length rules.
"""

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "DEFAULT_HEADER_MAX_LENGTH",
    "DEFAULT_TYPES",
    "JS_LINE_TERMINATOR_RE",
    "JS_WHITESPACE",
    "Header",
    "Problem",
    "is_ignored",
    "js_length",
    "lint",
    "parse_header",
    "parsed_header",
]

# config-conventional's `type-enum` list, in its order (config-conventional/src/index.ts).
DEFAULT_TYPES: tuple[str, ...] = (
    "build",
    "chore",
    "ci",
    "docs",
    "feat",
    "fix",
    "perf",
    "refactor",
    "revert",
    "style",
    "test",
)

# The one deliberate difference from config-conventional, which sets
# `"header-max-length": [2, "always", 100]`: 72 is the classic git/GitLab UI subject width.
DEFAULT_HEADER_MAX_LENGTH = 72

# config-conventional sets body-max-line-length and footer-max-line-length to 100.
_BODY_MAX_LINE_LENGTH: Final = 100
_FOOTER_MAX_LINE_LENGTH: Final = 100

Level = Literal["error", "warning"]


@dataclass(frozen=True)
class Header:
    """A header that matches the conventionalcommits parser preset's headerPattern.

    ``type`` and ``subject`` may be ``""``: the pattern ``^(\\w*)...: (.*)$`` accepts an empty
    type (``": x"``) and an empty subject (``"feat: "``); commitlint then reports type-empty /
    subject-empty.  ``scope`` is None both when absent and for ``"()"``, because the parser
    stores ``match || null``.
    """

    type: str
    scope: str | None
    breaking: bool  # the `!` marker before the colon
    subject: str


@dataclass(frozen=True)
class Problem:
    rule: str  # commitlint's rule name
    level: Level  # config-conventional's level: 2 -> "error", 1 -> "warning"
    message: str


# --------------------------------------------------------------------------------------------
# JavaScript semantics helpers
# --------------------------------------------------------------------------------------------

# ECMAScript WhiteSpace (TAB, VT, FF, ZWNBSP, USP = Unicode Zs) plus LineTerminator
# (LF, CR, LS, PS): the set used by `\s` and by trim()/trimStart()/trimEnd().
_JS_WHITESPACE: Final = (
    "\t\n\v\f\r \u00a0\u1680"
    + "".join(chr(cp) for cp in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_S: Final = f"[{_JS_WHITESPACE}]"
_NOT_S: Final = f"[^{_JS_WHITESPACE}]"
# JS `.` (no `s` flag) matches anything but a LineTerminator.
_DOT: Final = "[^\n\r\u2028\u2029]"
_JS_LINE_TERMINATOR_RE: Final = re.compile("[\n\r\u2028\u2029]")
# @commitlint/to-lines and the parser both split on /\r?\n/.
_NEWLINE_RE: Final = re.compile(r"\r?\n")


def _js_trim(s: str) -> str:
    return s.strip(_JS_WHITESPACE)


def _js_len(s: str) -> int:
    """`String.prototype.length`: UTF-16 code units, so astral characters count twice."""
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in s)


# Public names for the other commit rules (bot/rules/commits.py), which follow the same
# JavaScript semantics where they port JS tools (commitlint, the DCO app).
JS_WHITESPACE: Final = _JS_WHITESPACE
JS_LINE_TERMINATOR_RE: Final = _JS_LINE_TERMINATOR_RE


def js_length(s: str) -> int:
    """JavaScript's `String.prototype.length` (UTF-16 code units)."""
    return _js_len(s)


def _to_lines(s: str) -> list[str]:
    return _NEWLINE_RE.split(s)


def _trim_new_lines(s: str) -> str:
    # conventional-commits-parser utils.ts trimNewLines: strips leading/trailing \r and \n only.
    return s.strip("\r\n")


def _js_upper_first(s: str) -> str:
    """es-toolkit upperFirst: `str.substring(0, 1).toUpperCase() + str.substring(1)`.

    substring works on UTF-16 units, so an astral first character is a lone high surrogate
    that toUpperCase leaves alone: the string comes back unchanged.
    """
    if not s or ord(s[0]) > 0xFFFF:
        return s
    return s[0].upper() + s[1:]


def _js_capitalize(s: str) -> str:
    """es-toolkit capitalize: `charAt(0).toUpperCase() + slice(1).toLowerCase()` (UTF-16)."""
    if not s:
        return s
    if ord(s[0]) > 0xFFFF:
        return s[0] + s[1:].lower()
    return s[0].upper() + s[1:].lower()


# --------------------------------------------------------------------------------------------
# is-ignored (@commitlint/is-ignored/src/defaults.ts)
# --------------------------------------------------------------------------------------------

# The two `/m` wildcards
#   /^((Merge pull request)|(Merge (.*?) into (.*?)|(Merge branch (.*?)))(?:\r?\n)*$)/m
#   /^(Merge tag (.*?))(?:\r?\n)*$/m
# can match on ANY line of the message (JS `^`/`$` with `m` work at every LineTerminator),
# so e.g. a squash commit whose body contains "Merge branch 'x' into 'main'" is ignored by
# commitlint.  We reproduce that by testing each line separately: `.` cannot cross a line,
# and `(?:\r?\n)*$` only requires the match to run to the end of its line.
_MERGE_LINE_RES: Final = (
    re.compile(rf"Merge {_DOT}*? into {_DOT}*"),
    re.compile(rf"Merge branch {_DOT}*"),
    re.compile(rf"Merge tag {_DOT}*"),
)

# The anchored, non-multiline wildcards; each only needs its prefix to match (`(.*)` tails
# accept the empty string).
_START_IGNORE_RES: Final = (
    re.compile(r"[Rr]evert "),  # /^(R|r)evert (.*)/
    re.compile(r"[Rr]eapply "),  # /^(R|r)eapply (.*)/
    re.compile(r"(?:amend|fixup|squash)!"),  # /^(amend|fixup|squash)!/
    # /^(Merged (.*?)(in|into) (.*)|Merged PR (.*): (.*))/ -- note "in " may end any word.
    re.compile(rf"Merged {_DOT}*?(?:in|into) |Merged PR {_DOT}*: "),
    re.compile(r"Merge remote-tracking branch"),  # /^Merge remote-tracking branch(\s*)(.*)/
    re.compile(r"Automatic merge"),  # /^Automatic merge(.*)/
    re.compile(rf"Auto-merged {_DOT}*? into "),  # /^Auto-merged (.*?) into (.*)/
)

# isSemver's clean-up of the first line before semver.valid().
_CHORE_PREFIX_RE: Final = re.compile(r"\Achore(\([^)]+\))?:")  # JS `^`, no `m` flag
_SKIP_CI_BRACKET_RE: Final = re.compile(
    rf"\[(skip|ci)(-|{_S})(ci|skip)\]", re.IGNORECASE | re.ASCII
)
_SKIP_CI_PAREN_RE: Final = re.compile(rf"\((skip|ci)(-|{_S})(ci|skip)\)", re.IGNORECASE | re.ASCII)

# node-semver's strict FULL regex: `^v?MAINVERSION PRERELEASE? BUILD?$` (internal/re.js).
# node-semver actually runs a "safe" variant that bounds `*`/`+`; the bounds (256/250) can
# never bind because versions longer than MAX_LENGTH=256 are rejected first.
_SEMVER_NUM: Final = r"(?:0|[1-9][0-9]*)"
_SEMVER_PRE_ID: Final = rf"(?:[0-9]*[a-zA-Z-][a-zA-Z0-9-]*|{_SEMVER_NUM})"
_SEMVER_BUILD_ID: Final = r"[a-zA-Z0-9-]+"
_SEMVER_RE: Final = re.compile(
    rf"v?({_SEMVER_NUM})\.({_SEMVER_NUM})\.({_SEMVER_NUM})"
    rf"(?:-{_SEMVER_PRE_ID}(?:\.{_SEMVER_PRE_ID})*)?"
    rf"(?:\+{_SEMVER_BUILD_ID}(?:\.{_SEMVER_BUILD_ID})*)?\Z"
)
_SEMVER_MAX_LENGTH: Final = 256
_JS_MAX_SAFE_INTEGER: Final = 2**53 - 1


def _semver_valid(version: str) -> bool:
    """`semver.valid(v) !== null` with default (strict) options."""
    if _js_len(version) > _SEMVER_MAX_LENGTH:
        return False
    m = _SEMVER_RE.match(_js_trim(version))
    if m is None:
        return False
    # classes/semver.js throws "Invalid major/minor/patch version" past MAX_SAFE_INTEGER.
    return all(int(part) <= _JS_MAX_SAFE_INTEGER for part in m.groups())


def _is_semver(message: str) -> bool:
    # `c.split("\n").shift()`: split on LF only, so a CRLF first line keeps its "\r",
    # which the final trim() removes.
    first_line = message.split("\n", 1)[0]
    stripped = _CHORE_PREFIX_RE.sub("", first_line, count=1)
    stripped = _SKIP_CI_BRACKET_RE.sub("", stripped, count=1)
    stripped = _SKIP_CI_PAREN_RE.sub("", stripped, count=1)
    return _semver_valid(_js_trim(stripped))


def is_ignored(message: str) -> bool:
    """commitlint's default ignores (``@commitlint/is-ignored`` ``wildcards``).

    Like ``@commitlint/lint``, the message is right-trimmed first (``message.trimEnd()``).
    Covers: merge commits ("Merge branch ...", "Merge ... into ...", "Merge pull request",
    "Merge tag ...", "Merged ... in(to) ...", "Merged PR n: ...", "Merge remote-tracking
    branch", "Automatic merge", "Auto-merged ... into ..."), "Revert "/"revert ",
    "Reapply "/"reapply ", "amend!"/"fixup!"/"squash!", and semver bumps ("1.2.3",
    "v1.2.3", "chore(release): 1.2.3 [skip ci]").
    """
    message = message.rstrip(_JS_WHITESPACE)
    for line in _JS_LINE_TERMINATOR_RE.split(message):
        if line.startswith("Merge pull request"):
            return True
        if any(r.fullmatch(line) for r in _MERGE_LINE_RES):
            return True
    if any(r.match(message) for r in _START_IGNORE_RES):
        return True
    return _is_semver(message)


# --------------------------------------------------------------------------------------------
# Parsing (conventional-commits-parser with the conventionalcommits preset's options)
# --------------------------------------------------------------------------------------------

# conventional-changelog-conventionalcommits/src/parser.js:
#   headerPattern:         /^(\w*)(?:\((.*)\))?!?: (.*)$/
#   breakingHeaderPattern: /^(\w*)(?:\((.*)\))?!: (.*)$/
# CommitParser.parseHeader tries breakingHeaderPattern FIRST.  That matters: with the greedy
# scope group, "feat(a)!: b (c): d" gives scope "a" via the breaking pattern but
# scope "a)!: b (c" via headerPattern.
_HEADER_RE: Final = re.compile(rf"([A-Za-z0-9_]*)(?:\(({_DOT}*)\))?!?: ({_DOT}*)\Z")
_BREAKING_HEADER_RE: Final = re.compile(rf"([A-Za-z0-9_]*)(?:\(({_DOT}*)\))?!: ({_DOT}*)\Z")

# regex.ts getNotesRegex with noteKeywords ['BREAKING CHANGE', 'BREAKING-CHANGE'] ('i' flag).
_NOTE_RE: Final = re.compile(
    rf"(?:\*{_S}+)?(?:BREAKING CHANGE|BREAKING-CHANGE):", re.IGNORECASE | re.ASCII
)
# regex.ts getFooterTokenRegex with issuePrefixes ['#'] ('i' flag):
#   /^(?:BREAKING CHANGE|[\w-]+)(?::\s+|\s+(?:#)).+/i
_FOOTER_TOKEN_RE: Final = re.compile(
    rf"(?:BREAKING CHANGE|[A-Za-z0-9_-]+)(?::{_S}+|{_S}+#){_DOT}+", re.IGNORECASE | re.ASCII
)
# utils.ts gpgFilter: lines matching /^\s*gpg:/ are dropped before parsing.
_GPG_RE: Final = re.compile(rf"{_S}*gpg:")


@dataclass(frozen=True)
class _Parsed:
    raw: str
    header: str | None
    type: str | None
    scope: str | None
    subject: str | None
    body: str | None
    footer: str | None


def _match_header(header: str) -> tuple[re.Match[str], bool] | None:
    m = _BREAKING_HEADER_RE.match(header)
    if m is not None:
        return m, True
    m = _HEADER_RE.match(header)
    if m is not None:
        return m, False
    return None


def _parse(raw: str) -> _Parsed:
    """The fields of conventional-commits-parser's Commit that config-conventional reads.

    Effective options (parse/src/index.ts merges angular's preset, `fieldPattern: null`, then
    the conventionalcommits preset): no mergePattern, no fieldPattern, no commentChar (the
    CLI only sets it for `--edit`; our messages come from the API without comment lines).

    Body/footer split (CommitParser.parse / parseNotes / parseBodyAndFooter): after the header
    line, lines are body until the first line that is either a BREAKING CHANGE note
    (`_NOTE_RE`) or a footer token (`_FOOTER_TOKEN_RE`: "Token: value", "Token #ref",
    "BREAKING CHANGE: x"); that line and EVERY line after it are footer.  Body and footer are
    then stripped of leading/trailing newlines.  This is the complete rule for the options
    above, not a subset: references, mentions, notes text and revert detection do not feed
    any config-conventional rule, so they are not computed.
    """
    lines = [ln for ln in _to_lines(_trim_new_lines(raw)) if not _GPG_RE.match(ln)]
    header: str | None = lines[0] if lines else None
    if not header:  # parseHeader keeps `commit.header = null` for an empty first line
        header = None
    type_: str | None = None
    scope: str | None = None
    subject: str | None = None
    if header is not None:
        matched = _match_header(header)
        if matched is not None:
            m = matched[0]
            # assignMatchedCorrespondence stores `matches[i] || null`.
            type_, scope, subject = (m.group(1) or None, m.group(2) or None, m.group(3) or None)

    rest = lines[1:]
    split = next(
        (i for i, ln in enumerate(rest) if _NOTE_RE.match(ln) or _FOOTER_TOKEN_RE.match(ln)),
        len(rest),
    )
    body_lines, footer_lines = rest[:split], rest[split:]
    # appendLine() + cleanupCommit's trimNewLines() amount to join-then-strip; "" (not None)
    # when only blank lines were appended, which matters for lint's "empty commit" check.
    body = _trim_new_lines("\n".join(body_lines)) if body_lines else None
    footer = _trim_new_lines("\n".join(footer_lines)) if footer_lines else None
    return _Parsed(raw, header, type_, scope, subject, body, footer)


def parsed_header(message: str) -> Header | None:
    """The header of a whole message as the parser finds it (first non-gpg line, leading and
    trailing newlines trimmed), parsed; None when there is none or it does not match."""
    header = _parse(message).header
    return parse_header(header) if header is not None else None


def parse_header(header: str) -> Header | None:
    """Parse one header line with the conventionalcommits preset's patterns.

    Returns None when neither breakingHeaderPattern nor headerPattern matches.
    """
    matched = _match_header(header)
    if matched is None:
        return None
    m, breaking = matched
    return Header(
        type=m.group(1) or "",
        scope=m.group(2) or None,
        breaking=breaking,
        subject=m.group(3) or "",
    )


# --------------------------------------------------------------------------------------------
# @commitlint/ensure case (ensure/src/case.ts + to-case.ts + es-toolkit/lodash word splitting)
# --------------------------------------------------------------------------------------------

_Case = Literal["lower-case", "upper-case", "sentence-case", "start-case", "pascal-case"]

# config-conventional: "subject-case": [2, "never", [sentence, start, pascal, upper]].
_FORBIDDEN_SUBJECT_CASES: Final[tuple[_Case, ...]] = (
    "sentence-case",
    "start-case",
    "pascal-case",
    "upper-case",
)

# ensure/case.ts deletes quoted spans first: /`.*?`|".*?"|'.*?'/g
_QUOTED_RE: Final = re.compile(rf"`{_DOT}*?`|\"{_DOT}*?\"|'{_DOT}*?'")

# es-toolkit's compat deburr: U+00C0..U+017F map through a table built with its string
# deburr (NFD, drop combining marks, a few ligature/stroke letters spelled out); combining
# marks in these ranges are deleted; everything else is kept.
_DEBURR_SPECIAL: Final = {
    "Æ": "Ae", "Ð": "D", "Ø": "O", "Þ": "Th", "ß": "ss", "æ": "ae", "ð": "d", "ø": "o",
    "þ": "th", "Đ": "D", "đ": "d", "Ħ": "H", "ħ": "h", "\u0131": "i", "Ĳ": "IJ", "ĳ": "ij",
    "ĸ": "k", "Ŀ": "L", "ŀ": "l", "Ł": "L", "ł": "l", "ŉ": "'n", "Ŋ": "N", "ŋ": "n",
    "Œ": "Oe", "œ": "oe", "Ŧ": "T", "ŧ": "t", "\u017f": "s",
}  # fmt: skip


def _is_combining_mark(cp: int) -> bool:
    return 0x300 <= cp <= 0x36F or 0x20D0 <= cp <= 0x20FF or 0xFE20 <= cp <= 0xFE2F


def _deburr_latin(ch: str) -> str:
    special = _DEBURR_SPECIAL.get(ch)
    if special is not None:
        return special
    decomposed = unicodedata.normalize("NFD", ch)
    return "".join(_DEBURR_SPECIAL.get(c, c) for c in decomposed if not _is_combining_mark(ord(c)))


_DEBURRED_LETTERS: Final = {chr(cp): _deburr_latin(chr(cp)) for cp in range(0xC0, 0x180)}


def _deburr(s: str) -> str:
    return "".join("" if _is_combining_mark(ord(ch)) else _DEBURRED_LETTERS.get(ch, ch) for ch in s)


def _normalize_for_case(s: str) -> str:
    # es-toolkit compat/_internal/normalizeForCase: drop contraction apostrophes.
    return s.replace("'", "").replace("\u2019", "")


# lodash's `words` regexes as shipped in es-toolkit compat/_internal/words.mjs.  They have no
# `u` flag, so they run over UTF-16 code units (astral characters are surrogate pairs); we
# run them over a string of code units too (see _to_utf16_units).
_RS_ASTRAL_RANGE: Final = r"\ud800-\udfff"
_RS_COMBO_RANGE: Final = r"\u0300-\u036f\ufe20-\ufe2f\u20d0-\u20ff"
_RS_DINGBAT_RANGE: Final = r"\u2700-\u27bf"
_RS_LOWER_RANGE: Final = r"a-z\xdf-\xf6\xf8-\xff"
_RS_UPPER_RANGE: Final = r"A-Z\xc0-\xd6\xd8-\xde"
_RS_VAR_RANGE: Final = r"\ufe0e\ufe0f"
_RS_BREAK_RANGE: Final = (
    r"\xac\xb1\xd7\xf7\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\xbf\u2000-\u206f \t\x0b\f\xa0\ufeff"
    r"\n\r\u2028\u2029\u1680\u180e\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    r"\u2009\u200a\u202f\u205f\u3000"
)
_RS_APOS: Final = "['\u2019]"
_RS_BREAK: Final = f"[{_RS_BREAK_RANGE}]"
_RS_COMBO: Final = f"[{_RS_COMBO_RANGE}]"
_RS_DIGITS: Final = r"\d+"
_RS_DINGBAT: Final = f"[{_RS_DINGBAT_RANGE}]"
_RS_LOWER: Final = f"[{_RS_LOWER_RANGE}]"
_RS_MISC: Final = (
    f"[^{_RS_ASTRAL_RANGE}{_RS_BREAK_RANGE}{_RS_DIGITS}{_RS_DINGBAT_RANGE}"
    f"{_RS_LOWER_RANGE}{_RS_UPPER_RANGE}]"
)
_RS_MODIFIER: Final = rf"(?:{_RS_COMBO}|\ud83c[\udffb-\udfff])"
_RS_NON_ASTRAL: Final = f"[^{_RS_ASTRAL_RANGE}]"
_RS_REGIONAL: Final = r"(?:\ud83c[\udde6-\uddff]){2}"
_RS_SURR_PAIR: Final = r"[\ud800-\udbff][\udc00-\udfff]"
_RS_UPPER: Final = f"[{_RS_UPPER_RANGE}]"
_RS_ZWJ: Final = r"\u200d"
_RS_MISC_LOWER: Final = f"(?:{_RS_LOWER}|{_RS_MISC})"
_RS_MISC_UPPER: Final = f"(?:{_RS_UPPER}|{_RS_MISC})"
_RS_OPT_CONTR_LOWER: Final = f"(?:{_RS_APOS}(?:d|ll|m|re|s|t|ve))?"
_RS_OPT_CONTR_UPPER: Final = f"(?:{_RS_APOS}(?:D|LL|M|RE|S|T|VE))?"
_RE_OPT_MOD: Final = f"{_RS_MODIFIER}?"
_RS_OPT_VAR: Final = f"[{_RS_VAR_RANGE}]?"
_RS_OPT_JOIN: Final = (
    f"(?:{_RS_ZWJ}(?:{_RS_NON_ASTRAL}|{_RS_REGIONAL}|{_RS_SURR_PAIR}){_RS_OPT_VAR}{_RE_OPT_MOD})*"
)
_RS_ORD_LOWER: Final = r"\d*(?:1st|2nd|3rd|(?![123])\dth)(?=\b|[A-Z_])"
_RS_ORD_UPPER: Final = r"\d*(?:1ST|2ND|3RD|(?![123])\dTH)(?=\b|[a-z_])"
_RS_SEQ: Final = _RS_OPT_VAR + _RE_OPT_MOD + _RS_OPT_JOIN
_RS_EMOJI: Final = f"(?:{_RS_DINGBAT}|{_RS_REGIONAL}|{_RS_SURR_PAIR}){_RS_SEQ}"
# re.ASCII: JS (non-`u`) `\d` and `\b` are ASCII-only; JS `$` (no `m`) is Python `\Z`.
_RE_UNICODE_WORD: Final = re.compile(
    "|".join(
        (
            f"{_RS_UPPER}?{_RS_LOWER}+{_RS_OPT_CONTR_LOWER}(?={_RS_BREAK}|{_RS_UPPER}|\\Z)",
            f"{_RS_MISC_UPPER}+{_RS_OPT_CONTR_UPPER}"
            f"(?={_RS_BREAK}|{_RS_UPPER}{_RS_MISC_LOWER}|\\Z)",
            f"{_RS_UPPER}?{_RS_MISC_LOWER}+{_RS_OPT_CONTR_LOWER}",
            f"{_RS_UPPER}+{_RS_OPT_CONTR_UPPER}",
            _RS_ORD_UPPER,
            _RS_ORD_LOWER,
            _RS_DIGITS,
            _RS_EMOJI,
        )
    ),
    re.ASCII,
)
_RE_HAS_UNICODE_WORD: Final = re.compile(
    r"[a-z][A-Z]|[A-Z]{2}[a-z]|[0-9][a-zA-Z]|[a-zA-Z][0-9]|[^a-zA-Z0-9 ]"
)
_RE_ASCII_WORD: Final = re.compile(r"[^\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]+")


def _to_utf16_units(s: str) -> str:
    data = s.encode("utf-16-le", "surrogatepass")
    return "".join(chr(int.from_bytes(data[i : i + 2], "little")) for i in range(0, len(data), 2))


def _from_utf16_units(units: str) -> str:
    return units.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def _words(s: str) -> list[str]:
    """lodash/es-toolkit ``words(s)`` with the default pattern."""
    units = _to_utf16_units(s)
    pattern = _RE_UNICODE_WORD if _RE_HAS_UNICODE_WORD.search(units) else _RE_ASCII_WORD
    return [_from_utf16_units(m.group(0)) for m in pattern.finditer(units)]


def _start_case(s: str) -> str:
    # es-toolkit compat startCase: upper-case each word's first code point, keep the rest.
    words = _words(_js_trim(_normalize_for_case(_deburr(s))))
    return " ".join(w[0].upper() + w[1:] for w in words)


def _camel_case(s: str) -> str:
    words = _words(_normalize_for_case(_deburr(s)))
    if not words:
        return ""
    return words[0].lower() + "".join(_js_capitalize(w) for w in words[1:])


def _to_case(s: str, target: _Case) -> str:
    if target == "lower-case":
        return s.lower()
    if target == "upper-case":
        return s.upper()
    if target == "sentence-case":
        return _js_upper_first(s)
    if target == "start-case":
        return _start_case(s)
    return _js_upper_first(_camel_case(s))  # pascal-case


def _ensure_case(raw: str, target: _Case) -> bool:
    """ensure/case.ts: does `raw` "count as" `target` case?

    Quoted spans are removed first (they may hold proper names), the rest is trimmed and
    converted; it "is" that case when conversion changes nothing.  Quirk kept on purpose: an
    empty or digit-led conversion result also counts as "is that case".
    """
    text = _js_trim(_QUOTED_RE.sub("", raw))
    transformed = _to_case(text, target)
    if transformed == "" or "0" <= transformed[0] <= "9":
        return True
    return transformed == text


_CASED_CATEGORIES: Final = frozenset({"Lu", "Ll", "Lt"})


def _starts_with_cased_letter(s: str) -> bool:
    """subject-case.ts: /^[\\p{Ll}\\p{Lu}\\p{Lt}]/iu -- otherwise the rule passes outright.

    With `iu`, a character also matches when its simple case fold is a cased letter (e.g.
    U+0345 COMBINING GREEK YPOGEGRAMMENI folds to iota); casefold() approximates that.
    """
    if not s:
        return False
    ch = s[0]
    if unicodedata.category(ch) in _CASED_CATEGORIES:
        return True
    folded = ch.casefold()
    return len(folded) == 1 and unicodedata.category(folded) in _CASED_CATEGORIES


def _subject_forbidden_cases(subject: str) -> list[_Case]:
    """The forbidden cases `subject` matches (empty list: subject-case passes).

    So "Add x" and "URL handling" fail (sentence-case: upper-casing the first letter changes
    nothing), "add X" passes; a subject not starting with a cased letter ("42 x", "`X` y",
    " Add") is never checked.
    """
    if not _starts_with_cased_letter(subject):
        return []
    return [case for case in _FORBIDDEN_SUBJECT_CASES if _ensure_case(subject, case)]


# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------

# commitlint's URL exemption for the max-line-length rules (ensure/src/max-line-length.ts):
# /\bhttps?:\/\/\S+/ -- `\b` before "h" means "not preceded by an ASCII word character".
_URL_RE: Final = re.compile(rf"(?<![A-Za-z0-9_])https?://{_NOT_S}+")


def _max_line_length(part: str, text: str | None, limit: int) -> list[tuple[str, Level, str]]:
    """body-max-line-length / footer-max-line-length on `part` ("body" or "footer"): the
    first line of `text` breaking ensure.maxLineLength, as a failure; none when it holds."""
    for number, line in enumerate(_to_lines(text or ""), start=1):
        length = _js_len(line)
        if length > limit and not _URL_RE.search(line):
            return [
                (
                    f"{part}-max-line-length",
                    "error",
                    f"{part}'s lines must not be longer than {limit} characters"
                    f" ({part} line {number} has {length})",
                )
            ]
    return []


def _js_slice_first(items: list[str], start: int) -> str | None:
    """`items.slice(start)[0]` with JS negative-index clamping."""
    if start < 0:
        start = max(len(items) + start, 0)
    return items[start] if start < len(items) else None


def _check_rules(
    p: _Parsed, types: Sequence[str], header_max_length: int
) -> list[tuple[str, Level, str]]:
    """Run config-conventional's rules in its declaration order; return the failures."""
    failed: list[tuple[str, Level, str]] = []
    raw_lines = _to_lines(p.raw)

    # body-leading-blank [1, "always"]: the raw message's 2nd line must be empty when a body
    # exists (the rule reads parsed.raw, not the trimmed parse).
    if p.body and _js_slice_first(raw_lines, 1) != "":
        failed.append(
            ("body-leading-blank", "warning", "body must have a leading blank line (line 2)")
        )

    # body-max-line-length [2, "always", 100]; lines containing a URL are exempt.
    failed.extend(_max_line_length("body", p.body, _BODY_MAX_LINE_LENGTH))

    # footer-leading-blank [1, "always"]: finds the footer's first line in the raw lines
    # (first occurrence, as Array.indexOf does) and checks the line before it.
    if p.footer:
        first = _to_lines(p.footer)[0]
        offset = raw_lines.index(first) if first in raw_lines else -1
        if _js_slice_first(raw_lines, offset - 1) != "":
            failed.append(
                (
                    "footer-leading-blank",
                    "warning",
                    f'footer must have a leading blank line (before "{first}")',
                )
            )

    # footer-max-line-length [2, "always", 100]; lines containing a URL are exempt.
    failed.extend(_max_line_length("footer", p.footer, _FOOTER_MAX_LINE_LENGTH))

    # header-max-length [2, "always", 72 here / 100 upstream]; a missing header fails
    # (ensure.maxLength requires a string).
    if p.header is None:
        failed.append(("header-max-length", "error", "header is missing"))
    elif _js_len(p.header) > header_max_length:
        failed.append(
            (
                "header-max-length",
                "error",
                f"header must not be longer than {header_max_length} characters, "
                f"current length is {_js_len(p.header)}",
            )
        )

    # header-trim [2, "always"]
    if p.header:
        leading = p.header != p.header.lstrip(_JS_WHITESPACE)
        trailing = p.header != p.header.rstrip(_JS_WHITESPACE)
        if leading or trailing:
            if leading and trailing:
                where = "be surrounded by"
            else:
                where = "start with" if leading else "end with"
            failed.append(("header-trim", "error", f"header must not {where} whitespace"))

    # subject-case [2, "never", [sentence-case, start-case, pascal-case, upper-case]]
    if p.subject is not None:
        matched = _subject_forbidden_cases(p.subject)
        if matched:
            failed.append(
                (
                    "subject-case",
                    "error",
                    f'subject "{p.subject}" must not be {", ".join(matched)}'
                    " (start it with a lower-case letter)",
                )
            )

    # subject-empty [2, "never"]
    if not p.subject:
        failed.append(("subject-empty", "error", "subject may not be empty"))

    # subject-full-stop [2, "never", "."]: looks at the whole HEADER's last character, so it
    # also fires on headers that are not "type: subject" at all.  Headers whose first colon
    # is their last character are exempt; a trailing "..." is not a full stop.
    header = p.header or ""
    colon = header.find(":")
    exempt = colon > 0 and colon == len(header) - 1
    if not exempt and header.endswith(".") and not header.endswith("..."):
        failed.append(("subject-full-stop", "error", 'subject may not end with full stop "."'))

    # type-case [2, "always", "lower-case"]
    if p.type and not _ensure_case(p.type, "lower-case"):
        failed.append(("type-case", "error", f'type "{p.type}" must be lower-case'))

    # type-empty [2, "never"]
    if not p.type:
        failed.append(
            (
                "type-empty",
                "error",
                'type may not be empty: the header must look like "type(scope): subject"',
            )
        )

    # type-enum [2, "always", [...]]
    if p.type and p.type not in types:
        failed.append(("type-enum", "error", f'type "{p.type}" is not one of {", ".join(types)}'))

    return failed


def lint(
    message: str,
    *,
    types: Sequence[str] = DEFAULT_TYPES,
    header_max_length: int = DEFAULT_HEADER_MAX_LENGTH,
    default_ignores: bool = True,
) -> list[Problem]:
    """Lint ``message`` as commitlint + config-conventional would (header limit aside).

    Returns [] for ignored messages; otherwise every failing rule, errors first, each group
    in config-conventional's rule order (commitlint reports errors and warnings separately,
    each in config order).  ``default_ignores=False`` is commitlint's ``defaultIgnores:
    false``: merges, reverts, fixups and version bumps are linted too.
    """
    if default_ignores and is_ignored(message):
        return []
    # lint.ts skips "" as an empty commit; for whitespace-only input the parser throws
    # "Expected a raw commit" (and the CLI drops such input): nothing to report either way.
    if not _js_trim(message):
        return []
    parsed = _parse(message)
    if parsed.header is None and parsed.body is None and parsed.footer is None:
        return []  # lint.ts: "Commit is empty, skip" (e.g. only gpg: lines)
    failed = _check_rules(parsed, types, header_max_length)
    return [
        Problem(rule, level, text)
        for wanted in ("error", "warning")
        for rule, level, text in failed
        if level == wanted
    ]
