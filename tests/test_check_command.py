"""`compliance-bot check` and `commit-msg` as people run them: real processes, real git."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot.check_command import CI_CODEQUALITY_FILE, CI_JUNIT_FILE
from bot.cli import main
from bot.local import ZERO_SHA, clean_message
from tests.git_repos import (
    HYGIENE_FILES,
    Repo,
    codequality_entries,
    junit_cases,
    make_repo,
    run_cli,
)

ROOT = Path(__file__).resolve().parents[1]

RULES = """\
version: 1
rules:
  files.prohibited: {severity: error}
  commit.dco: {severity: warning}
  merge_request.reviewer: {severity: warning}
"""


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    repo = make_repo(tmp_path)
    repo.commit("chore: initial commit", {**HYGIENE_FILES, ".gitlab/compliance.yml": RULES})
    repo.checkout("feature", new=True)
    return repo


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch, repo: Repo) -> Repo:
    """For the quick cases: `bot.cli.main` in this process, with the tests' git environment."""
    for name in list(os.environ):
        if name.startswith(("CI_", "GITLAB_")) or name in {"CI", "COMPLIANCE_TOKEN"}:
            monkeypatch.delenv(name)
    for name, value in repo.env.items():
        monkeypatch.setenv(name, value)
    return repo


def _ci_env(repo: Repo, **variables: str) -> dict[str, str]:
    """The variables GitLab sets for a merge request pipeline's job."""
    base = repo.git("merge-base", "main", "HEAD")
    values = {
        "CI": "true",
        "GITLAB_CI": "true",
        "CI_SERVER_URL": "https://gitlab.example.com",
        "CI_PROJECT_ID": "7",
        "CI_DEFAULT_BRANCH": "main",
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_COMMIT_SHA": repo.head(),
        "CI_COMMIT_BEFORE_SHA": ZERO_SHA,  # always zeros in MR pipelines
        "CI_COMMIT_REF_NAME": "feature",
        "CI_MERGE_REQUEST_IID": "3",
        "CI_MERGE_REQUEST_PROJECT_ID": "7",
        "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": "7",
        "CI_MERGE_REQUEST_DIFF_BASE_SHA": base,
        "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feature",
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
        "CI_MERGE_REQUEST_TITLE": "feat: add the feature",
        "CI_MERGE_REQUEST_DESCRIPTION": "Adds the feature.",
        "CI_MERGE_REQUEST_LABELS": "feature,backend",
        "CI_MERGE_REQUEST_EVENT_TYPE": "detached",
    }
    values.update(variables)
    return {**repo.env, **values}


# -- check, locally ------------------------------------------------------------------------


def test_a_clean_branch_passes_and_says_what_it_could_not_judge(repo: Repo) -> None:
    repo.commit("feat: add the feature\n\nSigned-off-by: Ada Lovelace <ada@example.com>")

    result = run_cli("check", cwd=repo.path, env=repo.env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("Compliance: all checks passed\n")
    assert "1 commit" in result.stdout and "rules from .gitlab/compliance.yml" in result.stdout
    # Offline, the project's settings and the MR's text are unknown: said, not passed.
    assert "Not judged here" in result.stdout
    assert "repository.topics" in result.stdout and "merge_request.description" in result.stdout
    assert "\x1b[" not in result.stdout  # not a terminal: plain text


def test_findings_exit_1_and_every_format_is_written_at_once(repo: Repo, tmp_path: Path) -> None:
    repo.commit("Added stuff", {".env": "SECRET=1\n", "src/feature.py": "x = 1\n"})
    junit, codequality = tmp_path / "junit.xml", tmp_path / "cq.json"

    result = run_cli(
        "check",
        str(repo.path),
        "--format",
        "json",
        "--format",
        "junit",
        "--output",
        str(junit),
        "--format",
        "codequality",
        "--output",
        str(codequality),
        cwd=tmp_path,
        env=repo.env,
    )

    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)  # JSON took stdout, so no text is mixed in
    found = {(f["rule"], f["severity"], f["location"]) for f in document["findings"]}
    sha = repo.head()[:8]
    assert ("files.prohibited", "error", ".env") in found
    assert ("commit.conventional", "error", f"commit {sha}: Added stuff") in found
    assert ("commit.dco", "warning", f"commit {sha}: Added stuff") in found
    assert document["passed"] is False and document["scope"] == "merge_request"
    assert document["base_sha"] == repo.git("rev-parse", "main")
    not_judged = {item["rule"] for item in document["not_judged"]}
    assert {"repository.description", "merge_request.draft"} <= not_judged

    cases = junit_cases(junit)
    assert cases["files.prohibited"].find("failure") is not None
    assert cases["commit.dco"].find("failure") is None  # a warning does not fail
    assert "sign-off is missing" in (cases["commit.dco"].findtext("system-out") or "")
    # GitLab drops a passed test's output: the warning is shown as a skipped test of its own.
    shown = cases["commit.dco (warnings)"].find("skipped")
    assert shown is not None and "sign-off is missing" in (shown.text or "")
    assert cases["repository.topics"].find("skipped") is not None
    entries = codequality_entries(codequality)
    [prohibited] = [e for e in entries if e["check_name"] == "files.prohibited"]
    assert prohibited["location"] == {"path": ".env", "lines": {"begin": 1}}
    assert prohibited["severity"] == "major"


