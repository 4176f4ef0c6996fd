"""The git Source: what `check` reads from a real git repository, and how it judges it."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path

import pytest

from bot.config import ConfigError, default_config, load
from bot.engine import plan
from bot.local import (
    MAX_FILE_DIFF_BYTES,
    GitError,
    Revisions,
    carries_signature,
    changes,
    codeowners,
    commits,
    default_branch,
    judge,
    object_sizes,
    open_repository,
    read_config,
    read_inputs,
    tree_paths,
)
from bot.model import Severity
from bot.rules.base import MergeRequestFacts, Need, ProjectFacts, Scope
from bot.source import Signatures
from tests.git_repos import AUTHOR, HYGIENE_FILES, Repo, make_repo


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # bot.local runs git in this process's environment: keep the developer's config out.
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("HOME", str(tmp_path))


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    repo = make_repo(tmp_path)
    repo.commit("chore: initial commit", HYGIENE_FILES)
    repo.checkout("feature", new=True)
    return repo


def _revisions(repo: Repo, scope: Scope = Scope.MERGE_REQUEST) -> Revisions:
    base = repo.git("merge-base", "main", "HEAD")
    return Revisions(
        scope=scope,
        base=base,
        head=repo.head(),
        config_rev=base,
        branch="feature",
        target_branch="main",
    )


def test_commits_are_read_oldest_first_with_parents_people_and_whole_messages(
    repo: Repo,
) -> None:
    base = repo.head()
    first = repo.commit("feat: one\n\nThe body,\nover two lines.\n\nSigned-off-by: Ada <a@x>")
    second = repo.commit("fix: two", author=("Grace Hopper", "grace@example.com"))
    git = open_repository(repo.path)

    found = commits(git, base, second)

    assert [c.sha for c in found] == [first, second]
    assert found[0].message.startswith("feat: one\n\nThe body,\nover two lines.\n\n")
    assert "Signed-off-by: Ada <a@x>" in found[0].message
    assert found[0].parent_ids == (base,)
    assert (found[1].author_name, found[1].author_email) == ("Grace Hopper", "grace@example.com")
    assert (found[1].committer_name, found[1].committer_email) == AUTHOR


def test_a_merge_commit_keeps_both_parents(repo: Repo) -> None:
    base = repo.head()
    repo.commit("feat: on the branch", {"a.txt": "a\n"})
    repo.checkout("main")
    repo.commit("chore: on main", {"b.txt": "b\n"})
    repo.checkout("feature")
    repo.git("merge", "-q", "--no-ff", "--no-edit", "main")
    merge = open_repository(repo.path).rev("HEAD")
    assert merge is not None

    found = commits(open_repository(repo.path), base, merge)

    assert len(found[-1].parent_ids) == 2


def test_changes_carry_gitlab_shaped_hunks_and_flags(repo: Repo) -> None:
    base = repo.head()
    repo.commit(
        "feat: change files",
        {
            "src/new.py": "token = 'x'\nprint(token)\n",
            "README.md": "# Widget\n\nNow with more.\n",
            "CHANGELOG.md": None,
            "logo.png": b"\x89PNG\r\n\x1a\n\x00\x00binary",
        },
    )
    repo.git("mv", "src/widget.py", "src/gadget.py")
    repo.commit("refactor: rename")
    git = open_repository(repo.path)

    by_path = {c.new_path: c for c in changes(git, base, repo.head())}

    assert set(by_path) == {"src/new.py", "README.md", "CHANGELOG.md", "logo.png", "src/gadget.py"}
    new = by_path["src/new.py"]
    assert new.new_file and not new.deleted_file
    assert new.diff.startswith("@@ -0,0 +1,2 @@")  # hunks only, as GitLab's `diff` field
    assert new.added_lines() == [(1, "token = 'x'"), (2, "print(token)")]
    assert by_path["README.md"].added_lines() == [(2, ""), (3, "Now with more.")]
    assert by_path["CHANGELOG.md"].deleted_file
    renamed = by_path["src/gadget.py"]
    assert renamed.renamed_file and renamed.old_path == "src/widget.py" and renamed.diff == ""
    assert by_path["logo.png"].diff == "" and by_path["logo.png"].diff_complete


def test_a_diff_past_gitlabs_patch_limit_is_marked_incomplete_as_gitlab_marks_it(
    repo: Repo,
) -> None:
    base = repo.head()
    big = "".join(f"line {i} {'x' * 60}\n" for i in range(MAX_FILE_DIFF_BYTES // 60 + 10))
    repo.commit("feat: big file", {"big.txt": big, "small.txt": "small\n"})

    by_path = {c.new_path: c for c in changes(open_repository(repo.path), base, repo.head())}

    assert not by_path["big.txt"].diff_complete and by_path["big.txt"].diff == ""
    assert by_path["small.txt"].diff_complete and by_path["small.txt"].added_lines()


def test_a_file_whose_diff_was_left_out_is_read_whole_as_the_server_reads_it(
    repo: Repo,
) -> None:
    base = repo.head()
    big = "".join(f"line {i} {'x' * 60}\n" for i in range(MAX_FILE_DIFF_BYTES // 60 + 10))
    repo.commit("feat: big file", {"big.txt": big, "small.txt": "small\n"})
    git = open_repository(repo.path)

    revisions = replace(_revisions(repo), base=base)

    texts = asyncio.run(read_inputs(git, revisions, {Need.CHANGES, Need.FILE_TEXTS})).file_texts

    assert texts == {"big.txt": big}


def test_tree_paths_list_the_root_and_gitlab_dir_as_the_tree_api_does(repo: Repo) -> None:
    repo.commit("chore: more", {".gitlab/CODEOWNERS": "* @ada\n", "docs/guide.md": "x\n"})

    paths = tree_paths(open_repository(repo.path), repo.head())

    assert "README.md" in paths and ".gitlab/CODEOWNERS" in paths
    assert ".gitlab/issue_templates/Bug.md" in paths
    assert "src/widget.py" not in paths and "docs/guide.md" not in paths
    assert "src" not in paths  # directories are not files


def test_sizes_and_codeowners_come_from_the_head_tree(repo: Repo) -> None:
    repo.commit("chore: owners", {"docs/CODEOWNERS": "* @docs\n", "CODEOWNERS": "* @root\n"})
    git = open_repository(repo.path)

    assert object_sizes(git, repo.head(), ["README.md", "missing.txt", "src"]) == {
        "README.md": len("# Widget\n")
    }
    found = codeowners(git, repo.head())
    assert found is not None and (found.path, found.text) == ("CODEOWNERS", "* @root\n")


def test_a_signature_is_seen_without_being_verified(repo: Repo) -> None:
    unsigned = repo.commit("feat: unsigned")
    tree = repo.git("rev-parse", "HEAD^{tree}")
    # A commit object with a (fake) signature header, as `git commit -S` writes it: whether
    # it verifies is GitLab's business; that it is there is git's.
    signed_object = (
        f"tree {tree}\nparent {unsigned}\n"
        f"author Ada Lovelace <ada@example.com> {1_700_000_999} +0000\n"
        f"committer Ada Lovelace <ada@example.com> {1_700_000_999} +0000\n"
        "gpgsig -----BEGIN SSH SIGNATURE-----\n U1NIU0lH\n -----END SSH SIGNATURE-----\n"
        "\nfeat: signed\n"
    )
    signed = repo.git("hash-object", "-t", "commit", "-w", "--stdin", input=signed_object)

    found = carries_signature(open_repository(repo.path), [unsigned, signed])

    assert found == {unsigned: False, signed: True}


def test_the_config_comes_from_the_base_revision_not_the_code_under_review(repo: Repo) -> None:
    repo.checkout("main")
    repo.commit(
        "chore: rules", {".gitlab/compliance.yml": "rules:\n  commit.dco: {severity: error}\n"}
    )
    repo.checkout("feature")
    repo.git("reset", "-q", "--hard", "main")
    repo.commit(
        "chore: turn dco off", {".gitlab/compliance.yml": "rules:\n  commit.dco: {severity: off}\n"}
    )
    git = open_repository(repo.path)
    revisions = _revisions(repo)

    config = read_config(git, revisions.config_rev)

    assert config.source == ".gitlab/compliance.yml"
    assert config.rule("commit.dco").severity == "error"
    with pytest.raises(GitError, match="not in the tree"):
        read_config(git, revisions.config_rev, "custom/rules.yml")


def test_an_invalid_config_raises_with_lines(repo: Repo) -> None:
    repo.commit("chore: bad rules", {".compliance.yml": "rules:\n  commit.nope: {}\n"})

    with pytest.raises(ConfigError) as raised:
        read_config(open_repository(repo.path), repo.head())

    assert raised.value.source == ".compliance.yml"
    assert raised.value.problems[0].line == 2


def test_the_default_branch_prefers_what_the_remote_says(repo: Repo, tmp_path: Path) -> None:
    git = open_repository(repo.path)
    assert default_branch(git) == ("refs/heads/main", "main")
    assert default_branch(git, "feature") == ("refs/heads/feature", "feature")
    clone = tmp_path / "clone"
    repo.checkout("main")  # the remote's HEAD: what `git clone` records as origin/HEAD
    repo.git("clone", "-q", "--branch", "feature", str(repo.path), str(clone))
    assert default_branch(open_repository(clone)) == ("refs/remotes/origin/main", "main")
    with pytest.raises(GitError, match="not a git repository"):
        open_repository(tmp_path / "home")


def test_judging_offline_lists_what_only_gitlab_knows_as_not_judged(repo: Repo) -> None:
    repo.commit("Added stuff", {"src/feature.py": "x = 1\n"})
    git = open_repository(repo.path)
    config = load(
        "rules:\n  merge_request.size: {severity: error, max_files: 10}\n"
        "  commit.signed: {severity: warning}\n",
        ".gitlab/compliance.yml",
    )
    checks = plan(config, Scope.MERGE_REQUEST, "main")
    revisions = _revisions(repo)

    result = judge(checks, revisions, asyncio.run(read_inputs(git, revisions, checks.needs)))

    by_rule = {item.rule: item for item in result.not_judged}
    assert set(by_rule) == {
        "repository.description",
        "repository.topics",
        "merge_request.draft",
        "merge_request.description",
    }
    assert "COMPLIANCE_TOKEN" in by_rule["repository.topics"].reason
    judged = {o.rule for o in result.report.outcomes}
    assert not judged & set(by_rule)
    assert "merge_request.size" in judged  # git knows the changes
    # Unsigned is unsigned, wherever it is checked.
    signed = [f for f in result.report.findings if f.rule == "commit.signed"]
    assert [f.severity for f in signed] == [Severity.WARNING]
    conventional = [f for f in result.report.findings if f.rule == "commit.conventional"]
    assert conventional and all("Added stuff" in f.location for f in conventional)
    assert result.report.facts == {"commits": 1, "files": 1}


def test_what_gitlab_says_is_judged_like_the_server_judges_it(repo: Repo) -> None:
    repo.commit("feat: add the feature", {"src/feature.py": "x = 1\n"})
    git = open_repository(repo.path)
    checks = plan(default_config(), Scope.MERGE_REQUEST, "main")
    revisions = _revisions(repo)

    result = judge(
        checks,
        revisions,
        asyncio.run(read_inputs(git, revisions, checks.needs)),
        merge_request=MergeRequestFacts(title="Draft: add it", description=""),
        project=ProjectFacts(description="A widget", topics=()),
    )

    assert result.not_judged == ()
    assert {(f.rule, f.severity) for f in result.report.findings} == {
        ("merge_request.draft", Severity.WARNING),
        ("merge_request.description", Severity.ERROR),
        ("repository.topics", Severity.WARNING),
    }


def test_signed_commits_are_left_to_gitlab_and_said_so(repo: Repo) -> None:
    repo.commit("feat: unsigned one")
    git = open_repository(repo.path)
    config = load("rules:\n  commit.signed: {severity: error}\n", "x.yml")
    checks = plan(config, Scope.PUSH, "feature")
    revisions = _revisions(repo, Scope.PUSH)
    inputs = asyncio.run(read_inputs(git, revisions, checks.needs))
    [only] = inputs.commits

    all_signed = judge(
        checks, revisions, replace(inputs, signatures=Signatures({only.sha: True}, verified=False))
    )
    with_gitlab = judge(checks, revisions, inputs, signatures={only.sha: True})

    [item] = [i for i in all_signed.not_judged if i.rule == "commit.signed"]
    assert not item.partial and "only GitLab" in item.reason
    assert "commit.signed" not in {o.rule for o in all_signed.report.outcomes}
    assert with_gitlab.report.passed
    assert "commit.signed" not in {i.rule for i in with_gitlab.not_judged}
    assert "commit.signed" in {o.rule for o in with_gitlab.report.outcomes}


def test_a_fact_only_gitlab_knows_leaves_its_rule_not_judged_offline(repo: Repo) -> None:
    repo.commit("feat: add the feature", {"src/feature.py": "x = 1\n"})
    git = open_repository(repo.path)
    config = load(
        "rules:\n  merge_request.target_branch_protected: {severity: error}\n",
        ".gitlab/compliance.yml",
    )
    checks = plan(config, Scope.MERGE_REQUEST, "main")
    revisions = _revisions(repo)

    result = judge(checks, revisions, asyncio.run(read_inputs(git, revisions, checks.needs)))

    [item] = [i for i in result.not_judged if i.rule == "merge_request.target_branch_protected"]
    assert "protected branches" in item.reason
    assert "merge_request.target_branch_protected" not in {o.rule for o in result.report.outcomes}
