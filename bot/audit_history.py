"""The audit's memory of its last run: `--save FILE` and `--compare FILE`.

The saved file is the audit's own JSON report (`--format json`, every row whatever
`--only-failing` says), so one file serves both as a report and as the memory. Comparing
matches rows by GitLab id (a renamed project is the same project) and says, per project and
member, what got better and what got worse:

- `new` and `gone`: in one run only (created, archived, moved out of the group, deleted);
- `worse`: its outcome got worse (compliant < warnings < non-compliant < error), or it lacks
  something it did not lack before;
- `better`: otherwise, its outcome got better, or it fixed something it lacked.

`compare` is pure; `load_previous` reads the file, bounded in size (invariant 8), and refuses
a file that is not an audit report or is of another group.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.audit_model import AuditResult, Row, Status

# A 100,000-project report with findings stays well under this.
MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_ROWS = 200_000
FORMAT = "compliance-bot audit"
VERSION = 1


class HistoryError(Exception):
    """The --compare file cannot be used; the message says why."""


@dataclass(frozen=True)
class Seen:
    """One row of an earlier run, as much of it as a comparison needs."""

    id: int
    name: str
    status: Status
    checks: frozenset[str]


@dataclass(frozen=True)
class Previous:
    group: str
    finished_at: str
    projects: dict[int, Seen]
    members: dict[int, Seen] | None


@dataclass(frozen=True)
class Change:
    kind: str  # "project" or "member"
    id: int
    name: str
    before: Status | None  # None: new since the last run
    after: Status | None  # None: gone since the last run
    fixed: tuple[str, ...] = ()  # checks it lacked and no longer lacks
    lacking: tuple[str, ...] = ()  # checks it lacks now and did not before

    @property
    def direction(self) -> str:
        """`new`, `gone`, `worse` or `better`."""
        from bot.audit_model import OUTCOMES

        if self.before is None:
            return "new"
        if self.after is None:
            return "gone"
        rank = OUTCOMES.index(self.after) - OUTCOMES.index(self.before)
        if rank > 0 or self.lacking:
            return "worse"
        return "better"

    def describe(self) -> str:
        """One line: the outcomes before and after, and what was fixed or is now lacking."""
        if self.before is None:
            return f"new since the last run: {self.after}"
        if self.after is None:
            return f"gone since the last run (was {self.before})"
        parts = [f"{self.before} -> {self.after}" if self.before != self.after else ""]
        if self.fixed:
            parts.append("fixed: " + ", ".join(self.fixed))
        if self.lacking:
            parts.append("now lacking: " + ", ".join(self.lacking))
        return "; ".join(p for p in parts if p)


DIRECTIONS = ("worse", "better", "new", "gone")


@dataclass(frozen=True)
class Comparison:
    source: str  # the file it was read from
    previous_at: str  # when the earlier run finished
    previous_counts: dict[str, dict[str, int]]  # "projects"/"members" -> outcome -> count
    changes: tuple[Change, ...] = ()
    by_row: dict[tuple[str, int], Change] = field(default_factory=dict)

    def of(self, direction: str) -> list[Change]:
        return [c for c in self.changes if c.direction == direction]

    def summary_line(self) -> str:
        counts = ", ".join(f"{len(self.of(d))} {d}" for d in DIRECTIONS)
        return f"Since the run of {self.previous_at or 'unknown time'}: {counts}"


def _status(value: Any, where: str) -> Status:
    from bot.audit_model import Status

    try:
        return Status(value)
    except ValueError:
        raise HistoryError(f"{where}: unknown status {value!r}") from None


def _rows(items: Any, where: str) -> dict[int, Seen]:
    if not isinstance(items, list):
        raise HistoryError(f"{where} is not a list")
    if len(items) > MAX_ROWS:
        raise HistoryError(f"{where} holds more than {MAX_ROWS} rows")
    rows: dict[int, Seen] = {}
    for index, item in enumerate(items):
        at = f"{where}[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("id"), int):
            raise HistoryError(f"{at} has no numeric id")
        checks = item.get("checks") or []
        if not isinstance(checks, list) or not all(isinstance(c, str) for c in checks):
            raise HistoryError(f"{at}.checks is not a list of names")
        rows[item["id"]] = Seen(
            id=item["id"],
            name=str(item.get("name") or item["id"]),
            status=_status(item.get("status"), at),
            checks=frozenset(checks),
        )
    return rows


def parse_previous(text: str, group: str) -> Previous:
    """An earlier run from its JSON report; HistoryError when it is none, or another group's."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise HistoryError(f"not JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise HistoryError(f"not a report of `compliance-bot audit --save` (format {FORMAT!r})")
    if document.get("version") != VERSION:
        raise HistoryError(f"report version {document.get('version')!r}, expected {VERSION}")
    if document.get("complete") is not True:
        raise HistoryError("a partial report (--only-failing) cannot be compared with")
    if document.get("group") != group:
        raise HistoryError(f"a report of group {document.get('group')!r}, not of {group!r}")
    members = document.get("members")
    return Previous(
        group=group,
        finished_at=str(document.get("finished_at") or ""),
        projects=_rows(document.get("projects"), "projects"),
        members=None if members is None else _rows(members, "members"),
    )


def load_previous(path: Path, group: str) -> Previous | None:
    """The run saved in `path`; None when there is no such file yet (a first run)."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise HistoryError(f"cannot read: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise HistoryError(f"larger than {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise HistoryError("not UTF-8 text") from None
    return parse_previous(text, group)


def _changes(kind: str, before: Mapping[int, Seen], now: Sequence[Row]) -> list[Change]:
    from bot.audit_model import Status

    changes: list[Change] = []
    seen_now = set()
    for row in now:
        seen_now.add(row.id)
        old = before.get(row.id)
        if old is None:
            changes.append(Change(kind, row.id, row.name, None, row.status))
            continue
        checks = frozenset(row.checks)
        # What an unjudged row lacks is unknown: only its outcome is compared.
        judged = Status.ERROR not in (old.status, row.status)
        fixed = tuple(sorted(old.checks - checks)) if judged else ()
        lacking = tuple(sorted(checks - old.checks)) if judged else ()
        if old.status != row.status or fixed or lacking:
            changes.append(Change(kind, row.id, row.name, old.status, row.status, fixed, lacking))
    changes += [
        Change(kind, old.id, old.name, old.status, None)
        for old in before.values()
        if old.id not in seen_now
    ]
    return changes


def _counts(rows: Mapping[int, Seen]) -> dict[str, int]:
    from bot.audit_model import OUTCOMES

    return {str(s): sum(1 for r in rows.values() if r.status is s) for s in OUTCOMES}


def compare(previous: Previous, result: AuditResult, source: str) -> Comparison:
    """What changed between the earlier run and this one, row by row."""
    changes = _changes("project", previous.projects, result.projects)
    counts = {"projects": _counts(previous.projects)}
    if result.members is not None and previous.members is not None:
        changes += _changes("member", previous.members, result.members)
        counts["members"] = _counts(previous.members)
    order = {d: i for i, d in enumerate(DIRECTIONS)}
    changes.sort(key=lambda c: (order[c.direction], c.kind, c.name.lower(), c.id))
    return Comparison(
        source=source,
        previous_at=previous.finished_at,
        previous_counts=counts,
        changes=tuple(changes),
        by_row={(c.kind, c.id): c for c in changes},
    )
