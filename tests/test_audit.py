"""`compliance-bot audit GROUP`, against the fake GitLab over real HTTP.

The command's async core is called with the process's one client (`run_audit` opens it with
`open_gitlab`), and the command itself runs as a user runs it: `python -m bot.cli audit`, a
real process pointed at the fake by GITLAB_URL.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.audit import AuditOptions, AuditResult, Row, Status, run_audit
from bot.config import load
from bot.settings import GitLabSettings
from tests.fake_gitlab import FakeGitLab, Project
from tests.scenarios import HYGIENE_FILES

SETTINGS_ENV = {"GITLAB_URL", "GITLAB_TOKEN", "GITLAB_CONCURRENCY", "HTTP_POOL_SIZE"}


def settings(fake: FakeGitLab, **overrides: Any) -> GitLabSettings:
    values: dict[str, Any] = {
        "gitlab_url": fake.base_url,
        "gitlab_token": fake.token,
        # Fast, bounded retries keep the "GitLab unavailable" cases short.
        "retry_attempts": 2,
        "retry_base_delay": 0.01,
        "retry_total_seconds": 2.0,
    }
    values.update(overrides)
    return GitLabSettings(**values)


async def audit(fake: FakeGitLab, group: str = "acme", **options: Any) -> AuditResult:
    return await run_audit(settings(fake), AuditOptions(group=group, **options))


def project(
    fake: FakeGitLab,
    path: str,
    files: dict[str, str | None] | None = None,
    *,
    description: str = "A widget",
    topics: tuple[str, ...] = ("python",),
    **kwargs: Any,
) -> Project:
    """A project whose default branch holds `files` (HYGIENE_FILES when not given)."""
    fake.add_group(path.rsplit("/", 1)[0])
    made = fake.add_project(
        path_with_namespace=path, description=description, topics=list(topics), **kwargs
    )
    fake.commit(
        made.id, "main", message="chore: init", files=HYGIENE_FILES if files is None else files
    )
    return made


def user_project(
    fake: FakeGitLab, username: str, files: dict[str, str | None] | None, **kwargs: Any
) -> Project:
    """A project in a user's personal namespace; `files=None` leaves it empty."""
    made = fake.add_project(path_with_namespace=f"{username}/{username}", **kwargs)
    if files is not None:
        fake.commit(made.id, "main", message="docs: about me", files=files)
    return made


def without(*names: str) -> dict[str, str | None]:
    return {k: v for k, v in HYGIENE_FILES.items() if k not in names}


def by_name(rows: list[Row]) -> dict[str, Row]:
    return {row.name: row for row in rows}


def mixed_group(fake: FakeGitLab) -> dict[str, Project]:
    """One of each case, spread over subgroups, plus what must not be audited."""
    made = {
        "good": project(fake, "acme/good"),
        "no-license": project(fake, "acme/platform/no-license", without("LICENSE")),
        "deep": project(fake, "acme/platform/inner/deep"),
        "forbidden": project(fake, "acme/platform/forbidden"),
        "old": project(fake, "acme/old", without("README.md"), archived=True),
        "elsewhere": project(fake, "other/elsewhere"),
        "shared": project(fake, "other/shared", without("README.md")),
    }
    made["empty"] = fake.add_project(path_with_namespace="acme/empty")
    fake.share_project_with_group(made["shared"].id, fake.add_group("acme").id)
    # The token's role does not let it read this repository.
    fake.fail("GET", rf"^/api/v4/projects/{made['forbidden'].id}/repository/", 403)
    return made


# -- what is audited, and the verdicts -----------------------------------------------------


async def test_every_project_of_the_group_and_its_subgroups_gets_a_verdict(
    fake: FakeGitLab,
) -> None:
    mixed_group(fake)
    result = await audit(fake)
    rows = by_name(result.projects)
    assert set(rows) == {
        "acme/good",
        "acme/platform/no-license",
        "acme/platform/inner/deep",
        "acme/platform/forbidden",
        "acme/empty",
    }  # no archived project, nothing from another group, not even shared into this one
    assert rows["acme/good"].status is Status.COMPLIANT
    assert rows["acme/platform/inner/deep"].status is Status.COMPLIANT
    missing = rows["acme/platform/no-license"]
    assert missing.status is Status.NON_COMPLIANT
    assert [(f.rule, f.message) for f in missing.findings] == [
        ("repository.required_files", "LICENSE is missing")
    ]
    assert rows["acme/empty"].status is Status.ERROR
    assert rows["acme/empty"].reason == "empty repository"
    forbidden = rows["acme/platform/forbidden"]
    assert forbidden.status is Status.ERROR
    assert "403" in forbidden.reason and "repository/tree" in forbidden.reason
    assert result.exit_code() == 3


