"""Same rules everywhere: one repository state, judged by `check` on a laptop, by `check` in
a simulated GitLab CI job (with and without a token), and by the server from a webhook.

The state is built twice: as commits in a real git repository (for `check`), and as the same
commits in the fake GitLab (for the server). Commit shas differ between the two (the fake
makes its own), so findings are compared with every commit's short sha replaced by its
position in the MR; everything else (rule, severity, where, the message) must be equal.
The server's findings are read back from its MR note, the only thing it publishes them in.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from bot.report import NOTE_MARKER
from tests import gfm
from tests.conftest import Bot
from tests.fake_gitlab import FakeGitLab, MergeRequest
from tests.git_repos import AUTHOR, HYGIENE_FILES, Repo, make_repo, mr_pipeline_env, run_cli_async
from tests.scenarios import hook_for

RULES = """\
version: 1
rules:
  commit.dco: {severity: warning}
  commit.subject_trailing_period: {severity: error}
  files.prohibited: {severity: error}
  files.secrets: {severity: error}
  files.max_size: {severity: error, max_bytes: 100}
  files.co_change:
    severity: warning
    pairs: [{when: ['src/**'], require: [CHANGELOG.md], message: 'Add a CHANGELOG entry.'}]
  merge_request.size: {severity: warning, max_files: 3}
  merge_request.labels: {severity: warning, any_of: [bug, feature]}
  repository.codeowners: {severity: warning}
"""

BASE_FILES: dict[str, str | None] = {
    **{k: v for k, v in HYGIENE_FILES.items() if isinstance(v, str)},
    ".gitlab/compliance.yml": RULES,
}
# The MR's commits: (message, files). None deletes a file.
TOKEN = "glpat-" + "Zq8Xw2Lk9Pm4Rt7Vb3Nc"
MR_COMMITS: list[tuple[str, dict[str, str | None]]] = [
    ("Added stuff", {"src/feature.py": "x = 1\n", ".env": f"TOKEN={TOKEN}\n"}),
    (
        "fix: drop the contributing guide.\n\nSigned-off-by: Ada Lovelace <ada@example.com>",
        {"CONTRIBUTING.md": None, "data/big.txt": "y" * 150 + "\n"},
    ),
]
TITLE, DESCRIPTION, LABELS = "Add stuff", "Adds the stuff.", ["chore"]

# Rules that read the MR's text and labels: judged in CI and by the server, not offline.
METADATA_RULES = {"merge_request.labels"}


def _git_state(root: Path) -> tuple[Repo, list[str]]:
    repo = make_repo(root)
    repo.commit("chore: initial commit", dict(BASE_FILES))
    repo.checkout("feature", new=True)
    shas = [repo.commit(message, dict(files)) for message, files in MR_COMMITS]
    return repo, shas


def _fake_state(fake: FakeGitLab) -> tuple[MergeRequest, list[str]]:
    project = fake.add_project(
        path_with_namespace="acme/widget", description="A widget", topics=["python"]
    )
    fake.commit(project.id, "main", message="chore: initial commit", files=dict(BASE_FILES))
    shas = [
        fake.commit(
            project.id,
            "feature",
            message=message,
            files=dict(files),
            author_name=AUTHOR[0],
            author_email=AUTHOR[1],
        )
        for message, files in MR_COMMITS
    ]
    mr = fake.open_mr(
        project.id,
        source_branch="feature",
        title=TITLE,
        description=DESCRIPTION,
        labels=LABELS,
    )
    return mr, shas


Finding = tuple[str, str, str, str]  # severity, rule, where, message


def _normalized(text: str, shas: list[str]) -> str:
    """One line, as the note shows it, with each commit's short sha named by position."""
    text = text.replace("`", "'").replace("\r", " ").replace("\n", " ")
    for position, sha in enumerate(shas, 1):
        text = text.replace(sha[:8], f"<commit {position}>")
    return text


def _from_json(document: dict[str, Any], shas: list[str]) -> Counter[Finding]:
    return Counter(
        (
            f["severity"],
            f["rule"],
            _normalized(f["location"], shas),
            _normalized(f["message"], shas),
        )
        for f in document["findings"]
    )


