from __future__ import annotations

from bot.model import Commit, Severity
from bot.rules import commits


def _commit(message: str, sha: str = "a" * 40) -> Commit:
    return Commit(sha=sha, message=message)


def test_conventional_commits_pass() -> None:
    form, length = commits.conventional_commits(
        [_commit("feat(api): add pagination"), _commit("fix: handle 429\n\nRetry later.")]
    )
    assert form.passed and length.passed


def test_each_bad_commit_is_named() -> None:
    form, length = commits.conventional_commits(
        [_commit("Added stuff", sha="1" * 40), _commit("feat: " + "x" * 67, sha="2" * 40)]
    )
    assert next(f.location for f in form.findings if f.severity is Severity.ERROR) == (
        "commit 11111111: Added stuff"
    )
    assert [f.location for f in length.findings] == ["commit 22222222: feat: " + "x" * 67]
    assert all(f.rule == "commit.subject_length" for f in length.findings)


def test_subject_of_exactly_72_characters_passes() -> None:
    _, length = commits.conventional_commits([_commit("feat: " + "x" * 66)])
    assert length.passed


def test_merge_and_revert_commits_are_exempt() -> None:
    form, length = commits.conventional_commits(
        [
            _commit("Merge branch 'feature' into 'main'"),
            _commit('Revert "feat: add x"\n\nThis reverts commit abc.'),
        ]
    )
    assert form.passed and length.passed
