"""The check engine: read exactly what the enabled rules need, run them, return a Report.

Reading and judging are split. `plan` and `evaluate` are pure: the config decides which
rules run and what they need, and the rules judge a `Context`. The `check_*` coroutines read
that context from GitLab. Any GitLab failure becomes a Report whose `error` says what could
not be read, and an invalid config becomes a Report that shows its errors: never a pass.

Rules come from the target branch (for an MR: of the target project) or, for a push, from
the project's default branch — never from the code under review (DESIGN.md, invariant 9).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, NamedTuple

from bot import policy
from bot.config import Config, ConfigError, default_config, load
from bot.gitlab import GitLab, GitLabError
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
    Fact,
    MergeRequestFacts,
    Need,
    ProjectFacts,
    Rule,
    RuleConfig,
    Scope,
)
from bot.rules.catalog import all_rules
from bot.rules.repository import apply_changes
from bot.source import (
    MAX_SIGNATURE_READS,
    MAX_SIZE_READS,
    Changes,
    GitLabSource,
    Signatures,
    Source,
    TreeCache,
    Where,
    nothing,
    read_facts,
    signatures_wanted,
    sizes_wanted,
    texts_to_read,
    texts_wanted,
    together,
)
from bot.webhook import MergeRequestEvent, PushEvent

log = logging.getLogger(__name__)

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
    def needs(self) -> frozenset[Need | Fact]:
        return frozenset(need for rule, _ in self.rules for need in rule.needs)

    def only(self, keep: Callable[[Rule[Any]], bool]) -> Plan:
        """The plan with just the rules `keep` accepts, in order, with their configs."""
        return Plan(
            self.config, tuple((rule, options) for rule, options in self.rules if keep(rule))
        )


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
    repository = checks.only(lambda rule: rule.id.startswith(REPOSITORY_FAMILY))
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


# -- what the enabled rules need: the one place that decides which reads a check makes ----


@dataclass(frozen=True)
class Reads:
    """Which of a Source's answers one check asks for."""

    commits: bool = False
    changes: bool = False
    tree: bool = False
    project: bool = False
    file_sizes: bool = False
    signatures: bool = False
    codeowners: bool = False
    file_texts: bool = False
    facts: frozenset[str] = frozenset()  # the `Fact`s, by name: each one Source method


def reads_for(needs: Collection[Need | Fact], scope: Scope) -> Reads:
    """The reads the enabled rules' needs call for.

    For an MR the diffs are read for the tree rules too (they judge the target tree with the
    MR's changes applied); for a push commits and diffs come together (one compare)."""
    wanted = set(needs)
    if scope is Scope.MERGE_REQUEST:
        commits = bool(wanted & {Need.COMMITS, Need.SIGNATURES})
        changes = bool(wanted & {Need.CHANGES, Need.TREE, Need.FILE_SIZES})
    else:
        commits = changes = bool(
            wanted & {Need.COMMITS, Need.SIGNATURES, Need.CHANGES, Need.FILE_SIZES}
        )
    return Reads(
        commits=commits,
        changes=changes,
        tree=Need.TREE in wanted,
        project=Need.PROJECT in wanted,
        file_sizes=Need.FILE_SIZES in wanted,
        signatures=Need.SIGNATURES in wanted,
        codeowners=Need.CODEOWNERS in wanted,
        file_texts=Need.FILE_TEXTS in wanted,
        facts=frozenset(need.name for need in wanted if isinstance(need, Fact)),
    )


@dataclass(frozen=True)
class Inputs:
    """What a Source answered. Fields the reads did not ask for keep their defaults."""

    commits: tuple[Commit, ...] = ()
    changes: Changes = field(default_factory=Changes)
    paths: frozenset[str] = frozenset()  # the tree as read (an MR's: the target's)
    project: ProjectFacts | None = None  # None: not asked, or the Source cannot tell
    codeowners: CodeOwnersFile | None = None
    file_sizes: Mapping[str, int] = field(default_factory=dict)
    signatures: Signatures = field(default_factory=Signatures)
    file_texts: Mapping[str, str] = field(default_factory=dict)
    facts: Mapping[str, Any] = field(default_factory=dict)  # by `Fact` name


async def read(source: Source, reads: Reads, where: Where) -> Inputs:
    """Ask the Source for what `reads` says: commits and changes of base..head, the tree
    at `tree_at`, files and facts at `head`."""
    first = await read_first(source, reads, where)
    return await read_rest(source, reads, head=where.head, first=first)


