"""Merge request metadata: title, draft state, description, checklist, linked issue, labels,
people, branches and size.

Every rule here but `merge_request.size` reads only what a Merge Request Hook payload carries
(`context.merge_request`), so an edit that touches only the title, description or labels is
judged from the payload alone. Outside a merge request (`merge_request` is None) they find
nothing.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from typing import Any, Literal, Self

import re2
from pydantic import Field, model_validator

from bot.patterns import MAX_TEXT_LENGTH, Regex, compile_regex
from bot.rules import conventional, markdown
from bot.rules.base import (
    MR_ONLY,
    C,
    Context,
    DocumentedSeverity,
    Fact,
    MergeRequestFacts,
    Need,
    Problem,
    Rule,
    RuleConfig,
)
from bot.rules.base import code as _code

_DRAFTS_DOC = "https://docs.gitlab.com/user/project/merge_requests/drafts/"
_TASK_LISTS_DOC = "https://docs.gitlab.com/user/markdown/#task-lists"
_CLOSING_DOC = (
    "https://docs.gitlab.com/user/project/issues/managing_issues/#default-closing-pattern"
)
_PUSH_RULES_DOC = "https://docs.gitlab.com/user/project/repository/push_rules/"
# A finding quotes user text (a task, a label); it is cut to this many characters.
_EXCERPT = 80
# At most this many findings per rule and MR; the rest are summed up in one more finding.
_MAX_PROBLEMS = 20


@lru_cache(maxsize=256)
def _user_regex(pattern: str) -> Any:
    """A config's pattern, compiled once with RE2 (already validated when the config loaded)."""
    return compile_regex(pattern)


