"""ci-templates/compliance.yml, run as a GitLab runner would run its job.

The template is parsed as GitLab reads it (a `spec:` header document, `---`, the jobs), its
`$[[ inputs.x ]]` are interpolated, and the job's `script:` lines run in bash in a clone of a
temporary repository, with the variables GitLab predefines for the pipeline. The report
files the job leaves are then checked against the formats GitLab documents.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.local import ZERO_SHA
from bot.settings import Settings
from tests.git_repos import HYGIENE_FILES, Repo, codequality_entries, junit_cases, make_repo

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "ci-templates" / "compliance.yml"
# https://docs.gitlab.com/ci/inputs/#define-input-parameters-with-specinputs
INPUT = re.compile(r"\$\[\[\s*inputs\.([A-Za-z0-9_-]+)\s*\]\]")
# What the includer must give: the input without a default.
PACKAGE = "compliance-bot==0.1.0"

RULES = "version: 1\nrules:\n  files.prohibited: {severity: error}\n"


def _template(**given: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The spec's inputs and the jobs, with each input interpolated as GitLab does: the given
    value, else the default; an input without a default must be given."""
    text = TEMPLATE.read_text()
    header, jobs = list(yaml.safe_load_all(text))
    assert set(header) == {"spec"} and "spec" not in jobs
    inputs: dict[str, Any] = header["spec"]["inputs"]
    values = {}
    for name, definition in inputs.items():
        if name in given:
            value = given[name]
        else:
            assert "default" in definition, f"input {name} is mandatory"
            value = definition["default"]
        if "options" in definition:
            assert value in definition["options"]
        if definition.get("type") == "boolean":
            assert isinstance(value, bool)
            value = "true" if value else "false"
        values[name] = str(value)
    body = text.split("\n---\n", 1)[1]
    used = set(INPUT.findall(body))
    assert used <= set(inputs), f"undeclared inputs: {used - set(inputs)}"
    interpolated = yaml.safe_load(INPUT.sub(lambda m: values[m[1]], body))
    return inputs, interpolated


# What GitLab's CI schema (gitlabhq: app/assets/javascripts/editor/schema/ci.json, `spec` >
# `inputs`) and its interpolation (lib/gitlab/ci/config/interpolation/inputs.rb) check in the
# header: the keywords an input may have, a `type` of four, and a default and options that fit
# the type. https://docs.gitlab.com/ci/inputs/#define-input-parameters-with-specinputs
INPUT_KEYWORDS = {"type", "default", "description", "options", "regex"}
INPUT_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "number": (int, float),
    "boolean": bool,
    "array": list,
}


def test_every_input_is_typed_and_its_default_and_options_fit_the_type() -> None:
    header = next(yaml.safe_load_all(TEMPLATE.read_text()))
    for name, definition in header["spec"]["inputs"].items():
        assert set(definition) <= INPUT_KEYWORDS, name
        assert definition.get("type") in INPUT_TYPES, f"input {name} has no type"
        expected = INPUT_TYPES[definition["type"]]
        if "default" in definition:
            default = definition["default"]
            # YAML's true is an int to Python; a number input must not take a boolean.
            assert isinstance(default, expected) and (
                definition["type"] == "boolean" or not isinstance(default, bool)
            ), name
        if "options" in definition:
            assert definition["type"] in ("string", "number"), name
            options = definition["options"]
            assert isinstance(options, list) and options, name
            assert all(isinstance(option, expected) for option in options), name
            if "default" in definition:
                assert definition["default"] in options, name
        if "regex" in definition:
            assert definition["type"] == "string", name
        assert isinstance(definition.get("description", ""), str), name


def test_every_report_the_args_example_writes_is_kept() -> None:
    inputs, jobs = _template(package=PACKAGE)
    [job] = jobs.values()
    written = re.findall(r"--output ([\w.-]+)", inputs["args"]["description"])
    assert written and set(written) <= set(job["artifacts"]["paths"])