async def read_first(source: Source, reads: Reads, where: Where) -> Inputs:
    """The reads that need nothing read before them, concurrently."""
    base, head, tree_at = where.base, where.head, where.tree_at
    commits, changes, paths, project, codeowners, facts = await together(
        source.commits(base, head) if reads.commits else nothing(()),
        source.changes(base, head) if reads.changes else nothing(Changes()),
        source.tree_paths(tree_at) if reads.tree else nothing(frozenset()),
        source.project() if reads.project else nothing(None),
        source.codeowners(tree_at) if reads.codeowners else nothing(None),
        read_facts(source, reads.facts, where),
    )
    return Inputs(
        commits=tuple(commits),
        changes=changes,
        paths=paths,
        project=project,
        codeowners=codeowners,
        facts=facts,
    )


async def read_rest(source: Source, reads: Reads, *, head: str, first: Inputs) -> Inputs:
    """What depends on the commits and changed files: sizes, signatures, whole texts."""
    files = first.changes.files
    sizes, signatures = await together(
        source.file_sizes(head, sizes_wanted(files)) if reads.file_sizes else nothing({}),
        source.signatures(signatures_wanted(first.commits))
        if reads.signatures
        else nothing(Signatures()),
    )
    texts = await _file_texts(source, head, files, sizes) if reads.file_texts else {}
    return replace(first, file_sizes=sizes, signatures=signatures, file_texts=texts)


async def _file_texts(
    source: Source, head: str, files: Sequence[ChangedFile], sizes: Mapping[str, int]
) -> dict[str, str]:
    """The whole text at head of changed files whose diff was left out, so the secrets rule
    reads what the diff did not show. Bounded (`texts_to_read`); the files left out are
    reported as not scanned. The sizes first, so a huge file is never downloaded."""
    wanted = texts_wanted(files)
    unknown = [path for path in wanted if path not in sizes]
    known = {**sizes, **(await source.file_sizes(head, unknown) if unknown else {})}
    return await source.file_texts(head, texts_to_read(wanted, known))


def context_for(
    checks: Plan,
    scope: Scope,
    inputs: Inputs,
    where: Where,
    *,
    paths: frozenset[str] | None = None,
    merge_request: MergeRequestFacts | None = None,
) -> Context:
    """The rules' input: what a Source answered about `where` and the facts of the MR. The
    tree is the one read (`inputs.paths`) unless `paths` gives the one to judge."""
    return Context(
        scope=scope,
        branch=where.branch,
        target_branch=where.target_branch,
        commits=inputs.commits,
        changes=inputs.changes.files,
        paths=inputs.paths if paths is None else paths,
        project=inputs.project or ProjectFacts(),
        merge_request=merge_request,
        file_sizes=inputs.file_sizes,
        signatures=inputs.signatures.by_sha,
        codeowners=inputs.codeowners,
        squash_policy=checks.config.squash_policy,
        changes_truncated=inputs.changes.truncated,
        file_texts=inputs.file_texts,
        facts=inputs.facts,
    )


def report_facts(reads: Reads, scope: Scope, inputs: Inputs) -> dict[str, int]:
    """The note's "N commits, N changed files": what was read, not what was not."""
    facts = {"commits": len(inputs.commits)} if reads.commits else {}
    if scope is Scope.MERGE_REQUEST and reads.changes:
        facts["files"] = len(inputs.changes.files)
    return facts


def judge(
    checks: Plan,
    context: Context,
    *,
    head_sha: str,
    facts: dict[str, int],
    on_target: Context | None = None,
) -> Report:
    """Run the rules; with `on_target` (the target branch without the MR's changes), mark
    the repository findings that hold there already, unless the config fails them."""
    outcomes = evaluate(checks, context)
    if on_target is not None and not checks.config.fails_inherited:
        outcomes = mark_inherited(outcomes, checks, on_target, context.target_branch)
    return Report(
        head_sha=head_sha,
        outcomes=outcomes,
        facts=facts,
        config_source=checks.config.source,
        policy_notes=checks.config.notes,
    )


def judge_inputs(
    checks: Plan,
    scope: Scope,
    inputs: Inputs,
    where: Where,
    *,
    merge_request: MergeRequestFacts | None = None,
) -> Report:
    """Judge what a Source answered about `where`, as every face does.

    An MR's tree is read at its target (`where.tree_at`): the repository rules judge it with
    the MR's changes laid over (the branch as it will be after the merge), and what they find
    without those changes holds there already and is marked so (`mark_inherited`).
    """
    reads = reads_for(checks.needs, scope)
    paths = None
    if scope is Scope.MERGE_REQUEST and reads.tree:
        paths = apply_changes(inputs.paths, inputs.changes.files)
    context = context_for(checks, scope, inputs, where, paths=paths, merge_request=merge_request)
    return judge(
        checks,
        context,
        head_sha=where.head,
        facts=report_facts(reads, scope, inputs),
        on_target=replace(context, paths=inputs.paths) if scope is Scope.MERGE_REQUEST else None,
    )


