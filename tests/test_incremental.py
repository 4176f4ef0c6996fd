"""The pure part of incremental checks, with literal values: when new commits extend the
judged head, how two diffs compose, and the stored form."""

from __future__ import annotations

from bot.incremental import (
    MergeRequestInputs,
    as_data,
    compose_changes,
    config_key,
    extends_linearly,
    from_data,
    recompose_changes,
)
from bot.model import ChangedFile, Commit
from bot.rules.base import CodeOwnersFile, ProjectFacts

OLD, A, B, ELSEWHERE = "0" * 40, "a" * 40, "b" * 40, "e" * 40


def _commit(sha: str, *parents: str) -> Commit:
    return Commit(sha=sha, message=f"feat: {sha[:4]}", parent_ids=parents)


def test_commits_on_top_of_the_old_head_extend_it() -> None:
    assert extends_linearly([_commit(A, OLD), _commit(B, A)], OLD, B)


def test_a_force_push_does_not_extend_the_old_head() -> None:
    # compare(oldrev, head) of a rewrite starts at their merge-base, not at oldrev.
    assert not extends_linearly([_commit(A, ELSEWHERE), _commit(B, A)], OLD, B)


def test_merging_another_branch_in_does_not_extend_linearly() -> None:
    assert not extends_linearly([_commit(A, OLD), _commit(B, A, ELSEWHERE)], OLD, B)


def test_an_empty_compare_or_a_compare_ending_elsewhere_does_not_extend() -> None:
    assert not extends_linearly([], OLD, B)
    assert not extends_linearly([_commit(A, OLD)], OLD, B)


def _modified(path: str, diff: str = "@@ -1 +1 @@\n-a\n+b\n") -> ChangedFile:
    return ChangedFile(old_path=path, new_path=path, diff=diff)


def test_diffs_of_different_files_compose_sorted_by_path() -> None:
    before = [_modified("src/z.py")]
    added = [ChangedFile(old_path="docs/a.md", new_path="docs/a.md", new_file=True)]
    composed = compose_changes(before, added)
    assert composed is not None
    assert [c.new_path for c in composed] == ["docs/a.md", "src/z.py"]


def test_a_file_changed_on_both_sides_cannot_be_composed() -> None:
    # A line added before and removed after is in neither diff's view of the whole.
    assert compose_changes([_modified("a.py")], [_modified("a.py")]) is None


def test_a_rename_touching_an_earlier_path_cannot_be_composed() -> None:
    renamed = ChangedFile(old_path="a.py", new_path="b.py", renamed_file=True)
    assert compose_changes([_modified("b.py")], [renamed]) is None


def test_a_deletion_on_one_side_and_an_addition_on_the_other_cannot_be_composed() -> None:
    # Across the whole diff GitLab may pair them as a rename of the same content.
    deleted = ChangedFile(old_path="old.py", new_path="old.py", deleted_file=True)
    added = ChangedFile(old_path="new.py", new_path="new.py", new_file=True)
    assert compose_changes([deleted], [added]) is None
    assert compose_changes([added], [deleted]) is None
    assert compose_changes([added], [_modified("other.py")]) is not None


def test_config_key_changes_with_the_file_and_with_the_instance_defaults() -> None:
    file = (".gitlab/compliance.yml", "rules: {}\n")
    assert config_key(file, {}) == config_key(file, {})
    assert config_key(file, {}) != config_key((file[0], "rules: {x: 1}\n"), {})
    assert config_key(file, {}) != config_key(file, {"rules": {"commit.dco": "error"}})
    assert config_key(None, {}) != config_key(file, {})


def test_inputs_survive_the_stored_form() -> None:
    inputs = MergeRequestInputs(
        head_sha=B,
        target_sha=OLD,
        config_file=(".compliance.yml", "version: 1\n"),
        config_key="k",
        commits=(_commit(A, OLD), _commit(B, A)),
        changes=(_modified("a.py"), ChangedFile("x", "y", renamed_file=True, diff_complete=False)),
        target_paths=frozenset({"README.md", ".gitlab/merge_request_templates/Default.md"}),
        project=ProjectFacts(description="A widget", topics=("python",)),
        project_read_at=12.5,
        codeowners=CodeOwnersFile("CODEOWNERS", "* @ada\n"),
        file_sizes={"a.py": 10},
        signatures={A: True, B: False},
        squash=True,
    )
    assert from_data(as_data(inputs)) == inputs


def test_inputs_of_another_format_version_are_not_reused() -> None:
    assert from_data({"version": 0}) is None


def test_a_file_changed_again_takes_its_diff_from_the_whole_mr() -> None:
    before = [_modified("a.py", "@@ -1 +1 @@\n-a\n+b\n"), _modified("z.py")]
    added = [_modified("a.py", "@@ -1 +1 @@\n-b\n+c\n")]
    whole = [_modified("a.py", "@@ -1 +1 @@\n-a\n+c\n"), ChangedFile("z.py", "z.py", diff="")]
    recomposed = recompose_changes(before, added, whole)
    # z.py's patch comes from `before`: compare collapsed it, the new commits did not touch it.
    assert recomposed == (whole[0], before[1])


def test_a_rename_pairing_takes_both_paths_from_the_whole_mr() -> None:
    # Deleted before; its content added elsewhere now: across the MR, a rename.
    before = [ChangedFile("README.md", "README.md", deleted_file=True, diff="@@ -1 +0,0 @@\n-r\n")]
    added = [ChangedFile("docs/r.md", "docs/r.md", new_file=True, diff="@@ -0,0 +1 @@\n+r\n")]
    whole = [ChangedFile("README.md", "docs/r.md", renamed_file=True, diff="")]
    assert recompose_changes(before, added, whole) == tuple(whole)


def test_a_collapsed_patch_of_a_file_changed_again_is_not_recomposed() -> None:
    before = [_modified("a.py")]
    whole = [ChangedFile("a.py", "a.py", diff="", diff_complete=False)]
    assert recompose_changes(before, [_modified("a.py")], whole) is None
