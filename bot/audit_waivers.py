"""`compliance-bot audit GROUP --waivers`: the trail of waivers across a group.

Waivers live in the server's journal (COMPLIANCE_DB), which only the bot writes: the audit
reads them from there (`--journal`, or COMPLIANCE_DB), never from notes or repositories,
whose text anyone with access could have shaped. GitLab gives the group's projects (their
ids and paths); the journal gives each waiver: project, MR, rule, by whom, why, when, until
when, and whether it is active, expired or withdrawn.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from bot.gitlab import GitLab, GitLabError
from bot.stores import is_postgres_url, open_store
from bot.waivers import Waiver

# Waivers listed at most; the newest first.
MAX_WAIVERS = 10_000
MAX_PROJECTS = 20_000


@dataclass(frozen=True)
class WaiverRow:
    project: str
    waiver: Waiver
    state: str  # active, expired, withdrawn

    @property
    def merge_request(self) -> str:
        return f"{self.project}!{self.waiver.mr_iid}"


def _utc(moment: float | None) -> str:
    if moment is None:
        return ""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M UTC")


def state_of(waiver: Waiver, now: float) -> str:
    if waiver.withdrawn_at is not None:
        return "withdrawn"
    return "active" if waiver.active(now) else "expired"


async def group_projects(gitlab: GitLab, group: str) -> dict[int, str]:
    """The group's projects, subgroups included (archived too: their waivers are history):
    id -> path. https://docs.gitlab.com/api/groups/#list-projects"""
    from bot.gitlab import encode_path

    projects: dict[int, str] = {}
    params = {"include_subgroups": "true", "with_shared": "false", "order_by": "id"}
    async for page in gitlab.pages(f"/groups/{encode_path(group)}/projects", params):
        for project in page:
            if isinstance(project, dict) and isinstance(project.get("id"), int):
                projects[project["id"]] = str(project.get("path_with_namespace") or project["id"])
        if len(projects) > MAX_PROJECTS:
            raise GitLabError(f"the group lists more than {MAX_PROJECTS} projects")
    return projects


async def list_waivers(gitlab: GitLab, journal: str, group: str, *, now: float) -> list[WaiverRow]:
    projects = await group_projects(gitlab, group)
    async with open_store(journal) as store:
        waivers = await store.list_waivers(sorted(projects), limit=MAX_WAIVERS)
    return [WaiverRow(projects[w.project_id], w, state_of(w, now)) for w in waivers]


def _fields(row: WaiverRow) -> dict[str, str | int | list[str] | None]:
    w = row.waiver
    return {
        "project": row.project,
        "merge_request": w.mr_iid,
        "rule": w.rule,
        "location": w.location,
        "state": row.state,
        "by": w.author,
        "reason": w.reason,
        "given_at": _utc(w.created_at),
        "until": _utc(w.expires_at),
        "head_sha": w.head_sha,
        "findings": len(w.fingerprints),
        "withdrawn_by": w.withdrawn_by,
        "withdrawn_at": _utc(w.withdrawn_at) or None,
    }


def render(rows: Sequence[WaiverRow], fmt: str) -> str:
    if fmt == "json":
        document = {"waivers": [_fields(r) for r in rows]}
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        fields = [_fields(r) for r in rows]
        writer = csv.DictWriter(out, fieldnames=_COLUMNS)
        writer.writeheader()
        for item in fields:
            # A cell starting with =, +, - or @ is a formula to a spreadsheet: quoted out.
            writer.writerow({k: _csv_cell(item[k]) for k in _COLUMNS})
        return out.getvalue()
    lines = [f"{len(rows)} waivers ({_summary(rows)})"]
    for row in rows:
        w = row.waiver
        done = f", withdrawn by @{w.withdrawn_by}" if w.withdrawn_by else ""
        where = f" at {w.location}" if w.location else ""
        lines.append(
            f"{row.state:<9} {row.merge_request} {w.rule}{where}: by @{w.author} "
            f"until {_utc(w.expires_at)}{done}: {_one_line(w.reason)}"
        )
    return "\n".join(lines) + "\n"


_COLUMNS = [
    "project",
    "merge_request",
    "rule",
    "location",
    "state",
    "by",
    "reason",
    "given_at",
    "until",
    "head_sha",
    "findings",
    "withdrawn_by",
    "withdrawn_at",
]


def _csv_cell(value: object) -> object:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def _one_line(text: str) -> str:
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def _summary(rows: Sequence[WaiverRow]) -> str:
    counts: Mapping[str, int] = {
        state: sum(1 for r in rows if r.state == state)
        for state in ("active", "expired", "withdrawn")
    }
    return ", ".join(f"{n} {state}" for state, n in counts.items())


def usable_journal(location: str | None, stream: TextIO = sys.stderr) -> bool:
    """A PostgreSQL URL, or a SQLite file that exists: the audit never creates an empty
    journal and then reports "no waivers"."""
    if not location:
        print("compliance-bot: --waivers needs --journal or COMPLIANCE_DB", file=stream)
        return False
    if is_postgres_url(location) or Path(location).is_file():
        return True
    print(f"compliance-bot: --journal {location}: no such file", file=stream)
    return False


async def run(settings: object, journal: str, group: str, *, now: float) -> list[WaiverRow]:
    """Open the process's one GitLab client and list the group's waivers."""
    from bot.gitlab import open_gitlab
    from bot.settings import GitLabSettings

    assert isinstance(settings, GitLabSettings)
    async with open_gitlab(settings) as gitlab:
        return await list_waivers(gitlab, journal, group, now=now)