_ICONS = {":x:": "error", ":warning:": "warning", ":information_source:": "info"}
# A rule's block in the note: `#### :x: Title `rule` · 2 findings` (errors), or the same in
# bold inside a collapsed section; then its hints, then one `- where — message` per finding.
_RULE_HEADING = re.compile(
    r"^(?:#### |\*\*)(:[a-z_]+:) .* `(?P<rule>[a-z_]+\.[a-z_]+)` · \d+ findings?(?:\*\*)?$"
)


def _from_note(body: str, shas: list[str]) -> Counter[Finding]:
    """The findings of the server's note, read back to plain text with the GFM renderer's
    tokens: code spans as `'...'` (as `_normalized` shows a message's backticks), escapes
    undone, the zero-width spaces the note puts after `:` dropped."""
    found: Counter[Finding] = Counter()
    severity = rule = ""
    in_hints = False  # in the list under a bare "How to fix:" (a rule with several hints)
    hint_lines = 0
    for line in body.splitlines():
        heading = _RULE_HEADING.match(line)
        if heading:
            severity, rule, in_hints = _ICONS[heading[1]], heading["rule"], False
            continue
        if line.startswith(("<details>", "</details>")):
            rule = ""  # a new section: the passed rules are no findings
            continue
        if line == "How to fix:":
            in_hints, hint_lines = True, 0
            continue
        if in_hints:
            hint_lines += line.startswith("- ")
            in_hints = not (line == "" and hint_lines)
            continue
        if not rule or not line.startswith("- ") or line.startswith("- … and"):
            continue
        where: list[str] = []
        message: list[str] = []
        target, linked_commit = where, False
        for kind, content in gfm.inline_tokens(line[2:]):
            if kind == "link_open":
                linked_commit = linked_commit or target is where
            if kind == "code_inline":
                target.append(content if target is where else f"'{content}'")
            elif kind in ("text", "text_special"):
                if target is where and " — " in content:
                    before, after = content.split(" — ", 1)
                    where.append(before)
                    target = message
                    message.append(after)
                else:
                    target.append(content)
        place = "".join(where).strip()
        commit = re.match(r"^([0-9a-f]{8}) (.*)$", place)
        if commit and "/-/commit/" in line.split(" — ", 1)[0]:
            place = f"commit {commit[1]}: {commit[2]}"
        text = "".join(message).replace("\u200b", "")
        found[(severity, rule, _normalized(place, shas), _normalized(text, shas))] += 1
    return found


def _bot_notes(fake: FakeGitLab, mr: MergeRequest) -> list[dict[str, Any]]:
    return [n for n in fake.notes(mr.project_id, mr.iid) if NOTE_MARKER in str(n["body"])]


