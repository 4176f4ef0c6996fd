"""The incremental check equals a check from scratch (DESIGN.md, invariant 6).

Random sequences of pushes to an MR in the fake GitLab (served over HTTP): new commits that
add, change, delete and rename files, force-pushed rewrites, title and label edits, and
moves of the target branch (its rules included). After every step the check that reuses the
previous step's inputs must give the same findings and the same note as a check that reads
everything afresh, at the same moment, of the same head.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from bot import engine, report, webhook
from bot.gitlab import GitLab, open_gitlab
from bot.incremental import MergeRequestInputs
from bot.report import NOTE_MARKER
from tests.conftest import Bot, bot_settings, running_bot
from tests.fake_gitlab import FakeGitLab, MergeRequest
from tests.scenarios import HYGIENE_FILES, compliant_project, hook_for

# Most rules on, with limits small enough for a few files to cross them.
BROAD_RULES = """\
rules:
  commit.dco: {severity: warning}
  commit.no_fixup: {severity: error}
  commit.no_merge_commits: {severity: error}
  commit.author_email: {severity: warning, allowed_domains: [example.com]}
  commit.signed: {severity: info}
  merge_request.labels: {severity: warning, any_of: [bug, feature]}
  merge_request.size: {severity: warning, max_files: 4, max_lines: 12}
  files.prohibited: {severity: error}
  files.max_size: {severity: warning, max_bytes: 40}
  files.secrets: {severity: error}
  repository.codeowners: {severity: warning}
"""
OTHER_RULES = """\
rules:
  commit.conventional: {severity: 'off'}
  files.secrets: {severity: warning}
  repository.required_files: {severity: 'off'}
