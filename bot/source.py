"""The Source seam: what the rules may ask for, and where it is read from.

The engine decides, from the enabled rules' needs, which reads one check makes
(`engine.reads_for`), and asks a Source for exactly those (`engine.read`). A Source judges
nothing; it answers:

- commits with their parents, oldest first (`commits`);
- the changed files, with whether each diff is complete and what the diff limits left out
  (`changes`);
- the paths of a tree at a revision, at its root and under `.gitlab/` (`tree_paths`);
- file sizes and file texts at a revision (`file_sizes`, `file_texts`);
- the project's description and topics (`project`);
- the config file's text at the trusted revision (`config_file`), and CODEOWNERS
  (`codeowners`);
- whether each commit's signature is verified (`signatures`);
- any further fact a rule declares (`rules.base.Fact`): the method named after it, asked
  with a `Where` (`read_facts`). A new kind of fact is one such method per Source.

Implementations: `GitLabSource` here, over the process's one pooled client (the server, a CI
job with a token, the audit); `bot.local.GitSource` on a local git checkout; any object with
these methods can stand in for a test.

The read bounds live here too, so that every Source reads as much, and no more, as the
server does (DESIGN.md, invariant 8).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.config import CONFIG_PATHS, MAX_CONFIG_BYTES, ConfigError, too_large
from bot.gitlab import (
    Comparison,
    GitLab,
    GitLabError,
    NotFound,
    ResponseTooLarge,
    encode_path,
)
from bot.model import ChangedFile, Commit
from bot.rules.base import CodeOwnersFile, ProjectFacts

# Templates, the config file and a CODEOWNERS live under .gitlab/; the required files at the
# root. Two tree listings cover both, however large the repository.
GITLAB_DIR = ".gitlab"
# GitLab looks for CODEOWNERS in these places, first match wins.
# https://docs.gitlab.com/user/project/codeowners/#codeowners-file
DOCS_CODEOWNERS = "docs/CODEOWNERS"
CODEOWNERS_PATHS = ("CODEOWNERS", DOCS_CODEOWNERS, ".gitlab/CODEOWNERS")
MAX_CODEOWNERS_BYTES = 1024 * 1024
# Bounds on per-file and per-commit reads, so one huge MR cannot flood GitLab.
MAX_SIZE_READS = 1000
MAX_SIGNATURE_READS = 500
# A changed file whose diff GitLab left out (collapsed or too large) is read whole for the
# secrets rule, up to these bounds; past them it is reported as not scanned.
MAX_TEXT_READS = 100
MAX_TEXT_BYTES = 1024 * 1024
MAX_TEXT_TOTAL_BYTES = 16 * 1024 * 1024  # all of them together, for one check


@dataclass(frozen=True)
class Changes:
    """The changed files, and what the diff limits left out of the list ("" when nothing)."""

    files: tuple[ChangedFile, ...] = ()
    truncated: str = ""


@dataclass(frozen=True)
class Signatures:
    """sha -> whether the commit's signature is verified.

    `verified` False: the Source can only tell whether a commit carries a signature at all
    (git, offline), not verify it against the keys on the author's GitLab profile."""

    by_sha: Mapping[str, bool] = field(default_factory=dict)
    verified: bool = True


class Source(Protocol):
    """What the rules may ask for. Revisions are full commit shas, or branch names."""

    async def config_file(self, revision: str) -> tuple[str, str] | None:
        """(path, text) of the first config file at the trusted revision, or None.
        ConfigError when it is larger than MAX_CONFIG_BYTES."""
        ...

    async def commits(self, base: str, head: str) -> tuple[Commit, ...]:
        """`base..head`, oldest first, with parents."""
        ...

    async def changes(self, base: str, head: str) -> Changes:
        """The files changed from the merge-base of base and head to head."""
        ...

    async def tree_paths(self, revision: str) -> frozenset[str]:
        """File paths at the root and under `.gitlab/` of the tree at `revision`."""
        ...

    async def codeowners(self, revision: str) -> CodeOwnersFile | None: ...

    async def file_sizes(self, revision: str, paths: Sequence[str]) -> dict[str, int]: ...

    async def file_texts(self, revision: str, paths: Sequence[str]) -> dict[str, str]:
        """Each file's whole text ("" for a binary one); a file that could not be read
        within MAX_TEXT_BYTES is left out."""
        ...

    async def project(self) -> ProjectFacts | None:
        """The project's description and topics; None when this Source cannot tell."""
        ...

    async def signatures(self, shas: Sequence[str]) -> Signatures: ...

    # And per `Fact`: `async def <fact.name>(self, where: Where) -> value | None`.


