"""Rendering a Report: the MR note's Markdown and the commit status description. No I/O.

The note is read on GitLab, which renders GitLab Flavored Markdown with raw HTML allowed,
then links references (`#1`, `!2`, `@user`, ...) and URLs in the resulting text. So every
piece of text that is not the bot's own (paths, names, titles, subjects, branch names,
GitLab's error text, and the findings' messages that quote them) passes through `escape`
(DESIGN.md, invariant 13).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from bot import __version__
from bot.model import Finding, Report, Severity, Waived
from bot.redaction import redact

# The hidden marker by which the bot finds its own note among an MR's notes.
NOTE_MARKER = "<!-- compliance-bot -->"

# The note's hidden, machine-readable record of the waivers it shows, for `compliance-bot
# check` in CI, which has no journal (bot/checkout.py). One line of base64 (no `-`, no
# `>`, so nothing in it can end the comment) holding compact JSON; an HTML comment is an HTML
# block that GitLab does not render (https://spec.commonmark.org/0.31.2/#html-blocks, kind 2).
WAIVER_RECORD_START = "<!-- compliance-bot waivers: "
WAIVER_RECORD_END = " -->"
WAIVER_RECORD_VERSION = 1
# The record's JSON stays below this: the note must stay readable and under NOTE_LIMIT.
# Waivers (or fingerprints) past it are left out, so CI waives less than the server, never more.
WAIVER_RECORD_LIMIT = 16_000
MAX_RECORD_REASON_CHARS = 1000

# GitLab rejects a commit status description longer than 255 characters, and its
# `target_url` too (app/models/generic_commit_status.rb: `validates :target_url,
# length: { maximum: 255 }`). https://docs.gitlab.com/api/commits/#set-commit-pipeline-status
STATUS_DESCRIPTION_LIMIT = 255
TARGET_URL_LIMIT = 255

# GitLab caps a note at 1,000,000 characters, but long before that a note stops being read:
# the bot's note stays below this, whatever the MR holds.
# https://docs.gitlab.com/api/notes/#create-new-merge-request-note
NOTE_LIMIT = 100_000

# How many findings of one rule the note lists; past the note's size cap, fewer.
MAX_FINDINGS_PER_RULE = 20
# How many locations a rule's line in the summary table names before "+N more".
SUMMARY_LOCATIONS = 3
# Bounds on one finding's text in the note, and on a rule's distinct fix hints.
MAX_MESSAGE_CHARS = 400
MAX_LOCATION_CHARS = 80
MAX_HINTS_PER_RULE = 3
MAX_HINT_CHARS = 500

RECHECK_COMMAND = "/compliance recheck"
# Said wherever a check could not complete (the note, the status, `publish.set_incomplete`).
RETRY_HINT = f"the bot retries by itself; comment {RECHECK_COMMAND} to retry now"
WHERE_TO_SEE_ALL = (
    "run `compliance-bot check` locally, or see the CI job's JUnit report, for all of them"
)

_TITLES = {
    Severity.ERROR: "Needs fixing",
    Severity.WARNING: "Warnings",
    Severity.INFO: "For information",
}
_ICON = {
    Severity.ERROR: ":x:",
    Severity.WARNING: ":warning:",
    Severity.INFO: ":information_source:",
}
_SECTIONS = tuple(_TITLES.items())


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


# -- escaping -----------------------------------------------------------------------------

# Bidirectional controls reorder what is shown (`gnp.exe` displays as `exe.png`), even in
# code; they are removed. https://unicode.org/reports/tr9/ (explicit formatting characters)
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
# Zero-width characters hide text and break copy-paste; none survives into a code span.
_ZERO_WIDTH = re.compile("[\u200b-\u200d\u2060\ufeff]")
# Line breaks and other controls: user text is always shown on one line.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# Every ASCII punctuation character may be backslash-escaped in CommonMark
# (https://spec.commonmark.org/0.31.2/#backslash-escapes). Escaped, none starts emphasis,
# a link, an HTML tag or comment (`<!--`), a table cell (`\|`, GFM), or a list. GitLab keeps
# a backslash-escaped reference character literal: `\#`, `\!`, `\@`, `\&`, `\%`, `\$`,
# `\~` and `\^` are wrapped so its reference filters skip them (gitlabhq:
# lib/banzai/filter/markdown_pre_escape_filter.rb, ESCAPABLE_CHARS with `reference: true`).
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
_BACKTICKS = re.compile("`+")


def _clean(text: str) -> str:
    return _CONTROLS.sub(" ", _BIDI.sub("", text))


def escape(text: str, *, code: bool = False, in_table: bool = False) -> str:
    """User text as inline Markdown that renders as exactly that text and nothing else.

    `code=True` makes it a code span, sized so that backticks inside cannot close it; in
    a code span GitLab links no reference and no URL. Otherwise every ASCII punctuation
    character is backslash-escaped, and `:` is followed by a zero-width space: GitLab
    autolinks `scheme://` and turns `:name:` into emoji in the rendered text, where no
    escape survives (gitlabhq: lib/banzai/filter/autolink_filter.rb, emoji_filter.rb).
    `in_table`: a `|` inside a code span still ends a GFM table cell unless escaped.
    """
    text = _clean(text)
    if not code:
        return _PUNCTUATION.sub(r"\\\1", text).replace(":", ":\u200b")
    text = _ZERO_WIDTH.sub("", text)
    if in_table:
        text = text.replace("|", "\\|")
    if not text:
        return ""
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(text)), default=0) + 1)
    # CommonMark strips one space at each end of a code span when both are there, so a span
    # that starts or ends with a backtick (or a space) is padded on both sides.
    # https://spec.commonmark.org/0.31.2/#code-spans
    pad = " " if text[0] in "` " or text[-1] in "` " else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# The bot's own prose in messages and fixes marks commands and names as `code`; the rest of
# such text may quote anything. Code spans stay code spans (resized), the rest is escaped,
# and links to documentation stay links.
_RULE_TEXT = re.compile(
    r"(?<!`)(?P<fence>`+)(?!`)(?P<code>.+?)(?<!`)(?P=fence)(?!`)"
    r"|(?P<url>https://(?:docs\.gitlab\.com|git-scm\.com)/[A-Za-z0-9/_.#~-]*[A-Za-z0-9/_#~-])"
)


def _rule_text(text: str, *, in_table: bool = False) -> str:
    parts: list[str] = []
    position = 0
    for match in _RULE_TEXT.finditer(_clean(text)):
        parts.append(escape(match.string[position : match.start()]))
        if match["url"]:
            parts.append(f"<{match['url']}>")
        else:
            parts.append(escape(match["code"].strip(" ") or " ", code=True, in_table=in_table))
        position = match.end()
    parts.append(escape(_clean(text)[position:]))
    return "".join(parts)


def bot_text(text: str) -> str:
    """The bot's own sentence as Markdown: its `code` spans stay code spans (resized),
    everything else, user text included, is escaped."""
    return _rule_text(text)


def plain(text: str, limit: int | None = None) -> str:
    """Text for a plain-text field (a status description): one line, no HTML."""
    text = " ".join(_TAGS.sub(" ", _clean(text)).split())
    return _shorten(text, limit) if limit else text


# -- GitLab's error text ------------------------------------------------------------------

_TAGS = re.compile(r"<[^<>]*>|<[^<>]*$")
_TITLE = re.compile(r"<title>\s*(.*?)\s*</title>", re.IGNORECASE | re.DOTALL)
_HTML_START = re.compile(r"<(?:!doctype|html|head|body|title|h1)\b", re.IGNORECASE)
MAX_ERROR_CHARS = 200


def summarize_error(text: str) -> str:
    """GitLab's error as one short line: an HTML error page (a proxy's 502) becomes its
    title, or its text without tags, never markup."""
    text = _clean(text)
    page = _HTML_START.search(text)
    if page is not None:
        title = _TITLE.search(text, page.start())
        rest = text[page.start() :]
        tail = re.search(r"\s(to (?:GET|POST|PUT|DELETE|PATCH|HEAD) \S+.*)$", rest)
        summary = title.group(1) if title else _TAGS.sub(" ", rest)
        before = text[: page.start()]
        status = re.search(r"(\d{3}) *$", before)
        if status and summary.strip().startswith(status.group(1)):
            before = before[: status.start()]  # "502 <title>502 Bad Gateway": one 502
        text = before + summary + (" " + tail.group(1) if tail else "")
    return plain(text, MAX_ERROR_CHARS)


def incomplete_description(error: str) -> str:
    """The status description of a check that could not complete because of GitLab."""
    hint = f"; {RETRY_HINT}"
    head = "could not complete: "
    room = STATUS_DESCRIPTION_LIMIT - len(head) - len(hint)
    return head + plain(summarize_error(error), room) + hint


# -- links --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Links:
    """Where the note's locations point: the project and MR pages as GitLab gives them."""

    project_url: str = ""
    merge_request_url: str = ""

    @classmethod
    def for_merge_request(cls, web_url: str) -> Links:
        """From the MR's `web_url`, which GitLab builds as `<project>/-/merge_requests/<iid>`
        (gitlabhq: config/routes/merge_requests.rb under the project's `/-/` scope)."""
        project, separator, _ = web_url.rpartition("/-/merge_requests/")
        return cls(project_url=_url(project) if separator else "", merge_request_url=web_url)

    def commit(self, sha: str) -> str:
        return f"{self.project_url}/-/commit/{sha}" if self.project_url else ""

    def blob(self, sha: str, path: str, line: int | None) -> str:
        """The file at the head commit (`/-/blob/<sha>/<path>#L<line>`), path encoded."""
        if not self.project_url:
            return ""
        anchor = f"#L{line}" if line else ""
        return f"{self.project_url}/-/blob/{sha}/{quote(path, safe='/')}{anchor}"