async def test_the_listing_asks_gitlab_for_exactly_the_group_s_own_active_projects(
    fake: FakeGitLab,
) -> None:
    mixed_group(fake)
    await audit(fake, group="acme")
    (listing,) = fake.calls("GET", "/groups/")
    assert listing.path == "/api/v4/groups/acme/projects"
    assert listing.query == {
        "include_subgroups": "true",
        "with_shared": "false",
        "archived": "false",
        "order_by": "id",
        "sort": "asc",
        "per_page": "100",
    }


async def test_archived_projects_are_audited_on_request(fake: FakeGitLab) -> None:
    mixed_group(fake)
    result = await audit(fake, include_archived=True)
    old = by_name(result.projects)["acme/old"]
    assert old.status is Status.NON_COMPLIANT
    assert [f.message for f in old.findings if f.severity == "error"] == ["README is missing"]
    (listing,) = fake.calls("GET", "/groups/")
    assert "archived" not in listing.query


async def test_a_group_given_by_id_or_by_nested_path(fake: FakeGitLab) -> None:
    mixed_group(fake)
    platform = fake.add_group("acme/platform")
    by_id = await audit(fake, group=str(platform.id))
    by_path = await audit(fake, group="acme/platform")
    expected = {"acme/platform/no-license", "acme/platform/inner/deep", "acme/platform/forbidden"}
    assert {r.name for r in by_id.projects} == {r.name for r in by_path.projects} == expected
    assert fake.calls("GET", "/groups/acme%2Fplatform/projects")


async def test_empty_repositories_cost_no_call_and_are_never_compliant(fake: FakeGitLab) -> None:
    empty = fake.add_project(path_with_namespace="acme/empty")
    fake.add_group("acme")
    result = await audit(fake)
    (row,) = result.projects
    assert (row.status, row.reason) == (Status.ERROR, "empty repository")
    assert not fake.calls(path_contains=f"/projects/{empty.id}/")
    assert result.exit_code() == 3


async def test_a_tree_gitlab_answers_404_is_an_empty_repository(fake: FakeGitLab) -> None:
    gone = project(fake, "acme/gone")
    fake.fail(
        "GET", rf"/projects/{gone.id}/repository/tree", 404, body='{"message":"404 Tree Not Found"}'
    )
    (row,) = (await audit(fake)).projects
    assert row.status is Status.ERROR
    assert row.reason.startswith("empty repository")


async def test_gitlab_unavailable_after_retries_is_an_error_row_not_a_crash(
    fake: FakeGitLab,
) -> None:
    project(fake, "acme/good")
    flaky = project(fake, "acme/flaky")
    fake.fail("GET", rf"/projects/{flaky.id}/repository/tree", 503)
    rows = by_name((await audit(fake)).projects)
    assert rows["acme/good"].status is Status.COMPLIANT
    assert rows["acme/flaky"].status is Status.ERROR
    assert "did not answer" in rows["acme/flaky"].reason
    assert len(fake.calls("GET", f"/projects/{flaky.id}/repository/tree")) == 2  # both attempts


async def test_a_listing_gitlab_refuses_is_reported(fake: FakeGitLab) -> None:
    project(fake, "acme/good")
    fake.fail("GET", r"/groups/acme/projects", 500)
    result = await audit(fake)
    assert result.projects == []
    assert result.listing_error is not None
    assert result.listing_error.startswith("could not list the projects of acme: GitLab did not")
    assert result.exit_code() == 3


async def test_a_listing_that_fails_midway_keeps_the_verdicts_already_reached(
    fake: FakeGitLab,
) -> None:
    for i in range(150):
        project(fake, f"acme/p{i:03d}", {"README.md": "x\n"})

    class FailAfterFirstPage:
        """Told of each listing page as it arrives: GitLab fails from the second on."""

        def found(self, count: int) -> None:
            fake.fail("GET", r"/groups/acme/projects", 503)

        def done(self, row: Row) -> None:
            pass

    result = await run_audit(settings(fake), AuditOptions(group="acme"), FailAfterFirstPage())
    assert result.listing_error is not None and "503" in result.listing_error
    assert len(result.projects) == 100  # the first page, each with its verdict
    assert {r.status for r in result.projects} == {Status.NON_COMPLIANT}  # no LICENSE
    assert result.exit_code() == 3