@dataclass(frozen=True)
class Where:
    """What a `Fact` is asked about: the range under review and its branches."""

    base: str
    head: str
    tree_at: str
    branch: str = ""  # the MR's source branch, or the pushed branch
    target_branch: str = ""  # the MR's target branch, or the pushed branch


async def read_facts(source: object, names: Iterable[str], where: Where) -> dict[str, Any]:
    """Each named fact, from the Source method of that name, concurrently. A Source without
    the method cannot tell: None, as when the method says so."""
    wanted = sorted(names)
    values = await together(*(_fact(source, name, where) for name in wanted))
    return dict(zip(wanted, values, strict=True))


async def _fact(source: object, name: str, where: Where) -> Any:
    method = getattr(source, name, None)
    return None if method is None else await method(where)


# -- which files and commits get read: the same bounds for every Source ---------------------


def sizes_wanted(changes: Sequence[ChangedFile]) -> list[str]:
    """Added and modified files, the first MAX_SIZE_READS. Files past the bound are left out,
    and the size rule reports them as unknown rather than passing them."""
    return [c.new_path for c in changes if not c.deleted_file][:MAX_SIZE_READS]


def signatures_wanted(commits: Sequence[Commit]) -> list[str]:
    return [c.sha for c in commits][:MAX_SIGNATURE_READS]


def texts_wanted(changes: Sequence[ChangedFile]) -> list[str]:
    """Changed files whose diff was left out and that add content: the first MAX_TEXT_READS."""
    wanted = [c.new_path for c in changes if not c.diff_complete and not c.deleted_file]
    return wanted[:MAX_TEXT_READS]


def texts_to_read(wanted: Sequence[str], sizes: Mapping[str, int]) -> list[str]:
    """Which of them are read: each of at most MAX_TEXT_BYTES, in order, until together they
    would pass MAX_TEXT_TOTAL_BYTES."""
    chosen: list[str] = []
    total = 0
    for path in wanted:
        size = sizes.get(path)
        if size is None or size > MAX_TEXT_BYTES:
            continue
        if total + size > MAX_TEXT_TOTAL_BYTES:
            break
        total += size
        chosen.append(path)
    return chosen


def file_text(data: bytes) -> str:
    if b"\0" in data:
        return ""  # binary: GitLab's diff shows no lines of it either
    return data.decode("utf-8", "replace")


# -- running reads together ----------------------------------------------------------------


async def together(*awaitables: Awaitable[Any]) -> list[Any]:
    """Run reads concurrently; on the first failure cancel the rest and raise it."""
    tasks: list[asyncio.Task[Any]] = []
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_as_coroutine(a)) for a in awaitables]
    except BaseExceptionGroup as failures:
        raise _first_leaf(failures) from None
    return [task.result() for task in tasks]


async def _as_coroutine(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


async def nothing(value: Any) -> Any:
    return value


# -- GitLab --------------------------------------------------------------------------------


@dataclass
class CommitFiles:
    """What a commit's tree showed. A commit never changes, so this is shared between the
    checks of every MR that targets the same commit (the `TreeCache`)."""

    paths: frozenset[str] | None = None
    config_file: tuple[str, str] | None = None
    config_read: bool = False
    config_too_large: str | None = None  # the config file's path, when past the cap
    codeowners: CodeOwnersFile | None = None
    codeowners_read: bool = False


class TreeCache:
    """Bounded, least recently used: what each (project, commit sha) tree showed.

    Keyed by an immutable commit, an entry is never stale; a new target-branch commit is a
    new key. The MRs of one target branch share its config, tree and CODEOWNERS reads.
    """

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[int, str], CommitFiles] = OrderedDict()

    def files(self, project_id: int, sha: str) -> CommitFiles:
        key = (project_id, sha)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = CommitFiles()
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        return entry


