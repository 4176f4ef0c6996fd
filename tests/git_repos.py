"""Real git repositories for the tests of `check`, `commit-msg` and the CI template.

Every git call runs with an isolated environment: no global or system config (a developer's
`commit.gpgsign` or `init.defaultBranch` must not leak in), a fixed identity, and fixed,
increasing commit dates, so the same script builds the same shas on every run.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

AUTHOR = ("Ada Lovelace", "ada@example.com")
EPOCH = 1_700_000_000


def offline_env() -> dict[str, str]:
    """This process's environment without what would point the CLI at a GitLab or a CI job
    (a developer's GITLAB_TOKEN, a CI runner's CI_* variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "CI_", "GITLAB_"))}
    env.pop("COMPLIANCE_TOKEN", None)
    env.pop("CI", None)
    return env


def git_env(home: Path) -> dict[str, str]:
    """The environment for git (and for the CLI that runs git) in the tests."""
    env = offline_env()
    env.update(
        HOME=str(home),
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME=AUTHOR[0],
        GIT_AUTHOR_EMAIL=AUTHOR[1],
        GIT_COMMITTER_NAME=AUTHOR[0],
        GIT_COMMITTER_EMAIL=AUTHOR[1],
        # Rich would otherwise guess a terminal width; plain output is what is asserted.
        NO_COLOR="1",
    )
    return env


