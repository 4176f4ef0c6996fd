"""The MR note as an author reads it, through the real server and the fake GitLab: what
the first screen shows, where its locations link, that no user text becomes markup, and
that it stays within its size cap."""

from __future__ import annotations

import re

from bot import report
from bot.report import NOTE_MARKER
from tests import gfm
from tests.conftest import Bot
from tests.fake_gitlab import FakeGitLab, MergeRequest
from tests.scenarios import (
    HYGIENE_FILES,
    compliant_project,
    hook_for,
    judged_mr,
    project_with_rules,
)

MR_HOOK = "Merge Request Hook"

# Each input of issue 18, placed where the note can show it.
HOSTILE = (
    "<img src=x onerror=alert(1)> <h1>Big</h1> <b>bold</b> [x](https://evil.example) "
    "#123 !45 @admin &7 %8 $9 ~bug <!-- hidden photo\u202egnp.exe :smile: https://evil.example"
)
# git allows backticks, `<`, `#`, `!`, `@`, `|` and `&` in a branch name (git-check-ref-format).
HOSTILE_BRANCH = "feat`x``y<b>z</b>#12!3@admin|&4"
CONFIG = """\
rules:
  commit.dco: {severity: error}
  merge_request.checklist: {severity: error}
  merge_request.source_branch: {severity: error, pattern: '^release/'}
  files.prohibited: {severity: error, regex: '\\.exe$'}
"""


def _note(fake: FakeGitLab, mr: MergeRequest) -> str:
    [note] = [n for n in fake.notes(mr.project_id, mr.iid) if NOTE_MARKER in str(n["body"])]
    return str(note["body"])


def _status(fake: FakeGitLab, mr: MergeRequest) -> dict[str, object]:
    statuses = [s for s in fake.statuses(mr.source_project_id, mr.head_sha)]
    assert statuses
    return statuses[-1]


def _no_markup_from(note: str, project_url: str) -> None:
    """The rendered note holds only the bot's own elements and links."""
    parsed = gfm.elements(note)
    own = {
        "p", "h3", "h4", "table", "thead", "tbody", "tr", "th", "td", "ul", "li", "code", "a",
        "details", "summary", "sub", "em", "strong",
    }  # fmt: skip
    assert {tag for tag, _ in parsed.elements} <= own
    for tag, attributes in parsed.elements:
        if tag == "a":
            href = str(attributes["href"])
            assert href.startswith((f"{project_url}/-/", "https://docs.gitlab.com/")), href
        else:
            assert tag in ("td", "th") or not attributes, (tag, attributes)
    assert parsed.comments == [" compliance-bot "]
    assert gfm.bare_references(note) == []
    assert not any(c in note for c in gfm.BIDI)
    assert not any(c in span for span in gfm.code_spans(note) for c in gfm.ZERO_WIDTH)


async def test_hostile_text_everywhere_renders_as_text(fake: FakeGitLab, bot: Bot) -> None:
    project = compliant_project(fake)
    fake.commit(
        project.id, "main", message="chore: rules", files={".gitlab/compliance.yml": CONFIG}
    )
    fake.commit(
        project.id,
        HOSTILE_BRANCH,
        message=f"{HOSTILE}\n\nSigned-off-by: {HOSTILE} <x@example.com>",
        author_name=HOSTILE,
        files={f"docs/{HOSTILE}.exe": "x"},
    )
    mr = fake.open_mr(
        project.id,
        source_branch=HOSTILE_BRANCH,
        title=HOSTILE,
        description=f"Adds it.\n\n- [ ] {HOSTILE}\n",
    )
    await bot.send(MR_HOOK, hook_for(mr))
    await bot.settle()

    note = _note(fake, mr)
    for rule in ("commit.conventional", "commit.dco", "merge_request.checklist",
                 "merge_request.source_branch", "files.prohibited"):  # fmt: skip
        assert f"`{rule}`" in note
    _no_markup_from(note, project.web_url)
    text = "".join(gfm.elements(note).text).replace("\u200b", "")
    shown = HOSTILE.replace("\u202e", "")
    # The author's name, the sign-off, the task and the path all show, as text.
    assert text.count("<img src=x onerror=alert(1)>") >= 4
    assert "[x](https://evil.example)" in text and "<!-- hidden" in text
    assert f"docs/{shown}.exe is prohibited" in text
    # The branch name stays whole inside one code span: its backticks did not close it.
    assert HOSTILE_BRANCH in gfm.code_spans(note)
    assert _status(fake, mr)["status"] == "failed"


async def test_the_first_screen_names_each_failing_rule_with_linked_locations(
    fake: FakeGitLab, bot: Bot
) -> None:
    project = compliant_project(fake)
    shas = [
        fake.commit(project.id, "feature", message="Added stuff", files={f"f{i}.py": "x\n"})
        for i in range(12)
    ]
    mr = fake.open_mr(project.id, source_branch="feature", description="")
    await bot.send(MR_HOOK, hook_for(mr))
    await bot.settle()

    note = _note(fake, mr)
    # One cause, one finding: 12 headers, plus the missing description.
    assert ":x: Compliance: 13 errors, 0 warnings" in note
    status = _status(fake, mr)
    assert status["description"] == "13 errors, 0 warnings"
    [bot_note] = [n for n in fake.notes(mr.project_id, mr.iid) if NOTE_MARKER in str(n["body"])]
    assert status["target_url"] == f"{mr.web_url}#note_{bot_note['id']}"
    lines = note.splitlines()
    summary = lines.index("| | Rule | Findings | Where |")
    assert lines[summary - 2].startswith(f"Checked [`{mr.head_sha[:8]}`]")
    row = lines[summary + 2]
    links = [f"[`{sha[:8]}`]({project.web_url}/-/commit/{sha[:8]})" for sha in shas[:3]]
    assert row == (
        f"| :x: | Conventional Commits \\(commitlint config\\-conventional\\) "
        f"`commit.conventional` | 12 | {', '.join(links)}, +9 more |"
    )
    assert lines[summary + 3].startswith("| :x: | Description present")
    # Errors are not collapsed: every one is listed before any <details>.
    visible = note.split("<details>", 1)[0]
    for sha in shas:
        assert f"- [`{sha[:8]}`]({project.web_url}/-/commit/{sha[:8]}) `Added stuff`" in visible
    assert "<details><summary>Passed: " in note
    # Each hint once, though each commit's own fix names it.
    assert note.count("Write the first line as") == 1
    assert note.count("Describe what the change does") == 1
    _no_markup_from(note, project.web_url)