def config_failure(head_sha: str, exc: ConfigError) -> Report:
    """The report of a check whose config is invalid: failed, with each error by line."""
    return Report(
        head_sha=head_sha,
        error=str(exc),  # "invalid FILE", or "could not read policy `…`: …"
        details=tuple(str(p) for p in exc.problems),
        config_source=exc.source,
    )


def _failure_report(head_sha: str, exc: Exception) -> Report:
    if isinstance(exc, ConfigError):
        return replace(config_failure(head_sha, exc), config_source="defaults")
    return Report(head_sha=head_sha, error=str(exc), retryable=True)


# -- the server's checks, over the GitLab Source -------------------------------------------


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
    resolved = await policy.resolve_for_project(
        gitlab, event.project_id, previous.target_sha, previous.config_file, base
    )
    if previous.config_key != config_key(previous.config_file, base) + policy.resolution_key(
        resolved
    ):
        return None  # the instance defaults or the group policy changed since
    if previous.target_branch != event.target_branch:
        # Retargeted (`changes.target_branch`): the rules, the tree and the merge-base are
        # the new target's; nothing read against the old one stands in.
        return None
    checks = plan(resolved.config, Scope.MERGE_REQUEST, event.target_branch)
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
    reads = reads_for(checks.needs, Scope.MERGE_REQUEST)
    project_is_old = now - previous.project_read_at > PROJECT_FACTS_MAX_AGE
    target = GitLabSource(gitlab, event.project_id)
    # The new commits and only the files they changed, in the project that holds them.
    since = GitLabSource(gitlab, event.source_project_id)
    history = Reads(commits=True, changes=True)
    where = _merge_request_where(event, judged, previous.target_sha)
    target_sha, new, project, facts = await together(
        target.branch_head(event.target_branch),
        read_first(since, history, where) if reads.commits or reads.changes else nothing(None),
        target.project() if reads.project and project_is_old else nothing(None),
        # The facts a rule declares change without an MR event: read again each time.
        read_facts(target, reads.facts, where),
    )
    if target_sha != previous.target_sha:
        return None  # the config, the tree and the merge-base may all have moved
    commits, changes = previous.commits, previous.changes
    sizes, signatures = dict(previous.file_sizes), dict(previous.signatures)
    texts = dict(previous.file_texts)
    reuse = Reuse.NEW_COMMITS
    if new is not None:
        new_commits, new_changes = new.commits, new.changes.files
        if not extends_linearly(new_commits, judged, event.head_sha):
            return None  # a force-push or a merge: the MR's commit list is not old + new
        if new.changes.truncated or not all(c.diff_complete for c in new_changes):
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
        commits, changes = previous.commits + new_commits, composed
        if len(commits) > MAX_SIGNATURE_READS or len(changes) > MAX_SIZE_READS:
            return None  # past the read bounds, which files get read depends on all of them
        touched = touched_paths(new_changes)
        texts = {path: text for path, text in texts.items() if path not in touched}
        if not _texts_still_hold(previous.changes, changes, texts):
            return None
        # Sizes are of the files at the head: a file the new commits did not touch kept
        # its size; the others still in the MR's diff are read (not one put back as the
        # target branch has it). Every new diff is complete (above): no whole text to read.
        kept_sizes = {path: size for path, size in sizes.items() if path not in touched}
        unknown = tuple(c for c in changes if c.new_path not in kept_sizes)
        added = await read_rest(
            since,
            replace(reads, file_texts=False),
            head=event.head_sha,
            first=Inputs(commits=tuple(new_commits), changes=Changes(files=unknown)),
        )
        sizes = {**kept_sizes, **added.file_sizes}
        signatures.update(added.signatures.by_sha)
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
        facts=facts,
    )
    return MergeRequestCheck(_judge(checks, inputs, event), inputs, reuse)


