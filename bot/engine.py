"""The check engine: read exactly what the rules need, run the pure rules, return a Report.

Reading and judging are split. `evaluate_*` are pure functions of already-read inputs; the
`check_*` coroutines read those inputs from GitLab. Any GitLab failure becomes a Report whose
`error` says what could not be read: never a pass, never "0 commits".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from bot.gitlab import GitLab, GitLabError, NotFound
from bot.model import ChangedFile, Commit, Report, RuleOutcome
from bot.rules import commits as commit_rules
from bot.rules import merge_request as mr_rules
from bot.rules import repository as repo_rules
from bot.webhook import MergeRequestEvent, PushEvent

log = logging.getLogger(__name__)

# Templates and other GitLab-specific files live under .gitlab/; the required files at the
# root. Two tree listings cover both, however large the repository.
GITLAB_DIR = ".gitlab"


@dataclass(frozen=True)
class RepositoryState:
    paths: frozenset[str]
    description: str
    topics: tuple[str, ...]


@dataclass(frozen=True)
class MergeRequestInputs:
    title: str
    description: str
    draft: bool
    commits: tuple[Commit, ...]
    changed_files: tuple[ChangedFile, ...]
    repository: RepositoryState  # the target branch, before the MR's changes


def evaluate_repository(state: RepositoryState) -> tuple[RuleOutcome, ...]:
    return (
        repo_rules.required_files(state.paths),
        repo_rules.issue_templates(state.paths),
        repo_rules.merge_request_templates(state.paths),
        repo_rules.description(state.description),
        repo_rules.topics(state.topics),
    )


def evaluate_merge_request(inputs: MergeRequestInputs) -> tuple[RuleOutcome, ...]:
    # The repository rules judge the target branch as it will be once the MR is merged, so an
    # MR that adds a missing LICENSE fixes the finding and one that deletes it causes it.
    after_merge = RepositoryState(
        paths=repo_rules.apply_changes(inputs.repository.paths, inputs.changed_files),
        description=inputs.repository.description,
        topics=inputs.repository.topics,
    )
    return (
        *commit_rules.conventional_commits(inputs.commits),
        mr_rules.not_draft(inputs.title, inputs.draft),
        mr_rules.description_present(inputs.description),
        *evaluate_repository(after_merge),
    )


def evaluate_push(commits: Sequence[Commit], state: RepositoryState) -> tuple[RuleOutcome, ...]:
    return (*commit_rules.conventional_commits(commits), *evaluate_repository(state))


async def read_repository(gitlab: GitLab, project_id: int, ref: str) -> RepositoryState:
    project, root, gitlab_dir = await _together(
        gitlab.project(project_id),
        gitlab.tree(project_id, ref),
        _tree_or_empty(gitlab, project_id, ref, GITLAB_DIR),
    )
    paths = {item["path"] for item in root if item.get("type") == "blob"}
    paths.update(item["path"] for item in gitlab_dir if item.get("type") == "blob")
    # `tag_list` is the pre-14.0 name of `topics`.
    # https://docs.gitlab.com/api/projects/#get-a-single-project
    topics = project.get("topics", project.get("tag_list")) or []
    return RepositoryState(
        paths=frozenset(paths),
        description=str(project.get("description") or ""),
        topics=tuple(str(t) for t in topics),
    )


async def _tree_or_empty(
    gitlab: GitLab, project_id: int, ref: str, path: str
) -> list[dict[str, Any]]:
    """A directory that may legitimately be absent: GitLab 17.7+ answers 404 for it."""
    try:
        return await gitlab.tree(project_id, ref, path, recursive=True)
    except NotFound:
        return []


async def check_merge_request(gitlab: GitLab, event: MergeRequestEvent) -> Report:
    try:
        commits, changed, repository = await _together(
            gitlab.merge_request_commits(event.project_id, event.iid),
            gitlab.merge_request_diffs(event.project_id, event.iid),
            # Rules come from the target project's target branch, never the source branch.
            read_repository(gitlab, event.project_id, event.target_branch),
        )
    except GitLabError as exc:
        return Report(head_sha=event.head_sha, error=str(exc))
    if not commits:
        # An open MR always has at least one commit; an empty list means GitLab has not
        # finished preparing it, which is not something to report as a pass.
        return Report(head_sha=event.head_sha, error="GitLab listed no commits for the MR yet")
    inputs = MergeRequestInputs(
        title=event.title,
        description=event.description,
        draft=event.draft,
        commits=tuple(commits),
        changed_files=tuple(changed),
        repository=repository,
    )
    return Report(
        head_sha=event.head_sha,
        outcomes=evaluate_merge_request(inputs),
        facts={"commits": len(commits), "files": len(changed)},
    )


async def check_push(gitlab: GitLab, event: PushEvent) -> Report:
    try:
        if event.commits_complete:
            commits: Sequence[Commit] = event.commits
        else:
            # The payload lists at most 20 commits, and none for a new branch pushed without
            # new commits; the compare API gives the rest.
            # https://docs.gitlab.com/user/project/integrations/webhook_events/#push-events
            base = event.default_branch if event.new_branch else event.before
            commits, _ = await gitlab.compare(event.project_id, base, event.after)
        state = await read_repository(gitlab, event.project_id, event.after)
    except GitLabError as exc:
        return Report(head_sha=event.after, error=str(exc))
    return Report(
        head_sha=event.after,
        outcomes=evaluate_push(commits, state),
        facts={"commits": len(commits)},
    )


async def _together(*coroutines: Coroutine[Any, Any, Any]) -> list[Any]:
    """Run reads concurrently; on the first failure cancel the rest and raise it."""
    tasks: list[asyncio.Task[Any]] = []
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c) for c in coroutines]
    except BaseExceptionGroup as failures:
        raise _first_leaf(failures) from None
    return [task.result() for task in tasks]


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first