def _url(url: str) -> str:
    # A URL goes into `[text](url)`: nothing in it may end the destination.
    return quote(url, safe=":/?#[]@!$&'*+,;=%~-._")


def target_url(links: Links, note_id: int | None) -> str | None:
    """The status links to the note; past GitLab's 255-character limit, to the MR."""
    url = links.merge_request_url
    if not url:
        return None
    with_note = f"{url}#note_{note_id}" if note_id is not None else url
    if len(with_note) <= TARGET_URL_LIMIT:
        return with_note
    return url if len(url) <= TARGET_URL_LIMIT else None


_COMMIT_LOCATION = re.compile(r"^commit (?P<sha>[0-9a-f]{7,40}): (?P<title>.*)$", re.DOTALL)
_FILE_LINE = re.compile(r"^(?P<path>[^\s:][^:]*):(?P<line>\d+)$")


def _location(finding: Finding, report: Report, links: Links, *, short: bool) -> str:
    """A finding's location as Markdown: a commit links to it, a file (line) to the file at
    the head commit. `short` keeps only the link (for the summary table)."""
    location = _clean(finding.location)
    commit = _COMMIT_LOCATION.match(location)
    if commit is not None:
        sha = commit["sha"]
        label = escape(sha[:8], code=True)
        url = links.commit(sha)
        linked = f"[{label}]({url})" if url else label
        title = _shorten(commit["title"], 60 if short else MAX_LOCATION_CHARS)
        return linked if short else f"{linked} {escape(title, code=True)}"
    file_line = _FILE_LINE.match(location)
    path, line = (file_line["path"], int(file_line["line"])) if file_line else (location, None)
    is_file = file_line is not None or finding.rule.startswith("files.")
    shown = _shorten(location, 50 if short else MAX_LOCATION_CHARS)
    label = escape(shown, code=True, in_table=short)
    url = links.blob(report.head_sha, path, line) if is_file and location else ""
    return f"[{label}]({url})" if url else label


