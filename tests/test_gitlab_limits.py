"""GitLab as unkind as it is: MR commits without parents, diffs cut at GitLab's limits, the
entity shapes of older versions. What the bot cannot see is never passed as clean
(DESIGN.md, invariant 14). Driven over real HTTP against the fake GitLab."""

from __future__ import annotations

import pytest

from bot.gitlab import changed_file_from_api
from bot.report import NOTE_MARKER
from tests.conftest import Bot
from tests.fake_gitlab import FakeGitLab, Project
from tests.gfm import shown_text
from tests.scenarios import hook_for, open_judged_mr, project_with_rules, push_one_commit

MR_HOOK = "Merge Request Hook"
FILE_RULES = """\
rules:
  files.secrets: {severity: error}
  files.prohibited: {severity: error}
  files.max_size: {severity: error}
"""
# A token of GitLab's own format; the fake has no idea it is one.
TOKEN = "glpat-" + "Ab3dEf6hIj9kLmN0pQ2s"
SECRET_LINE = f"TOKEN = '{TOKEN}'\n"
OLD_GITLAB = (18, 0)  # diff entries without `collapsed`/`too_large`
NEW_GITLAB = (18, 6)


def _note(fake: FakeGitLab, project_id: int, iid: int) -> str:
    """The bot's note as a reader sees it (rendered: escapes resolved, no markup)."""
    [note] = [n for n in fake.notes(project_id, iid) if NOTE_MARKER in str(n["body"])]
    return shown_text(str(note["body"]))


def _state(fake: FakeGitLab, project_id: int, sha: str) -> tuple[str, str]:
    status = fake.statuses(project_id, sha)[-1]
    return str(status["status"]), str(status["description"])


def _passed(fake: FakeGitLab, project_id: int, sha: str) -> bool:
    state, description = _state(fake, project_id, sha)
    return state == "success" and description.endswith("checks passed")


