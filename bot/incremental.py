"""What an earlier check of an MR learnt from GitLab, and how a new head extends it.

Pure: no I/O. The engine keeps, per MR, the inputs its rules judged (`MergeRequestInputs`),
and the next event asks GitLab only for what changed since:

- a title, description or label change re-judges the same head from the payload alone;
- new commits on top of the judged head add those commits and the files they changed.

Why inputs and not findings: rules are pure and cheap (microseconds), GitLab calls are not.
Re-running every rule on exactly the inputs a from-scratch check would read makes the
incremental result equal the full one by construction (DESIGN.md, invariant 6), including
rules that look across commits or across files. The inputs are keyed by what they were read
at: the MR head, the target branch's commit and the rules' config (its text and the instance
defaults), so a changed config or a moved target branch is never judged with old inputs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import TypeAdapter

from bot.model import ChangedFile, Commit
from bot.rules.base import CodeOwnersFile, ProjectFacts

# 3: every record by name (2 stored commits and changes as positional lists).
FORMAT_VERSION = 3


def config_key(config_file: tuple[str, str] | None, base_config: Mapping[str, Any]) -> str:
    """Identity of the rules that judge: the config file's path and text, and the instance
    defaults merged under it."""
    digest = hashlib.sha256()
    digest.update(json.dumps(config_file).encode())
    digest.update(json.dumps(base_config, sort_keys=True, default=str).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class MergeRequestInputs:
    """Everything the rules judged for one MR head, as GitLab gave it."""

    head_sha: str
    target_sha: str  # the target branch's commit the config and tree were read at
    config_file: tuple[str, str] | None  # (path, text) of the config file, None if absent
    config_key: str
    commits: tuple[Commit, ...] = ()  # oldest first
    changes: tuple[ChangedFile, ...] = ()  # sorted by path (see `sorted_changes`)
    target_paths: frozenset[str] = frozenset()
    project: ProjectFacts = field(default_factory=ProjectFacts)
    project_read_at: float = 0.0
    codeowners: CodeOwnersFile | None = None
    file_sizes: Mapping[str, int] = field(default_factory=dict)
    signatures: Mapping[str, bool] = field(default_factory=dict)
    squash: bool = False
    # The target branch they were judged against: its rules, its tree, the merge-base. An
    # MR retargeted since is judged afresh ("" in memory written before it was kept).
    target_branch: str = ""
    changes_truncated: str = ""  # what GitLab's diff limits left out of `changes`
    file_texts: Mapping[str, str] = field(default_factory=dict)  # files whose diff it left out
    # `rules.base.Fact` name -> the Source's answer, stored by name like the rest.
    facts: Mapping[str, Any] = field(default_factory=dict)


def sorted_changes(changes: Iterable[ChangedFile]) -> tuple[ChangedFile, ...]:
    """One order for a diff however it was assembled, so findings list in the same order."""
    return tuple(sorted(changes, key=lambda c: (c.new_path, c.old_path)))


def touched_paths(changes: Iterable[ChangedFile]) -> frozenset[str]:
    return frozenset(path for c in changes for path in (c.old_path, c.new_path))


def extends_linearly(new_commits: Sequence[Commit], oldrev: str, head_sha: str) -> bool:
    """Whether `new_commits` (a compare from oldrev to head) sit on top of oldrev and nothing
    else: every parent is one of them or oldrev, and the newest is the head.

    False for a force-push (the compare then starts at an older merge-base), for a merge of
    another branch into the MR (a parent outside the MR), and for an empty compare."""
    if not new_commits or new_commits[-1].sha != head_sha:
        return False
    known = {c.sha for c in new_commits} | {oldrev}
    return all(parent in known for c in new_commits for parent in c.parent_ids) and any(
        oldrev in c.parent_ids for c in new_commits
    )


def compose_changes(
    before: Sequence[ChangedFile], added: Sequence[ChangedFile]
) -> tuple[ChangedFile, ...] | None:
    """The MR diff at the new head from the diff at the old head and the new commits' diff.

    Exact when the two touch disjoint paths: a path only the new commits touched did not
    change between the merge-base and the old head, so its diff from the merge-base is the
    new commits' diff. A path both touched has a diff neither side holds (a line added, then
    removed, is in neither the merge-base nor the head): None, and the caller reads the MR's
    diff afresh. So too when one side removes a file and the other adds one: across the
    whole diff GitLab may pair them as a rename, which neither side shows.
    """
    if touched_paths(before) & touched_paths(added):
        return None
    if (_removes(before) and _adds(added)) or (_adds(before) and _removes(added)):
        return None
    return sorted_changes([*before, *added])


def recompose_changes(
    before: Sequence[ChangedFile], added: Sequence[ChangedFile], whole: Sequence[ChangedFile]
) -> tuple[ChangedFile, ...] | None:
    """The MR diff at the new head when `compose_changes` cannot tell it: `whole` (the diff
    from the merge-base to the new head, read from compare, where GitLab may have collapsed
    entries) for the paths the new commits touched, and `before` for the rest.

    A path the new commits did not touch has at the new head the content it had at the old
    head, against the same merge-base: its entry in `before` still holds. Except where
    GitLab pairs a removed and an added file as a rename: so the paths taken from `whole`
    grow, until nothing changes, by every path an entry of either diff pairs with one of
    them. None when an entry taken from `whole` lacks its patch (collapsed or too large):
    only the MR's own diff shows it."""
    affected = set(touched_paths(added))
    grew = True
    while grew:
        grew = False
        for change in (*before, *whole):
            paths = {change.old_path, change.new_path}
            if paths & affected and not paths <= affected:
                affected |= paths
                grew = True
    kept = [c for c in before if not {c.old_path, c.new_path} & affected]
    taken = [c for c in whole if {c.old_path, c.new_path} & affected]
    if not all(c.diff_complete for c in taken):
        return None
    return sorted_changes([*kept, *taken])