async def test_local_ci_and_server_find_the_same(
    fake: FakeGitLab, bot: Bot, tmp_path: Path
) -> None:
    repo, git_shas = _git_state(tmp_path)
    mr, fake_shas = _fake_state(fake)
    build = tmp_path / "build"
    build.mkdir()

    # Locally and in CI without a token: no network, side by side.
    (local_code, local_out, local_err), (ci_code, ci_out, ci_err) = await asyncio.gather(
        run_cli_async("check", "--format", "json", cwd=repo.path, env=repo.env),
        run_cli_async(
            "check",
            str(repo.path),
            "--format",
            "json",
            cwd=build,
            env=mr_pipeline_env(repo, mr, fake.base_url),
        ),
    )
    # In CI with a token (pointed at the fake GitLab): reads the rest, posts the note.
    token_code, token_out, token_err = await run_cli_async(
        "check",
        str(repo.path),
        "--format",
        "json",
        "--post-note",
        cwd=build,
        env=mr_pipeline_env(repo, mr, fake.base_url, COMPLIANCE_TOKEN=fake.token),
    )
    [ci_note] = _bot_notes(fake, mr)
    # The CI job's note links its commits and files into the MR's project, as the server's.
    project_url = mr.web_url.rpartition("/-/merge_requests/")[0]
    assert f"]({project_url}/-/commit/{git_shas[-1]})" in str(ci_note["body"])
    assert f"]({project_url}/-/blob/{git_shas[-1]}/.env" in str(ci_note["body"])
    # The server, from the MR's webhook.
    assert (await bot.send("Merge Request Hook", hook_for(mr))).status_code == 202
    await bot.settle()

    [note] = _bot_notes(fake, mr)  # the server edited the CI job's note: still one
    assert note["id"] == ci_note["id"]
    server = _from_note(str(note["body"]), fake_shas)
    local = _from_json(json.loads(local_out), git_shas)
    ci = _from_json(json.loads(ci_out), git_shas)
    with_token = _from_json(json.loads(token_out), git_shas)

    # The scenario exercises every enabled rule, on every side; a trailing full stop is
    # commit.conventional's finding, which commit.subject_trailing_period does not repeat.
    assert {rule for _, rule, _, _ in server} == {
        "commit.conventional",
        "commit.dco",
        "files.prohibited",
        "files.secrets",
        "files.max_size",
        "files.co_change",
        "merge_request.size",
        "merge_request.labels",
        "repository.required_files",
        "repository.codeowners",
    }
    assert ci == server, (ci_err, sorted(ci.elements()), sorted(server.elements()))
    assert with_token == server, token_err
    offline_judged = Counter({f: n for f, n in server.items() if f[1] not in METADATA_RULES})
    assert local == offline_judged, local_err
    # What the laptop could not see, it says it did not judge.
    local_document = json.loads(local_out)
    not_judged = {item["rule"] for item in local_document["not_judged"]}
    assert METADATA_RULES | {"repository.description", "repository.topics"} <= not_judged
    # One verdict: errors fail everywhere.
    assert (local_code, ci_code, token_code) == (1, 1, 1)
    status = fake.statuses(mr.project_id, mr.head_sha)[-1]
    assert status["status"] == "failed"
    errors = sum(n for f, n in server.items() if f[0] == "error")
    assert json.loads(token_out)["counts"]["error"] == errors
    assert str(status["description"]).startswith(f"{errors} errors")


async def test_what_the_target_branch_already_lacks_fails_no_face(
    fake: FakeGitLab, bot: Bot, tmp_path: Path
) -> None:
    # No LICENSE on main, with the quiet defaults (a missing LICENSE is an error): an MR
    # that does not touch it is not to blame. The server shows the finding under "already
    # on main" and passes the MR; `check` in CI and on a laptop must give the same verdict.
    files = {k: v for k, v in HYGIENE_FILES.items() if isinstance(v, str) and k != "LICENSE"}
    change = ("feat: greet louder", {"src/widget.py": "print('WIDGET')\n"})
    repo = make_repo(tmp_path)
    repo.commit("chore: initial commit", dict(files))
    repo.checkout("feature", new=True)
    repo.commit(change[0], dict(change[1]))
    project = fake.add_project(
        path_with_namespace="acme/widget", description="A widget", topics=["python"]
    )
    fake.commit(project.id, "main", message="chore: initial commit", files=dict(files))
    fake.commit(project.id, "feature", message=change[0], files=dict(change[1]))
    mr = fake.open_mr(project.id, source_branch="feature", title=TITLE, description=DESCRIPTION)
    build = tmp_path / "build"
    build.mkdir()

    assert (await bot.send("Merge Request Hook", hook_for(mr))).status_code == 202
    await bot.settle()
    assert fake.statuses(mr.project_id, mr.head_sha)[-1]["status"] == "success"
    [note] = _bot_notes(fake, mr)
    assert "already on main" in gfm.shown_text(str(note["body"]))

    for env, cwd, args in (
        (repo.env, repo.path, ()),
        (mr_pipeline_env(repo, mr, fake.base_url), build, (str(repo.path),)),
    ):
        code, out, err = await run_cli_async("check", *args, "--format", "json", cwd=cwd, env=env)
        document = json.loads(out)
        assert (code, document["passed"]) == (0, True), (err, document["findings"])
        [finding] = [f for f in document["findings"] if f["rule"] == "repository.required_files"]
        assert "LICENSE" in finding["message"]
        assert finding["already_on"] == "main"