"""

BIG = "".join(f"line {n}\n" for n in range(2600))
PATHS = ["src/a.py", "src/b.py", "docs/guide.md", ".env", "README.md", "CHANGELOG.md", "x.pem"]
CONTENTS = [
    "x = 1\n",
    "x = 2\ny = 3\n",
    "token = 'glpat-" + "Ab3" * 7 + "'\n",
    "padding " * 8 + "\n",
    "note\n",
    # The target branch's README: a file deleted in one push and this content added under
    # another name in a later one is, across the whole MR, a rename.
    str(HYGIENE_FILES["README.md"]),
    # Past GitLab's safe patch size (20 KiB): compare collapses its patch, the MR's own diff
    # shows it whole. The second is the first with a line more: a small patch on top.
    BIG,
    BIG + "tail\n",
]
MESSAGES = [
    "feat: add it",
    "fix(core): repair the thing",
    "Added stuff",
    "fixup! feat: add it",
    "feat: sign off\n\nSigned-off-by: Ada Lovelace <ada@example.com>",
    "chore: tidy up.",
]

contents = st.one_of(st.none(), st.sampled_from(CONTENTS))
file_changes = st.dictionaries(st.sampled_from(PATHS), contents, max_size=3)
messages = st.sampled_from(MESSAGES)
# Which of the files the MR changes so far a step picks (modulo their number).
mr_file = st.integers(min_value=0, max_value=20)
steps = st.one_of(
    st.tuples(st.just("commit"), messages, file_changes),
    # Follow-up pushes on files the MR already changed: changed again (or deleted), put
    # back as the target branch has them, moved elsewhere.
    st.tuples(st.just("again"), messages, mr_file, contents),
    st.tuples(st.just("revert"), messages, mr_file),
    st.tuples(st.just("move"), messages, mr_file, st.sampled_from(PATHS)),
    # Two pushes, one check: the first push's check was superseded by the second's before
    # it ran, so the hook's `oldrev` is a head the bot never judged.
    st.tuples(st.just("pushes"), messages, file_changes, file_changes),
    st.tuples(st.just("rename"), messages, st.sampled_from(PATHS), st.sampled_from(PATHS)),
    st.tuples(st.just("rewrite"), messages, file_changes),
    st.tuples(
        st.just("metadata"),
        st.sampled_from(["Add a feature", "Draft: Add a feature", "fix: it"]),
        st.sampled_from(["", "Adds a feature."]),
        st.lists(st.sampled_from(["bug", "feature", "backend"]), max_size=2, unique=True),
    ),
    st.tuples(
        st.just("target"),
        st.sampled_from([BROAD_RULES, OTHER_RULES]),
        messages,
        file_changes,
    ),
)

_projects = itertools.count(1)


async def _checks(
    gitlab: GitLab, payload: dict[str, Any], previous: MergeRequestInputs | None
) -> tuple[engine.MergeRequestCheck, engine.MergeRequestCheck]:
    parsed = webhook.parse_event("Merge Request Hook", payload)
    assert isinstance(parsed, webhook.MergeRequestEvent)
    now = time.time()
    incremental = await engine.check_merge_request_incrementally(
        gitlab, parsed, base_config={}, previous=previous, now=now
    )
    scratch = await engine.check_merge_request_incrementally(
        gitlab, parsed, base_config={}, previous=None, now=now
    )
    return incremental, scratch


def _apply(fake: FakeGitLab, mr: MergeRequest, step: tuple[Any, ...]) -> dict[str, Any]:
    """Change the fake as the step says; return the hook GitLab would send for it."""
    kind = step[0]
    pid = mr.project_id
    old = mr.head_sha
    if kind == "metadata":
        _, title, description, labels = step
        changes = {
            "title": {"previous": mr.title, "current": title},
            "description": {"previous": mr.description, "current": description},
        }
        mr.title, mr.description, mr.labels = title, description, list(labels)
        mr.draft = title.startswith("Draft:")
        return hook_for(mr, action="update", changes=changes)
    if kind == "commit":
        _, message, files = step
        fake.commit(pid, mr.source_branch, message=message, files=files)
    elif kind == "pushes":
        _, message, first, second = step
        fake.commit(pid, mr.source_branch, message=message, files=first)
        skipped = mr.head_sha
        fake.commit(pid, mr.source_branch, message=message, files=second)
        return hook_for(mr, action="update", oldrev=skipped)
    elif kind in ("again", "revert", "move"):
        changed = sorted({p for d in mr.diffs() for p in (d["old_path"], d["new_path"])})
        path = (changed or PATHS)[step[2] % len(changed or PATHS)]
        head, base = fake.tree_at(old), fake.tree_at(mr.base_sha)
        if kind == "again":
            files = {path: step[3]}
        elif kind == "revert":
            files = {path: base.get(path)}
        else:
            destination = step[3]
            content = head.get(path, "moved\n")
            files = {path: None, destination: content} if destination != path else {}
        fake.commit(pid, mr.source_branch, message=step[1], files=files)
    elif kind == "rename":
        _, message, source, destination = step
        tree = fake.tree_at(old)
        files = {source: None, destination: tree.get(source, "moved\n")}
        if source == destination:
            files = {source: "renamed onto itself\n"}
        fake.commit(pid, mr.source_branch, message=message, files=files)
    elif kind == "rewrite":
        _, message, files = step
        base = fake.branch_head(pid, mr.target_branch)
        rewritten = fake.commit(
            pid, f"scratch-{old[:8]}", message=message, files=files, parent=base
        )
        fake.force_branch(pid, mr.source_branch, rewritten)
    else:  # the target branch moves (new rules, new files), then the MR gets a commit
        _, rules, message, files = step
        fake.commit(
            pid, mr.target_branch, message="chore: rules", files={".gitlab/compliance.yml": rules}
        )
        fake.commit(pid, mr.source_branch, message=message, files=files)
    return hook_for(mr, action="update", oldrev=old)


# The `fake` fixture is one GitLab for all examples; each example makes its own project.
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=st.lists(steps, min_size=1, max_size=7))
# Cases random sequences reach only rarely, kept so that every run covers them: a file
# deleted, then its content added elsewhere (a rename across the whole MR); a file changed
# again by a later push; a rewrite after commits.
@example(
    sequence=[
        ("commit", "feat: drop", {"README.md": None}),
        ("commit", "feat: restore", {"docs/guide.md": str(HYGIENE_FILES["README.md"])}),
    ]
)
@example(
    sequence=[
        ("rename", "feat: move", "README.md", "docs/guide.md"),
        ("again", "fix: rewrite it", 1, "x = 1\n"),
    ]
)
@example(
    sequence=[
        ("commit", "feat: big", {"src/b.py": BIG}),
        ("commit", "fix: a line more", {"src/b.py": BIG + "tail\n"}),
    ]
)
@example(
    sequence=[
        ("commit", "feat: one", {"src/b.py": CONTENTS[2]}),
        ("commit", "fix: two", {"src/b.py": CONTENTS[0]}),
        ("rewrite", "feat: again", {"src/b.py": CONTENTS[1]}),
    ]
)
async def test_incremental_check_equals_a_check_from_scratch(
    fake: FakeGitLab, sequence: list[tuple[Any, ...]]
) -> None:
    project = fake.add_project(
        path_with_namespace=f"equivalence/p{next(_projects)}",
        description="A widget",
        topics=["python"],
    )
    fake.commit(
        project.id,
        "main",
        message="chore: initial commit",
        files={**HYGIENE_FILES, ".gitlab/compliance.yml": BROAD_RULES, "CODEOWNERS": "* @ada\n"},
    )
    fake.commit(project.id, "feature", message="feat: start", files={"src/a.py": "x = 0\n"})
    mr = fake.open_mr(project.id, source_branch="feature", description="Adds a feature.")
    async with open_gitlab(bot_settings(fake)) as gitlab:
        first, _ = await _checks(gitlab, hook_for(mr), None)
        previous = first.inputs
        assert previous is not None
        for number, step in enumerate(sequence):
            incremental, scratch = await _checks(gitlab, _apply(fake, mr, step), previous)
            event(f"{step[0]} -> {incremental.reuse}")
            assert scratch.report.error is None, scratch.report.error
            context = f"step {number} ({step[0]})"
            assert incremental.report.findings == scratch.report.findings, context
            assert report.render_note(incremental.report) == report.render_note(scratch.report), (
                context
            )
            # Stronger than the verdict: the rules saw the very same inputs.
            assert incremental.inputs is not None and scratch.inputs is not None
            for name in ("commits", "changes", "target_paths", "file_sizes", "signatures"):
                assert getattr(incremental.inputs, name) == getattr(scratch.inputs, name), name
            previous = incremental.inputs


async def test_commits_on_top_are_reused_and_metadata_needs_no_read(fake: FakeGitLab) -> None:
    """The property above would hold trivially if nothing were ever reused."""
    project = fake.add_project(path_with_namespace="equivalence/reuse", description="A widget")
    fake.commit(project.id, "main", message="chore: initial commit", files=HYGIENE_FILES)
    fake.commit(project.id, "feature", message="feat: start", files={"src/a.py": "x = 0\n"})
    mr = fake.open_mr(project.id, source_branch="feature", description="Adds a feature.")
    async with open_gitlab(bot_settings(fake)) as gitlab:
        first, _ = await _checks(gitlab, hook_for(mr), None)
        added = _apply(fake, mr, ("commit", "feat: more", {"src/b.py": "y = 1\n"}))
        second, _ = await _checks(gitlab, added, first.inputs)
        retitled = _apply(fake, mr, ("metadata", "fix: it", "", []))
        calls_before = len(fake.requests)
        parsed = webhook.parse_event("Merge Request Hook", retitled)
        assert isinstance(parsed, webhook.MergeRequestEvent)
        third = await engine.check_merge_request_incrementally(
            gitlab, parsed, base_config={}, previous=second.inputs, now=time.time()
        )
    assert (first.reuse, second.reuse, third.reuse) == (
        engine.Reuse.NONE,
        engine.Reuse.NEW_COMMITS,
        engine.Reuse.METADATA,
    )
    assert fake.requests[calls_before:] == []
    assert "`merge_request.description`" in {f"`{f.rule}`" for f in third.report.findings}


async def _deliver_and_count(bot: Bot, fake: FakeGitLab, payload: dict[str, Any]) -> list[str]:
    start = len(fake.requests)
    assert (await bot.send("Merge Request Hook", payload)).status_code == 202
    await bot.settle()
    return [f"{r.method} {r.path}" for r in fake.requests[start:]]


async def test_a_push_that_changes_files_of_the_mr_again_costs_at_most_five_calls(
    fake: FakeGitLab,
) -> None:
    """The common follow-up push (answering review comments) changes files the MR already
    changed: it reads what the new commits changed and the MR's diff at the new head, and
    writes the status and the note; not the MR, its notes, the tree or the config again."""
    project = compliant_project(fake)
    fake.commit(project.id, "feature", message="feat: start", files={"src/a.py": "x = 0\n"})
    mr = fake.open_mr(project.id, source_branch="feature", description="Adds a feature.")
    async with running_bot(fake) as bot:
        await _deliver_and_count(bot, fake, hook_for(mr))
        old = mr.head_sha
        fake.commit(project.id, "feature", message="feat: more", files={"src/b.py": "y = 1\n"})
        update = await _deliver_and_count(bot, fake, hook_for(mr, action="update", oldrev=old))
        old = mr.head_sha
        fake.commit(project.id, "feature", message="fix: review", files={"src/a.py": "x = 2\n"})
        retouch = await _deliver_and_count(bot, fake, hook_for(mr, action="update", oldrev=old))
    # A new head's verdict: the target branch's head, the new commits, the status, the note.
    assert len(update) <= 4, update
    assert len(retouch) <= 5, retouch
    assert not [call for call in retouch if "/notes" in call and call.startswith("GET")]
    assert not [call for call in retouch if "/merge_requests/" in call and "diffs" in call]
    assert not [call for call in retouch if "/repository/tree" in call]
    [status] = [s for s in fake.statuses(project.id, mr.head_sha) if s["name"] == "compliance"]
    assert status["status"] == "success"
    [note] = [n for n in mr.notes if NOTE_MARKER in n["body"]]
    assert mr.head_sha[:8] in note["body"]


async def test_a_follow_up_push_past_the_diff_limits_is_judged_as_gitlab_cut_it(
    fake: FakeGitLab,
) -> None:
    """A push that changes a file again and adds more files than GitLab's diff limits let
    through: compare of the whole MR stops short too (`compare_timeout`), so the check reads
    the MR afresh and reports the files GitLab left out, as a full check does."""
    # Small limits; compare's "safe" limits (a tenth) still let the new commits' 3 files through.
    fake.diff_max_files = 30
    project = fake.add_project(path_with_namespace="equivalence/limits", description="A widget")
    fake.commit(
        project.id,
        "main",
        message="chore: initial commit",
        files={**HYGIENE_FILES, ".gitlab/compliance.yml": BROAD_RULES},
    )
    start = {f"src/{n:02d}.py": f"x = {n}\n" for n in range(29)}
    fake.commit(project.id, "feature", message="feat: start", files=start)
    mr = fake.open_mr(project.id, source_branch="feature", description="Adds a feature.")
    async with open_gitlab(bot_settings(fake)) as gitlab:
        first, _ = await _checks(gitlab, hook_for(mr), None)
        again = {"src/00.py": "x = 1\n", "m1.py": "m\n", "m2.py": "m\n"}
        step = ("commit", "feat: more", again)
        incremental, scratch = await _checks(gitlab, _apply(fake, mr, step), first.inputs)
    assert scratch.inputs is not None and scratch.inputs.changes_truncated
    assert incremental.report.findings == scratch.report.findings
    assert incremental.inputs == scratch.inputs


async def test_a_push_after_one_whose_check_was_superseded_reuses_the_judged_head(
    fake: FakeGitLab,
) -> None:
    """Under load the bot checks only the newest of several pushes: the hook's `oldrev` is
    a head it never judged. The commits since the head it did judge are still a compare
    away; the MR is not read afresh."""
    project = compliant_project(fake)
    fake.commit(project.id, "feature", message="feat: start", files={"src/a.py": "x = 0\n"})
    mr = fake.open_mr(project.id, source_branch="feature", description="Adds a feature.")
    async with open_gitlab(bot_settings(fake)) as gitlab:
        first, _ = await _checks(gitlab, hook_for(mr), None)
        step = ("pushes", "feat: more", {"src/b.py": "y = 1\n"}, {"src/c.py": "z = 1\n"})
        incremental, scratch = await _checks(gitlab, _apply(fake, mr, step), first.inputs)
    assert incremental.reuse == engine.Reuse.NEW_COMMITS
    assert incremental.report.findings == scratch.report.findings
    assert incremental.inputs is not None and scratch.inputs is not None
    for name in ("commits", "changes", "target_paths", "file_sizes", "signatures"):
        assert getattr(incremental.inputs, name) == getattr(scratch.inputs, name), name
