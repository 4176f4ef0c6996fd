"""The fake GitLab itself, exercised over real HTTP the way the bot uses it."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.fake_gitlab import FakeGitLab, Project

TOKEN = "glpat-test-token"


@pytest.fixture
async def gitlab() -> AsyncIterator[FakeGitLab]:
    fake = FakeGitLab(token=TOKEN)
    async with fake.serve():
        yield fake


@pytest.fixture
async def client(gitlab: FakeGitLab) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"{gitlab.base_url}/api/v4", headers={"PRIVATE-TOKEN": TOKEN}, timeout=5
    ) as http:
        yield http


def seeded(gitlab: FakeGitLab) -> tuple[Project, str]:
    project = gitlab.add_project(path_with_namespace="acme/app", topics=["python"])
    root = gitlab.commit(
        project.id,
        "main",
        message="Initial commit",
        files={"README.md": "hello\n", "src/app.py": "print(1)\n", "src/lib/util.py": "X = 1\n"},
    )
    return project, root


def links(response: httpx.Response) -> dict[str, str]:
    return {
        rel: url
        for url, rel in re.findall(r'<([^>]+)>; rel="(\w+)"', response.headers.get("link", ""))
    }


async def test_pagination_headers_and_links_across_three_pages(
    gitlab: FakeGitLab, client: httpx.AsyncClient
) -> None:
    project, _ = seeded(gitlab)
    gitlab.commit(project.id, "feature", message="feat: x", files={"x": "1\n"})
    mr = gitlab.open_mr(project.id, source_branch="feature")
    for n in range(45):
        gitlab.add_note(project.id, mr.iid, f"note {n}", author_username="grace")

    first = await client.get(
        f"/projects/{project.id}/merge_requests/1/notes", params={"sort": "asc", "per_page": 20}
    )
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/json"
    assert (first.headers["x-page"], first.headers["x-per-page"]) == ("1", "20")
    assert (first.headers["x-next-page"], first.headers["x-prev-page"]) == ("2", "")
    assert (first.headers["x-total"], first.headers["x-total-pages"]) == ("45", "3")
    assert set(links(first)) == {"next", "first", "last"}
    assert "sort=asc" in links(first)["next"]
    assert links(first)["last"].startswith(f"{gitlab.base_url}/api/v4/projects/")

    bodies = [n["body"] for n in first.json()]
    response = first
    while "next" in links(response):
        response = await client.get(links(response)["next"])
        bodies += [n["body"] for n in response.json()]
    assert response.headers["x-page"] == "3"
    assert response.headers["x-next-page"] == ""
    assert response.headers["x-prev-page"] == "2"
    assert set(links(response)) == {"prev", "first", "last"}
    assert bodies == [f"note {n}" for n in range(45)]

    # GitLab's default order for notes is created_at desc.
    newest = await client.get(f"/projects/{project.id}/merge_requests/1/notes")
    assert newest.json()[0]["body"] == "note 44"
    # per_page is capped at 100.
    capped = await client.get(
        f"/projects/{project.id}/merge_requests/1/notes", params={"per_page": 500}
    )
    assert capped.headers["x-per-page"] == "100"


async def test_authentication(gitlab: FakeGitLab) -> None:
    seeded(gitlab)
    async with httpx.AsyncClient(base_url=f"{gitlab.base_url}/api/v4") as http:
        anonymous = await http.get("/projects/1")
        wrong = await http.get("/projects/1", headers={"PRIVATE-TOKEN": "nope"})
        bearer = await http.get("/user", headers={"Authorization": f"Bearer {TOKEN}"})
    assert (anonymous.status_code, anonymous.json()) == (401, {"message": "401 Unauthorized"})
    assert wrong.status_code == 401
    assert bearer.status_code == 200
    assert bearer.json()["username"] == "compliance-bot"
    assert bearer.json()["id"] == 99
    assert [r.status for r in gitlab.calls()] == [401, 401, 200]


async def test_project_tree_and_files(gitlab: FakeGitLab, client: httpx.AsyncClient) -> None:
    project, root = seeded(gitlab)
    by_path = await client.get("/projects/acme%2Fapp")
    assert by_path.status_code == 200
    body = by_path.json()
    assert body["id"] == project.id
    assert body["web_url"] == f"{gitlab.base_url}/acme/app"
    assert body["topics"] == body["tag_list"] == ["python"]
    assert (await client.get("/projects/nope%2Fnope")).json() == {
        "message": "404 Project Not Found"
    }

    top = (await client.get(f"/projects/{project.id}/repository/tree")).json()
    assert [(i["type"], i["path"]) for i in top] == [("tree", "src"), ("blob", "README.md")]
    nested = (
        await client.get(
            f"/projects/{project.id}/repository/tree", params={"path": "src", "recursive": "true"}
        )
    ).json()
    assert [i["path"] for i in nested] == ["src/lib", "src/app.py", "src/lib/util.py"]
    missing = await client.get(f"/projects/{project.id}/repository/tree", params={"path": "nope"})
    assert missing.status_code == 404
    assert missing.json() == {"message": "404 invalid revision or path Not Found"}
    bad_ref = await client.get(
        f"/projects/{project.id}/repository/tree", params={"ref": "no-such-branch"}
    )
    assert bad_ref.json() == {"message": "404 Tree Not Found"}

    file = await client.get(
        f"/projects/{project.id}/repository/files/src%2Fapp.py", params={"ref": root[:10]}
    )
    assert file.status_code == 200
    data = file.json()
    assert base64.b64decode(data["content"]) == b"print(1)\n"
    assert (data["file_path"], data["commit_id"], data["last_commit_id"]) == (
        "src/app.py",
        root,
        root,
    )
    raw = await client.get(f"/projects/{project.id}/repository/files/src%2Fapp.py/raw")
    assert raw.content == b"print(1)\n"
    absent = await client.get(
        f"/projects/{project.id}/repository/files/nope.txt", params={"ref": "main"}
    )
    assert absent.json() == {"message": "404 File Not Found"}


async def test_commit_status_transitions(gitlab: FakeGitLab, client: httpx.AsyncClient) -> None:
    project, sha = seeded(gitlab)
    url = f"/projects/{project.id}/statuses/{sha}"

    running = await client.post(url, json={"state": "running", "name": "compliance"})
    assert running.status_code == 201
    first = running.json()
    assert (first["status"], first["ref"], first["author"]["username"]) == (
        "running",
        "main",
        "compliance-bot",
    )
    # No pipeline existed, so GitLab creates an external one.
    assert [p["source"] for p in gitlab.pipelines(project.id, sha)] == ["external"]

    again = await client.post(url, json={"state": "running", "name": "compliance"})
    assert again.status_code == 400
    assert again.json() == {"message": "Cannot transition status via :run from :running"}

    # A form-encoded body works too (the docs' curl examples send form fields).
    done = await client.post(
        url, data={"state": "success", "name": "compliance", "description": "all good"}
    )
    assert done.status_code == 201
    assert done.json()["id"] == first["id"]  # updated in place
    assert done.json()["status"] == "success"

    rerun = await client.post(url, json={"state": "running", "name": "compliance"})
    assert rerun.status_code == 201
    assert rerun.json()["id"] != first["id"]  # finished status -> a new one
    assert rerun.json()["pipeline_id"] == first["pipeline_id"]

    pending = await client.post(url, json={"state": "pending", "context": "other"})
    assert pending.status_code == 201
    pending_again = await client.post(url, json={"state": "pending", "context": "other"})
    assert pending_again.json() == {
        "message": "Cannot transition status via :enqueue from :pending"
    }

    assert [s["status"] for s in gitlab.statuses(project.id, sha)] == [
        "success",
        "running",
        "pending",
    ]
    listed = (await client.get(f"/projects/{project.id}/repository/commits/{sha}/statuses")).json()
    assert [(s["name"], s["status"]) for s in listed] == [
        ("compliance", "running"),
        ("other", "pending"),
    ]
    every = await client.get(
        f"/projects/{project.id}/repository/commits/{sha}/statuses",
        params={"all": "true", "sort": "desc"},
    )
    assert [s["status"] for s in every.json()] == ["pending", "running", "success"]

    invalid = await client.post(url, json={"state": "bogus"})
    assert (invalid.status_code, invalid.json()) == (
        400,
        {"error": "state does not have a valid value"},
    )
    too_long = await client.post(url, json={"state": "success", "description": "x" * 256})
    assert too_long.status_code == 400
    assert "description" in too_long.json()["message"]
    unknown = await client.post(
        f"/projects/{project.id}/statuses/{'f' * 40}", json={"state": "success"}
    )
    assert unknown.json() == {"message": "404 Commit Not Found"}
    no_pipeline = await client.post(url, json={"state": "success", "pipeline_id": 12345})
    assert no_pipeline.status_code == 404


async def test_status_attaches_to_existing_pipeline(
    gitlab: FakeGitLab, client: httpx.AsyncClient
) -> None:
    project, sha = seeded(gitlab)
    pipeline_id = gitlab.add_pipeline(project.id, sha, "main")
    posted = await client.post(
        f"/projects/{project.id}/statuses/{sha}", json={"state": "success", "name": "compliance"}
    )
    assert posted.json()["pipeline_id"] == pipeline_id
    pipelines = await client.get(f"/projects/{project.id}/pipelines", params={"sha": sha})
    assert [p["id"] for p in pipelines.json()] == [pipeline_id]
    assert pipelines.json()[0]["source"] == "push"


async def test_fail_with_429_then_success(gitlab: FakeGitLab, client: httpx.AsyncClient) -> None:
    project, _ = seeded(gitlab)
    gitlab.fail("GET", r"/projects/\d+$", 429, times=2, retry_after=7)
    answers = [await client.get(f"/projects/{project.id}") for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 200]
    throttled = answers[0]
    assert throttled.text == "Retry later\n"
    assert throttled.headers["content-type"].startswith("text/plain")
    assert throttled.headers["retry-after"] == "7"
    assert throttled.headers["ratelimit-remaining"] == "0"
    assert {"ratelimit-limit", "ratelimit-reset", "ratelimit-resettime"} <= set(throttled.headers)

    gitlab.fail("POST", r"/statuses/", 500)
    broken = await client.post(f"/projects/{project.id}/statuses/main", json={"state": "success"})
    assert (broken.status_code, broken.json()) == (500, {"message": "500 Internal Server Error"})
    gitlab.clear_faults()
    fixed = await client.post(f"/projects/{project.id}/statuses/main", json={"state": "success"})
    assert fixed.status_code == 201
    assert [r.status for r in gitlab.calls("POST", "/statuses/")] == [500, 201]


async def test_drop_closes_the_connection(gitlab: FakeGitLab, client: httpx.AsyncClient) -> None:
    project, _ = seeded(gitlab)
    gitlab.drop("GET", r"/projects/\d+$")
    with pytest.raises(httpx.TransportError):
        await client.get(f"/projects/{project.id}")
    after = await client.get(f"/projects/{project.id}")
    assert after.status_code == 200
    assert [r.status for r in gitlab.calls("GET")] == [0, 200]


async def test_a_drop_after_processing_loses_the_answer_but_not_the_write(
    gitlab: FakeGitLab, client: httpx.AsyncClient
) -> None:
    project, _ = seeded(gitlab)
    gitlab.commit(project.id, "feature", message="feat: x", files={"x": "1\n"})
    mr = gitlab.open_mr(project.id, source_branch="feature")
    notes = f"/projects/{project.id}/merge_requests/{mr.iid}/notes"
    gitlab.drop("POST", r"/notes$", after_processing=True)
    with pytest.raises(httpx.TransportError):
        await client.post(notes, json={"body": "hello"})
    assert [n["body"] for n in gitlab.notes(project.id, mr.iid)] == ["hello"]
    assert gitlab.processed_then_dropped == [("POST", notes.join(["/api/v4", ""]), 201)]
    # A drop before processing writes nothing.
    gitlab.drop("POST", r"/notes$")
    with pytest.raises(httpx.TransportError):
        await client.post(notes, json={"body": "again"})
    assert [n["body"] for n in gitlab.notes(project.id, mr.iid)] == ["hello"]


async def test_every_answer_carries_rate_limit_headers_and_only_429_asks_to_wait(
    gitlab: FakeGitLab, client: httpx.AsyncClient
) -> None:
    project, _ = seeded(gitlab)
    ordinary = await client.get(f"/projects/{project.id}")
    assert ordinary.status_code == 200
    assert ordinary.headers["ratelimit-name"] == "throttle_authenticated_api"
    assert int(ordinary.headers["ratelimit-reset"]) > 1_600_000_000  # a Unix time
    assert "retry-after" not in ordinary.headers
    gitlab.fail("GET", r"/projects/\d+$", 500, times=1)
    failed = await client.get(f"/projects/{project.id}")
    assert failed.status_code == 500 and "ratelimit-reset" in failed.headers
    assert "retry-after" not in failed.headers
    gitlab.fail("GET", r"/projects/\d+$", 429, times=1, retry_after=3)
    throttled = await client.get(f"/projects/{project.id}")
    assert throttled.headers["retry-after"] == "3"
    assert throttled.headers.get_list("ratelimit-reset") == [throttled.headers["ratelimit-reset"]]


async def test_a_502_from_the_proxy_is_an_html_page(
    gitlab: FakeGitLab, client: httpx.AsyncClient
) -> None:
    project, _ = seeded(gitlab)
    gitlab.fail("GET", r"/projects/\d+$", 502, times=1)
    answer = await client.get(f"/projects/{project.id}")
    assert answer.status_code == 502
    assert answer.headers["content-type"].startswith("text/html")
    assert "<title>502 Bad Gateway</title>" in answer.text
    with pytest.raises(ValueError):
        answer.json()


async def test_mr_views_follow_pushes_force_pushes_and_renames(
    gitlab: FakeGitLab, client: httpx.AsyncClient
) -> None:
    project, root = seeded(gitlab)
    one = gitlab.commit(
        project.id, "feature", message="feat: one", files={"src/app.py": "print(2)\n"}
    )
    mr = gitlab.open_mr(project.id, source_branch="feature", labels=["compliance"], draft=True)
    main_moves = gitlab.commit(project.id, "main", message="docs", files={"README.md": "hi\n"})
    two = gitlab.commit(
        project.id,
        "feature",
        message="refactor: move util\n\nSigned-off-by: Ada",
        files={"src/lib/util.py": None, "src/util.py": "X = 1\n"},
    )
    prefix = f"/projects/{project.id}/merge_requests/{mr.iid}"

    single = (await client.get(prefix)).json()
    assert single["sha"] == two
    assert single["diff_refs"] == {"base_sha": root, "head_sha": two, "start_sha": main_moves}
    assert single["draft"] is True and single["title"].startswith("Draft: ")
    assert single["labels"] == ["compliance"]
    assert single["web_url"] == f"{gitlab.base_url}/acme/app/-/merge_requests/1"

    commits = await client.get(f"{prefix}/commits")
    assert [c["id"] for c in commits.json()] == [two, one]
    assert commits.json()[0]["trailers"] == {"Signed-off-by": "Ada"}
    assert "x-total" not in commits.headers
    assert commits.headers["x-next-page"] == ""

    diffs = {d["new_path"]: d for d in (await client.get(f"{prefix}/diffs")).json()}
    assert set(diffs) == {"src/app.py", "src/util.py"}  # README change is on main only
    assert diffs["src/util.py"]["renamed_file"] is True
    assert diffs["src/util.py"]["old_path"] == "src/lib/util.py"
    assert diffs["src/app.py"]["diff"] == "@@ -1 +1 @@\n-print(1)\n+print(2)\n"

    compare = (
        await client.get(
            f"/projects/{project.id}/repository/compare", params={"from": "main", "to": "feature"}
        )
    ).json()
    assert [c["id"] for c in compare["commits"]] == [one, two]
    assert compare["commit"]["id"] == two
    assert {d["new_path"] for d in compare["diffs"]} == {"src/app.py", "src/util.py"}
    straight = (
        await client.get(
            f"/projects/{project.id}/repository/compare",
            params={"from": "main", "to": "feature", "straight": "true"},
        )
    ).json()
    assert "README.md" in {d["new_path"] for d in straight["diffs"]}

    # Force-push: the branch is rewritten to a single new commit.
    rewritten = gitlab.commit(
        project.id, "feature", parent=root, message="feat: squashed", files={"new.txt": "n\n"}
    )
    assert mr.head_sha == rewritten
    commits = (await client.get(f"{prefix}/commits")).json()
    assert [c["id"] for c in commits] == [rewritten]
    diffs = (await client.get(f"{prefix}/diffs")).json()
    assert [(d["new_path"], d["new_file"]) for d in diffs] == [("new.txt", True)]
    # The old head is still readable, as on GitLab (unreachable objects stay).
    old = await client.get(f"/projects/{project.id}/repository/commits/{two}")
    assert old.status_code == 200
    associated = await client.get(
        f"/projects/{project.id}/repository/commits/{rewritten}/merge_requests"
    )
    assert [m["iid"] for m in associated.json()] == [mr.iid]

    gitlab.force_branch(project.id, "feature", one)
    assert (await client.get(prefix)).json()["sha"] == one


async def test_notes_post_edit_and_award(gitlab: FakeGitLab, client: httpx.AsyncClient) -> None:
    project, _ = seeded(gitlab)
    gitlab.commit(project.id, "feature", message="feat", files={"a": "a\n"})
    mr = gitlab.open_mr(project.id, source_branch="feature")
    human = gitlab.add_note(project.id, mr.iid, "LGTM", author_username="grace")
    prefix = f"/projects/{project.id}/merge_requests/{mr.iid}/notes"

    created = await client.post(prefix, json={"body": "Compliance report"})
    assert created.status_code == 201
    note = created.json()
    assert note["author"]["username"] == "compliance-bot"
    assert (note["noteable_type"], note["noteable_iid"], note["system"]) == (
        "MergeRequest",
        mr.iid,
        False,
    )

    edited = await client.put(f"{prefix}/{note['id']}", data={"body": "Updated report"})
    assert edited.status_code == 200
    assert edited.json()["body"] == "Updated report"
    assert edited.json()["updated_at"] > note["updated_at"]
    fetched = await client.get(f"{prefix}/{note['id']}")
    assert fetched.json()["body"] == "Updated report"

    forbidden = await client.put(f"{prefix}/{human['id']}", json={"body": "hijack"})
    assert (forbidden.status_code, forbidden.json()) == (403, {"message": "403 Forbidden"})
    huge = await client.post(prefix, json={"body": "x" * 1_000_001})
    assert huge.status_code == 400
    assert (await client.get(f"{prefix}/424242")).json() == {"message": "404 Note Not Found"}

    award = await client.post(f"{prefix}/{human['id']}/award_emoji", json={"name": "eyes"})
    assert award.status_code == 201
    assert gitlab.award_emoji[0]["awardable_id"] == human["id"]
    assert [n["body"] for n in gitlab.notes(project.id, mr.iid)] == ["LGTM", "Updated report"]
    assert len(gitlab.calls("PUT", "/notes/")) == 2


async def test_merge_request_list_filters(gitlab: FakeGitLab, client: httpx.AsyncClient) -> None:
    project, _ = seeded(gitlab)
    gitlab.commit(project.id, "a", message="a", files={"a": "a\n"})
    gitlab.commit(project.id, "b", message="b", files={"b": "b\n"})
    first = gitlab.open_mr(project.id, source_branch="a")
    second = gitlab.open_mr(project.id, source_branch="b")
    listed = (
        await client.get(f"/projects/{project.id}/merge_requests", params={"state": "opened"})
    ).json()
    assert [m["iid"] for m in listed] == [second.iid, first.iid]
    only_b = (
        await client.get(f"/projects/{project.id}/merge_requests", params={"source_branch": "b"})
    ).json()
    assert [m["id"] for m in only_b] == [second.id]


async def test_connections_are_counted(gitlab: FakeGitLab) -> None:
    project, _ = seeded(gitlab)
    gitlab.latency = 0.02  # keep requests in flight together
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
    async with httpx.AsyncClient(
        base_url=f"{gitlab.base_url}/api/v4", limits=limits, headers={"PRIVATE-TOKEN": TOKEN}
    ) as http:
        answers: list[Any] = await asyncio.gather(
            *(http.get(f"/projects/{project.id}") for _ in range(20))
        )
    assert all(a.status_code == 200 for a in answers)
    assert len(gitlab.requests) == 20
    assert 1 <= gitlab.connections() <= 2


async def test_diff_limits_and_entity_shapes_follow_gitlab(
    gitlab: FakeGitLab, client: httpx.AsyncClient
) -> None:
    project, _ = seeded(gitlab)
    gitlab.diff_max_files = 2
    gitlab.diff_max_patch_bytes = 1000
    files: dict[str, str | None] = {"a.txt": "a\n", "b.txt": "b\n" * 600, "c.txt": "c\n"}
    gitlab.commit(project.id, "feature", message="feat: three", files=files)
    mr = gitlab.open_mr(project.id, source_branch="feature")
    prefix = f"/projects/{project.id}/merge_requests/{mr.iid}"

    assert (await client.get(prefix)).json()["changes_count"] == "2+"
    diffs = (await client.get(f"{prefix}/diffs")).json()
    assert [(d["new_path"], d["too_large"], d["diff"] == "") for d in diffs] == [
        ("a.txt", False, False),
        ("b.txt", True, True),
    ]
    commits = (await client.get(f"{prefix}/commits")).json()
    assert commits[0]["parent_ids"] == []
    gitlab.mr_commits_with_parents = True
    assert (await client.get(f"{prefix}/commits")).json()[0]["parent_ids"] != []

    compare = (
        await client.get(
            f"/projects/{project.id}/repository/compare", params={"from": "main", "to": "feature"}
        )
    ).json()
    assert compare["compare_timeout"] is True
    assert [d["new_path"] for d in compare["diffs"]] == ["a.txt", "b.txt"]

    gitlab.version = (18, 3)
    old_shape = (await client.get(f"{prefix}/diffs")).json()
    assert "collapsed" not in old_shape[1] and old_shape[1]["diff"] == ""
    gitlab.version = (17, 6)
    missing = await client.get(
        f"/projects/{project.id}/repository/tree", params={"path": "nowhere"}
    )
    assert missing.status_code == 200 and missing.json() == []
    gitlab.version = (17, 7)
    missing = await client.get(
        f"/projects/{project.id}/repository/tree", params={"path": "nowhere"}
    )
    assert missing.status_code == 404
