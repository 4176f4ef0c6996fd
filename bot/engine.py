"""The check engine: read exactly what the enabled rules need, run them, return a Report.

Reading and judging are split. `plan` and `evaluate` are pure: the config decides which
rules run and what they need, and the rules judge a `Context`. The `check_*` coroutines read
that context from GitLab. Any GitLab failure becomes a Report whose `error` says what could
not be read, and an invalid config becomes a Report that shows its errors: never a pass.

Rules come from the target branch (for an MR: of the target project) or, for a push, from
the project's default branch — never from the code under review (DESIGN.md, invariant 9).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, NamedTuple

from bot.config import (
    CONFIG_PATHS,
    MAX_CONFIG_BYTES,
    Config,
    ConfigError,
    default_config,
    load,
    too_large,
)
from bot.gitlab import Comparison, GitLab, GitLabError, NotFound, ResponseTooLarge
from bot.incremental import (
    MergeRequestInputs,
    advanced,
    compose_changes,
    config_key,
    extends_linearly,
    recompose_changes,
    sorted_changes,
    touched_paths,
)
from bot.model import ChangedFile, Commit, Finding, Report, RuleOutcome, Severity
from bot.rules.base import (
    CodeOwnersFile,
    Context,
    MergeRequestFacts,
    Need,
    ProjectFacts,
    Rule,
    RuleConfig,
    Scope,
)
from bot.rules.catalog import all_rules
from bot.rules.repository import apply_changes
from bot.webhook import MergeRequestEvent, PushEvent

log = logging.getLogger(__name__)

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
# Near GitLab's smallest diff limits an MR's diff, composed from pushes, might be one GitLab
# would cut short: such an MR is read afresh, so the MR's own `changes_count` decides.
# (Hard limits: app/models/commit.rb `max_diff_options`, 1000 files and 50000 lines by
# default; lib/gitlab/git/diff_collection.rb adds 5 KiB a file in bytes.)
COMPOSED_MAX_FILES = 500
COMPOSED_MAX_LINES = 25_000
COMPOSED_MAX_BYTES = 2_500_000
# A project's description and topics change without any MR event; an incremental check
# re-reads them when the copy it has is older than this.
PROJECT_FACTS_MAX_AGE = 300.0

_SEVERITY = {"error": Severity.ERROR, "warning": Severity.WARNING, "info": Severity.INFO}


# -- pure part ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """The enabled rules for one scope and branch, with their configs."""

    config: Config
    rules: tuple[tuple[Rule[Any], RuleConfig], ...]

    @property
    def needs(self) -> frozenset[Need]:
        return frozenset(need for rule, _ in self.rules for need in rule.needs)


def plan(config: Config, scope: Scope, target_branch: str) -> Plan:
    enabled = []
    for rule in all_rules():
        options = config.rule(rule.id)
        if options.severity == "off" or scope not in rule.scopes:
            continue
        if not options.applies_to_branch(target_branch):
            continue
        enabled.append((rule, options))
    return Plan(config=config, rules=tuple(enabled))


def evaluate(checks: Plan, context: Context) -> tuple[RuleOutcome, ...]:
    found: list[tuple[Finding, frozenset[str]]] = []
    for rule, options in checks.rules:
        severity = _SEVERITY[options.severity]
        found += [
            (
                Finding(
                    rule=rule.id,
                    severity=problem.severity or severity,
                    message=problem.message,
                    fix=problem.fix or rule.fix,
                    location=problem.location,
                ),
                problem.covers,
            )
            for problem in rule.run(context, options)
        ]
    kept = _one_finding_per_fact(found)
    return tuple(
        RuleOutcome(rule.id, rule.title, tuple(f for f in kept if f.rule == rule.id))
        for rule, _ in checks.rules
    )


_WEIGHT = {Severity.ERROR: 2, Severity.WARNING: 1, Severity.INFO: 0}


def _one_finding_per_fact(found: Sequence[tuple[Finding, frozenset[str]]]) -> list[Finding]:
    """Two rules never report the same fact: a finding whose facts (`Problem.covers`)
    another rule's finding at the same location states too, at least as severely, is
    dropped; of two equal ones the first rule's stays."""

    at: dict[str, list[int]] = {}  # location -> indices of findings that state facts
    for index, (finding, covers) in enumerate(found):
        if covers:
            at.setdefault(finding.location, []).append(index)

    def dominated(index: int) -> bool:
        finding, covers = found[index]
        for other_index in at[finding.location]:
            other, other_covers = found[other_index]
            if other.rule == finding.rule or not covers <= other_covers:
                continue
            weight, other_weight = _WEIGHT[finding.severity], _WEIGHT[other.severity]
            if other_weight > weight or (other_weight == weight and covers < other_covers):
                return True
            if other_weight == weight and covers == other_covers and other_index < index:
                return True
        return False

    dropped = {i for indices in at.values() if len(indices) > 1 for i in indices if dominated(i)}
    return [finding for i, (finding, _) in enumerate(found) if i not in dropped]