def test_the_template_declares_the_inputs_and_wires_the_reports() -> None:
    inputs, jobs = _template(package=PACKAGE)

    assert {"stage", "image", "config", "fail_on", "post_note", "args", "package"} <= set(inputs)
    assert inputs["fail_on"]["options"] == ["error", "warning"]
    assert inputs["post_note"]["type"] == "boolean" and inputs["post_note"]["default"] is False
    assert "default" not in inputs["package"]  # no guess at a package name on public PyPI
    # A job of its own name: GitLab refuses an external status named like a job of the same
    # pipeline (app/models/generic_commit_status.rb), and the server's status is `compliance`.
    assert list(jobs) == ["compliance-check"]
    assert Settings.model_fields["compliance_status_name"].default not in jobs
    [job] = jobs.values()
    assert job["stage"] == "test" and job["image"].startswith("python:3.1")
    conditions = [rule["if"] for rule in job["rules"]]
    assert '$CI_PIPELINE_SOURCE == "merge_request_event"' in conditions
    assert any("$CI_DEFAULT_BRANCH" in c and "$CI_COMMIT_BRANCH" in c for c in conditions)
    assert job["variables"]["GIT_DEPTH"] == "0"  # every commit of the MR, and the merge-base
    reports = job["artifacts"]["reports"]
    script = "\n".join(job["script"])
    assert f"--output {reports['junit']}" in script
    assert f"--output {reports['codequality']}" in script
    assert job["artifacts"]["when"] == "always"


@pytest.fixture
def origin(tmp_path: Path) -> tuple[Repo, Path]:
    """A project's repository on "GitLab" (a bare repository), from a developer's clone."""
    repo = make_repo(tmp_path, "developer")
    repo.commit("chore: initial commit", {**HYGIENE_FILES, ".gitlab/compliance.yml": RULES})
    bare = tmp_path / "origin.git"
    repo.git("clone", "-q", "--bare", str(repo.path), str(bare))
    repo.git("remote", "add", "origin", str(bare))
    return repo, bare


def _runner_checkout(repo: Repo, bare: Path, build: Path, sha: str) -> None:
    """What the runner does with GIT_DEPTH 0: a full clone, HEAD detached at the job's sha."""
    repo.git("clone", "-q", "--no-checkout", str(bare), str(build))
    subprocess.run(
        ["git", "-C", str(build), "checkout", "-q", "--detach", sha],  # noqa: S607
        env=repo.env,
        check=True,
    )


def _runner_fetch(repo: Repo, bare: Path, build: Path, branch: str, sha: str) -> None:
    """What the runner does for a branch pipeline: a fresh repository whose `origin` is the
    project, fetching only the built branch (`+refs/heads/<branch>`), HEAD detached at the
    job's sha. The default branch is not there.
    https://docs.gitlab.com/ci/runners/configure_runners/#git-strategy"""
    build.mkdir(parents=True)
    for args in (
        ("init", "-q"),
        ("remote", "add", "origin", str(bare)),
        (
            "fetch",
            "-q",
            "--no-tags",
            "origin",
            f"+refs/heads/{branch}:refs/remotes/origin/{branch}",
        ),
        ("checkout", "-q", "--detach", sha),
    ):
        subprocess.run(["git", "-C", str(build), *args], env=repo.env, check=True)  # noqa: S607


def _feature_branch_pipeline(
    repo: Repo, bare: Path, tmp_path: Path, *, before: str
) -> tuple[dict[str, Any], Path, dict[str, str]]:
    """Push `feature` as it stands in `repo` to the project `bare` and ready the template's one
    job for that push's branch pipeline (`before`: CI_COMMIT_BEFORE_SHA): (the job, its build
    directory fetched as the runner fetches a branch, CI's predefined variables)."""
    head = repo.head()
    repo.git("push", "-q", "origin", "feature")
    _, jobs = _template(package=PACKAGE)
    [job] = jobs.values()
    build = tmp_path / "builds" / "acme" / "widget"
    _runner_fetch(repo, bare, build, "feature", head)
    env = _predefined(
        repo,
        CI_PIPELINE_SOURCE="push",
        CI_COMMIT_SHA=head,
        CI_COMMIT_BEFORE_SHA=before,
        CI_COMMIT_BRANCH="feature",
        CI_COMMIT_REF_NAME="feature",
    )
    return job, build, env


