"""`python -m bench.note_screens [OUT_DIR]`: the MR note of five cases, rendered as GitLab
would (CommonMark + GFM, raw HTML) into a page as wide as an MR discussion, and, when
Chromium is installed, a screenshot of each (`chromium --headless --screenshot`).

Cases: a failing MR, a passing MR with warnings, a broken config, a check that could not
complete, and an MR with 300 findings. Look at the PNGs: the first screen (900 px) must
show the verdict and every failing rule with its count and linked locations.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from bot import engine, report
from bot.config import default_config
from bot.model import ChangedFile, Commit, Report
from bot.rules.base import Context, MergeRequestFacts, ProjectFacts, Scope
from bot.rules.repository import apply_changes
from tests.gfm import page

MR_URL = "https://gitlab.example.com/acme/shop/-/merge_requests/42"
LINKS = report.Links.for_merge_request(MR_URL)
HEAD = "3f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39"
TARGET_TREE = frozenset(
    {"README.md", "CONTRIBUTING.md", "CHANGELOG.md", ".gitlab/issue_templates/Bug.md"}
)


def _sha(n: int) -> str:
    return f"{n:08x}" + "c0ffee" * 5 + "00"


def _judge(
    commits: list[str],
    *,
    description: str,
    changes: tuple[ChangedFile, ...] = (),
    topics: tuple[str, ...] = (),
) -> Report:
    checks = engine.plan(default_config(), Scope.MERGE_REQUEST, "main")
    context = Context(
        scope=Scope.MERGE_REQUEST,
        branch="feature/checkout",
        target_branch="main",
        commits=tuple(
            Commit(_sha(i), message, "Ann Author", "ann@example.com", (_sha(i - 1),))
            for i, message in enumerate(commits, start=1)
        ),
        changes=changes,
        paths=apply_changes(TARGET_TREE, changes),
        project=ProjectFacts(description="The shop.", topics=topics),
        merge_request=MergeRequestFacts(
            title="Checkout: pay by card",
            description=description,
            source_branch="feature/checkout",
            target_branch="main",
        ),
    )
    outcomes = engine.evaluate(checks, context)
    outcomes = engine.mark_inherited(outcomes, checks, replace(context, paths=TARGET_TREE), "main")
    facts = {"commits": len(commits), "files": len(changes)}
    return Report(HEAD, outcomes, facts=facts, config_source=".gitlab/compliance.yml")


def cases() -> dict[str, str]:
    changed = (
        ChangedFile(
            "src/checkout/card.py",
            "src/checkout/card.py",
            new_file=True,
            diff="@@ -0,0 +1,2 @@\n+import os\n+TOKEN = 'x'\n",
        ),
    )
    failing = _judge(
        [
            "Added stuff",
            "fix: handle empty card numbers.",
            "feat: pay by card\n\nSigned-off-by: Ann",
        ],
        description="",
        changes=changed,
    )
    warned = _judge(
        ["feat(checkout): pay by card\nLong explanation right below the subject."],
        description="Adds card payments.\n\nCloses #12.",
        changes=changed,
        topics=("python",),
    )
    broken = Report(
        HEAD,
        error="invalid .gitlab/compliance.yml",
        details=(
            ".gitlab/compliance.yml:4:5: rules.commit.dco: unknown key 'severty'",
            ".gitlab/compliance.yml:9:17: rules.merge_request.title.pattern: not a valid RE2 "
            "pattern: missing )",
        ),
    )
    incomplete = Report(
        HEAD,
        error="GitLab did not answer GET /projects/7/merge_requests/42/diffs after 5 attempt(s) "
        "in 31.0s: 502 <html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
        "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>",
        retryable=True,
    )
    many = _judge([f"Update file {i}" for i in range(300)], description="", changes=changed)
    return {
        "failing": report.render_note(failing, LINKS),
        "warnings": report.render_note(warned, LINKS),
        "broken-config": report.render_note(broken, LINKS),
        "incomplete": report.render_note(incomplete, LINKS),
        "300-findings": report.render_note(many, LINKS),
    }


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "note-screens")
    out.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    for name, note in cases().items():
        (out / f"{name}.md").write_text(note)
        html = out / f"{name}.html"
        html.write_text(page(note, name))
        line = f"{name}: {len(note)} characters"
        if chromium:
            png = out / f"{name}.png"
            subprocess.run(  # noqa: S603 (a fixed program on files this script wrote)
                [
                    chromium,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--hide-scrollbars",
                    f"--screenshot={png}",
                    "--window-size=1280,900",
                    html.as_uri(),
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
            line += f", {png}"
        print(line)


if __name__ == "__main__":
    main()
