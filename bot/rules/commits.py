"""Commit messages: Conventional Commits and subject length, judged as commitlint does."""

from __future__ import annotations

from collections.abc import Sequence

from bot.model import Commit, Finding, RuleOutcome, Severity
from bot.rules import conventional

_SEVERITY = {"error": Severity.ERROR, "warning": Severity.WARNING}
SUBJECT_LENGTH_PROBLEM = "header-max-length"
CONVENTIONAL_FIX = (
    "Reword the commit as `type(scope): subject`, e.g. `fix(api): handle empty pages`; "
    "types: " + ", ".join(conventional.DEFAULT_TYPES) + "."
)


def conventional_commits(
    commits: Sequence[Commit], *, max_subject_length: int = conventional.DEFAULT_HEADER_MAX_LENGTH
) -> tuple[RuleOutcome, RuleOutcome]:
    """Two outcomes: the Conventional Commits form, and the subject (first line) length."""
    form: list[Finding] = []
    length: list[Finding] = []
    for commit in commits:
        where = f"commit {commit.short_sha}: {_one_line(commit.title)}"
        for problem in conventional.lint(commit.message, header_max_length=max_subject_length):
            if problem.rule == SUBJECT_LENGTH_PROBLEM:
                length.append(
                    Finding(
                        rule="commit.subject_length",
                        severity=_SEVERITY[problem.level],
                        message=problem.message,
                        fix=f"Shorten the first line to {max_subject_length} characters or "
                        "fewer; put details in the body.",
                        location=where,
                    )
                )
            else:
                form.append(
                    Finding(
                        rule="commit.conventional",
                        severity=_SEVERITY[problem.level],
                        message=f"{problem.message} ({problem.rule})",
                        fix=CONVENTIONAL_FIX,
                        location=where,
                    )
                )
    return (
        RuleOutcome("commit.conventional", "Conventional Commits", tuple(form)),
        RuleOutcome(
            "commit.subject_length",
            f"Commit subject at most {max_subject_length} characters",
            tuple(length),
        ),
    )


def _one_line(text: str) -> str:
    """A commit title bounded to one short line, for naming the commit in a finding."""
    text = text.replace("\r", " ").replace("\n", " ")
    return text if len(text) <= 80 else text[:79] + "…"