async def test_pages_are_followed_and_each_project_is_checked_once(fake: FakeGitLab) -> None:
    for i in range(230):
        project(fake, f"acme/team-{i % 3}/p{i:03d}")
    result = await audit(fake)
    assert len(result.projects) == len({r.id for r in result.projects}) == 230
    assert all(r.status is Status.COMPLIANT for r in result.projects)
    pages = fake.calls("GET", "/groups/acme/projects")
    assert [r.query.get("page", "1") for r in pages] == ["1", "2", "3"]


async def test_calls_per_project(fake: FakeGitLab) -> None:
    """The listing carries description, topics, default branch and empty_repo: a project
    costs its root tree, its .gitlab/ tree when the root lists one, and its config file."""
    plain = project(fake, "acme/plain", {"README.md": "x\n", "LICENSE": "MIT\n"})
    templated = project(fake, "acme/templated")
    configured = project(
        fake,
        "acme/configured",
        {**HYGIENE_FILES, ".gitlab/compliance.yml": "version: 1\n"},
    )
    await audit(fake)

    def calls(p: Project) -> int:
        return len(fake.calls(path_contains=f"/projects/{p.id}/"))

    assert (calls(plain), calls(templated), calls(configured)) == (1, 2, 3)
    # And one listing page, and one look for the group's policy project (acme/compliance-
    # policy: a 404, asked once for all the group's projects).
    assert len(fake.requests) == 1 + 1 + 2 + 3 + 1


async def test_projects_are_checked_concurrently_within_the_bound(fake: FakeGitLab) -> None:
    for i in range(24):
        project(fake, f"acme/p{i:02d}", {"README.md": "x\n"})
    fake.latency = 0.05
    started = time.monotonic()
    result = await audit(fake, concurrency=4)
    elapsed = time.monotonic() - started
    assert len(result.projects) == 24
    # One after the other: 25 calls of 50 ms = 1.25 s at least.
    assert elapsed < 0.9
    # One connection per project in flight, plus one for the listing.
    assert fake.connections() <= 5


# -- which rules judge a project -----------------------------------------------------------


async def test_each_project_is_judged_by_its_own_config_on_its_default_branch(
    fake: FakeGitLab,
) -> None:
    relaxed = "version: 1\nrules:\n  repository.required_files:\n    files:\n"
    relaxed += "      - {name: README, accept: ['README*']}\n"
    own = project(fake, "acme/own-rules", {**without("LICENSE"), ".gitlab/compliance.yml": relaxed})
    # A config on another branch does not count.
    branchy = project(fake, "acme/branchy", without("LICENSE"))
    fake.commit(
        branchy.id, "feature", message="feat: relax", files={".gitlab/compliance.yml": relaxed}
    )
    rows = by_name((await audit(fake)).projects)
    assert rows["acme/own-rules"].status is Status.COMPLIANT
    assert rows["acme/own-rules"].config_source == ".gitlab/compliance.yml"
    assert rows["acme/branchy"].status is Status.NON_COMPLIANT
    assert rows["acme/branchy"].config_source == "defaults"
    (read,) = fake.calls("GET", "/repository/files/")
    assert read.query == {"ref": "main"} and f"/projects/{own.id}/" in read.path


async def test_one_config_for_all_projects_replaces_theirs_and_is_not_read(
    fake: FakeGitLab,
) -> None:
    project(fake, "acme/with-file", {**HYGIENE_FILES, ".gitlab/compliance.yml": "version: 1\n"})
    project(fake, "acme/no-topics", topics=())
    policy = load("version: 1\nrules:\n  repository.topics: {severity: error}\n", "policy.yml")
    result = await audit(fake, policy=policy)
    rows = by_name(result.projects)
    assert rows["acme/with-file"].status is Status.COMPLIANT
    assert rows["acme/no-topics"].status is Status.NON_COMPLIANT
    assert {r.config_source for r in result.projects} == {"policy.yml"}
    assert not fake.calls("GET", "/repository/files/")


async def test_an_invalid_project_config_makes_the_project_non_compliant(fake: FakeGitLab) -> None:
    project(fake, "acme/broken", {**HYGIENE_FILES, ".gitlab/compliance.yml": "rules: [1\n"})
    (row,) = (await audit(fake)).projects
    assert row.status is Status.NON_COMPLIANT
    assert row.findings[0].message == "invalid .gitlab/compliance.yml"
    assert row.details and row.details[0].startswith(".gitlab/compliance.yml:")


async def test_description_and_topics_come_from_the_listing(fake: FakeGitLab) -> None:
    project(fake, "acme/bare", description="", topics=())
    (row,) = (await audit(fake)).projects
    # Both are warnings by default: gaps that do not fail the run, but not "compliant".
    assert row.status is Status.WARNINGS
    assert {f.rule for f in row.findings} == {"repository.description", "repository.topics"}
    assert row.warnings == 2 and row.errors == 0
    assert not [r for r in fake.requests if r.path == f"/api/v4/projects/{row.id}"]