# The repository rules judge the project, not the change: what they find may already hold on
# the target branch, before the MR.
REPOSITORY_FAMILY = "repository."


def mark_inherited(
    outcomes: tuple[RuleOutcome, ...], checks: Plan, on_target: Context, target_branch: str
) -> tuple[RuleOutcome, ...]:
    """The repository findings that the target branch (`on_target`: its tree without the
    MR's changes) shows too are marked `already_on`: not the MR's doing, they do not fail
    it. What the MR makes worse (it deletes the LICENSE) is found only with its changes,
    and counts."""
    repository = Plan(
        checks.config, tuple(r for r in checks.rules if r[0].id.startswith(REPOSITORY_FAMILY))
    )
    if not repository.rules:
        return outcomes
    before = {
        (f.rule, f.severity, f.message, f.location)
        for outcome in evaluate(repository, on_target)
        for f in outcome.findings
    }
    return tuple(
        replace(
            outcome,
            findings=tuple(
                replace(f, already_on=target_branch)
                if (f.rule, f.severity, f.message, f.location) in before
                else f
                for f in outcome.findings
            ),
        )
        for outcome in outcomes
    )


def config_from(config_file: tuple[str, str] | None, base: Mapping[str, Any] | None) -> Config:
    """The rules from a config file's text (None: no file), the instance defaults beneath."""
    if config_file is None and not base:
        return default_config()
    path, text = config_file or ("instance defaults", "{}")
    return _parsed_config(path, text, json.dumps(base or {}, sort_keys=True, default=str))


class CacheStats(NamedTuple):
    hits: int
    misses: int


class ConfigParseCache:
    """Parsed configs by content, failures included, bounded and least recently used.

    The same file text (and instance defaults) is the same config: the many events of a
    project parse and validate it once, and an invalid file is not parsed again on every
    event. Keyed by a hash of the text, so an entry does not keep the text alive.
    """

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[str, bytes, str], Config | ConfigError] = OrderedDict()
        self._hits = 0
        self._misses = 0

    def load(self, path: str, text: str, base_json: str) -> Config:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
        key = (path, digest, base_json)
        entry = self._entries.get(key)
        if entry is None:
            self._misses += 1
            try:
                entry = load(text, path, base=json.loads(base_json))
            except ConfigError as exc:
                # Its problems only: the raised exception's traceback and context would
                # keep the parser, and the whole text, alive.
                entry = ConfigError(exc.source, exc.problems)
            self._entries[key] = entry
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
        else:
            self._hits += 1
            self._entries.move_to_end(key)
        if isinstance(entry, ConfigError):
            # A fresh exception each time: raising one instance again grows its traceback.
            raise ConfigError(entry.source, entry.problems)
        return entry

    def stats(self) -> CacheStats:
        return CacheStats(self._hits, self._misses)


config_parse_cache = ConfigParseCache()


def _parsed_config(path: str, text: str, base_json: str) -> Config:
    return config_parse_cache.load(path, text, base_json)