def test_fail_on_warning_makes_warnings_fail(
    in_process: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    in_process.commit("feat: add the feature")  # no sign-off: a commit.dco warning

    assert main(["check", str(in_process.path)]) == 0
    assert "passed with 1 warning" in capsys.readouterr().out
    assert main(["check", str(in_process.path), "--fail-on", "warning"]) == 1


def test_the_rules_come_from_the_base_not_from_the_branch(repo: Repo) -> None:
    # The branch turns the rule off in its own copy of the config: the base's rules judge it.
    repo.commit(
        "chore: relax the rules",
        {".gitlab/compliance.yml": "version: 1\n", ".env": "SECRET=1\n"},
    )

    result = run_cli("check", "--format", "json", cwd=repo.path, env=repo.env)

    assert result.returncode == 1
    assert "files.prohibited" in {f["rule"] for f in json.loads(result.stdout)["findings"]}


def test_an_invalid_config_exits_2_naming_its_lines(
    in_process: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    in_process.checkout("main")
    in_process.commit(
        "chore: typo", {".gitlab/compliance.yml": "version: 1\nrules:\n  files.nope: {}\n"}
    )
    in_process.checkout("feature")
    in_process.git("reset", "-q", "--hard", "main")

    assert main(["check", str(in_process.path)]) == 2

    out = capsys.readouterr().out
    assert "could not complete: invalid .gitlab/compliance.yml" in out
    assert ".gitlab/compliance.yml:3:3:" in out


@pytest.mark.parametrize(
    ("config", "where"),
    [
        # Nested 1,000 deep in 5 KB: RecursionError before.
        ("rules:\n  merge_request.labels:\n    any_of: " + "[" * 1000 + "]" * 1000 + "\n", ":3:"),
        # A 5,000-digit integer: ValueError before.
        ("rules:\n  commit.subject_length:\n    max_length: " + "9" * 5000 + "\n", ":3:17:"),
    ],
)
def test_a_hostile_config_exits_2_naming_its_line(repo: Repo, config: str, where: str) -> None:
    repo.checkout("main")
    repo.commit("chore: rules", {".gitlab/compliance.yml": config})
    repo.checkout("feature")
    repo.git("reset", "-q", "--hard", "main")

    result = run_cli("check", cwd=repo.path, env=repo.env)

    assert result.returncode == 2, result.stderr[-300:]
    assert "Traceback" not in result.stderr
    assert "could not complete: invalid .gitlab/compliance.yml" in result.stdout
    assert f".gitlab/compliance.yml{where}" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--base", "no-such-rev"], "is not a commit"),
        (["--post-note"], "merge request pipeline"),
        (["--format", "json", "--format", "text"], "only one --format"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    in_process: Repo, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["check", str(in_process.path), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_output_must_follow_a_format_and_a_directory_must_be_a_repository(
    in_process: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["check", "--output", "x.json"])
    assert raised.value.code == 2
    assert "--output FILE must follow" in capsys.readouterr().err
    assert main(["check", str(tmp_path / "home")]) == 2
    assert "not a git repository" in capsys.readouterr().err


# -- check, in GitLab CI -------------------------------------------------------------------


def test_an_mr_pipeline_judges_the_mr_from_the_predefined_variables(
    repo: Repo, tmp_path: Path
) -> None:
    repo.commit("feat: add the feature\n\nSigned-off-by: Ada Lovelace <ada@example.com>")
    env = _ci_env(repo, CI_MERGE_REQUEST_DESCRIPTION="", CI_MERGE_REQUEST_TITLE="Draft: wip")
    build = tmp_path / "build"
    build.mkdir()

    result = run_cli("check", str(repo.path), "--post-note", cwd=build, env=env)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "merge_request.description" in result.stdout and "merge_request.draft" in result.stdout
    # No token: the artifacts are the report, and the job says so.
    assert "--post-note needs COMPLIANCE_TOKEN" in result.stderr
    # The reports GitLab picks up, at the names the CI template gives.
    cases = junit_cases(build / CI_JUNIT_FILE)
    assert cases["merge_request.description"].find("failure") is not None
    # CI's variables do not name the reviewers: skipped, with the reason, not passed.
    skipped = cases["merge_request.reviewer"].find("skipped")
    assert skipped is not None and "COMPLIANCE_TOKEN" in (skipped.text or "")
    # The MR's description is in no file: the JUnit report carries it, Code Quality does not.
    assert codequality_entries(build / CI_CODEQUALITY_FILE) == []


def test_a_new_branch_pipeline_is_compared_with_the_default_branch(
    in_process: Repo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = in_process
    first = repo.commit("Added stuff", {".env": "A=1\n"})
    second = repo.commit("feat: more")
    env = {
        "GITLAB_CI": "true",
        "CI_COMMIT_SHA": second,
        "CI_COMMIT_BRANCH": "feature",
        "CI_DEFAULT_BRANCH": "main",
        "CI_PIPELINE_SOURCE": "push",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(repo.path.parent)

    monkeypatch.setenv("CI_COMMIT_BEFORE_SHA", ZERO_SHA)
    assert main(["check", str(repo.path), "--format", "json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["scope"] == "push" and document["facts"] == {"commits": 2}

    monkeypatch.setenv("CI_COMMIT_BEFORE_SHA", first)  # a push of the second commit only
    # A note needs an MR: on a branch pipeline --post-note says so and changes no verdict.
    assert main(["check", str(repo.path), "--format", "json", "--post-note"]) == 0
    out, err = capsys.readouterr()
    document = json.loads(out)
    assert document["facts"] == {"commits": 1} and document["base_sha"] == first
    assert "no merge request" in err


def test_a_truncated_description_is_judged_in_part_and_said_so(
    in_process: Repo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    in_process.commit("feat: add the feature\n\nSigned-off-by: Ada Lovelace <ada@example.com>")
    env = _ci_env(
        in_process,
        CI_MERGE_REQUEST_DESCRIPTION="x" * 2700,
        CI_MERGE_REQUEST_DESCRIPTION_IS_TRUNCATED="true",
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(in_process.path.parent)

    assert main(["check", str(in_process.path), "--format", "json"]) == 0

    document = json.loads(capsys.readouterr().out)
    [item] = [i for i in document["not_judged"] if i["rule"] == "merge_request.description"]
    assert item["partial"] and "2,700 characters" in item["reason"]
    [reviewer] = [i for i in document["not_judged"] if i["rule"] == "merge_request.reviewer"]
    assert not reviewer["partial"]


# -- commit-msg ----------------------------------------------------------------------------


def test_commit_msg_judges_one_message_with_the_commit_rules(repo: Repo, tmp_path: Path) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text("feat: add x\n\nSigned-off-by: Ada Lovelace <ada@example.com>\n")
    bad.write_text("Added stuff\n# Please enter the commit message for your changes.\n")

    passed = run_cli("commit-msg", str(good), cwd=repo.path, env=repo.env)
    failed = run_cli("commit-msg", str(bad), cwd=repo.path, env=repo.env)

    assert (passed.returncode, passed.stdout, passed.stderr) == (0, "", "")
    assert failed.returncode == 1 and failed.stdout == ""
    assert "error: commit.conventional" in failed.stderr
    # The author comes from git (`git var GIT_AUTHOR_IDENT`), so the DCO rule can judge.
    assert "warning: commit.dco" in failed.stderr
    assert "Please enter" not in failed.stderr  # comments are not part of the message


def test_commit_msg_works_as_a_plain_git_hook(repo: Repo) -> None:
    hook = repo.path / ".git" / "hooks" / "commit-msg"
    hook.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m bot.cli commit-msg "$1"\n')
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    # The hook runs the bot from this checkout, as an installed `compliance-bot` would.
    env = {**repo.env, "PYTHONPATH": str(ROOT)}

    rejected = run_git_commit(repo, "Added stuff", env)
    accepted = run_git_commit(repo, "feat: add the feature", env)

    assert rejected.returncode == 1 and "commit.conventional" in rejected.stderr
    assert accepted.returncode == 0, accepted.stderr
    assert repo.git("log", "-1", "--format=%s") == "feat: add the feature"


def run_git_commit(
    repo: Repo, message: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "commit", "--allow-empty", "-q", "-m", message],  # noqa: S607
        cwd=repo.path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_message_is_cleaned_up_as_git_will_store_it() -> None:
    text = (
        "feat: add x  \n\n\n\nbody\n# a comment\n"
        "# ------------------------ >8 ------------------------\n"
        "diff --git a/x b/x\n+Added stuff\n"
    )
    assert clean_message(text) == "feat: add x\n\nbody\n"
    assert clean_message("; note\nfix: y\n", ";") == "fix: y\n"
    assert clean_message("# only comments\n") == ""


def test_the_pre_commit_hook_runs_commit_msg_at_the_commit_msg_stage() -> None:
    [hook] = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["entry"] == "compliance-bot commit-msg"
    assert hook["stages"] == ["commit-msg"]
    assert hook["language"] == "python"
    assert hook.get("pass_filenames", True)  # pre-commit passes the message file


def test_a_default_branch_pipeline_without_a_push_judges_the_last_commit(
    in_process: Repo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A scheduled, web or API pipeline has an all-zeros CI_COMMIT_BEFORE_SHA: there is no
    # pushed range, and an empty one would pass the commit rules having judged nothing.
    repo = in_process
    repo.checkout("main")
    head = repo.commit("Added stuff")
    env = {
        "GITLAB_CI": "true",
        "CI_COMMIT_SHA": head,
        "CI_COMMIT_BRANCH": "main",
        "CI_DEFAULT_BRANCH": "main",
        "CI_PIPELINE_SOURCE": "schedule",
        "CI_COMMIT_BEFORE_SHA": ZERO_SHA,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(repo.path.parent)

    assert main(["check", str(repo.path), "--format", "json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["facts"] == {"commits": 1}
    assert {f["rule"] for f in document["findings"]} >= {"commit.conventional"}


def test_a_usage_error_in_ci_still_leaves_reports_that_say_what_went_wrong(
    in_process: Repo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The MR widget reads the report files; with none, a job that exits 2 shows nothing.
    env = _ci_env(in_process)
    del env["CI_MERGE_REQUEST_DIFF_BASE_SHA"]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)

    assert main(["check", str(in_process.path)]) == 2

    [case] = junit_cases(tmp_path / CI_JUNIT_FILE).values()
    error = case.find("error")
    assert error is not None and "CI_MERGE_REQUEST_DIFF_BASE_SHA" in (error.text or "")
    assert codequality_entries(tmp_path / CI_CODEQUALITY_FILE) == []