# -- members: profile READMEs --------------------------------------------------------------


def members_group(fake: FakeGitLab) -> None:
    parent = fake.add_group("acme")
    team = fake.add_group("acme/team")
    project(fake, "acme/team/app")
    fake.add_group_member(team.id, "alice")
    fake.add_group_member(team.id, "bob")
    fake.add_group_member(team.id, "carol")
    fake.add_group_member(team.id, "dave")
    fake.add_group_member(team.id, "erin")
    fake.add_group_member(team.id, "mallory", state="blocked")
    fake.add_group_member(parent.id, "olivia", access_level=50)  # inherited by acme/team
    user_project(fake, "alice", {"README.md": "# Alice\n"}, visibility="public")
    user_project(fake, "olivia", {"readme.rst": "Olivia\n"}, visibility="public")
    user_project(fake, "bob", {"README.md": "# Bob\n"})  # private: not on the profile
    user_project(fake, "dave", {"notes.txt": "x\n"}, visibility="public")
    user_project(fake, "erin", None, visibility="public")  # no commits yet


async def test_members_need_a_public_project_named_like_them_with_a_readme(
    fake: FakeGitLab,
) -> None:
    members_group(fake)
    result = await audit(fake, group="acme/team", members=True)
    assert result.members is not None
    rows = by_name(result.members)
    assert set(rows) == {"alice", "bob", "carol", "dave", "erin", "olivia"}  # not the blocked
    assert rows["alice"].status is Status.COMPLIANT
    assert rows["olivia"].status is Status.COMPLIANT
    assert "bob/bob is private" in rows["bob"].summary()
    assert rows["carol"].summary() == "no public project carol/carol"
    assert rows["dave"].summary() == "dave/dave has no README at its root"
    assert rows["erin"].summary() == "erin/erin has no README (empty repository)"
    assert all(rows[n].status is Status.NON_COMPLIANT for n in ("bob", "carol", "dave", "erin"))
    (listing,) = fake.calls("GET", "/members/all")
    assert listing.path == "/api/v4/groups/acme%2Fteam/members/all"
    assert result.exit_code() == 1


async def test_a_member_that_cannot_be_read_is_an_error(fake: FakeGitLab) -> None:
    members_group(fake)
    fake.fail("GET", r"/projects/alice%2Falice$", 403)
    result = await audit(fake, group="acme/team", members=True)
    assert result.members is not None
    alice = by_name(result.members)["alice"]
    assert alice.status is Status.ERROR and "403" in alice.reason
    assert result.exit_code() == 3


async def test_members_listing_failure_is_reported(fake: FakeGitLab) -> None:
    members_group(fake)
    fake.fail("GET", r"/members/all", 403)
    result = await audit(fake, group="acme/team", members=True)
    assert result.members == []
    assert result.members_error is not None and "403" in result.members_error
    assert result.exit_code() == 3


# -- the command, as a user runs it --------------------------------------------------------