async def _check_merge_request(
    gitlab: GitLab,
    event: MergeRequestEvent,
    base: Mapping[str, Any],
    now: float,
    trees: TreeCache | None,
) -> MergeRequestCheck:
    source = GitLabSource(
        gitlab,
        event.project_id,
        head_project_id=event.source_project_id,
        merge_request_iid=event.iid,
        trees=trees,
    )
    # Rules come from the target project's target branch, never the source branch. Read
    # at the branch's commit, so the config and the tree are of one state, which later
    # events can recognise.
    target_sha = await source.branch_head(event.target_branch)
    config_file = await source.config_file(target_sha)
    resolved = await policy.resolve_for_project(
        gitlab, event.project_id, target_sha, config_file, base
    )
    checks = plan(resolved.config, Scope.MERGE_REQUEST, event.target_branch)
    reads = reads_for(checks.needs, Scope.MERGE_REQUEST)
    details, first = await together(
        source.merge_request(),
        # The MR's commits are `git log target..head`, as GitLab lists them; its repository
        # rules judge the target branch as it will be after the merge, so they need the
        # MR's changes too.
        read_first(source, reads, _merge_request_where(event, target_sha, target_sha)),
    )
    current_head = str(details.get("sha") or event.head_sha)
    if current_head != event.head_sha:
        # The MR moved on while this event waited: what was read describes a newer head than
        # the event's. Its own event (or catch-up) checks that head; this one posts nothing,
        # so the note never describes an older head than the newest.
        report = Report(head_sha=event.head_sha, superseded_by=current_head)
        return MergeRequestCheck(report, None, Reuse.NONE)
    if reads.commits and not first.commits:
        # An open MR always has a commit; none means GitLab has not finished preparing it,
        # which is not something to report as a pass.
        report = Report(head_sha=event.head_sha, error="GitLab listed no commits for the MR yet")
        return MergeRequestCheck(report, None, Reuse.NONE)
    first = replace(
        first, changes=replace(first.changes, files=sorted_changes(first.changes.files))
    )
    read_ = await read_rest(source, reads, head=event.head_sha, first=first)
    inputs = MergeRequestInputs(
        head_sha=event.head_sha,
        target_sha=target_sha,
        config_file=config_file,
        config_key=config_key(config_file, base) + policy.resolution_key(resolved),
        commits=read_.commits,
        changes=read_.changes.files,
        target_paths=read_.paths,
        project=read_.project or ProjectFacts(),
        project_read_at=now,
        codeowners=read_.codeowners,
        file_sizes=read_.file_sizes,
        signatures=read_.signatures.by_sha,
        # `squash_on_merge` accounts for the project's squash setting ("always").
        # https://docs.gitlab.com/api/merge_requests/#get-single-mr
        squash=bool(details.get("squash_on_merge", details.get("squash", False))),
        target_branch=event.target_branch,
        changes_truncated=read_.changes.truncated,
        file_texts=read_.file_texts,
        facts=read_.facts,
    )
    return MergeRequestCheck(_judge(checks, inputs, event), inputs, Reuse.NONE)


def _merge_request_where(event: MergeRequestEvent, base: str, tree_at: str) -> Where:
    """The MR's head from `base`, with the tree at `tree_at`, and its branches."""
    return Where(
        base, event.head_sha, tree_at, branch=event.source_branch, target_branch=event.target_branch
    )


def _judge(checks: Plan, stored: MergeRequestInputs, event: MergeRequestEvent) -> Report:
    """Run the rules on the inputs read from GitLab and the MR facts from the payload."""
    inputs = Inputs(
        commits=stored.commits,
        changes=Changes(stored.changes, stored.changes_truncated),
        paths=stored.target_paths,
        project=stored.project,
        codeowners=stored.codeowners,
        file_sizes=stored.file_sizes,
        signatures=Signatures(stored.signatures),
        file_texts=stored.file_texts,
        facts=stored.facts,
    )
    return judge_inputs(
        checks,
        Scope.MERGE_REQUEST,
        inputs,
        _merge_request_where(event, stored.target_sha, stored.target_sha),
        merge_request=event.facts(squash=stored.squash),
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
    source = GitLabSource(gitlab, event.project_id)
    default_branch = event.default_branch or await source.default_branch()
    # A push is judged by the default branch's rules; a push to the default branch reads
    # them from the pushed tree, which is that branch now.
    rules_at = event.after if event.branch == default_branch else default_branch
    config = (
        await policy.resolve_for_project(
            gitlab, event.project_id, rules_at, await source.config_file(rules_at), base_config
        )
    ).config
    checks = plan(config, Scope.PUSH, event.branch)
    reads = reads_for(checks.needs, Scope.PUSH)
    base = default_branch if event.new_branch else event.before
    where = Where(base, event.after, event.after, branch=event.branch, target_branch=event.branch)
    return judge_inputs(checks, Scope.PUSH, await read(source, reads, where), where)