def _filler(size: int) -> str:
    """Harmless text of about `size` bytes, in short lines."""
    return "".join(f"line {n} of harmless text\n" for n in range(size // 26 + 1))


# -- MR commits without parents (contract 2.2) ------------------------------------------------


def _main_merged_into_feature(
    fake: FakeGitLab, project: Project, message: str, *, merge_message: str
) -> None:
    """A commit on `feature` (`message`), a newer one on `main`, then `main` merged into
    `feature` with `merge_message`: an MR branch that holds a merge commit."""
    fake.commit(project.id, "feature", message=message, files={"x.py": "x\n"})
    fake.commit(project.id, "main", message="docs: more", files={"docs.md": "d\n"})
    fake.merge(project.id, "feature", fake.branch_head(project.id, "main"), message=merge_message)


@pytest.mark.parametrize("with_parents", [False, True], ids=["db-rows", "gitaly"])
async def test_a_merge_commit_in_an_mr_is_found_without_the_mr_commits_parents(
    fake: FakeGitLab, bot: Bot, with_parents: bool
) -> None:
    fake.mr_commits_with_parents = with_parents
    project = project_with_rules(fake, "rules:\n  commit.no_merge_commits: {severity: error}\n")
    _main_merged_into_feature(fake, project, "feat: x", merge_message="Merge branch 'main'")
    mr = await open_judged_mr(fake, bot, project, description="x")
    assert _state(fake, project.id, mr.head_sha)[0] == "failed"
    note = _note(fake, project.id, mr.iid)
    assert "commit.no_merge_commits" in note and "a merge commit (2 parents)" in note


@pytest.mark.parametrize("with_parents", [False, True], ids=["db-rows", "gitaly"])
async def test_gitlabs_own_merge_commits_are_exempt_from_dco(
    fake: FakeGitLab, bot: Bot, with_parents: bool
) -> None:
    fake.mr_commits_with_parents = with_parents
    project = project_with_rules(fake, "rules:\n  commit.dco: {severity: error}\n")
    # GitLab's "Merge target into source" button writes no sign-off.
    _main_merged_into_feature(
        fake,
        project,
        "feat: x\n\nSigned-off-by: Ada Lovelace <ada@example.com>",
        merge_message="Merge branch 'main' into 'feature'",
    )
    mr = await open_judged_mr(fake, bot, project, description="x")
    assert _passed(fake, project.id, mr.head_sha), _note(fake, project.id, mr.iid)


async def test_a_fork_mr_has_its_commits_read_in_the_target_project(
    fake: FakeGitLab, bot: Bot
) -> None:
    """GitLab keeps a fork MR's head in the target project (refs/merge-requests/:iid/head),
    so the target project's compare lists the MR's commits."""
    project = project_with_rules(fake, "rules:\n  commit.no_merge_commits: {severity: error}\n")
    fork = fake.add_project(path_with_namespace="ada/widget", description="A fork")
    fake.commit(
        fork.id,
        "feature",
        message="feat: from a fork",
        files={"x.py": "x\n"},
        parent=fake.branch_head(project.id, "main"),
    )
    mr = await open_judged_mr(fake, bot, project, source_project_id=fork.id, description="x")
    assert _passed(fake, fork.id, mr.head_sha), _note(fake, project.id, mr.iid)
    assert fake.calls("GET", f"/projects/{project.id}/repository/compare")


# -- Diff limits (contract 2.3, 2.4) ------------------------------------------------------------


@pytest.mark.parametrize("limit", ["files", "lines"])
async def test_files_past_the_mr_diff_limits_fail_the_file_rules(
    fake: FakeGitLab, bot: Bot, limit: str
) -> None:
    if limit == "files":
        fake.diff_max_files = 3
    else:
        fake.diff_max_lines = 20
    project = project_with_rules(fake, FILE_RULES)
    files: dict[str, str | None] = {f"src/m{n}.py": _filler(100) for n in range(4)}
    files["src/z.py"] = SECRET_LINE  # sorted last: past the limit
    files["src/zz/id_rsa"] = "a key\n"
    fake.commit(project.id, "feature", message="feat: many files", files=files)
    mr = await open_judged_mr(fake, bot, project, description="x")
    state, _ = _state(fake, project.id, mr.head_sha)
    note = _note(fake, project.id, mr.iid)
    assert state == "failed", note
    for rule in ("files.secrets", "files.prohibited", "files.max_size"):
        assert rule in note, rule
    assert "GitLab's diff limits" in note
    assert TOKEN[8:] not in note


@pytest.mark.parametrize("version", [OLD_GITLAB, NEW_GITLAB], ids=["18.0", "18.6"])
async def test_a_secret_in_a_too_large_patch_is_found_by_reading_the_file(
    fake: FakeGitLab, bot: Bot, version: tuple[int, int]
) -> None:
    fake.version = version
    fake.diff_max_patch_bytes = 4096
    project = project_with_rules(fake, "rules:\n  files.secrets: {severity: error}\n")
    fake.commit(
        project.id,
        "feature",
        message="feat: big file",
        files={"big.py": _filler(6000) + SECRET_LINE, "small.py": "ok\n"},
    )
    mr = await open_judged_mr(fake, bot, project, description="x")
    note = _note(fake, project.id, mr.iid)
    assert _state(fake, project.id, mr.head_sha)[0] == "failed", note
    assert "[gitlab-pat]" in note and "big.py:" in note
    assert "could not be scanned" not in note


async def test_a_too_large_file_past_the_read_cap_is_reported_not_scanned(
    fake: FakeGitLab, bot: Bot
) -> None:
    fake.version = OLD_GITLAB
    project = project_with_rules(fake, "rules:\n  files.secrets: {severity: error}\n")
    huge = _filler(1_100_000)  # over GitLab's 200 KiB patch limit and the bot's read cap
    fake.commit(project.id, "feature", message="feat: huge", files={"huge.txt": huge})
    mr = await open_judged_mr(fake, bot, project, description="x")
    note = _note(fake, project.id, mr.iid)
    assert _state(fake, project.id, mr.head_sha)[0] == "failed", note
    assert "huge.txt could not be scanned for secrets" in note


async def test_an_empty_new_file_on_older_gitlab_passes(fake: FakeGitLab, bot: Bot) -> None:
    fake.version = OLD_GITLAB
    project = project_with_rules(fake, "rules:\n  files.secrets: {severity: error}\n")
    fake.commit(project.id, "feature", message="feat: empty", files={"src/__init__.py": ""})
    mr = await open_judged_mr(fake, bot, project, description="x")
    assert _state(fake, project.id, mr.head_sha)[0] == "success", _note(fake, project.id, mr.iid)


@pytest.mark.parametrize("version", [OLD_GITLAB, NEW_GITLAB], ids=["18.0", "18.6"])
async def test_a_pushed_commit_whose_compare_collapses_is_read_in_full(
    fake: FakeGitLab, bot: Bot, version: tuple[int, int]
) -> None:
    """The push on top of a checked MR is read through compare, which collapses patches
    of a tenth of the patch limit: the check must not pass what it did not see."""
    fake.version = version
    project = project_with_rules(fake, "rules:\n  files.secrets: {severity: error}\n")
    fake.commit(project.id, "feature", message="feat: x", files={"x.py": "x\n"})
    mr = await open_judged_mr(fake, bot, project, description="x")
    assert _state(fake, project.id, mr.head_sha)[0] == "success"
    old = mr.head_sha
    medium = _filler(30_000) + SECRET_LINE  # over 20 KiB: collapsed in compare
    fake.commit(project.id, "feature", message="feat: more", files={"m.py": medium, "n.py": "n\n"})
    await bot.send(MR_HOOK, hook_for(mr, action="update", oldrev=old))
    await bot.settle()
    note = _note(fake, project.id, mr.iid)
    assert _state(fake, project.id, mr.head_sha)[0] == "failed", note
    assert "[gitlab-pat]" in note and "m.py:" in note


@pytest.mark.parametrize("version", [OLD_GITLAB, NEW_GITLAB], ids=["18.0", "18.6"])
async def test_a_branch_push_past_the_compare_limits_fails_the_file_rules(
    fake: FakeGitLab, bot: Bot, version: tuple[int, int]
) -> None:
    fake.version = version
    fake.diff_max_files = 3
    project = project_with_rules(fake, FILE_RULES)
    files: dict[str, str | None] = {f"src/m{n}.py": "m\n" for n in range(4)}
    files["src/z.py"] = SECRET_LINE
    after, push = push_one_commit(fake, project.id, "main", "feat: many files", files)
    await bot.send("Push Hook", push)
    await bot.settle()
    state, _ = _state(fake, project.id, after)
    assert state == "failed"


@pytest.mark.parametrize("version", [OLD_GITLAB, NEW_GITLAB], ids=["18.0", "18.6"])
async def test_a_branch_push_with_a_collapsed_file_is_read_in_full(
    fake: FakeGitLab, bot: Bot, version: tuple[int, int]
) -> None:
    fake.version = version
    project = project_with_rules(fake, "rules:\n  files.secrets: {severity: error}\n")
    files: dict[str, str | None] = {"m.py": _filler(30_000) + SECRET_LINE, "n.py": "n\n"}
    after, push = push_one_commit(fake, project.id, "main", "feat: medium file", files)
    await bot.send("Push Hook", push)
    await bot.settle()
    state, description = _state(fake, project.id, after)
    assert state == "failed" and description.startswith("1 error"), description


# -- CODEOWNERS and signatures (contract 2.11, 2.13) -------------------------------------------


async def test_a_huge_docs_directory_does_not_fail_the_codeowners_lookup(
    fake: FakeGitLab, bot: Bot
) -> None:
    project = project_with_rules(fake, "rules:\n  repository.codeowners: {severity: error}\n")
    docs: dict[str, str | None] = {f"docs/page{n:05}.md": "p\n" for n in range(10_001)}
    fake.commit(
        project.id,
        "main",
        message="docs: many pages",
        files={**docs, ".gitlab/CODEOWNERS": "* @ada\n"},
    )
    fake.commit(project.id, "feature", message="feat: x", files={"x.py": "x\n"})
    mr = await open_judged_mr(fake, bot, project, description="x")
    assert _passed(fake, project.id, mr.head_sha), _note(fake, project.id, mr.iid)


async def test_docs_codeowners_is_found_and_judged(fake: FakeGitLab, bot: Bot) -> None:
    # The broken file is on the target branch already: fail on that too, to see it judged.
    project = project_with_rules(
        fake,
        "target_branch_findings: fail\nrules:\n  repository.codeowners: {severity: error}\n",
    )
    fake.commit(
        project.id,
        "main",
        message="docs: owners",
        files={"docs/CODEOWNERS": "[Section\n", ".gitlab/CODEOWNERS": "* @ada\n"},
    )
    fake.commit(project.id, "feature", message="feat: x", files={"x.py": "x\n"})
    mr = await open_judged_mr(fake, bot, project, description="x")
    note = _note(fake, project.id, mr.iid)
    assert _state(fake, project.id, mr.head_sha)[0] == "failed", note
    assert "docs/CODEOWNERS" in note


async def test_a_ca_verified_x509_signature_passes(fake: FakeGitLab, bot: Bot) -> None:
    project = project_with_rules(fake, "rules:\n  commit.signed: {severity: error}\n")
    sha = fake.commit(project.id, "feature", message="feat: x")
    fake.signed[sha] = "verified_ca"
    mr = await open_judged_mr(fake, bot, project, description="x")
    assert _passed(fake, project.id, mr.head_sha), _note(fake, project.id, mr.iid)


@pytest.mark.parametrize("version", [(17, 3), (17, 6), (18, 3)])
async def test_older_gitlab_versions_are_checked_alike(
    fake: FakeGitLab, bot: Bot, version: tuple[int, int]
) -> None:
    """Before 17.7 a missing tree path is 200 with []; before 18.4 diffs carry no flags."""
    fake.version = version
    project = fake.add_project(path_with_namespace="acme/bare", description="A widget")
    fake.commit(project.id, "main", message="chore: init", files={"README.md": "# W\n"})
    fake.commit(project.id, "feature", message="feat: x", files={"x.py": "x\n"})
    mr = await open_judged_mr(fake, bot, project, description="x")
    state, description = _state(fake, project.id, mr.head_sha)
    # Judged, not "could not complete": the missing LICENSE is seen (and is the target
    # branch's, so it does not fail the MR).
    assert state == "success" and not description.startswith("could not complete")
    note = _note(fake, project.id, mr.iid)
    assert "LICENSE" in note and "already on main" in note


def _entry(**fields: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "old_path": "f",
        "new_path": "f",
        "a_mode": "100644",
        "b_mode": "100644",
        "new_file": False,
        "renamed_file": False,
        "deleted_file": False,
        "diff": "",
    }
    entry.update(fields)
    return entry


@pytest.mark.parametrize(
    ("entry", "complete"),
    [
        # 18.4+: the flags say it.
        (_entry(diff="", collapsed=True, too_large=False), False),
        (_entry(diff="", collapsed=False, too_large=True), False),
        (_entry(diff="", renamed_file=True, collapsed=False, too_large=False), True),
        # Before 18.4: an empty diff is complete only where an empty patch is normal.
        (_entry(diff=""), False),
        (_entry(diff="", new_file=True, a_mode="0"), False),  # read: it may be empty
        (_entry(diff="", deleted_file=True, b_mode="0"), True),
        (_entry(diff="", renamed_file=True, old_path="e"), True),
        (_entry(diff="", b_mode="100755"), True),  # a change of mode alone
        (_entry(diff="@@ -1 +1 @@\n-a\n+b\n"), True),
        (_entry(diff="Binary files a/f and b/f differ\n"), True),
    ],
)
def test_a_diff_entry_says_whether_gitlab_left_its_patch_out(
    entry: dict[str, object], complete: bool
) -> None:
    assert changed_file_from_api(entry).diff_complete is complete