async def cli(
    fake: FakeGitLab, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    base = {k: v for k, v in os.environ.items() if k not in SETTINGS_ENV}
    environment = {
        **base,
        "GITLAB_URL": fake.base_url,
        "GITLAB_TOKEN": fake.token,
        "RETRY_ATTEMPTS": "2",
        "RETRY_BASE_DELAY": "0.01",
        **(env or {}),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "audit", *args,
        env=environment, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_exit_code_0_when_every_project_is_compliant(fake: FakeGitLab) -> None:
    project(fake, "acme/good")
    project(fake, "acme/sub/also-good")
    code, out, err = await cli(fake, "acme")
    assert code == 0, err
    assert "acme/good" in out and "acme/sub/also-good" in out
    assert "Projects: 2 checked: 2 compliant, 0 with warnings, 0 non-compliant, 0 errors" in out
    assert fake.token not in out + err


async def test_exit_code_1_when_a_project_is_non_compliant(fake: FakeGitLab) -> None:
    project(fake, "acme/good")
    project(fake, "acme/no-readme", without("README.md"))
    code, out, _ = await cli(fake, "acme", "--only-failing")
    assert code == 1
    assert "acme/no-readme" in out and "README is missing" in out
    assert "acme/good" not in out.split("Projects:")[0]  # listed only in the counts
    assert "Projects: 2 checked: 1 compliant, 0 with warnings, 1 non-compliant, 0 errors" in out


async def test_exit_code_3_when_a_project_errored(fake: FakeGitLab) -> None:
    mixed_group(fake)
    code, out, _ = await cli(fake, "acme", "--format", "json")
    assert code == 3
    document = json.loads(out)
    assert document["exit_code"] == 3
    assert document["summary"]["projects"] == {
        "total": 5,
        "compliant": 2,
        "warnings": 0,
        "non_compliant": 1,
        "error": 2,
    }
    statuses = {p["name"]: p["status"] for p in document["projects"]}
    assert statuses["acme/empty"] == "error"
    assert document["members"] is None


async def test_json_format_carries_findings_and_filters_with_only_failing(
    fake: FakeGitLab,
) -> None:
    project(fake, "acme/good")
    project(fake, "acme/no-license", without("LICENSE"), description="")
    code, out, _ = await cli(fake, "acme", "--format", "json", "--only-failing")
    assert code == 1
    document = json.loads(out)
    (failing,) = document["projects"]
    assert failing["name"] == "acme/no-license"
    assert failing["errors"] == 1 and failing["warnings"] == 1
    assert {(f["rule"], f["severity"]) for f in failing["findings"]} == {
        ("repository.required_files", "error"),
        ("repository.description", "warning"),
    }
    assert document["summary"]["projects"]["total"] == 2


async def test_csv_format_is_parseable_and_the_summary_goes_to_stderr(fake: FakeGitLab) -> None:
    mixed_group(fake)
    code, out, err = await cli(fake, "acme", "--format", "csv")
    assert code == 3
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["name"]: r["status"] for r in rows} == {
        "acme/empty": "error",
        "acme/good": "compliant",
        "acme/platform/forbidden": "error",
        "acme/platform/inner/deep": "compliant",
        "acme/platform/no-license": "non-compliant",
    }
    assert {r["kind"] for r in rows} == {"project"}
    assert "Projects: 5 checked: 2 compliant, 0 with warnings, 1 non-compliant, 2 errors" in err


async def test_markdown_format_with_members(fake: FakeGitLab) -> None:
    members_group(fake)
    code, out, _ = await cli(fake, "acme/team", "--format", "markdown", "--members")
    assert code == 1
    assert "| Project | Status | Errors | Warnings | Details |" in out
    assert "| Member | Status | Errors | Warnings | Details |" in out
    assert "carol" in out and "no public project carol/carol" in out
    assert "- Members: 6 checked: 2 compliant, 0 with warnings, 4 non-compliant, 0 errors" in out


async def test_include_archived_on_the_command_line(fake: FakeGitLab) -> None:
    project(fake, "acme/good")
    project(fake, "acme/old", without("README.md"), archived=True)
    assert (await cli(fake, "acme"))[0] == 0
    code, out, _ = await cli(fake, "acme", "--include-archived")
    assert code == 1 and "acme/old" in out


async def test_config_file_on_the_command_line(fake: FakeGitLab, tmp_path: Path) -> None:
    project(fake, "acme/no-topics", topics=())
    policy = tmp_path / "policy.yml"
    policy.write_text("version: 1\nrules:\n  repository.topics: {severity: error}\n")
    assert (await cli(fake, "acme"))[0] == 0
    code, out, _ = await cli(fake, "acme", "--config", str(policy))
    assert code == 1 and "at least 1 expected" in out


async def test_invalid_config_file_is_a_usage_error(fake: FakeGitLab, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text("rules:\n  repository.nope: {}\n")
    code, _, err = await cli(fake, "acme", "--config", str(policy))
    assert code == 2
    assert f"{policy}:2:3: rules.repository.nope: unknown key" in err
    assert not fake.requests
    code, _, err = await cli(fake, "acme", "--config", str(tmp_path / "missing.yml"))
    assert code == 2 and "cannot read" in err


async def test_missing_settings_exit_2_with_one_line(fake: FakeGitLab) -> None:
    base = {k: v for k, v in os.environ.items() if k not in SETTINGS_ENV}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "audit", "acme",
        env=base, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await process.communicate()
    assert process.returncode == 2
    lines = stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert "GITLAB_URL is not set" in lines[0] and "GITLAB_TOKEN is not set" in lines[0]


async def test_unknown_group_exits_3_and_says_so(fake: FakeGitLab) -> None:
    code, out, err = await cli(fake, "nope")
    assert code == 3
    assert "error: could not list the projects of nope" in out
    # Also on stderr, for whoever redirected the report to a file.
    assert "404 Group Not Found" in err.strip().splitlines()[-1]


# -- the benchmark, small --------------------------------------------------------------------


async def test_benchmark_smoke() -> None:
    from bench import audit as bench_audit

    result = await bench_audit.measure(projects=20, latency=0.0, baseline_projects=10)
    assert result["projects"] == 20
    assert result["audit"]["calls_per_project"] <= 3
    assert result["baseline"]["projects_measured"] == 10
    assert result["verdicts_agree"]
    assert "speed-up" in bench_audit.table(result)


# -- the output on a terminal, and the client's size ---------------------------------------


def test_rich_table_lists_rows_and_counts() -> None:
    pytest.importorskip("rich")
    from bot.audit_report import print_rich
    from bot.model import Finding, Severity

    result = AuditResult(
        group="acme",
        projects=[
            Row("project", 1, "acme/good", "http://gitlab/acme/good", Status.COMPLIANT),
            Row(
                "project",
                2,
                "acme/bad",
                "http://gitlab/acme/bad",
                Status.NON_COMPLIANT,
                findings=(
                    Finding("repository.required_files", Severity.ERROR, "LICENSE is missing"),
                ),
            ),
            Row("project", 3, "acme/empty", "", Status.ERROR, reason="empty repository"),
        ],
    )
    stream = io.StringIO()
    print_rich(result, stream, only_failing=True)
    text = stream.getvalue()
    assert "acme/bad" in text and "LICENSE is missing" in text and "empty repository" in text
    assert "acme/good" not in text
    assert "Projects: 3 checked: 1 compliant, 0 with warnings, 1 non-compliant, 1 error" in text


def test_the_client_follows_concurrency_unless_its_size_was_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.audit import client_settings

    monkeypatch.setenv("GITLAB_URL", "https://gitlab.example.com")
    monkeypatch.setenv("GITLAB_TOKEN", "glpat-x")
    sized = client_settings(GitLabSettings(), 40)
    assert (sized.gitlab_concurrency, sized.http_pool_size) == (41, 41)
    monkeypatch.setenv("GITLAB_CONCURRENCY", "4")
    capped = client_settings(GitLabSettings(), 40)
    assert (capped.gitlab_concurrency, capped.http_pool_size) == (4, 41)


# -- the fake's group API, as GitLab answers it ----------------------------------------------


async def test_fake_group_projects_use_offset_pagination_even_when_keyset_is_asked(
    fake: FakeGitLab,
) -> None:
    """GitLab offers keyset pagination on few endpoints, not this one
    (https://docs.gitlab.com/api/rest/#supported-resources): `pagination=keyset` is ignored
    and the Link header carries page numbers."""
    for i in range(3):
        project(fake, f"acme/p{i}")
    async with httpx.AsyncClient(
        base_url=f"{fake.base_url}/api/v4", headers={"PRIVATE-TOKEN": fake.token}
    ) as client:
        response = await client.get(
            "/groups/acme/projects",
            params={"pagination": "keyset", "order_by": "id", "sort": "asc", "per_page": 2},
        )
        assert response.status_code == 200
        assert [p["path"] for p in response.json()] == ["p0", "p1"]
        assert response.headers["x-total"] == "3" and response.headers["x-next-page"] == "2"
        assert "page=2" in response.links["next"]["url"]
        first = response.json()[0]
        assert {"empty_repo", "archived", "default_branch", "topics", "description"} <= set(first)
        assert first["namespace"]["full_path"] == "acme"
        simple = await client.get("/groups/acme/projects", params={"simple": "true"})
        assert "empty_repo" not in simple.json()[0]
        missing = await client.get("/groups/nope/projects")
        assert (missing.status_code, missing.json()) == (404, {"message": "404 Group Not Found"})


async def test_fake_members_all_lists_inherited_members_once_with_the_highest_role(
    fake: FakeGitLab,
) -> None:
    parent = fake.add_group("acme")
    child = fake.add_group("acme/team")
    fake.add_group_member(parent.id, "olivia", access_level=50)
    fake.add_group_member(child.id, "olivia", access_level=30)
    fake.add_group_member(child.id, "alice", access_level=30)
    async with httpx.AsyncClient(
        base_url=f"{fake.base_url}/api/v4", headers={"PRIVATE-TOKEN": fake.token}
    ) as client:
        members = (await client.get("/groups/acme%2Fteam/members/all")).json()
        direct_parent = (await client.get(f"/groups/{parent.id}/members/all")).json()
    assert sorted((m["username"], m["access_level"]) for m in members) == [
        ("alice", 30),
        ("olivia", 50),
    ]
    assert [m["username"] for m in direct_parent] == ["olivia"]
    assert {"id", "username", "name", "state", "web_url", "access_level"} <= set(members[0])


async def test_on_a_terminal_the_table_is_drawn_with_rich(fake: FakeGitLab) -> None:
    """stdout and stderr on a pseudo-terminal, as in an interactive shell."""
    pytest.importorskip("rich")
    import pty

    project(fake, "acme/good")
    project(fake, "acme/no-readme", without("README.md"))
    controller, terminal = pty.openpty()
    base = {k: v for k, v in os.environ.items() if k not in SETTINGS_ENV}
    env = {**base, "GITLAB_URL": fake.base_url, "GITLAB_TOKEN": fake.token, "COLUMNS": "160"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "audit", "acme",
        env=env, stdout=terminal, stderr=terminal,
    )  # fmt: skip
    os.close(terminal)
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(controller, "rb", 0)
    )
    chunks = []
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), timeout=60)
            except OSError:  # EIO: the terminal's last writer exited
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        transport.close()
    assert await process.wait() == 1
    shown = b"".join(chunks).decode(errors="replace")
    assert "Projects of acme" in shown  # the rich table's title
    assert "┃" in shown or "│" in shown  # drawn with box characters
    assert "acme/no-readme" in shown and "README is missing" in shown
    assert "Projects: 2 checked: 1 compliant, 0 with warnings, 1 non-compliant, 0 errors" in shown