# -- the commit status ----------------------------------------------------------------------


def status_state(report: Report) -> str:
    return "success" if report.passed else "failed"


def status_description(report: Report) -> str:
    """Plain text of at most 255 characters; counts as the note counts."""
    if report.error is not None:
        if report.retryable:
            return incomplete_description(report.error)
        text = f"could not complete: {report.error}"
        if report.details:
            text += f" ({_plural(len(report.details), 'problem')}); fix it on the target branch"
    elif report.error_count or report.waived:
        text = _counts(report)
    elif report.warning_count:
        text = f"passed with {_plural(report.warning_count, 'warning')}"
    else:
        text = f"all {len(report.outcomes)} checks passed"
    inherited = len(report.inherited)
    if report.error is None and inherited:
        text += f"; {inherited} already on the target branch"
    return plain(text, STATUS_DESCRIPTION_LIMIT)


def _counts(report: Report) -> str:
    """`2 errors, 1 warning`, with `, 1 waived` when waivers cover findings."""
    errors = _plural(report.error_count, "error")
    warnings = _plural(report.warning_count, "warning")
    waived = len(report.waived)
    if not waived:
        return f"{errors}, {warnings}"
    if report.error_count or report.warning_count:
        return f"{errors}, {warnings}, {waived} waived"
    return f"{errors}, {waived} waived"