def _search(pattern: str, text: str) -> bool:
    return _user_regex(pattern).search(text[:MAX_TEXT_LENGTH]) is not None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _excerpt(text: str, limit: int = _EXCERPT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _enabled_without(config: RuleConfig, missing: bool, what: str) -> None:
    """An enabled rule with nothing to check would pass everything: refuse that config."""
    if config.severity != "off" and missing:
        raise ValueError(f"the rule is enabled but {what}")


def _mr_rule(
    rule_id: str,
    title: str,
    config: type[C],
    check: Callable[[Context, MergeRequestFacts, C], Iterable[Problem]],
    needs: frozenset[Need | Fact] = frozenset(),
) -> Rule[C]:
    """A rule judged on merge requests only. Outside one (`context.merge_request` is None)
    it finds nothing, so `check` is handed the MR's facts."""

    def judge_merge_request(context: Context, config: C) -> Iterable[Problem]:
        mr = context.merge_request
        return () if mr is None else check(context, mr, config)

    return Rule(rule_id, title, config, judge_merge_request, needs=needs, scopes=MR_ONLY)


# --------------------------------------------------------------------------------------------
# merge_request.title
# --------------------------------------------------------------------------------------------


class TitleConfig(RuleConfig):
    severity: DocumentedSeverity = "off"
    pattern: Regex | None = Field(
        None,
        description="A regular expression (RE2 syntax, as GitLab push rules) the title must "
        "contain, e.g. `^[A-Z]+-\\d+` for a leading Jira key. It is searched anywhere in the "
        "title: anchor it with `^` and `$` to match the whole title.",
    )
    conventional: bool = Field(
        False,
        description="The title must be a Conventional Commits header that commitlint's "
        "config-conventional accepts (errors only; header at most "
        f"{conventional.DEFAULT_HEADER_MAX_LENGTH} characters), since GitLab's default squash "
        "commit message is the MR title.",
    )

    @model_validator(mode="after")
    def _something_to_check(self) -> Self:
        _enabled_without(
            self,
            self.pattern is None and not self.conventional,
            "sets neither `pattern` nor `conventional: true`",
        )
        return self


def _check_title(context: Context, mr: MergeRequestFacts, config: TitleConfig) -> Iterator[Problem]:
    if config.pattern is not None and not _search(config.pattern, mr.title):
        yield Problem(
            message=f"the title does not match the required pattern {_code(config.pattern)}",
            location="title",
            fix=f"Edit the title so that it matches {_code(config.pattern)}.",
        )
    if config.conventional:
        for problem in conventional.lint(mr.title):
            if problem.level == "error":
                yield Problem(
                    message=f"the title is not a Conventional Commits header: "
                    f"{problem.message} ({problem.rule})",
                    location="title",
                    fix="Write the title as `type(scope): subject`, e.g. "
                    "`fix(api): handle empty pages`; types: "
                    + ", ".join(conventional.DEFAULT_TYPES)
                    + ".",
                )


TITLE = _mr_rule("merge_request.title", "MR title format", TitleConfig, _check_title)


# --------------------------------------------------------------------------------------------
# merge_request.draft
# --------------------------------------------------------------------------------------------

# The title prefixes GitLab treats as Draft markers (https://docs.gitlab.com/user/project/
# merge_requests/drafts/): `[Draft]`, `Draft:`, `(Draft)`, any case. Current GitLab's
# Gitlab::Regex.merge_request_draft is `\A(?i)(\[draft\]|\(draft\)|draft:)`; the bot judges
# as current GitLab does, so the old `Draft - ` prefix is not a draft marker any more.
_DRAFT_TITLE = re.compile(r"^\s*(\[draft\]|\(draft\)|draft:)", re.IGNORECASE)


class DraftConfig(RuleConfig):
    severity: DocumentedSeverity = "warning"


def _check_draft(context: Context, mr: MergeRequestFacts, config: DraftConfig) -> Iterator[Problem]:
    prefix = _DRAFT_TITLE.match(mr.title)
    if prefix:
        yield Problem(
            message=f"the title starts with the draft marker {_code(prefix.group(1))}",
            location="title",
            fix=f"When the work is done, remove {_code(prefix.group(1))} from the title or "
            f"select **Mark as ready** ({_DRAFTS_DOC}).",
        )
    elif mr.draft:
        yield Problem(
            message="the merge request is marked as a draft",
            location="merge request",
            fix=f"When the work is done, select **Mark as ready** or comment `/ready` "
            f"({_DRAFTS_DOC}).",
        )


DRAFT = _mr_rule("merge_request.draft", "Not a draft", DraftConfig, _check_draft)


# --------------------------------------------------------------------------------------------
# merge_request.description
# --------------------------------------------------------------------------------------------


class DescriptionConfig(RuleConfig):
    severity: DocumentedSeverity = "error"
    min_length: int = Field(
        1,
        ge=1,
        description="Fewest characters of text the description must show once GitLab renders "
        "it, leading and trailing whitespace stripped: Markdown markup and HTML comments (an "
        "untouched template's instructions) do not count, code does. Only the length is "
        "judged: a template's headings left unedited count like text written by hand.",
    )


def _check_description(
    context: Context, mr: MergeRequestFacts, config: DescriptionConfig
) -> Iterator[Problem]:
    rendered = markdown.render(mr.description)
    length = len(rendered.text.strip())
    if length >= config.min_length:
        return
    if not mr.description.strip():
        message = "the merge request has no description"
    elif length == 0:
        message = "the description shows no text: it holds only HTML comments or markup"
    else:
        message = (
            f"the description is {_count(length, 'character')} long; "
            f"at least {config.min_length} expected"
        )
    if rendered.truncated:
        message += f"; {_unread(rendered)}"
    yield Problem(
        message=message,
        location="description",
        fix="Describe what the change does and why, and how a reviewer can check it.",
    )


def _unread(rendered: markdown.Rendered) -> str:
    return (
        f"only its first {rendered.judged:,} of {rendered.length:,} characters were read, "
        "the rest could not be judged"
    )


DESCRIPTION = _mr_rule(
    "merge_request.description", "Description present", DescriptionConfig, _check_description
)


# --------------------------------------------------------------------------------------------
# merge_request.checklist
# --------------------------------------------------------------------------------------------


class ChecklistConfig(RuleConfig):
    severity: DocumentedSeverity = "off"


def _check_checklist(
    context: Context, mr: MergeRequestFacts, config: ChecklistConfig
) -> Iterator[Problem]:
    # Task list items as GitLab renders checkboxes (https://docs.gitlab.com/user/markdown/
    # #task-lists): `[ ]` is open; `[x]`, `[X]` and `[~]` (inapplicable) are not.
    rendered = markdown.render(mr.description)
    open_tasks = [task for task in rendered.tasks if not task.done]
    fix = (
        "Check the item (`- [x]`) once it is done, or mark it not applicable with `- [~]` "
        f"({_TASK_LISTS_DOC})."
    )
    for task in open_tasks[:_MAX_PROBLEMS]:
        yield Problem(
            message=f"unchecked task: {_excerpt(task.text)}",
            location=f"description line {task.line}",
            fix=fix,
        )
    if len(open_tasks) > _MAX_PROBLEMS:
        more = len(open_tasks) - _MAX_PROBLEMS
        yield Problem(
            message=f"{_count(more, 'more unchecked task')}",
            location="description",
            fix=fix,
        )
    if rendered.truncated:
        yield Problem(
            message=f"the description could not be read for tasks whole: {_unread(rendered)}",
            location="description",
            fix="Shorten the description, or check its remaining tasks by hand.",
        )


CHECKLIST = _mr_rule(
    "merge_request.checklist", "Checklist complete", ChecklistConfig, _check_checklist
)


# --------------------------------------------------------------------------------------------
# merge_request.linked_issue
# --------------------------------------------------------------------------------------------

# GitLab's default issue closing pattern (config/initializers/1_settings.rb, quoted at
# https://docs.gitlab.com/user/project/issues/managing_issues/#default-closing-pattern):
#
#   \b((?:[Cc]los(?:e[sd]?|ing)|\b[Ff]ix(?:e[sd]|ing)?|\b[Rr]esolv(?:e[sd]?|ing)|
#   \b[Ii]mplement(?:s|ed|ing)?)(:?) +(?:(?:issues? +)?%{issue_ref}(?:(?: *,? +and +| *,? *)?)
#   |([A-Z][A-Z0-9_]+-\d+))+)
#
# Translated to RE2. Only whether one closing reference exists matters here, so the trailing
# `(...)+` list of further references is dropped: a text matches the original iff it matches
# this. `[A-Z][A-Z0-9_]+-\d+` is the external tracker (Jira) alternative GitLab keeps in it.
_KEYWORD = (
    r"\b(?:[Cc]los(?:e[sd]?|ing)|\b[Ff]ix(?:e[sd]|ing)?|\b[Rr]esolv(?:e[sd]?|ing)"
    r"|\b[Ii]mplement(?:s|ed|ing)?):? +(?:issues? +)?"
)
# %{issue_ref}: a local `#123`, a cross-project `group/project#123`, or an issue or work item
# URL. GitLab only takes URLs of its own host; the host is unknown here, so any host counts.
# GitLab's lookbehind/lookahead (`(?<!path char)`, `(?=\W|\z)`) become RE2's `\b`.
_ISSUE_REF = (
    r"(?:https?://[^\s<>()\[\]]+?/(?:-/)?(?:issues|work_items)/\d+\b"
    r"|(?:[A-Za-z0-9_.][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_.][A-Za-z0-9_.-]*)*)?#\d+\b)"
)
# RE2 (linear time) because these scan text the MR author wrote, up to MAX_TEXT_LENGTH.
_CLOSING_RE = re2.compile(_KEYWORD + r"(?:" + _ISSUE_REF + r"|[A-Z][A-Z0-9_]+-\d+\b)")
_KEYWORD_RE = re2.compile(_KEYWORD)
_ISSUE_REF_RE = re2.compile(_ISSUE_REF)
# GitLab's issue branch names start with the issue number and a dash (`123-fix-thing`): the
# "Create merge request" button names them so, and MergeRequests::BuildService#issue_iid reads
# the issue back with `\A(\d+)-`.
_ISSUE_BRANCH = re.compile(r"^\d+-")

SearchPlace = Literal["title", "description", "branch"]
_ALL_PLACES: tuple[SearchPlace, ...] = ("title", "description", "branch")
_PLACE_NAMES: dict[str, str] = {
    "title": "title",
    "description": "description",
    "branch": "source branch",
}


class LinkedIssueConfig(RuleConfig):
    severity: DocumentedSeverity = "off"
    require_closing: bool = Field(
        False,
        description="Require a closing reference in the description, as GitLab's default "
        "closing pattern reads it (`Closes #123`, `Fixes group/project#123`, "
        "`Resolves <issue URL>`; keywords close, fix, resolve, implement in their forms). "
        "GitLab closes issues from the MR description (and commit messages), never from the "
        "title or branch name, and only when merging into the default branch.",
    )
    pattern: Regex | None = Field(
        None,
        description="A regular expression (RE2) for an issue reference, e.g. "
        "`[A-Z][A-Z0-9]+-\\d+` for Jira keys. When set, it replaces GitLab's references "
        "(`#123`, `group/project#123`, issue URLs, `123-` branch names); with "
        "`require_closing`, a closing keyword must be followed directly by a match.",
    )
    search_in: list[SearchPlace] = Field(
        default_factory=lambda: list(_ALL_PLACES),
        min_length=1,
        description="Where to look for the reference: `title`, `description` and `branch` "
        "(the source branch name). The description is read as GitLab renders it: text in "
        "HTML comments, code blocks and code spans is ignored, since templates put example "
        "references there.",
    )

    @model_validator(mode="after")
    def _closing_needs_description(self) -> Self:
        if self.require_closing and "description" not in self.search_in:
            raise ValueError(
                "`require_closing` needs `description` in `search_in`: GitLab closes issues "
                "from the merge request description only"
            )
        return self


def _has_closing_reference(text: str, pattern: str | None) -> bool:
    if pattern is None:
        return _CLOSING_RE.search(text) is not None
    reference = _user_regex(pattern)
    return any(reference.match(text, keyword.end()) for keyword in _KEYWORD_RE.finditer(text))


def _has_reference(place: str, text: str, pattern: str | None) -> bool:
    if pattern is not None:
        return _user_regex(pattern).search(text) is not None
    if place == "branch":
        return _ISSUE_BRANCH.match(text) is not None
    return _ISSUE_REF_RE.search(text) is not None


def _check_linked_issue(
    context: Context, mr: MergeRequestFacts, config: LinkedIssueConfig
) -> Iterator[Problem]:
    texts = _searched_texts(mr, config.search_in)
    description = texts.get("description", "")
    closing = "description" in texts and _has_closing_reference(description, config.pattern)
    where = ", ".join(_PLACE_NAMES[p] for p in dict.fromkeys(config.search_in))
    what = (
        f"issue reference matching {_code(config.pattern)}"
        if config.pattern is not None
        else "issue reference (`#123`, `group/project#123`, an issue URL"
        + (", or a branch name starting with `123-`" if "branch" in texts else "")
        + ")"
    )
    example = "Closes #123" if config.pattern is None else "Closes <reference>"
    rendered = markdown.render(mr.description)
    unread = f" ({_unread(rendered)})" if "description" in texts and rendered.truncated else ""
    if config.require_closing:
        if closing:
            return
        mentioned = any(_has_reference(p, t, config.pattern) for p, t in texts.items())
        yield Problem(
            message="the merge request mentions an issue but does not close it"
            if mentioned
            else "the description has no closing issue reference" + unread,
            location="description",
            fix=f"Write `{example}` (or Fixes, Resolves, Implements) in the description, so "
            f"that the issue is closed when the merge request is merged ({_CLOSING_DOC}).",
        )
        return
    if closing or any(_has_reference(p, t, config.pattern) for p, t in texts.items()):
        return
    yield Problem(
        message=f"no {what} in the {where}{unread}",
        location=where,
        fix=f"Link the issue this merge request works on, e.g. `{example}` in the "
        f"description ({_CLOSING_DOC}).",
    )


def _searched_texts(mr: MergeRequestFacts, places: Iterable[str]) -> dict[str, str]:
    texts: dict[str, str] = {}
    for place in places:
        if place == "title":
            texts[place] = mr.title[:MAX_TEXT_LENGTH]
        elif place == "description":
            texts[place] = markdown.render(mr.description).prose
        else:
            texts[place] = mr.source_branch
    return texts


LINKED_ISSUE = _mr_rule(
    "merge_request.linked_issue", "Linked issue", LinkedIssueConfig, _check_linked_issue
)


# --------------------------------------------------------------------------------------------
# merge_request.labels
# --------------------------------------------------------------------------------------------

_LABELS_HELP = (
    " Label names are compared exactly, case included, as GitLab does: its labels are unique "
    "by exact title, so `Bug` and `bug` are two labels. Scoped labels are written whole "
    "(`priority::high`)."
)


class LabelsConfig(RuleConfig):
    severity: DocumentedSeverity = "off"
    all_of: list[str] = Field(
        default_factory=list, description="Labels the MR must all have." + _LABELS_HELP
    )
    any_of: list[str] = Field(
        default_factory=list,
        description="Labels of which the MR must have at least one." + _LABELS_HELP,
    )
    none_of: list[str] = Field(
        default_factory=list, description="Labels the MR must not have." + _LABELS_HELP
    )

    @model_validator(mode="after")
    def _something_to_check(self) -> Self:
        _enabled_without(
            self,
            not (self.all_of or self.any_of or self.none_of),
            "`all_of`, `any_of` and `none_of` are all empty",
        )
        return self


def _case_hint(wanted: str, labels: tuple[str, ...]) -> str:
    near = [label for label in labels if label.lower() == wanted.lower() and label != wanted]
    if not near:
        return ""
    return f" ({_code(near[0])} is set; label names are case-sensitive)"


def _check_labels(
    context: Context, mr: MergeRequestFacts, config: LabelsConfig
) -> Iterator[Problem]:
    have = set(mr.labels)
    for label in config.all_of:
        if label not in have:
            yield Problem(
                message=f"the required label {_code(label)} is missing"
                + _case_hint(label, mr.labels),
                location="labels",
                fix=f"Add the label {_code(label)}, e.g. with the quick action "
                f'`/label ~"{label}"`.',
            )
    if config.any_of and not have.intersection(config.any_of):
        names = ", ".join(_code(label) for label in config.any_of)
        hints = "".join(_case_hint(label, mr.labels) for label in config.any_of)
        yield Problem(
            message=f"none of the labels {names} is set{hints}",
            location="labels",
            fix=f"Add one of the labels {names}.",
        )
    for label in config.none_of:
        if label in have:
            yield Problem(
                message=f"the label {_code(label)} must not be set",
                location="labels",
                fix=f'Remove the label {_code(label)}, e.g. with `/unlabel ~"{label}"`.',
            )


LABELS = _mr_rule("merge_request.labels", "Labels", LabelsConfig, _check_labels)


# --------------------------------------------------------------------------------------------
# merge_request.assignee and merge_request.reviewer
# --------------------------------------------------------------------------------------------


class AssigneeConfig(RuleConfig):
    severity: DocumentedSeverity = "off"
    min_count: int = Field(1, ge=1, description="Fewest assignees the merge request must have.")


class ReviewerConfig(RuleConfig):
    severity: DocumentedSeverity = "off"
    min_count: int = Field(1, ge=1, description="Fewest reviewers the merge request must have.")


def _people_check(
    role: Literal["assignee", "reviewer"], fix: str
) -> Callable[[Context, MergeRequestFacts, AssigneeConfig | ReviewerConfig], Iterator[Problem]]:
    """The check that the MR has at least `min_count` people in `role`."""

    def check(
        context: Context, mr: MergeRequestFacts, config: AssigneeConfig | ReviewerConfig
    ) -> Iterator[Problem]:
        count = len(mr.assignees if role == "assignee" else mr.reviewers)
        if count >= config.min_count:
            return
        if count == 0:
            message = f"the merge request has no {role}"
        else:
            message = (
                f"the merge request has {_count(count, role)}; at least {config.min_count} expected"
            )
        yield Problem(message=message, location=f"{role}s", fix=fix)

    return check


_check_assignee = _people_check(
    "assignee",
    "Assign the merge request to who carries it to the merge (sidebar **Assignee**, or "
    "`/assign @user`).",
)
_check_reviewer = _people_check(
    "reviewer", "Request a review (sidebar **Reviewers**, or `/assign_reviewer @user`)."
)


ASSIGNEE = _mr_rule("merge_request.assignee", "Assignee", AssigneeConfig, _check_assignee)
REVIEWER = _mr_rule("merge_request.reviewer", "Reviewer", ReviewerConfig, _check_reviewer)


# --------------------------------------------------------------------------------------------
# merge_request.target_branch and merge_request.source_branch
# --------------------------------------------------------------------------------------------


class TargetBranchConfig(RuleConfig):
    severity: DocumentedSeverity = "off"
    allowed: list[str] = Field(
        default_factory=list,
        description="Branches a merge request may target: shell-style glob patterns as in "
        "`branches` (`main`, `release/*`; `*` also matches `/`), compared case-sensitively.",
    )

    @model_validator(mode="after")
    def _something_to_check(self) -> Self:
        _enabled_without(self, not self.allowed, "`allowed` is empty")
        return self


def _check_target_branch(
    context: Context, mr: MergeRequestFacts, config: TargetBranchConfig
) -> Iterator[Problem]:
    target = mr.target_branch or context.target_branch
    if any(fnmatch.fnmatchcase(target, pattern) for pattern in config.allowed):
        return
    allowed = ", ".join(_code(p) for p in config.allowed)
    yield Problem(
        message=f"the merge request targets {_code(target)}, which is not one of {allowed}",
        location="target branch",
        fix=f"Edit the merge request and choose a target branch matching {allowed}.",
    )


class SourceBranchConfig(RuleConfig):
    severity: DocumentedSeverity = "off"
    pattern: Regex | None = Field(
        None,
        description="A regular expression (RE2) the source branch name must contain, like "
        "GitLab's `Branch name` push rule, e.g. `^(feature|fix)/[a-z0-9-]+$`. It is searched "
        "anywhere in the name: anchor it with `^` and `$`. (The push rule always allows the "
        "default branch; an MR's source branch is judged whatever it is called.)",
    )

    @model_validator(mode="after")
    def _something_to_check(self) -> Self:
        _enabled_without(self, self.pattern is None, "`pattern` is not set")
        return self


def _check_source_branch(
    context: Context, mr: MergeRequestFacts, config: SourceBranchConfig
) -> Iterator[Problem]:
    if config.pattern is None:
        return
    source = mr.source_branch or context.branch
    if _search(config.pattern, source):
        return
    yield Problem(
        message=f"the source branch {_code(source)} does not match {_code(config.pattern)}",
        location="source branch",
        fix=f"Push the work to a branch whose name matches {_code(config.pattern)} and open "
        f"the merge request from it (a branch cannot be renamed in GitLab; see "
        f"{_PUSH_RULES_DOC}).",
    )


TARGET_BRANCH = _mr_rule(
    "merge_request.target_branch", "Target branch", TargetBranchConfig, _check_target_branch
)
SOURCE_BRANCH = _mr_rule(
    "merge_request.source_branch", "Source branch name", SourceBranchConfig, _check_source_branch
)


# --------------------------------------------------------------------------------------------
# merge_request.size
# --------------------------------------------------------------------------------------------


class SizeConfig(RuleConfig):
    severity: DocumentedSeverity = "off"
    max_files: int | None = Field(
        None, ge=1, description="Most changed files (added, modified, renamed, deleted)."
    )
    max_lines: int | None = Field(
        None,
        ge=1,
        description="Most changed lines: added plus removed, over all diffs. When GitLab "
        "leaves a file's diff out (too large, collapsed), its lines cannot be counted: the "
        "count is then a lower bound, and if it is within the limit the rule still reports "
        "that it could not count them instead of passing.",
    )

    @model_validator(mode="after")
    def _something_to_check(self) -> Self:
        _enabled_without(
            self,
            self.max_files is None and self.max_lines is None,
            "sets neither `max_files` nor `max_lines`",
        )
        return self


_SPLIT_FIX = "Split the merge request into smaller ones that can be reviewed on their own."


def _check_size(context: Context, mr: MergeRequestFacts, config: SizeConfig) -> Iterator[Problem]:
    files = len(context.changes)
    if config.max_files is not None and files > config.max_files:
        yield Problem(
            message=f"{files} files changed; at most {config.max_files} expected",
            location="changes",
            fix=_SPLIT_FIX,
        )
    if config.max_lines is None:
        return
    unknown = [c.new_path or c.old_path for c in context.changes if not c.diff_complete]
    lines = sum(sum(c.line_counts()) for c in context.changes if c.diff_complete)
    named = ", ".join(_excerpt(path, 60) for path in unknown[:3]) + (
        ", …" if len(unknown) > 3 else ""
    )
    uncounted = f"GitLab did not return the diff of {_count(len(unknown), 'file')} ({named})"
    if lines > config.max_lines:
        yield Problem(
            message=(f"at least {lines}" if unknown else f"{lines}")
            + f" lines changed (added + removed); at most {config.max_lines} expected"
            + (f"; {uncounted}, so the real count is higher" if unknown else ""),
            location="changes",
            fix=_SPLIT_FIX,
        )
    elif unknown:
        # Within the limit as far as is known, but the uncounted diffs may hold any number of
        # lines: saying "passed" would be a guess, so say what could not be checked.
        yield Problem(
            message=f"could not count the changed lines of {_count(len(unknown), 'file')}: "
            f"{uncounted}; the other diffs have {lines} changed lines of at most "
            f"{config.max_lines}",
            location="changes",
            fix="Check the size of those files' changes by hand, or split the merge request "
            "so that GitLab can show every diff.",
        )


SIZE = _mr_rule(
    "merge_request.size", "Merge request size", SizeConfig, _check_size, frozenset({Need.CHANGES})
)


# --------------------------------------------------------------------------------------------
# merge_request.target_branch_protected
# --------------------------------------------------------------------------------------------

# Whether GitLab protects the MR's target branch (a name or a wildcard rule matching it).
# Only GitLab knows: each Source answers it with a method of this name (bot/source.py).
TARGET_BRANCH_PROTECTED_FACT = Fact(
    "target_branch_protected",
    cannot_tell="needs the project's protected branches, which only GitLab's API gives: let "
    "the server judge it",
)
_PROTECTED_DOC = "https://docs.gitlab.com/user/project/repository/branches/protected/"


class TargetBranchProtectedConfig(RuleConfig):
    severity: DocumentedSeverity = "off"


def _check_target_branch_protected(
    context: Context, config: TargetBranchProtectedConfig
) -> Iterator[Problem]:
    if TARGET_BRANCH_PROTECTED_FACT.of(context) is False:
        yield Problem(
            message=f"the target branch {_code(context.target_branch)} is not protected",
            location="target branch",
            fix="Protect the branch (Settings > Repository > Protected branches, "
            f"{_PROTECTED_DOC}), or target a protected branch.",
        )


TARGET_BRANCH_PROTECTED = Rule[TargetBranchProtectedConfig](
    id="merge_request.target_branch_protected",
    title="Target branch protected",
    config=TargetBranchProtectedConfig,
    check=_check_target_branch_protected,
    needs=frozenset({TARGET_BRANCH_PROTECTED_FACT}),
    scopes=MR_ONLY,
)


RULES: tuple[Rule[Any], ...] = (
    TITLE,
    DRAFT,
    DESCRIPTION,
    CHECKLIST,
    LINKED_ISSUE,
    LABELS,
    ASSIGNEE,
    REVIEWER,
    TARGET_BRANCH,
    SOURCE_BRANCH,
    SIZE,
    TARGET_BRANCH_PROTECTED,
)