# -- four outcomes, in every format --------------------------------------------------------


def four_outcomes_group(fake: FakeGitLab) -> dict[str, Project]:
    """One project of each outcome: no finding, warnings only, an error, not judged."""
    return {
        "acme/clean": project(fake, "acme/clean"),
        "acme/gappy": project(
            fake, "acme/gappy", without("CONTRIBUTING.md", "CHANGELOG.md"), topics=()
        ),
        "acme/broken": project(fake, "acme/broken", without("LICENSE")),
        "acme/empty": fake.add_project(path_with_namespace="acme/empty"),
    }


FOUR_OUTCOMES = {
    "acme/clean": "compliant",
    "acme/gappy": "warnings",
    "acme/broken": "non-compliant",
    "acme/empty": "error",
}
FOUR_COUNTS_LINE = "Projects: 4 checked: 1 compliant, 1 with warnings, 1 non-compliant, 1 error"


async def test_a_project_with_only_warnings_is_not_reported_as_compliant(
    fake: FakeGitLab,
) -> None:
    four_outcomes_group(fake)
    rows = by_name((await audit(fake)).projects)
    assert {name: str(row.status) for name, row in rows.items()} == FOUR_OUTCOMES
    gappy = rows["acme/gappy"]
    assert gappy.status is Status.WARNINGS
    assert gappy.errors == 0 and gappy.warnings == 3
    assert "CONTRIBUTING is missing" in gappy.summary()