def _root_and_gitlab_paths(items: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    return frozenset(str(item["path"]) for item in items if item.get("type") == "blob")


# -- reading from GitLab ------------------------------------------------------------------


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


@dataclass
class Repository:
    """One project's files at one ref, each read at most once; at a commit sha, at most once
    per `TreeCache` entry."""

    gitlab: GitLab
    project_id: int
    ref: str
    known: CommitFiles = field(default_factory=CommitFiles)

    async def paths(self) -> frozenset[str]:
        if self.known.paths is None:
            root, gitlab_dir = await _together(
                self.gitlab.tree(self.project_id, self.ref),
                self._tree_or_empty(GITLAB_DIR),
            )
            self.known.paths = _root_and_gitlab_paths([*root, *gitlab_dir])
        return self.known.paths

    async def _tree_or_empty(self, path: str) -> list[dict[str, Any]]:
        """A directory that may legitimately be absent: GitLab 17.7+ answers 404 for it."""
        try:
            return await self.gitlab.tree(self.project_id, self.ref, path, recursive=True)
        except NotFound:
            return []

    async def config(self, base: Mapping[str, Any] | None) -> Config:
        return config_from(await self.config_file(), base)

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


async def project_facts(gitlab: GitLab, project_id: int) -> ProjectFacts:
    project = await gitlab.project(project_id)
    # `tag_list` is the pre-14.0 name of `topics`.
    # https://docs.gitlab.com/api/projects/#get-a-single-project
    topics = project.get("topics", project.get("tag_list")) or []
    return ProjectFacts(
        description=str(project.get("description") or ""),
        topics=tuple(str(t) for t in topics),
    )


async def _file_sizes(
    gitlab: GitLab, project_id: int, ref: str, changes: Sequence[ChangedFile]
) -> dict[str, int]:
    """Sizes of added and modified files. Files past the read bound are left out, and the
    size rule reports them as unknown rather than passing them."""
    wanted = [c.new_path for c in changes if not c.deleted_file][:MAX_SIZE_READS]
    sizes = await _together(*(gitlab.file_size(project_id, path, ref) for path in wanted))
    return dict(zip(wanted, sizes, strict=True))


async def _signatures(
    gitlab: GitLab, project_id: int, commits: Sequence[Commit]
) -> dict[str, bool]:
    wanted = [c.sha for c in commits][:MAX_SIGNATURE_READS]
    verified = await _together(
        *(gitlab.commit_signature_verified(project_id, sha) for sha in wanted)
    )
    return dict(zip(wanted, verified, strict=True))


async def _file_texts(
    gitlab: GitLab,
    project_id: int,
    ref: str,
    changes: Sequence[ChangedFile],
    sizes: Mapping[str, int],
) -> dict[str, str]:
    """The whole text at `ref` of changed files whose diff GitLab left out, so the secrets
    rule reads what the diff did not show. Bounded (`texts_to_read`); the files left out are
    reported as not scanned."""
    wanted = texts_wanted(changes)
    # The sizes first (a HEAD each, unless known), so a huge file is never downloaded.
    unknown = [path for path in wanted if path not in sizes]
    found = await _together(*(gitlab.file_size(project_id, path, ref) for path in unknown))
    known = {**sizes, **dict(zip(unknown, found, strict=True))}
    chosen = texts_to_read(wanted, known)
    texts = await _together(*(_file_text(gitlab, project_id, ref, path) for path in chosen))
    return {path: text for path, text in zip(chosen, texts, strict=True) if text is not None}


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


async def _file_text(gitlab: GitLab, project_id: int, ref: str, path: str) -> str | None:
    try:
        data = await gitlab.raw_file(project_id, path, ref, max_bytes=MAX_TEXT_BYTES)
    except ResponseTooLarge:
        return None
    if b"\0" in data:
        return ""  # binary: GitLab's diff shows no lines of it either
    return data.decode("utf-8", "replace")


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


def _texts_still_hold(
    before: Sequence[ChangedFile], after: Sequence[ChangedFile], texts: Mapping[str, str]
) -> bool:
    """Whether the texts kept are the ones a full check would read for `after`: the same
    files want their text, or every one that still does has it (the bounds then choose
    them all)."""
    wanted = texts_wanted(after)
    return wanted == texts_wanted(before) or all(path in texts for path in wanted)


def _composed_near_limits(changes: Sequence[ChangedFile]) -> bool:
    if len(changes) > COMPOSED_MAX_FILES:
        return True
    lines = sum(c.diff.count("\n") for c in changes)
    size = sum(len(c.diff) for c in changes)
    return lines > COMPOSED_MAX_LINES or size > COMPOSED_MAX_BYTES


async def _sizes_and_signatures(
    gitlab: GitLab,
    event: MergeRequestEvent,
    needs: frozenset[Need],
    changes: Sequence[ChangedFile],
    commits: Sequence[Commit],
) -> tuple[dict[str, int], dict[str, bool]]:
    """What the enabled rules need of these files and commits, read where the head commit
    lives: the MR's source project."""
    sizes, signatures = await _together(
        _file_sizes(gitlab, event.source_project_id, event.head_sha, changes)
        if Need.FILE_SIZES in needs
        else _nothing({}),
        _signatures(gitlab, event.source_project_id, commits)
        if Need.SIGNATURES in needs
        else _nothing({}),
    )
    return sizes, signatures


async def _nothing(value: Any) -> Any:
    return value


def _failure_report(head_sha: str, exc: Exception) -> Report:
    if isinstance(exc, ConfigError):
        return Report(
            head_sha=head_sha,
            error=f"invalid {exc.source}",
            details=tuple(str(p) for p in exc.problems),
        )
    return Report(head_sha=head_sha, error=str(exc), retryable=True)


async def check_merge_request(
    gitlab: GitLab, event: MergeRequestEvent, *, base_config: Mapping[str, Any] | None = None
) -> Report:
    """A from-scratch check of the MR's head."""
    checked = await check_merge_request_incrementally(
        gitlab, event, base_config=base_config, previous=None, now=time.time()
    )
    return checked.report


@dataclass(frozen=True)
class MergeRequestCheck:
    report: Report
    # What to keep for the MR's next event; None when the check did not complete.
    inputs: MergeRequestInputs | None
    reuse: Reuse


class Reuse(StrEnum):
    """How much of an earlier check's inputs a check reused."""

    NONE = "none"  # everything read afresh
    METADATA = "metadata"  # same head: judged from the payload, no GitLab read
    NEW_COMMITS = "new_commits"  # read only the new commits and the files they changed
    # new commits that change files the MR had changed: those files' diff read again too
    CHANGED_AGAIN = "changed_again"


async def check_merge_request_incrementally(
    gitlab: GitLab,
    event: MergeRequestEvent,
    *,
    base_config: Mapping[str, Any] | None,
    previous: MergeRequestInputs | None,
    now: float,
    trees: TreeCache | None = None,
) -> MergeRequestCheck:
    """Check the MR's head, reading from GitLab only what `previous` (the inputs of an
    earlier check of this MR) and `trees` (what target commits showed) cannot stand for.
    The result equals a from-scratch check."""
    base = base_config or {}
    try:
        if previous is not None:
            reused = await _check_from_previous(gitlab, event, base, previous, now)
            if reused is not None:
                return reused
        return await _check_merge_request(gitlab, event, base, now, trees)
    except (GitLabError, ConfigError) as exc:
        return MergeRequestCheck(_failure_report(event.head_sha, exc), None, Reuse.NONE)


async def _check_from_previous(
    gitlab: GitLab,
    event: MergeRequestEvent,
    base: Mapping[str, Any],
    previous: MergeRequestInputs,
    now: float,
) -> MergeRequestCheck | None:
    """None when the earlier inputs cannot stand in: the caller then reads everything."""
    if previous.config_key != config_key(previous.config_file, base):
        return None  # the instance defaults changed since
    if previous.target_branch != event.target_branch:
        # Retargeted (`changes.target_branch`): the rules, the tree and the merge-base are
        # the new target's; nothing read against the old one stands in.
        return None
    config = config_from(previous.config_file, base)
    checks = plan(config, Scope.MERGE_REQUEST, event.target_branch)
    if event.action == "update" and event.oldrev is None and event.head_sha == previous.head_sha:
        # Title, description, labels, draft, assignees or reviewers changed: the payload
        # carries them all, and everything else was read for this very head. (An open or
        # reopen, or catch-up, reads afresh: the target branch may have moved since.)
        return MergeRequestCheck(_judge(checks, previous, event), previous, Reuse.METADATA)
    if event.oldrev is None:
        return None  # not a push: an open, reopen or catch-up reads afresh
    # From the head last judged, not the hook's `oldrev`: when several pushes come at once
    # only the newest is checked (the others are superseded), and its `oldrev` is a head
    # the bot never judged. Compare from the judged head has every commit since; whether
    # they sit on top of it is `extends_linearly`'s to say.
    judged = previous.head_sha
    if previous.changes_truncated:
        return None  # GitLab cut the MR's diff short: only its own diff says what is left out
    needs = checks.needs
    wants_history = bool(
        needs & {Need.COMMITS, Need.SIGNATURES, Need.CHANGES, Need.TREE, Need.FILE_SIZES}
    )
    project_is_old = now - previous.project_read_at > PROJECT_FACTS_MAX_AGE
    target_sha, compared, project = await _together(
        gitlab.branch_head(event.project_id, event.target_branch),
        # The new commits and only the files they changed, in the project that holds them.
        gitlab.compare(event.source_project_id, judged, event.head_sha)
        if wants_history
        else _nothing(None),
        project_facts(gitlab, event.project_id)
        if Need.PROJECT in needs and project_is_old
        else _nothing(None),
    )
    if target_sha != previous.target_sha:
        return None  # the config, the tree and the merge-base may all have moved
    commits, changes = previous.commits, previous.changes
    sizes, signatures = dict(previous.file_sizes), dict(previous.signatures)
    texts = dict(previous.file_texts)
    reuse = Reuse.NEW_COMMITS
    if compared is not None:
        new_commits, new_changes = compared.commits, compared.changes
        if not extends_linearly(new_commits, judged, event.head_sha):
            return None  # a force-push or a merge: the MR's commit list is not old + new
        if compared.overflow or not all(c.diff_complete for c in new_changes):
            # Compare collapses patches the MR's own diff shows in full, and stops at the
            # diff limits: read the MR's diff instead.
            return None
        composed = compose_changes(previous.changes, new_changes)
        if composed is None:
            # The new commits change files the MR had changed (or may pair with them as a
            # rename): the MR's diff at the new head for those files is in neither diff.
            # Compare reads it pinned to this head and this target commit, as the MR's
            # own diff would show it (app/models/merge_request_diff.rb diffs from the
            # merge-base too); the rest still holds.
            whole = await gitlab.compare(event.project_id, target_sha, event.head_sha)
            if whole.overflow:
                return None
            composed = recompose_changes(previous.changes, new_changes, whole.changes)
            reuse = Reuse.CHANGED_AGAIN
        if composed is None or _composed_near_limits(composed):
            return None
        commits, changes = previous.commits + tuple(new_commits), composed
        if len(commits) > MAX_SIGNATURE_READS or len(changes) > MAX_SIZE_READS:
            return None  # past the read bounds, which files get read depends on all of them
        touched = touched_paths(new_changes)
        texts = {path: text for path, text in texts.items() if path not in touched}
        if not _texts_still_hold(previous.changes, changes, texts):
            return None
        # Sizes are of the files at the head: a file the new commits did not touch kept
        # its size; the others still in the MR's diff are read (not one put back as the
        # target branch has it).
        kept_sizes = {path: size for path, size in sizes.items() if path not in touched}
        unknown = [c for c in changes if c.new_path not in kept_sizes]
        new_sizes, new_signatures = await _sizes_and_signatures(
            gitlab, event, needs, unknown, new_commits
        )
        sizes = {**kept_sizes, **new_sizes}
        signatures.update(new_signatures)
    inputs = advanced(
        previous,
        head_sha=event.head_sha,
        commits=commits,
        changes=changes,
        file_sizes=sizes,
        signatures=signatures,
        file_texts=texts,
        project=project or previous.project,
        project_read_at=now if project is not None else previous.project_read_at,
    )
    return MergeRequestCheck(_judge(checks, inputs, event), inputs, reuse)


async def _check_merge_request(
    gitlab: GitLab,
    event: MergeRequestEvent,
    base: Mapping[str, Any],
    now: float,
    trees: TreeCache | None,
) -> MergeRequestCheck:
    # Rules come from the target project's target branch, never the source branch. Read
    # at the branch's commit, so the config and the tree are of one state, which later
    # events can recognise.
    target_sha = await gitlab.branch_head(event.project_id, event.target_branch)
    known = trees.files(event.project_id, target_sha) if trees else CommitFiles()
    target = Repository(gitlab, event.project_id, target_sha, known)
    config_file = await target.config_file()
    config = config_from(config_file, base)
    checks = plan(config, Scope.MERGE_REQUEST, event.target_branch)
    needs = checks.needs
    wants_commits = bool(needs & {Need.COMMITS, Need.SIGNATURES})
    # The MR's repository rules judge the target branch as it will be after the merge, so
    # they need the MR's changes too.
    wants_changes = bool(needs & {Need.CHANGES, Need.TREE, Need.FILE_SIZES})
    details, compared, changes, paths, project, codeowners = await _together(
        gitlab.merge_request(event.project_id, event.iid),
        # The MR's commits (`git log target..head`, as GitLab lists them) from compare,
        # whose commits come from Gitaly with their parents: most GitLab versions list
        # the MR's commits from database rows without parents (contract 2.2), so merge
        # commits could not be told. The target project holds the head of a fork's MR
        # too (refs/merge-requests/:iid/head).
        gitlab.compare(event.project_id, target_sha, event.head_sha)
        if wants_commits
        else _nothing(None),
        gitlab.merge_request_diffs(event.project_id, event.iid) if wants_changes else _nothing([]),
        target.paths() if Need.TREE in needs else _nothing(frozenset()),
        project_facts(gitlab, event.project_id) if Need.PROJECT in needs else _nothing(None),
        target.codeowners() if Need.CODEOWNERS in needs else _nothing(None),
    )
    current_head = str(details.get("sha") or event.head_sha)
    if current_head != event.head_sha:
        # The MR moved on while this event waited: what was read describes a newer head than
        # the event's. Its own event (or catch-up) checks that head; this one posts nothing,
        # so the note never describes an older head than the newest.
        report = Report(head_sha=event.head_sha, superseded_by=current_head)
        return MergeRequestCheck(report, None, Reuse.NONE)
    commits = compared.commits if compared is not None else []
    if wants_commits and not commits:
        # An open MR always has a commit; none means GitLab has not finished preparing it,
        # which is not something to report as a pass.
        report = Report(head_sha=event.head_sha, error="GitLab listed no commits for the MR yet")
        return MergeRequestCheck(report, None, Reuse.NONE)
    truncated = _mr_diff_truncation(details, len(changes)) if wants_changes else ""
    changes = sorted_changes(changes)
    sizes, signatures = await _sizes_and_signatures(gitlab, event, needs, changes, commits)
    texts = (
        await _file_texts(gitlab, event.source_project_id, event.head_sha, changes, sizes)
        if Need.FILE_TEXTS in needs
        else {}
    )
    inputs = MergeRequestInputs(
        head_sha=event.head_sha,
        target_sha=target_sha,
        config_file=config_file,
        config_key=config_key(config_file, base),
        commits=tuple(commits),
        changes=changes,
        target_paths=paths,
        project=project or ProjectFacts(),
        project_read_at=now,
        codeowners=codeowners,
        file_sizes=sizes,
        signatures=signatures,
        # `squash_on_merge` accounts for the project's squash setting ("always").
        # https://docs.gitlab.com/api/merge_requests/#get-single-mr
        squash=bool(details.get("squash_on_merge", details.get("squash", False))),
        target_branch=event.target_branch,
        changes_truncated=truncated,
        file_texts=texts,
    )
    return MergeRequestCheck(_judge(checks, inputs, event), inputs, Reuse.NONE)


def _judge(checks: Plan, inputs: MergeRequestInputs, event: MergeRequestEvent) -> Report:
    """Run the rules on the inputs read from GitLab and the MR facts from the payload."""
    needs = checks.needs
    wants_commits = bool(needs & {Need.COMMITS, Need.SIGNATURES})
    wants_changes = bool(needs & {Need.CHANGES, Need.TREE, Need.FILE_SIZES})
    context = Context(
        scope=Scope.MERGE_REQUEST,
        branch=event.source_branch,
        target_branch=event.target_branch,
        commits=inputs.commits,
        changes=inputs.changes,
        paths=apply_changes(inputs.target_paths, inputs.changes)
        if Need.TREE in needs
        else frozenset(),
        project=inputs.project,
        merge_request=MergeRequestFacts(
            title=event.title,
            description=event.description,
            labels=event.labels,
            draft=event.draft,
            source_branch=event.source_branch,
            target_branch=event.target_branch,
            squash=inputs.squash,
            assignees=event.assignees,
            reviewers=event.reviewers,
        ),
        file_sizes=dict(inputs.file_sizes),
        signatures=dict(inputs.signatures),
        codeowners=inputs.codeowners,
        squash_policy=checks.config.squash_policy,
        changes_truncated=inputs.changes_truncated,
        file_texts=dict(inputs.file_texts),
    )
    facts = {"commits": len(inputs.commits)} if wants_commits else {}
    if wants_changes:
        facts["files"] = len(inputs.changes)
    outcomes = evaluate(checks, context)
    if not checks.config.fails_inherited:
        target_paths = inputs.target_paths if Need.TREE in needs else frozenset()
        on_target = replace(context, paths=target_paths)
        outcomes = mark_inherited(outcomes, checks, on_target, event.target_branch)
    return Report(
        head_sha=event.head_sha,
        outcomes=outcomes,
        facts=facts,
        config_source=checks.config.source,
    )


async def check_push(
    gitlab: GitLab, event: PushEvent, *, base_config: Mapping[str, Any] | None = None
) -> Report:
    try:
        return await _check_push(gitlab, event, base_config)
    except (GitLabError, ConfigError) as exc:
        return _failure_report(event.after, exc)


async def _check_push(
    gitlab: GitLab, event: PushEvent, base_config: Mapping[str, Any] | None
) -> Report:
    pushed = Repository(gitlab, event.project_id, event.after)
    default_branch = event.default_branch or await _default_branch(gitlab, event.project_id)
    # A push is judged by the default branch's rules; a push to the default branch reads
    # them from the pushed tree, which is that branch now.
    on_default = event.branch == default_branch
    rules_from = pushed if on_default else Repository(gitlab, event.project_id, default_branch)
    config = await rules_from.config(base_config)
    checks = plan(config, Scope.PUSH, event.branch)
    needs = checks.needs
    base = default_branch if event.new_branch else event.before
    wants_history = bool(needs & {Need.COMMITS, Need.SIGNATURES, Need.CHANGES, Need.FILE_SIZES})
    commits: Sequence[Commit] = ()
    changes: Sequence[ChangedFile] = ()
    truncated = ""
    if wants_history:
        # Always from the compare API: the payload lists at most 20 commits, none for a new
        # branch pushed without new commits, no parents, no diffs, and may hide emails as
        # [REDACTED]; rules on sign-offs, authors and merges need the real commits.
        # https://docs.gitlab.com/user/project/integrations/webhook_events/#push-events
        compared = await gitlab.compare(event.project_id, base, event.after)
        commits, changes = compared.commits, compared.changes
        truncated = _compare_truncation(compared)
    paths, project, codeowners, sizes, signatures = await _together(
        pushed.paths() if Need.TREE in needs else _nothing(frozenset()),
        project_facts(gitlab, event.project_id) if Need.PROJECT in needs else _nothing(None),
        pushed.codeowners() if Need.CODEOWNERS in needs else _nothing(None),
        _file_sizes(gitlab, event.project_id, event.after, changes)
        if Need.FILE_SIZES in needs
        else _nothing({}),
        _signatures(gitlab, event.project_id, commits)
        if Need.SIGNATURES in needs
        else _nothing({}),
    )
    texts = (
        await _file_texts(gitlab, event.project_id, event.after, changes, sizes)
        if Need.FILE_TEXTS in needs
        else {}
    )
    context = Context(
        scope=Scope.PUSH,
        branch=event.branch,
        target_branch=event.branch,
        commits=tuple(commits),
        changes=tuple(changes),
        paths=paths,
        project=project or ProjectFacts(),
        file_sizes=sizes,
        signatures=signatures,
        codeowners=codeowners,
        squash_policy=config.squash_policy,
        changes_truncated=truncated,
        file_texts=texts,
    )
    return Report(
        head_sha=event.after,
        outcomes=evaluate(checks, context),
        facts={"commits": len(commits)} if wants_history else {},
        config_source=config.source,
    )


async def _default_branch(gitlab: GitLab, project_id: int) -> str:
    """The project's default branch, asked of GitLab when the push payload left it empty.

    The rules must never come from the pushed branch just because the payload did not say
    which branch is the default (DESIGN.md, 9): GET /projects/:id has it
    (https://docs.gitlab.com/api/projects/#get-a-single-project, `default_branch`).
    """
    name = (await gitlab.project(project_id)).get("default_branch")
    if not isinstance(name, str) or not name:
        # null for a repository without branches: there are no rules to read, and guessing
        # would judge the push by its own config.
        raise GitLabError(
            "GitLab names no default branch for the project, so its rules cannot be read",
            method="GET",
            path=f"/projects/{project_id}",
        )
    return name


async def _together(*awaitables: Awaitable[Any]) -> list[Any]:
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
