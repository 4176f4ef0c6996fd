"""Real GitLab webhook payloads, adapted to the fake GitLab's state.

The payloads are GitLab's own documented examples, kept in this repository under
`tests/fixtures/gitlab-webhooks/` (see SOURCES.md there: gitlabhq/gitlabhq @ 017a6c12,
doc/user/project/integrations/webhook_events.md). Only ids, shas, URLs and the fields a
scenario is about are changed; every other field, quirks included, is sent as published.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "gitlab-webhooks"


@cache
def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def fixture(name: str) -> dict[str, Any]:
    """A fresh, mutable copy of a published payload."""
    return copy.deepcopy(_load(name))


def merge_request_hook(
    *,
    project_id: int,
    iid: int,
    head_sha: str,
    title: str,
    description: str,
    source_branch: str,
    target_branch: str,
    web_url: str,
    action: str = "open",
    oldrev: str | None = None,
    source_project_id: int | None = None,
    labels: list[str] | None = None,
    draft: bool = False,
    changes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    payload = fixture("merge_request.json")
    attrs = payload["object_attributes"]
    attrs.update(
        iid=iid,
        target_project_id=project_id,
        source_project_id=source_project_id or project_id,
        title=title,
        description=description,
        source_branch=source_branch,
        target_branch=target_branch,
        url=web_url,
        action=action,
        draft=draft,
        work_in_progress=draft,
    )
    attrs["last_commit"]["id"] = head_sha
    if oldrev is not None:
        attrs["oldrev"] = oldrev
    if labels is not None:
        label = payload["labels"][0]
        payload["labels"] = [dict(label, title=name) for name in labels]
        attrs["labels"] = payload["labels"]
    if changes is not None:
        payload["changes"] = changes
    return payload


def push_hook(
    *,
    project_id: int,
    branch: str,
    before: str,
    after: str,
    commits: list[dict[str, Any]],
    total_commits_count: int | None = None,
    default_branch: str = "main",
) -> dict[str, Any]:
    """`commits` items: {"id", "message", "author_name", "author_email"}."""
    payload = fixture("push.json")
    template = payload["commits"][0]
    payload.update(
        ref=f"refs/heads/{branch}",
        before=before,
        after=after,
        checkout_sha=after,
        project_id=project_id,
        total_commits_count=len(commits) if total_commits_count is None else total_commits_count,
    )
    payload["project"].update(id=project_id, default_branch=default_branch)
    payload["commits"] = [
        dict(
            template,
            id=c["id"],
            message=c["message"],
            title=c["message"].split("\n", 1)[0],
            author={"name": c.get("author_name", "Ada"), "email": c.get("author_email", "a@x")},
        )
        for c in commits
    ]
    return payload


def note_hook(mr: Any, note: dict[str, Any], *, action: str | None = "create") -> dict[str, Any]:
    """GitLab's published Note Hook payload for a comment `note` on the fake's MR `mr`.

    `action` is `create` for a new comment, `update` for an edited one (gitlabhq/gitlabhq:
    lib/gitlab/data_builder/note.rb); None drops the key, as older GitLab sends it."""
    payload = fixture("note_merge_request.json")
    payload["project_id"] = mr.project_id
    payload["project"]["id"] = mr.project_id
    payload["user"]["username"] = note["author"]["username"]
    payload["user"]["id"] = note["author"]["id"]
    payload["object_attributes"].update(
        id=note["id"], note=note["body"], noteable_type="MergeRequest", project_id=mr.project_id
    )
    payload["merge_request"].update(iid=mr.iid, id=mr.id)
    if action is None:
        payload["object_attributes"].pop("action", None)
    else:
        payload["object_attributes"]["action"] = action
    return payload