async def test_the_four_outcomes_in_json_with_counts(fake: FakeGitLab) -> None:
    four_outcomes_group(fake)
    code, out, _ = await cli(fake, "acme", "--format", "json")
    assert code == 3
    document = json.loads(out)
    assert {p["name"]: p["status"] for p in document["projects"]} == FOUR_OUTCOMES
    assert document["summary"]["projects"] == {
        "total": 4,
        "compliant": 1,
        "warnings": 1,
        "non_compliant": 1,
        "error": 1,
    }


async def test_the_four_outcomes_in_csv_table_and_markdown(fake: FakeGitLab) -> None:
    four_outcomes_group(fake)
    code, out, err = await cli(fake, "acme", "--format", "csv")
    assert code == 3
    assert {r["name"]: r["status"] for r in csv.DictReader(io.StringIO(out))} == FOUR_OUTCOMES
    assert FOUR_COUNTS_LINE in err
    code, out, _ = await cli(fake, "acme")
    assert code == 3 and FOUR_COUNTS_LINE in out
    for name, outcome in FOUR_OUTCOMES.items():
        (line,) = [line for line in out.splitlines() if line.startswith(name + " ")]
        assert line.split()[1] == outcome
    code, out, _ = await cli(fake, "acme", "--format", "markdown")
    assert f"- {FOUR_COUNTS_LINE}" in out
    assert "| [acme/gappy](" in out and "| warnings | 0 | 3 |" in out


async def test_warnings_exit_0_unless_fail_on_warning(fake: FakeGitLab) -> None:
    project(fake, "acme/clean")
    project(fake, "acme/gappy", description="")
    code, out, _ = await cli(fake, "acme")
    assert code == 0
    assert "Projects: 2 checked: 1 compliant, 1 with warnings, 0 non-compliant, 0 errors" in out
    code, out, _ = await cli(fake, "acme", "--fail-on", "warning", "--only-failing")
    assert code == 1
    assert "acme/gappy" in out and "acme/clean" not in out.split("Projects:")[0]
    # Without --fail-on warning, --only-failing lists what fails the run: nothing here.
    code, out, _ = await cli(fake, "acme", "--only-failing", "--format", "json")
    assert code == 0 and json.loads(out)["projects"] == []