class Repo:
    def __init__(self, path: Path, env: dict[str, str]) -> None:
        self.path = path
        self.env = env
        self._clock = EPOCH

    def git(self, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            ["git", *args],  # noqa: S607 (the git on PATH, as a user runs it)
            cwd=self.path,
            env={**self.env, **(env or {})},
            input=input,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
        return result.stdout.strip()

    def write(self, files: dict[str, str | bytes | None]) -> None:
        for name, content in files.items():
            path = self.path / name
            if content is None:
                self.git("rm", "-q", "--", name)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
            self.git("add", "--", name)

    def commit(
        self,
        message: str,
        files: dict[str, str | bytes | None] | None = None,
        *,
        author: tuple[str, str] = AUTHOR,
    ) -> str:
        self.write(files or {})
        self._clock += 60
        date = f"{self._clock} +0000"
        self.git(
            "commit",
            "-q",
            "--allow-empty",
            "--no-verify",
            "--cleanup=verbatim",
            "-m",
            message,
            env={
                "GIT_AUTHOR_NAME": author[0],
                "GIT_AUTHOR_EMAIL": author[1],
                "GIT_AUTHOR_DATE": date,
                "GIT_COMMITTER_DATE": date,
            },
        )
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def checkout(self, branch: str, *, new: bool = False, start: str | None = None) -> None:
        args = ["checkout", "-q"] + (["-b"] if new else []) + [branch]
        self.git(*args, *([start] if start else []))


def make_repo(root: Path, name: str = "repo") -> Repo:
    """An empty repository whose first branch is `main`."""
    path = root / name
    path.mkdir(parents=True)
    home = root / "home"
    home.mkdir(exist_ok=True)
    repo = Repo(path, git_env(home))
    repo.git("init", "-q", "-b", "main")
    return repo


def run_cli(
    *args: str, cwd: Path, env: dict[str, str], input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m bot.cli ARGS`, a real process, as a user or a CI job runs it."""
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=cwd,
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def run_cli_async(
    *args: str, env: dict[str, str], cwd: Path | None = None
) -> tuple[int, str, str]:
    """`run_cli` without blocking the event loop that serves the fake GitLab (and the bot):
    (exit code, stdout, stderr). Without `cwd` it runs in this process's directory."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def mr_pipeline_env(repo: Repo, mr: Any, gitlab_url: str, **extra: str) -> dict[str, str]:
    """The variables GitLab sets for a merge request pipeline's job, for `mr` (a fake GitLab
    merge request) checked out in `repo`, with the instance at `gitlab_url`.
    https://docs.gitlab.com/ci/variables/predefined_variables/#predefined-variables-for-merge-request-pipelines
    """
    return {
        **repo.env,
        "CI": "true",
        "GITLAB_CI": "true",
        "CI_SERVER_URL": gitlab_url,
        "CI_PROJECT_ID": str(mr.project_id),
        "CI_DEFAULT_BRANCH": "main",
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_COMMIT_SHA": repo.head(),
        "CI_COMMIT_BEFORE_SHA": "0" * 40,  # always zeros in MR pipelines
        "CI_MERGE_REQUEST_IID": str(mr.iid),
        "CI_MERGE_REQUEST_PROJECT_ID": str(mr.project_id),
        "CI_MERGE_REQUEST_PROJECT_URL": mr.web_url.rpartition("/-/merge_requests/")[0],
        "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": str(mr.source_project_id),
        "CI_MERGE_REQUEST_DIFF_BASE_SHA": repo.git("merge-base", "main", "HEAD"),
        "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": mr.source_branch,
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": mr.target_branch,
        "CI_MERGE_REQUEST_TITLE": mr.title,
        "CI_MERGE_REQUEST_DESCRIPTION": mr.description,
        "CI_MERGE_REQUEST_LABELS": ",".join(mr.labels),
        "CI_MERGE_REQUEST_SQUASH_ON_MERGE": "false",
        **extra,
    }


# A repository that passes every repository rule git can judge (as tests/scenarios.py's
# HYGIENE_FILES does for the fake GitLab).
HYGIENE_FILES: dict[str, str | bytes | None] = {
    "README.md": "# Widget\n",
    "LICENSE": "MIT License\n",
    "CONTRIBUTING.md": "Send merge requests.\n",
    "CHANGELOG.md": "## 1.0.0\n",
    ".gitlab/issue_templates/Bug.md": "## Steps\n",
    ".gitlab/merge_request_templates/Default.md": "## What\n",
    "src/widget.py": "print('widget')\n",
}


# -- the report files, validated as GitLab reads them --------------------------------------

CODEQUALITY_FIXTURE = (
    Path(__file__).resolve().parent / "fixtures" / "gitlab-ci" / "codequality_report.json"
)
CODEQUALITY_SEVERITIES = {"info", "minor", "major", "critical", "blocker"}


def junit_cases(path: Path) -> dict[str, ET.Element]:
    """The test cases of a JUnit file, by name, after checking the shape GitLab parses
    (https://docs.gitlab.com/ci/testing/unit_test_reports/): one suite, each case with a
    `classname` and a unique `name`, and the suite's counts matching its cases."""
    root = ET.parse(path).getroot()  # noqa: S314 (the bot's own report, in a test)
    assert root.tag == "testsuites"
    [suite] = root.findall("testsuite")
    cases = suite.findall("testcase")
    names = [case.get("name") for case in cases]
    assert all(names) and len(set(names)) == len(names), names
    assert all(case.get("classname") for case in cases)
    for key, tag in (("failures", "failure"), ("errors", "error"), ("skipped", "skipped")):
        assert suite.get(key) == str(sum(1 for c in cases if c.find(tag) is not None)), key
    assert suite.get("tests") == str(len(cases))
    return {str(case.get("name")): case for case in cases}


def codequality_entries(path: Path) -> list[dict[str, object]]:
    """A Code Quality file's entries, after checking each against the published example's
    shape (tests/fixtures/gitlab-ci/codequality_report.json): a single JSON array, no
    BOM, and per object exactly the fields GitLab reads, with their types."""
    raw = path.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf"), "GitLab rejects a byte order mark"
    entries = json.loads(raw)
    assert isinstance(entries, list)
    [example] = json.loads(CODEQUALITY_FIXTURE.read_text())
    for entry in entries:
        assert set(entry) == set(example), entry
        assert set(entry["location"]) == set(example["location"])
        assert set(entry["location"]["lines"]) == set(example["location"]["lines"])
        assert isinstance(entry["description"], str) and entry["description"]
        assert isinstance(entry["check_name"], str) and entry["check_name"]
        assert isinstance(entry["fingerprint"], str) and entry["fingerprint"]
        assert entry["severity"] in CODEQUALITY_SEVERITIES
        assert isinstance(entry["location"]["path"], str) and entry["location"]["path"]
        line = entry["location"]["lines"]["begin"]
        assert isinstance(line, int) and line >= 1
    return entries