async def test_a_file_finding_links_to_its_line_at_the_head(fake: FakeGitLab, bot: Bot) -> None:
    project = project_with_rules(fake, "rules:\n  files.secrets: {severity: error}\n")
    mr = await judged_mr(
        fake,
        bot,
        project,
        message="feat: add settings",
        files={"src/my settings.py": "x = 1\nTOKEN = 'glpat-Zq3xY7pLm2Nw8Rt5Kv1B'\n"},
        description="Adds settings.",
    )

    note = _note(fake, mr)
    url = f"{project.web_url}/-/blob/{mr.head_sha}/src/my%20settings.py#L2"
    assert f"[`src/my settings.py:2`]({url})" in note


async def test_an_error_page_is_summarised_and_the_retry_is_explained(
    fake: FakeGitLab, bot: Bot
) -> None:
    project = compliant_project(fake)
    fake.commit(project.id, "feature", message="feat: x", files={"x.py": "x\n"})
    mr = fake.open_mr(project.id, source_branch="feature", description="Adds x.")
    nginx = (
        "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 "
        "Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
    fake.fail("GET", r"/merge_requests/\d+/diffs$", 502, body=nginx)
    await bot.send(MR_HOOK, hook_for(mr))
    await bot.settle()

    status = _status(fake, mr)
    description = str(status["description"])
    assert status["status"] == "failed"
    assert len(description) <= report.STATUS_DESCRIPTION_LIMIT
    assert "502 Bad Gateway" in description
    assert not re.search(r"[<>\r\n]", description)
    assert description.endswith(
        "the bot retries by itself; comment /compliance recheck to retry now"
    )
    note = _note(fake, mr)
    assert "<h1>" not in gfm.render(note) and "nginx" not in note
    assert "The bot retries by itself; comment `/compliance recheck` to retry now." in note
    assert "Push again" not in note
    _no_markup_from(note, project.web_url)


async def test_findings_already_on_the_target_branch_do_not_fail_the_mr(
    fake: FakeGitLab, bot: Bot
) -> None:
    project = fake.add_project(path_with_namespace="acme/old", description="Old", topics=[])
    files = {path: text for path, text in HYGIENE_FILES.items() if path != "LICENSE"}
    fake.commit(project.id, "main", message="chore: initial commit", files=files)
    fake.commit(project.id, "feature", message="feat: x", files={"x.py": "x\n"})
    mr = fake.open_mr(project.id, source_branch="feature", description="Adds x.")
    await bot.send(MR_HOOK, hook_for(mr))
    await bot.settle()

    status = _status(fake, mr)
    assert status["status"] == "success"
    assert status["description"] == (
        f"all {status['description'].split()[1]} checks passed; 2 already on the target branch"
    )
    note = _note(fake, mr)
    assert "2 findings already on `main` are not this MR's doing and do not fail it" in note
    assert "LICENSE is missing" in note.split("<summary>Already on the target branch: 2", 1)[1]


async def test_an_mr_that_deletes_the_license_fails(fake: FakeGitLab, bot: Bot) -> None:
    project = compliant_project(fake)
    fake.commit(project.id, "feature", message="chore: drop the licence", files={"LICENSE": None})
    mr = fake.open_mr(project.id, source_branch="feature", description="Drops it.")
    await bot.send(MR_HOOK, hook_for(mr))
    await bot.settle()

    assert _status(fake, mr)["status"] == "failed"
    note = _note(fake, mr)
    assert "already on" not in note
    assert "| :x: | Required files `repository.required_files` | 1 | `LICENSE` |" in note


async def test_a_note_of_many_findings_stays_under_the_cap(fake: FakeGitLab, bot: Bot) -> None:
    project = compliant_project(fake)
    config = "rules:\n  files.prohibited: {severity: error, regex: '\\.bin$'}\n"
    fake.commit(
        project.id, "main", message="chore: rules", files={".gitlab/compliance.yml": config}
    )
    deep = "/".join(["a-rather-long-directory-name"] * 30)
    fake.commit(
        project.id,
        "feature",
        message="Added stuff",
        files={f"{deep}/file-{i}.bin": "x" for i in range(300)},
    )
    mr = fake.open_mr(project.id, source_branch="feature", description="")
    await bot.send(MR_HOOK, hook_for(mr))
    await bot.settle()

    note = _note(fake, mr)
    assert len(note) < report.NOTE_LIMIT
    assert "| :x: | No prohibited files added `files.prohibited` | 300 |" in note
    assert (
        "_280 findings not listed here: run `compliance-bot check` locally, or see the CI "
        "job's JUnit report, for all of them._"
    ) in note
    _no_markup_from(note, project.web_url)