def _root_and_gitlab_paths(items: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    return frozenset(str(item["path"]) for item in items if item.get("type") == "blob")


@dataclass
class Repository:
    """One project's files at one ref, each read at most once; at a commit sha, at most once
    per `TreeCache` entry.

    `gitlab_dir_when_listed`: read the `.gitlab/` tree only when the root lists it. A
    webhook check reads both trees at once, for the shortest wait; the audit is bound by
    calls instead, and many projects have no `.gitlab/` directory, whose tree GitLab would
    answer with a 404 (17.7+) after a round trip.
    """

    gitlab: GitLab
    project_id: int
    ref: str
    known: CommitFiles = field(default_factory=CommitFiles)
    gitlab_dir_when_listed: bool = False

    async def paths(self) -> frozenset[str]:
        if self.known.paths is None:
            if self.gitlab_dir_when_listed:
                items = await self.gitlab.tree(self.project_id, self.ref)
                if any(i.get("type") == "tree" and i.get("path") == GITLAB_DIR for i in items):
                    items += await self._tree_or_empty(GITLAB_DIR)
            else:
                root, gitlab_dir = await together(
                    self.gitlab.tree(self.project_id, self.ref),
                    self._tree_or_empty(GITLAB_DIR),
                )
                items = [*root, *gitlab_dir]
            self.known.paths = _root_and_gitlab_paths(items)
        return self.known.paths

    async def _tree_or_empty(self, path: str) -> list[dict[str, Any]]:
        """A directory that may legitimately be absent: GitLab 17.7+ answers 404 for it."""
        try:
            return await self.gitlab.tree(self.project_id, self.ref, path, recursive=True)
        except NotFound:
            return []

    async def config_file(self) -> tuple[str, str] | None:
        """(path, text) of the first config file present, or None.

        ConfigError when it is larger than MAX_CONFIG_BYTES: as invalid as a syntax error,
        and known for this commit from then on."""
        if not self.known.config_read:
            try:
                self.known.config_file = await self._first_file(
                    CONFIG_PATHS, await self.paths(), MAX_CONFIG_BYTES
                )
            except ResponseTooLarge:
                present = await self.paths()
                self.known.config_too_large = next(p for p in CONFIG_PATHS if p in present)
            self.known.config_read = True
        if self.known.config_too_large is not None:
            path = self.known.config_too_large
            raise ConfigError(path, [too_large(path)])
        return self.known.config_file

    async def codeowners(self) -> CodeOwnersFile | None:
        if not self.known.codeowners_read:
            paths = await self.paths()
            found = None
            for candidate in CODEOWNERS_PATHS:
                if candidate in paths:
                    found = await self._first_file([candidate], paths, MAX_CODEOWNERS_BYTES)
                elif candidate == DOCS_CODEOWNERS:
                    # Not under the two directories `paths` lists: read it directly. A
                    # listing of `docs` could hold more entries than the bot reads
                    # (contract 2.11), and it is one call either way.
                    found = await self._file_or_none(candidate, MAX_CODEOWNERS_BYTES)
                if found is not None:
                    break
            self.known.codeowners = CodeOwnersFile(*found) if found else None
            self.known.codeowners_read = True
        return self.known.codeowners

    async def _file_or_none(self, path: str, max_bytes: int) -> tuple[str, str] | None:
        try:
            raw = await self.gitlab.raw_file(self.project_id, path, self.ref, max_bytes=max_bytes)
        except NotFound:
            return None
        return path, raw.decode("utf-8", "replace")

    async def _first_file(
        self, candidates: Iterable[str], paths: Iterable[str], max_bytes: int
    ) -> tuple[str, str] | None:
        present = set(paths)
        for candidate in candidates:
            if candidate in present:
                raw = await self.gitlab.raw_file(
                    self.project_id, candidate, self.ref, max_bytes=max_bytes
                )
                return candidate, raw.decode("utf-8", "replace")
        return None


def project_facts_from_api(project: Mapping[str, Any]) -> ProjectFacts:
    """A project's description and topics, from GET /projects/:id or a project listing."""
    # `tag_list` is the pre-14.0 name of `topics`.
    # https://docs.gitlab.com/api/projects/#get-a-single-project
    topics = project.get("topics", project.get("tag_list")) or []
    return ProjectFacts(
        description=str(project.get("description") or ""),
        topics=tuple(str(t) for t in topics),
    )


@dataclass
class GitLabSource:
    """The Source over GitLab's REST API, through the process's one client.

    `project_id` holds the rules, the judged tree and the project's facts (for an MR: its
    target project); `head_project_id` the head commit, so file sizes, texts and signatures
    are read there (an MR's source project, which differs for a fork). Commits and changes
    come from the compare API in `project_id` (one call answers both), or, for an MR
    (`merge_request_iid`), the changes from the MR's own diff, which GitLab cuts at its diff
    limits as the MR page shows. Trees at a commit sha are shared through `trees`.
    """

    gitlab: GitLab
    project_id: int
    head_project_id: int | None = None
    merge_request_iid: int | None = None
    trees: TreeCache | None = None
    gitlab_dir_when_listed: bool = False
    # A project listing already holds the facts (the audit): no call for them.
    known_project: ProjectFacts | None = None
    _repositories: dict[str, Repository] = field(default_factory=dict, init=False)
    _compared: dict[tuple[str, str], asyncio.Future[Comparison]] = field(
        default_factory=dict, init=False
    )
    _merge_request: asyncio.Future[dict[str, Any]] | None = field(default=None, init=False)

    @property
    def _head_project(self) -> int:
        return self.head_project_id or self.project_id

    def repository(self, revision: str) -> Repository:
        repository = self._repositories.get(revision)
        if repository is None:
            known = self.trees.files(self.project_id, revision) if self.trees else CommitFiles()
            repository = Repository(
                self.gitlab, self.project_id, revision, known, self.gitlab_dir_when_listed
            )
            self._repositories[revision] = repository
        return repository

    # -- beyond the rules' facts: what the server needs to know what to judge --

    async def branch_head(self, branch: str) -> str:
        return await self.gitlab.branch_head(self.project_id, branch)

    async def default_branch(self) -> str:
        """The project's default branch, asked of GitLab when the push payload left it empty.

        The rules must never come from the pushed branch just because the payload did not
        say which branch is the default (DESIGN.md, 9): GET /projects/:id has it
        (https://docs.gitlab.com/api/projects/#get-a-single-project, `default_branch`).
        """
        name = (await self.gitlab.project(self.project_id)).get("default_branch")
        if not isinstance(name, str) or not name:
            # null for a repository without branches: there are no rules to read, and
            # guessing would judge the push by its own config.
            raise GitLabError(
                "GitLab names no default branch for the project, so its rules cannot be read",
                method="GET",
                path=f"/projects/{self.project_id}",
            )
        return name

    async def merge_request(self) -> dict[str, Any]:
        """The MR as GET /projects/:id/merge_requests/:iid gives it, read once."""
        assert self.merge_request_iid is not None
        if self._merge_request is None:
            self._merge_request = asyncio.ensure_future(
                self.gitlab.merge_request(self.project_id, self.merge_request_iid)
            )
        return await self._merge_request

    # -- the Source --

    async def config_file(self, revision: str) -> tuple[str, str] | None:
        return await self.repository(revision).config_file()

    async def tree_paths(self, revision: str) -> frozenset[str]:
        return await self.repository(revision).paths()

    async def codeowners(self, revision: str) -> CodeOwnersFile | None:
        return await self.repository(revision).codeowners()

    async def _compare(self, base: str, head: str) -> Comparison:
        key = (base, head)
        compared = self._compared.get(key)
        if compared is None:
            compared = self._compared[key] = asyncio.ensure_future(
                self.gitlab.compare(self.project_id, base, head)
            )
        return await compared

    async def commits(self, base: str, head: str) -> tuple[Commit, ...]:
        # From compare, whose commits come from Gitaly with their parents: most GitLab
        # versions list an MR's commits from database rows without parents (contract 2.2),
        # so merge commits could not be told. The target project holds the head of a fork's
        # MR too (refs/merge-requests/:iid/head). The push payload lists at most 20 commits,
        # none for a new branch pushed without new commits, no parents, and may hide emails
        # as [REDACTED]. https://docs.gitlab.com/user/project/integrations/webhook_events/
        return tuple((await self._compare(base, head)).commits)

    async def changes(self, base: str, head: str) -> Changes:
        if self.merge_request_iid is None:
            compared = await self._compare(base, head)
            return Changes(tuple(compared.changes), _compare_truncation(compared))
        details, files = await together(
            self.merge_request(),
            self.gitlab.merge_request_diffs(self.project_id, self.merge_request_iid),
        )
        return Changes(tuple(files), _mr_diff_truncation(details, len(files)))

    async def file_sizes(self, revision: str, paths: Sequence[str]) -> dict[str, int]:
        sizes = await together(
            *(self.gitlab.file_size(self._head_project, path, revision) for path in paths)
        )
        return dict(zip(paths, sizes, strict=True))

    async def file_texts(self, revision: str, paths: Sequence[str]) -> dict[str, str]:
        texts = await together(*(self._file_text(revision, path) for path in paths))
        return {path: text for path, text in zip(paths, texts, strict=True) if text is not None}

    async def _file_text(self, revision: str, path: str) -> str | None:
        try:
            data = await self.gitlab.raw_file(
                self._head_project, path, revision, max_bytes=MAX_TEXT_BYTES
            )
        except ResponseTooLarge:
            return None
        return file_text(data)

    async def project(self) -> ProjectFacts:
        if self.known_project is not None:
            return self.known_project
        return project_facts_from_api(await self.gitlab.project(self.project_id))

    async def target_branch_protected(self, where: Where) -> bool:
        # The single-branch entity's `protected` is `ProtectedBranch.protected?`, which
        # matches wildcard rules too, and needs only read access (gitlabhq/gitlabhq
        # lib/api/entities/branch.rb). GET /projects/:id/protected_branches/:name looks the
        # rule up by its exact name (lib/api/protected_branches.rb `find_by!(name:)`), so a
        # branch protected by `release/*` would read as unprotected, and it needs Maintainer.
        path = f"/projects/{self.project_id}/repository/branches/{encode_path(where.target_branch)}"
        return bool((await self.gitlab.get(path)).get("protected"))

    async def signatures(self, shas: Sequence[str]) -> Signatures:
        verified = await together(
            *(self.gitlab.commit_signature_verified(self._head_project, sha) for sha in shas)
        )
        return Signatures(dict(zip(shas, verified, strict=True)))


def _mr_diff_truncation(details: Mapping[str, Any], listed: int) -> str:
    """What GitLab's diff limits left out of the MR's diff, from the MR's `changes_count`;
    empty when every changed file is listed."""
    # gitlabhq/gitlabhq lib/api/entities/merge_request.rb: `changes_count` is the MR
    # diff's `real_size`, "1000+" past the diff limits (lib/gitlab/git/diff_collection.rb),
    # and app/models/merge_request_diff.rb `save_diffs` stores no file past them.
    count = str(details.get("changes_count") or "")
    if count.endswith("+"):
        return f"GitLab's diff limits stopped the MR's diff at {listed} files (of {count})"
    if count.isdigit() and int(count) > listed:
        return f"GitLab listed {listed} of the MR's {count} changed files"
    return ""


def _compare_truncation(comparison: Comparison) -> str:
    if not comparison.overflow:
        return ""
    listed = len(comparison.changes)
    return f"GitLab's diff limits stopped the compared files at {listed} (compare_timeout)"