async def test_output_writes_the_report_to_a_file(fake: FakeGitLab, tmp_path: Path) -> None:
    four_outcomes_group(fake)
    target = tmp_path / "audit.json"
    code, out, _ = await cli(fake, "acme", "--format", "json", "--output", str(target))
    assert code == 3 and out == ""
    assert json.loads(target.read_text())["summary"]["projects"]["warnings"] == 1
    code, _, err = await cli(fake, "acme", "--output", str(tmp_path / "no" / "such" / "dir.txt"))
    assert code == 2 and "--output" in err


# -- a memory of the last run: --save and --compare ----------------------------------------


async def test_compare_says_what_got_better_and_worse_since_the_saved_run(
    fake: FakeGitLab, tmp_path: Path
) -> None:
    by_path = four_outcomes_group(fake)
    memory = tmp_path / "acme-audit.json"
    code, _, err = await cli(fake, "acme", "--compare", str(memory), "--save", str(memory))
    assert code == 3 and "nothing to compare with (a first run)" in err
    saved = json.loads(memory.read_text())
    assert saved["complete"] is True and len(saved["projects"]) == 4

    # Between two scheduled runs: one project fixes its gaps, one loses its README, one is
    # created, and the broken one is renamed (same id) and fixed.
    fake.commit(
        by_path["acme/gappy"].id,
        "main",
        message="docs: contributing and changelog",
        files={"CONTRIBUTING.md": "x\n", "CHANGELOG.md": "x\n"},
    )
    by_path["acme/gappy"].topics = ["python"]
    fake.commit(by_path["acme/clean"].id, "main", message="chore: drop", files={"README.md": None})
    fake.commit(by_path["acme/broken"].id, "main", message="chore: mit", files={"LICENSE": "MIT\n"})
    by_path["acme/broken"].path_with_namespace = "acme/renamed"
    project(fake, "acme/fresh")

    code, out, _ = await cli(fake, "acme", "--compare", str(memory), "--format", "json")
    assert code == 3  # acme/empty is still an error
    comparison = json.loads(out)["comparison"]
    changes = {(c["name"], c["change"]): c for c in comparison["changes"]}
    assert set(changes) == {
        ("acme/clean", "worse"),
        ("acme/gappy", "better"),
        ("acme/renamed", "better"),
        ("acme/fresh", "new"),
    }
    assert changes[("acme/clean", "worse")]["now_lacking"] == ["repository.required_files: README"]
    assert changes[("acme/clean", "worse")]["after"] == "non-compliant"
    assert changes[("acme/gappy", "better")]["fixed"] == [
        "repository.required_files: CHANGELOG",
        "repository.required_files: CONTRIBUTING",
        "repository.topics",
    ]
    assert comparison["previous_summary"]["projects"]["warnings"] == 1

    code, out, _ = await cli(fake, "acme", "--compare", str(memory))
    assert "1 worse, 2 better, 1 new, 0 gone" in out
    assert "worse: project acme/clean: compliant -> non-compliant; now lacking:" in out
    code, out, _ = await cli(fake, "acme", "--compare", str(memory), "--format", "csv")
    changed = {r["name"]: r["since_last_run"] for r in csv.DictReader(io.StringIO(out))}
    assert changed == {
        "acme/clean": "worse",
        "acme/empty": "",
        "acme/fresh": "new",
        "acme/gappy": "better",
        "acme/renamed": "better",
    }
    code, out, _ = await cli(fake, "acme", "--compare", str(memory), "--format", "markdown")
    assert "## Since the last run" in out and "- new: project acme/fresh:" in out


async def test_compare_refuses_another_group_s_memory_or_a_broken_file(
    fake: FakeGitLab, tmp_path: Path
) -> None:
    four_outcomes_group(fake)
    memory = tmp_path / "memory.json"
    assert (await cli(fake, "acme", "--save", str(memory)))[0] == 3
    fake.add_group("other")
    code, _, err = await cli(fake, "other", "--compare", str(memory))
    assert code == 2 and "a report of group 'acme', not of 'other'" in err
    memory.write_text('{"format": "compliance-bot audit", "version": 1, "projects": [1')
    code, _, err = await cli(fake, "acme", "--compare", str(memory))
    assert code == 2 and "not JSON" in err
    partial = tmp_path / "partial.json"
    written = await cli(fake, "acme", "--format", "json", "--only-failing", "-o", str(partial))
    assert written[0] == 3
    code, _, err = await cli(fake, "acme", "--compare", str(partial))
    assert code == 2 and "partial report" in err