def _utc(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M UTC")


def waiver_text(waived: Waived) -> str:
    """`waived by @maria until 2030-01-11 12:00 UTC: reason` (plain text, not escaped)."""
    return f"waived by @{waived.by} until {_utc(waived.until)}: {waived.reason}"


# -- the hidden waiver record ---------------------------------------------------------------


@dataclass(frozen=True)
class RecordedWaiver:
    """A waiver as the note's hidden record carries it: the fingerprints it covers on the
    head the note is about, who gave it, until when (seconds since the epoch, UTC), and why."""

    rule: str
    fingerprints: tuple[str, ...]
    by: str
    until: float
    reason: str


_FINGERPRINT = re.compile(r"[0-9a-f]{64}")


def waiver_record(report: Report) -> str:
    """The note's hidden line recording the report's waivers ("" when it has none), bounded
    by WAIVER_RECORD_LIMIT. Text passes through `redact` before it is encoded, as the note's
    visible text does on its way out (bot/publish.py): base64 would hide a secret from it."""
    groups: dict[tuple[str, Waived], list[str]] = {}
    for finding in report.waived:
        assert finding.waived is not None
        key = fingerprint(finding.rule, finding.location, finding.message)
        groups.setdefault((finding.rule, finding.waived), []).append(key)
    entries: list[dict[str, Any]] = []
    size = 0
    for (rule, waived), keys in groups.items():
        reason = redact(_shorten(waived.reason, MAX_RECORD_REASON_CHARS))
        entry: dict[str, Any] = {
            "rule": rule,
            "by": redact(waived.by),
            "until": waived.until,
            "reason": reason,
        }
        size += len(json.dumps(entry)) + len(',"fingerprints":[]')
        kept: list[str] = []
        for key in dict.fromkeys(keys):
            if size + len(key) + 3 > WAIVER_RECORD_LIMIT:
                break
            kept.append(key)
            size += len(key) + 3
        if not kept:
            break
        entries.append({**entry, "fingerprints": kept})
    if not entries:
        return ""
    document = json.dumps(
        {"version": WAIVER_RECORD_VERSION, "waivers": entries}, separators=(",", ":")
    )
    encoded = base64.b64encode(document.encode("utf-8")).decode("ascii")
    return f"{WAIVER_RECORD_START}{encoded}{WAIVER_RECORD_END}"


def read_waiver_record(body: str) -> list[RecordedWaiver]:
    """The waivers a note's hidden record holds; [] when it has none. Raises ValueError when
    the record is malformed or larger than the bot writes. The caller decides whose note it
    trusts: only the bot's own (its author is the token's user)."""
    start = body.find(WAIVER_RECORD_START)
    if start < 0:
        return []
    start += len(WAIVER_RECORD_START)
    end = body.find(WAIVER_RECORD_END, start, start + 2 * WAIVER_RECORD_LIMIT + 1)
    if end < 0:
        raise ValueError("the waiver record is unterminated or too large")
    try:
        document = json.loads(base64.b64decode(body[start:end], validate=True))
    except (binascii.Error, ValueError, RecursionError) as exc:
        raise ValueError("the waiver record is not base64-encoded JSON") from exc
    if (
        not isinstance(document, dict)
        or document.get("version") != WAIVER_RECORD_VERSION
        or not isinstance(document.get("waivers"), list)
    ):
        raise ValueError("the waiver record has an unknown format")
    return [_recorded_waiver(item) for item in document["waivers"]]


def _recorded_waiver(item: Any) -> RecordedWaiver:
    if not isinstance(item, dict):
        raise ValueError("the waiver record holds a malformed waiver")
    rule, by, reason = item.get("rule"), item.get("by"), item.get("reason")
    until, keys = item.get("until"), item.get("fingerprints")
    if (
        not all(isinstance(text, str) for text in (rule, by, reason))
        or isinstance(until, bool)
        or not isinstance(until, int | float)
        or not math.isfinite(until)
        or not isinstance(keys, list)
        or not all(isinstance(key, str) and _FINGERPRINT.fullmatch(key) for key in keys)
    ):
        raise ValueError("the waiver record holds a malformed waiver")
    return RecordedWaiver(
        rule=str(rule), fingerprints=tuple(keys), by=str(by), until=float(until), reason=str(reason)
    )


# -- the note -----------------------------------------------------------------------------


def render_note(report: Report, links: Links | None = None) -> str:
    """The MR note. Its text depends only on the report (and where it links), so an
    unchanged verdict is an unchanged note, and the bot can skip the edit.

    The first screen is the verdict and one line per failing rule: how many findings and
    where, linked. Below, each rule's fix hint once and its findings; errors are never
    collapsed. The note stays under NOTE_LIMIT characters, listing fewer findings per rule
    as needed, and says what it left out and where to see all of it.
    """
    links = links or Links()
    if report.error is not None:
        return _bounded("\n".join(_incomplete(report, links)))
    note = ""
    for per_rule, hints in _SHORTER:
        note = "\n".join(_verdict(report, links, per_rule, hints=hints))
        if len(note) < NOTE_LIMIT:
            return note + "\n"
    return _bounded(note)


# Past the cap, the note lists fewer findings per rule, then leaves the hints out.
_SHORTER = ((MAX_FINDINGS_PER_RULE, True), (10, True), (5, True), (2, True), (0, True), (0, False))


def _bounded(note: str) -> str:
    """A hard cap, should a note still be too long: cut at a line, and say so."""
    if len(note) < NOTE_LIMIT:
        return note + "\n"
    cut = f"\n\n_The rest of this note is left out: {WHERE_TO_SEE_ALL}._\n"
    room = NOTE_LIMIT - len(cut) - 1
    head = note[:room]
    return head[: head.rfind("\n")] + cut


def _footer(report: Report) -> str:
    source = ""
    if report.error is None:
        source = f"Rules from {escape(report.config_source, code=True)} · "
    policy = "".join(f"<sub>{escape(line)}</sub><br>\n" for line in report.policy_notes)
    return (
        f"{policy}<sub>{source}Comment {escape(RECHECK_COMMAND, code=True)} to check again · "
        f"compliance-bot {__version__}</sub>"
    )


def _head_link(report: Report, links: Links) -> str:
    label = escape(report.head_sha[:8], code=True)
    url = links.commit(report.head_sha)
    return f"[{label}]({url})" if url else label


def _incomplete(report: Report, links: Links) -> list[str]:
    lines = [NOTE_MARKER, "### :x: Compliance check could not complete", ""]
    head = _head_link(report, links)
    if report.details:
        # An invalid config on the target branch: the problems, each on its line.
        lines += [
            f"The rules for {head} could not be read, so the check is marked failed: "
            f"{escape(report.error or '')}.",
            "",
        ]
        shown = report.details[:MAX_FINDINGS_PER_RULE]
        lines += [f"- {escape(_shorten(detail, MAX_MESSAGE_CHARS), code=True)}" for detail in shown]
        if len(report.details) > len(shown):
            lines.append(f"- … and {len(report.details) - len(shown)} more")
        lines += [
            "",
            "Fix the file on the target branch (this MR cannot change the rules it is judged "
            f"by), then comment {escape(RECHECK_COMMAND, code=True)}.",
        ]
    else:
        lines += [
            f"The check of {head} could not complete, so it is marked failed: "
            f"{escape(summarize_error(report.error or ''))}.",
            "",
            "This is not a verdict on the change. The bot retries by itself; comment "
            f"{escape(RECHECK_COMMAND, code=True)} to retry now.",
        ]
    return [*lines, "", _footer(report)]


def _heading(report: Report) -> str:
    if report.error_count:
        return f"### :x: Compliance: {_counts(report)}"
    if report.waived:
        return f"### :white_check_mark: Compliance: {_counts(report)}"
    if report.warning_count:
        warnings = _plural(report.warning_count, "warning")
        return f"### :white_check_mark: Compliance: passed with {warnings}"
    return "### :white_check_mark: Compliance: all checks passed"


@dataclass(frozen=True)
class _RuleFindings:
    rule: str
    title: str
    severity: Severity
    findings: tuple[Finding, ...]


def _by_rule(report: Report, findings: Sequence[Finding]) -> list[_RuleFindings]:
    titles = {o.rule: o.title for o in report.outcomes}
    groups: dict[tuple[str, Severity], list[Finding]] = {}
    for finding in findings:
        groups.setdefault((finding.rule, finding.severity), []).append(finding)
    order = list(Severity)
    return sorted(
        (
            _RuleFindings(rule, titles.get(rule, rule), severity, tuple(found))
            for (rule, severity), found in groups.items()
        ),
        key=lambda group: order.index(group.severity),
    )


def _verdict(report: Report, links: Links, per_rule: int, *, hints: bool) -> list[str]:
    counted = [f for f in report.findings if f.counts]
    inherited = report.inherited
    scope = [_head_link(report, links)]
    if "commits" in report.facts:
        scope.append(_plural(report.facts["commits"], "commit"))
    if "files" in report.facts:
        scope.append(_plural(report.facts["files"], "changed file"))
    record = waiver_record(report)
    lines = [
        NOTE_MARKER,
        *([record] if record else []),
        _heading(report),
        "",
        f"Checked {', '.join(scope)} against {_plural(len(report.outcomes), 'rule')}.",
        "",
    ]
    groups = _by_rule(report, counted)
    if groups:
        lines += _summary_table(report, links, groups)
    if inherited:
        branch = inherited[0].already_on
        lines += [
            f"{_plural(len(inherited), 'finding')} already on {escape(branch, code=True)} "
            "are not this MR's doing and do not fail it (listed below).",
            "",
        ]
    left_out = 0
    errors = [g for g in groups if g.severity is Severity.ERROR]
    for group in errors:
        block, hidden = _rule_block(report, links, group, per_rule, heading=True, hints=hints)
        lines += block
        left_out += hidden
    for severity in (Severity.WARNING, Severity.INFO):
        of_severity = [g for g in groups if g.severity is severity]
        if not of_severity:
            continue
        count = sum(len(g.findings) for g in of_severity)
        lines += [
            f"<details><summary>{_TITLES[severity]}: {count} in "
            f"{_plural(len(of_severity), 'rule')}</summary>",
            "",
        ]
        for group in of_severity:
            block, hidden = _rule_block(report, links, group, per_rule, heading=False, hints=hints)
            lines += block
            left_out += hidden
        lines += ["</details>", ""]
    if inherited:
        lines += [
            f"<details><summary>Already on the target branch: {len(inherited)}</summary>",
            "",
        ]
        for group in _by_rule(report, inherited):
            block, hidden = _rule_block(report, links, group, per_rule, heading=False, hints=hints)
            lines += block
            left_out += hidden
        lines += ["</details>", ""]
    if report.waived:
        block, hidden = _waived_block(report, links, per_rule)
        lines += block
        left_out += hidden
    if left_out or not hints:
        what = _plural(left_out, "finding") + ("" if hints else " and the fix hints")
        lines += [f"_{what} not listed here: {WHERE_TO_SEE_ALL}._", ""]
    passed = [o for o in report.outcomes if o.passed]
    if passed:
        lines += [f"<details><summary>Passed: {_plural(len(passed), 'rule')}</summary>", ""]
        lines += [f"- {escape(o.title)} {escape(o.rule, code=True)}" for o in passed]
        lines += ["", "</details>", ""]
    return [*lines, _footer(report)]


def _waived_block(report: Report, links: Links, per_rule: int) -> tuple[list[str], int]:
    """The "Waived" section: each waiver (rule, who, until when, why), then its findings.
    Only the bot writes this note, so the record stays as the journal has it."""
    titles = {o.rule: o.title for o in report.outcomes}
    groups: dict[tuple[str, Waived], list[Finding]] = {}
    for finding in report.waived:
        assert finding.waived is not None
        groups.setdefault((finding.rule, finding.waived), []).append(finding)
    lines = [f"#### :shield: Waived: {len(report.waived)}", ""]
    hidden = 0
    for (rule, waived), findings in groups.items():
        count = _plural(len(findings), "finding")
        title = f"{escape(titles.get(rule, rule))} {escape(rule, code=True)} · {count}"
        lines += [
            f"**{title}** — waived by {escape('@' + waived.by)} until {_utc(waived.until)}: "
            f"{escape(_shorten(waived.reason, MAX_MESSAGE_CHARS))}",
            "",
        ]
        shown = findings[:per_rule]
        for finding in shown:
            where = _location(finding, report, links, short=False)
            message = _rule_text(_shorten(finding.message, MAX_MESSAGE_CHARS))
            lines.append(f"- {where} — {message}" if where else f"- {message}")
        if len(findings) > len(shown):
            lines.append(f"- … and {len(findings) - len(shown)} more")
            hidden += len(findings) - len(shown)
        lines.append("")
    return lines, hidden


def _summary_table(report: Report, links: Links, groups: Sequence[_RuleFindings]) -> list[str]:
    """Danger's table, one line per rule: what, how many, where (the first few, linked)."""
    rows = ["| | Rule | Findings | Where |", "|---|---|--:|---|"]
    for group in groups:
        places = list(dict.fromkeys(f.location for f in group.findings))
        named = [
            _location(
                next(f for f in group.findings if f.location == place), report, links, short=True
            )
            for place in places[:SUMMARY_LOCATIONS]
        ]
        if len(places) > SUMMARY_LOCATIONS:
            named.append(f"+{len(places) - SUMMARY_LOCATIONS} more")
        rule = f"{escape(group.title)} {escape(group.rule, code=True)}"
        rows.append(
            f"| {_ICON[group.severity]} | {rule} | {len(group.findings)} | {', '.join(named)} |"
        )
    return [*rows, ""]


# A fix hint that differs between findings only by the commit it names is one hint; the
# first finding's (the oldest commit's) stands for all.
_SHA = re.compile(r"\b[0-9a-f]{7,40}\b")


def _hints(findings: Sequence[Finding]) -> list[str]:
    hints: dict[str, str] = {}
    for finding in findings:
        if finding.fix:
            hints.setdefault(_SHA.sub("<sha>", finding.fix), finding.fix)
    return [_shorten(h, MAX_HINT_CHARS) for h in hints.values()][:MAX_HINTS_PER_RULE]


def _rule_block(
    report: Report,
    links: Links,
    group: _RuleFindings,
    per_rule: int,
    *,
    heading: bool,
    hints: bool,
) -> tuple[list[str], int]:
    """One rule: its title, its fix hint(s) once, then one line per finding."""
    count = _plural(len(group.findings), "finding")
    title = f"{escape(group.title)} {escape(group.rule, code=True)} · {count}"
    icon = _ICON[group.severity]
    lines = [f"#### {icon} {title}" if heading else f"**{icon} {title}**", ""]
    fixes = _hints(group.findings) if hints else []
    if len(fixes) == 1:
        lines += [f"How to fix: {_rule_text(fixes[0])}", ""]
    elif fixes:
        lines += ["How to fix:", "", *(f"- {_rule_text(h)}" for h in fixes), ""]
    shown = group.findings[:per_rule]
    for finding in shown:
        where = _location(finding, report, links, short=False)
        message = _rule_text(_shorten(finding.message, MAX_MESSAGE_CHARS))
        lines.append(f"- {where} — {message}" if where else f"- {message}")
    hidden = len(group.findings) - len(shown)
    if hidden:
        lines.append(f"- … and {hidden} more")
    return [*lines, ""], hidden


# -- the command line's formats: text, rich, JSON, JUnit XML, Code Quality ----------------
#
# `compliance-bot check` renders the same Report the server turns into a note, plus what the
# check could not judge where it ran (NotJudged): offline, nothing tells the project's topics
# or the MR's title, and such rules are listed as not judged, never as passed.


@dataclass(frozen=True)
class NotJudged:
    """A rule a check could not judge where it ran, or judged on part of its input only.

    `partial`: the rule ran and its outcome stands, but `reason` names what it could not see.
    """

    rule: str
    title: str
    reason: str
    partial: bool = False


def failing(fail_on: Severity) -> frozenset[Severity]:
    """The severities that fail a check run with `--fail-on` (errors always do)."""
    if fail_on is Severity.WARNING:
        return frozenset({Severity.ERROR, Severity.WARNING})
    return frozenset({Severity.ERROR})


def summary_line(report: Report) -> str:
    """`Compliance: 2 errors, 1 warning`, as the note's heading says it, without Markdown."""
    if report.error is not None:
        return f"Compliance check could not complete: {report.error}"
    if report.error_count or report.waived:
        return f"Compliance: {_counts(report)}"
    if report.warning_count:
        return f"Compliance: passed with {_plural(report.warning_count, 'warning')}"
    return "Compliance: all checks passed"


def _scope_line(report: Report) -> str:
    scope = [report.head_sha[:8]]
    if "commits" in report.facts:
        scope.append(_plural(report.facts["commits"], "commit"))
    if "files" in report.facts:
        scope.append(_plural(report.facts["files"], "changed file"))
    return (
        f"Checked {', '.join(scope)} against {_plural(len(report.outcomes), 'rule')}; "
        f"rules from {report.config_source}."
    )


def _indented(text: str, prefix: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\n" + prefix)


def render_text(report: Report, *, not_judged: Sequence[NotJudged] = ()) -> str:
    """Plain text for a log or a pipe: the verdict, each finding with its fix, what was not
    judged, and what passed."""
    lines = [summary_line(report)]
    if report.error is not None:
        lines += [f"  {d}" for d in report.details]
        return _printable("\n".join(lines) + "\n")
    lines += [_scope_line(report), ""]
    pad = " " * 9
    for severity, _ in _SECTIONS:
        for finding in (f for f in report.findings if f.severity is severity):
            where = f"  {finding.location}" if finding.location else ""
            lines.append(f"{severity.value:<8} {finding.rule}{_indented(where, pad)}")
            lines.append(pad + _indented(finding.message, pad))
            if finding.fix:
                lines.append(pad + "fix: " + _indented(finding.fix, pad))
            lines.append("")
    if not_judged:
        lines.append(f"Not judged here ({len(not_judged)}):")
        for item in not_judged:
            part = " (in part)" if item.partial else ""
            lines.append(f"  {item.rule}{part}: {_indented(item.reason, '    ')}")
        lines.append("")
    passed = [o.rule for o in report.outcomes if o.passed]
    if passed:
        lines.append(f"Passed ({len(passed)}): {', '.join(passed)}")
    return _printable("\n".join(lines).rstrip("\n") + "\n")


# Control characters (an escape sequence in a commit title) would restyle or rewrite a
# terminal or a CI job log, which renders ANSI codes; newlines and tabs stay.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _printable(text: str) -> str:
    return _CONTROL.sub("\ufffd", text)


def render_rich(report: Report, *, not_judged: Sequence[NotJudged] = ()) -> Any:
    """render_text's content as `rich` renderables for a terminal: the same blocks, in
    colour. User text (messages, commit titles) goes in as `Text`, never as markup, so it
    cannot restyle the output."""
    from rich.console import Group
    from rich.padding import Padding
    from rich.text import Text

    style = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "blue"}
    if report.error is not None:
        return Group(
            Text(summary_line(report), style="bold red"),
            *(Padding(Text(d), (0, 0, 0, 2)) for d in report.details),
        )
    heading_style = "bold red" if report.error_count else "bold green"
    parts: list[Any] = [
        Text(summary_line(report), style=heading_style),
        Text(_scope_line(report), style="dim"),
        Text(""),
    ]
    for severity, _ in _SECTIONS:
        for finding in (f for f in report.findings if f.severity is severity):
            parts.append(
                Text.assemble(
                    (f"{severity.value:<8} ", style[severity]),
                    (finding.rule, "bold"),
                    (f"  {finding.location}" if finding.location else "", "cyan"),
                )
            )
            body = Text(finding.message)
            if finding.fix:
                body.append("\nfix: " + finding.fix, style="dim")
            parts += [Padding(body, (0, 0, 1, 9))]
    if not_judged:
        parts.append(Text(f"Not judged here ({len(not_judged)}):", style="bold"))
        for item in not_judged:
            line = Text.assemble(
                ("  " + item.rule, "bold"), (" (in part)" if item.partial else "", "bold")
            )
            line.append(": " + item.reason, style="dim")
            parts.append(line)
        parts.append(Text(""))
    passed = [o.rule for o in report.outcomes if o.passed]
    if passed:
        parts.append(Text(f"Passed ({len(passed)}): {', '.join(passed)}", style="green"))
    return Group(*parts)


JSON_FORMAT_VERSION = 1


def render_json(
    report: Report,
    *,
    not_judged: Sequence[NotJudged] = (),
    extra: Mapping[str, Any] | None = None,
) -> str:
    """A stable JSON document for scripts: the verdict, every rule's outcome and finding."""
    skipped = {item.rule for item in not_judged if not item.partial}
    document: dict[str, Any] = {
        "version": JSON_FORMAT_VERSION,
        "head_sha": report.head_sha,
        **dict(extra or {}),
        "config_source": report.config_source,
        "passed": report.passed,
        "summary": summary_line(report),
        "error": report.error,
        "details": list(report.details),
        "counts": {
            severity.value: sum(1 for f in report.findings if f.severity is severity)
            for severity in Severity
        },
        "facts": dict(report.facts),
        "rules": [
            {
                "rule": o.rule,
                "title": o.title,
                "status": "passed" if o.passed else "failed",
                "findings": len(o.findings),
            }
            for o in report.outcomes
        ]
        + [
            {"rule": item.rule, "title": item.title, "status": "not_judged", "findings": 0}
            for item in not_judged
            if item.rule in skipped
        ],
        "findings": [
            {
                "rule": f.rule,
                "severity": f.severity.value,
                "location": f.location,
                "message": f.message,
                "fix": f.fix,
                # The target branch the finding holds on already (it fails nothing); null
                # when it is the change's own.
                "already_on": f.already_on or None,
            }
            for f in report.findings
        ],
        "not_judged": [
            {"rule": i.rule, "title": i.title, "reason": i.reason, "partial": i.partial}
            for i in not_judged
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# XML 1.0 allows no control characters but tab, newline and carriage return; a commit message
# may hold any of them, and one such byte would make GitLab reject the whole report.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def _finding_text(finding: Finding) -> str:
    lines = [
        f"[{finding.severity.value}] {finding.location}: {finding.message}".replace("] : ", "] ")
    ]
    if finding.already_on:
        lines[0] += f" (already on {finding.already_on}: not this change's doing)"
    if finding.fix:
        lines.append(f"  fix: {finding.fix}")
    return "\n".join(lines)


JUNIT_SUITE = "compliance-bot"


def render_junit(
    report: Report,
    *,
    not_judged: Sequence[NotJudged] = (),
    fail_on: Severity = Severity.ERROR,
) -> str:
    """JUnit XML as GitLab reads it (https://docs.gitlab.com/ci/testing/unit_test_reports/).

    One testsuite; one testcase per rule, named by the rule id (GitLab pairs tests across
    branches by name, and keeps only the first of equal names), with `classname` the suite
    name GitLab shows. A rule with findings that fail the run (errors, and warnings under
    `--fail-on warning`) has a `<failure>` holding them; other findings and caveats go in
    `<system-out>` of a passed test, as a warning does not fail the pipeline. GitLab's parser
    keeps no output of a passed test (gitlabhq: lib/gitlab/ci/parsers/test/junit.rb sets
    `system_output = nil` unless the case has a failure, error or skipped element), so those
    findings are repeated in a `<skipped>` test of their own, `<rule> (warnings)`, which GitLab
    shows with its text. A rule that could not be judged is `<skipped>` with the reason. A
    check that could not complete (an invalid config) is one test with an `<error>`.
    """
    import xml.etree.ElementTree as ET

    fails = failing(fail_on)
    suite = ET.Element("testsuite", name=JUNIT_SUITE)
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}

    def case(name: str) -> ET.Element:
        counts["tests"] += 1
        return ET.SubElement(suite, "testcase", classname=JUNIT_SUITE, name=name, time="0")

    if report.error is not None:
        element = ET.SubElement(
            case("compliance-bot"), "error", message=_xml_text(summary_line(report))
        )
        element.text = _xml_text("\n".join([summary_line(report), *report.details]))
        counts["errors"] += 1
    caveats = {item.rule: item.reason for item in not_judged if item.partial}
    for outcome in report.outcomes:
        testcase = case(outcome.rule)
        waived = [f for f in outcome.findings if f.waived is not None]
        failed = [f for f in outcome.findings if f.severity in fails and f.counts]
        other = [f for f in outcome.findings if f not in failed and f.waived is None]
        if failed:
            failure = ET.SubElement(
                testcase,
                "failure",
                message=_xml_text(f"{outcome.title}: {_plural(len(failed), 'finding')}"),
                type=failed[0].severity.value,
            )
            failure.text = _xml_text("\n".join(_finding_text(f) for f in failed))
            counts["failures"] += 1
        out = [_finding_text(f) for f in other]
        if outcome.rule in caveats:
            out.append(f"not judged in part: {caveats[outcome.rule]}")
        if out:
            ET.SubElement(testcase, "system-out").text = _xml_text("\n".join(out))
            shown = ET.SubElement(
                case(f"{outcome.rule} (warnings)"),
                "skipped",
                message=_xml_text(f"{outcome.title}: passes, with {_plural(len(out), 'note')}"),
            )
            shown.text = _xml_text("\n".join(out))
            counts["skipped"] += 1
        if waived:
            # A waived finding is skipped, with the waiver's reason (who, until when, why).
            reasons = list(dict.fromkeys(waiver_text(f.waived) for f in waived if f.waived))
            skipped = ET.SubElement(
                case(f"{outcome.rule} (waived)"), "skipped", message=_xml_text(reasons[0])
            )
            skipped.text = _xml_text(
                "\n".join(
                    [*reasons, *(_finding_text(f) for f in waived)]
                    if len(reasons) > 1
                    else [_finding_text(f) for f in waived]
                )
            )
            counts["skipped"] += 1
    for item in not_judged:
        if item.partial:
            continue
        skipped = ET.SubElement(case(item.rule), "skipped", message=_xml_text(item.reason))
        skipped.text = _xml_text(item.reason)
        counts["skipped"] += 1
    for key, value in counts.items():
        suite.set(key, str(value))
    root = ET.Element("testsuites", {"name": JUNIT_SUITE, **{k: str(v) for k, v in counts.items()}})
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# Code Quality severities: info, minor, major, critical, blocker.
# https://docs.gitlab.com/ci/testing/code_quality/#code-quality-report-format
CODEQUALITY_SEVERITY = {
    Severity.ERROR: "major",
    Severity.WARNING: "minor",
    Severity.INFO: "info",
}
# An invalid config's problems without a line point at the config file: GitLab needs a path
# for every entry.
DEFAULT_CONFIG_PATH = ".gitlab/compliance.yml"
_PATH_AND_LINE = re.compile(r"^(?P<path>.+):(?P<line>\d+)$")
_CONFIG_PROBLEM = re.compile(r"^(?P<path>.+?):(?P<line>\d+):\d+: ")


def fingerprint(rule: str, location: str, message: str) -> str:
    """Stable across runs: the same finding of the same rule at the same place."""
    return hashlib.sha256(f"{rule}\0{location}\0{message}".encode()).hexdigest()


def render_codequality(report: Report, *, known_paths: Collection[str] = frozenset()) -> str:
    """A Code Quality report: one JSON array, an object per finding, with exactly the fields
    GitLab reads (https://docs.gitlab.com/ci/testing/code_quality/#code-quality-report-format).

    Only findings located in a file the check saw (`known_paths`, or `file:line`) are
    entries, and an invalid config, at its line. GitLab's widget compares an MR's report
    with the target branch's and calls a finding "resolved" when it is gone: a finding about
    a commit message or the MR's title would be "resolved" by the next MR, which fixed
    nothing. Those are in the JUnit report and the note.
    """
    config_path = (
        report.config_source
        if report.config_source not in ("defaults", "instance defaults")
        else DEFAULT_CONFIG_PATH
    )
    entries: list[dict[str, Any]] = []

    def entry(check: str, severity: str, description: str, path: str, line: int, key: str) -> None:
        entries.append(
            {
                "description": description,
                "check_name": check,
                "fingerprint": key,
                "severity": severity,
                "location": {"path": path, "lines": {"begin": line}},
            }
        )

    if report.error is not None:
        for detail in report.details or (report.error,):
            match = _CONFIG_PROBLEM.match(detail)
            path, line = (match["path"], int(match["line"])) if match else (config_path, 1)
            description = f"{report.error}: {detail}"
            key = fingerprint("compliance-bot", "", description)
            entry("compliance-bot", "critical", description, path, line, key)
    for finding in report.findings:
        if finding.waived is not None:
            continue  # waived: the note and the JUnit report say so; no open issue here
        location = finding.location
        match = _PATH_AND_LINE.match(location)
        if location in known_paths:
            path, line, description = location, 1, finding.message
        elif match and match["path"] in known_paths:
            path, line, description = match["path"], int(match["line"]), finding.message
        else:
            continue
        severity = CODEQUALITY_SEVERITY[finding.severity]
        key = fingerprint(finding.rule, location, finding.message)
        entry(finding.rule, severity, description, path, line, key)
    return json.dumps(entries, indent=2, ensure_ascii=False) + "\n"