def _removes(changes: Iterable[ChangedFile]) -> bool:
    return any(c.deleted_file or c.renamed_file for c in changes)


def _adds(changes: Iterable[ChangedFile]) -> bool:
    return any(c.new_file or c.renamed_file for c in changes)


# -- storage format -------------------------------------------------------------------------


# Every field by its name, nested values too (commits, changes, the project's facts): a field
# added to the inputs is stored without a line here. pydantic checks the types on the way
# back in; what does not fit raises ValueError, and the MR is read afresh.
_STORED = TypeAdapter(MergeRequestInputs)


def as_data(inputs: MergeRequestInputs) -> dict[str, Any]:
    """Plain JSON-able data for the store."""
    data: dict[str, Any] = _STORED.dump_python(inputs, mode="json")
    return {"version": FORMAT_VERSION, **data}


def from_data(data: Mapping[str, Any]) -> MergeRequestInputs | None:
    """The stored inputs, or None for data of another format version (read afresh)."""
    if data.get("version") != FORMAT_VERSION:
        return None
    return _STORED.validate_python({k: v for k, v in data.items() if k != "version"})


def advanced(
    previous: MergeRequestInputs,
    *,
    head_sha: str,
    commits: tuple[Commit, ...],
    changes: tuple[ChangedFile, ...],
    file_sizes: Mapping[str, int],
    signatures: Mapping[str, bool],
    file_texts: Mapping[str, str],
    project: ProjectFacts,
    project_read_at: float,
    facts: Mapping[str, Any],
) -> MergeRequestInputs:
    return replace(
        previous,
        head_sha=head_sha,
        commits=commits,
        changes=changes,
        file_sizes=dict(file_sizes),
        signatures=dict(signatures),
        file_texts=dict(file_texts),
        project=project,
        project_read_at=project_read_at,
        facts=dict(facts),
    )