def _run_job(
    job: dict[str, Any], build: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """The job's script, line by line in one bash, stopping at the first failure as the
    runner does; the job's `variables:` are set as the runner sets them."""
    bin_dir = build.parent / "bin"
    bin_dir.mkdir(exist_ok=True)
    wrapper = bin_dir / "compliance-bot"
    # The console script the job's `pip install` provides, running this working tree with
    # this interpreter.
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m bot.cli "$@"\n')
    wrapper.chmod(0o755)
    lines = []
    for line in job["script"]:
        if "pip install" in line:
            # Skipped: the package under test is this working tree, already importable here;
            # installing it again would need the network and would change the environment
            # the test suite itself runs in. The wrapper above stands for what it installs.
            assert '"' + PACKAGE + '"' in line
            continue
        lines.append(line)
    variables = {name: str(value) for name, value in job.get("variables", {}).items()}
    return subprocess.run(
        ["bash", "-c", "set -eo pipefail\n" + "\n".join(lines)],  # noqa: S607
        cwd=build,
        env={
            **env,
            **variables,
            "PATH": f"{bin_dir}:{env.get('PATH', '')}",
            "PYTHONPATH": str(ROOT),
            "CI_PROJECT_DIR": str(build),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _predefined(repo: Repo, **variables: str) -> dict[str, str]:
    """GitLab's predefined variables common to every pipeline of the project."""
    return {
        **repo.env,
        "CI": "true",
        "GITLAB_CI": "true",
        "CI_SERVER_URL": "https://gitlab.example.com",
        "CI_API_V4_URL": "https://gitlab.example.com/api/v4",
        "CI_PROJECT_ID": "7",
        "CI_PROJECT_PATH": "acme/widget",
        "CI_DEFAULT_BRANCH": "main",
        "CI_JOB_NAME": "compliance-check",
        "CI_JOB_TOKEN": "job-token-that-must-not-be-used",
        **variables,
    }


def test_the_job_in_an_mr_pipeline_writes_reports_gitlab_reads(
    origin: tuple[Repo, Path], tmp_path: Path
) -> None:
    repo, bare = origin
    base = repo.head()
    repo.checkout("feature", new=True)
    repo.commit("Added stuff", {".env": "SECRET=1\n", "src/feature.py": "x = 1\n"})
    head = repo.commit("feat: the feature", {"src/widget.py": "print('gadget')\n"})
    repo.git("push", "-q", "origin", "feature")
    _, jobs = _template(package=PACKAGE)
    [job] = jobs.values()
    env = _predefined(
        repo,
        CI_PIPELINE_SOURCE="merge_request_event",
        CI_COMMIT_SHA=head,
        CI_COMMIT_BEFORE_SHA=ZERO_SHA,
        CI_COMMIT_REF_NAME="feature",
        CI_MERGE_REQUEST_IID="4",
        CI_MERGE_REQUEST_PROJECT_ID="7",
        CI_MERGE_REQUEST_SOURCE_PROJECT_ID="7",
        CI_MERGE_REQUEST_DIFF_BASE_SHA=base,
        CI_MERGE_REQUEST_SOURCE_BRANCH_NAME="feature",
        CI_MERGE_REQUEST_TARGET_BRANCH_NAME="main",
        CI_MERGE_REQUEST_TITLE="Add the feature",
        CI_MERGE_REQUEST_DESCRIPTION="",
        CI_MERGE_REQUEST_LABELS="",
        CI_MERGE_REQUEST_EVENT_TYPE="detached",
    )
    build = tmp_path / "builds" / "acme" / "widget"
    _runner_checkout(repo, bare, build, head)

    first = _run_job(job, build, env)

    assert first.returncode == 1, first.stdout + first.stderr  # errors fail the job
    assert "Compliance: 3 errors" in first.stdout  # one finding per cause (issue 18)
    cases = junit_cases(build / "compliance-junit.xml")
    failed = {name for name, case in cases.items() if case.find("failure") is not None}
    assert failed == {"commit.conventional", "files.prohibited", "merge_request.description"}
    assert cases["merge_request.draft"].find("failure") is None
    assert cases["repository.topics"].find("skipped") is not None  # no token: not judged
    entries = codequality_entries(build / "gl-code-quality-report.json")
    # Only findings in files: a commit message's finding would show as "resolved" in the
    # next MR's widget, which compares with the default branch's report.
    assert {(e["check_name"], e["severity"]) for e in entries} == {("files.prohibited", "major")}
    [prohibited] = [e for e in entries if e["check_name"] == "files.prohibited"]
    assert prohibited["location"]["path"] == ".env"

    # Run again: GitLab pairs findings across pipelines by fingerprint, so they must not move.
    second = _run_job(job, build, env)
    assert second.returncode == 1
    again = codequality_entries(build / "gl-code-quality-report.json")
    assert [e["fingerprint"] for e in again] == [e["fingerprint"] for e in entries]


def test_the_job_on_the_default_branch_judges_the_pushed_commits(
    origin: tuple[Repo, Path], tmp_path: Path
) -> None:
    repo, bare = origin
    before = repo.head()
    head = repo.commit("docs: explain the widget", {"README.md": "# Widget\n\nIt widgets.\n"})
    repo.git("push", "-q", "origin", "main")
    _, jobs = _template(package=PACKAGE, fail_on="warning", args="--format json --output c.json")
    [job] = jobs.values()
    env = _predefined(
        repo,
        CI_PIPELINE_SOURCE="push",
        CI_COMMIT_SHA=head,
        CI_COMMIT_BEFORE_SHA=before,
        CI_COMMIT_BRANCH="main",
        CI_COMMIT_REF_NAME="main",
    )
    build = tmp_path / "builds" / "acme" / "widget"
    _runner_checkout(repo, bare, build, head)

    result = _run_job(job, build, env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 commit" in result.stdout
    cases = junit_cases(build / "compliance-junit.xml")
    assert not any(case.find("failure") is not None for case in cases.values())
    assert codequality_entries(build / "gl-code-quality-report.json") == []
    assert (build / "c.json").is_file()  # the extra arguments reached the command


def test_a_branch_pipeline_fetches_the_default_branch_its_rules_come_from(
    origin: tuple[Repo, Path], tmp_path: Path
) -> None:
    repo, bare = origin
    repo.checkout("feature", new=True)
    first = repo.commit("feat: the first part", {"src/a.py": "a = 1\n"})
    repo.commit("Added stuff", {".env": "SECRET=1\n"})
    # A push of the second commit only.
    job, build, env = _feature_branch_pipeline(repo, bare, tmp_path, before=first)
    assert (
        subprocess.run(
            ["git", "-C", str(build), "rev-parse", "--verify", "--quiet", "origin/main"],  # noqa: S607
            env=repo.env,
            capture_output=True,
        ).returncode
        != 0
    )  # as on a runner: only the built branch

    result = _run_job(job, build, env)

    # The rules are main's (files.prohibited on); only the pushed commit is judged.
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 commit" in result.stdout
    cases = junit_cases(build / "compliance-junit.xml")
    assert cases["files.prohibited"].find("failure") is not None


def test_a_branch_pipeline_that_cannot_fetch_the_default_branch_says_what_to_add(
    origin: tuple[Repo, Path], tmp_path: Path
) -> None:
    repo, bare = origin
    repo.checkout("feature", new=True)
    repo.commit("feat: the feature", {"src/a.py": "a = 1\n"})
    job, build, env = _feature_branch_pipeline(repo, bare, tmp_path, before=ZERO_SHA)
    # The job cannot read the project's other branches: origin now points nowhere.
    gone = str(tmp_path / "gone.git")
    subprocess.run(
        ["git", "-C", str(build), "remote", "set-url", "origin", gone],  # noqa: S607
        env=repo.env,
        check=True,
    )
    result = _run_job(job, build, env)

    assert result.returncode == 2, result.stdout + result.stderr
    assert "git fetch origin main" in result.stderr
    assert "before_script: git fetch origin +refs/heads/main:refs/remotes/origin/main" in (
        result.stderr
    )
    [case] = junit_cases(build / "compliance-junit.xml").values()
    assert case.find("error") is not None  # the MR widget shows why
