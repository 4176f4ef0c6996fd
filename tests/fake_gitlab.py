"""A stateful, in-memory fake of GitLab's REST API v4 for integration tests.

The bot under test talks to it over real HTTP (uvicorn on 127.0.0.1, a random port,
running in the test's own event loop), so connection reuse, pagination, retries and
transport errors are exercised exactly as they would be against gitlab.com.

Only the endpoints the bot needs are modelled, but those follow GitLab's real
response shapes, status codes and error bodies.  Every protocol detail below cites
the GitLab documentation (or source) it comes from: gitlabhq/gitlabhq's `lib/api`,
`lib/api/entities`, `app/models` and `lib/gitlab/data_builder`.

Usage::

    fake = FakeGitLab()
    project = fake.add_project(path_with_namespace="acme/app")
    base = fake.commit(project.id, "main", message="init", files={"README.md": "hi\\n"})
    fake.commit(project.id, "feature", message="feat: add x", files={"x.py": "x = 1\\n"})
    mr = fake.open_mr(project.id, source_branch="feature")
    async with fake.serve():
        ...  # point the bot at fake.base_url, token fake.token
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import difflib
import email.parser
import email.policy
import email.utils
import hashlib
import itertools
import json
import math
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.fake_gitlab_hooks import ProjectHooksMixin
from tests.servers import serving

JSONDict = dict[str, Any]
Handler = Callable[[Request], Awaitable[Response]]

# https://docs.gitlab.com/api/rest/#offset-based-pagination
# `per_page` defaults to 20 and is capped at 100.
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
# https://docs.gitlab.com/api/rest/#pagination-response-headers
# "For performance reasons, if a query returns more than 10,000 records, GitLab
# doesn't return the x-total, x-total-pages and rel="last" link headers."
TOTALS_OMITTED_ABOVE = 10_000

# GitLab.com's authenticated API throttle (doc/user/gitlab_com/_index.md, "Rate limits on
# GitLab.com"): 2,000 requests per user per minute.
RATE_LIMIT_REQUESTS = 2000
RATE_LIMIT_PERIOD_SECONDS = 60

# https://docs.gitlab.com/api/commits/#set-commit-pipeline-status
# `state` must be one of these; `description`, `ref` and `target_url` are <= 255 chars.
COMMIT_STATUS_STATES = ("pending", "running", "success", "failed", "canceled", "skipped")
COMMIT_STATUS_FIELD_MAX = 255

# https://docs.gitlab.com/api/notes/#create-new-merge-request-note
# "body ... Limited to 1,000,000 characters."
NOTE_BODY_MAX = 1_000_000

ZERO_SHA = "0" * 40

# gitlabhq/gitlabhq: app/models/application_setting_implementation.rb
# (`push_event_hooks_limit: 3`) and doc/user/project/integrations/webhooks.md "Push event
# limits": a push that changes more refs than this fires no push hook at all.
PUSH_EVENT_HOOKS_LIMIT = 3
# gitlabhq/gitlabhq: app/services/ci/create_commit_status_service.rb puts every external
# status in the pipeline's stage named "external" (`find_or_create_external_stage`); older
# GitLab set `stage ||= 'external'` in app/models/generic_commit_status.rb.
EXTERNAL_STAGE = "external"
GENERIC_COMMIT_STATUS = "GenericCommitStatus"
CI_BUILD = "Ci::Build"

# https://docs.gitlab.com/api/groups/#list-projects: with `simple=true` the listing uses
# Entities::BasicProjectDetails, which lacks these fields of Entities::Project.
_NOT_IN_SIMPLE = frozenset({"empty_repo", "archived", "visibility"})
FILE_MODE = "100644"
TREE_MODE = "040000"

# https://docs.gitlab.com/user/project/merge_requests/drafts/
# "Add [Draft], Draft: or (Draft) to the beginning of the merge request's title."
_DRAFT_TITLE = re.compile(r"^\s*(\[draft\]|\(draft\)|draft:)", re.IGNORECASE)


def _iso(moment: datetime) -> str:
    # https://docs.gitlab.com/api/rest/#data-validation-and-error-reporting
    # GitLab renders timestamps as ISO 8601 in UTC with milliseconds, e.g.
    # "2016-01-19T09:05:50.355Z".
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _git_blob_sha(content: bytes) -> str:
    # Real git object id of a blob, so `blob_id` values look and behave like GitLab's.
    header = f"blob {len(content)}\0".encode()
    return hashlib.sha1(header + content, usedforsecurity=False).hexdigest()


def _as_bool(value: Any) -> bool:
    # Grape's Boolean coercion accepts these spellings (query strings and form bodies).
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "t", "yes", "y", "on")


def _str_or_none(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _unified_diff(
    old: str | None, new: str | None, old_path: str, new_path: str, *, unidiff: bool
) -> str:
    """A git-style unified diff of one file (3 lines of context).

    https://docs.gitlab.com/api/merge_requests/#list-merge-request-diffs
    The `diff` field holds only the hunks ("@@ ..."); with `unidiff=true` (16.5+)
    it also carries the `--- a/` / `+++ b/` header lines.
    """
    old_lines = (old or "").splitlines(keepends=True)
    new_lines = (new or "").splitlines(keepends=True)
    out: list[str] = []
    if unidiff:
        out.append("--- /dev/null\n" if old is None else f"--- a/{old_path}\n")
        out.append("+++ /dev/null\n" if new is None else f"+++ b/{new_path}\n")
    # difflib emits the same hunk header convention as git ("@@ -0,0 +1 @@").
    for line in itertools.islice(difflib.unified_diff(old_lines, new_lines, n=3), 2, None):
        if not line.endswith("\n"):
            line += "\n\\ No newline at end of file\n"
        out.append(line)
    return "".join(out)


def _trailers(message: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Git trailers of the last paragraph (e.g. `Signed-off-by:`).

    https://docs.gitlab.com/api/commits/#get-a-single-commit
    Commit objects expose `trailers` (last value per key) and `extended_trailers`
    (all values per key).
    """
    paragraphs = [p for p in message.strip().split("\n\n") if p.strip()]
    if len(paragraphs) < 2:
        return {}, {}
    simple: dict[str, str] = {}
    extended: dict[str, list[str]] = {}
    for line in paragraphs[-1].splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9-]*):\s+(.+)$", line)
        if match:
            simple[match.group(1)] = match.group(2)
            extended.setdefault(match.group(1), []).append(match.group(2))
    return simple, extended


class _ApiError(Exception):
    """Raised inside handlers; rendered as GitLab renders API errors."""

    def __init__(self, status: int, payload: Any) -> None:
        super().__init__(status, payload)
        self.status = status
        self.payload = payload


def _not_found(what: str) -> _ApiError:
    # https://docs.gitlab.com/api/rest/troubleshooting/#status-codes
    # GitLab's `not_found!(what)` renders {"message": "404 <what> Not Found"}.
    return _ApiError(404, {"message": f"404 {what} Not Found"})


def _param_error(message: str) -> _ApiError:
    # Grape parameter validation failures are rendered as {"error": "..."} with 400.
    return _ApiError(400, {"error": message})


# --------------------------------------------------------------------------- model


@dataclass
class Commit:
    sha: str
    seq: int  # creation order; a parent always has a lower seq than its children
    message: str
    author_name: str
    author_email: str
    committer_name: str
    committer_email: str
    authored_date: str
    committed_date: str
    parent_ids: list[str]
    tree: dict[str, str]  # path -> full file content

    @property
    def title(self) -> str:
        return self.message.split("\n", 1)[0]


@dataclass
class Project:
    id: int
    path_with_namespace: str
    default_branch: str
    description: str
    topics: list[str]
    created_at: str
    visibility: str = "private"
    # https://docs.gitlab.com/user/project/working_with_projects/#archive-a-project
    archived: bool = False
    branches: dict[str, str] = field(default_factory=dict)  # branch -> head sha
    objects: set[str] = field(default_factory=set, repr=False)  # shas this repo holds
    _fake: FakeGitLab | None = field(default=None, repr=False, compare=False)

    @property
    def path(self) -> str:
        return self.path_with_namespace.rsplit("/", 1)[-1]

    @property
    def namespace(self) -> str:
        return self.path_with_namespace.rsplit("/", 1)[0] if "/" in self.path_with_namespace else ""

    @property
    def web_url(self) -> str:
        assert self._fake is not None
        return f"{self._fake.base_url}/{self.path_with_namespace}"


@dataclass
class Group:
    """A group or subgroup. Its projects are those whose namespace is its full path.

    https://docs.gitlab.com/user/group/
    """

    id: int
    full_path: str
    name: str
    description: str
    visibility: str
    created_at: str
    parent_id: int | None = None
    # username -> access level (https://docs.gitlab.com/api/members/#roles)
    members: dict[str, int] = field(default_factory=dict)
    # Projects of other namespaces shared with this group ("Invite a group" on a project).
    # https://docs.gitlab.com/user/project/members/sharing_projects_groups/
    shared_project_ids: list[int] = field(default_factory=list)

    @property
    def path(self) -> str:
        return self.full_path.rsplit("/", 1)[-1]


@dataclass
class Pipeline:
    id: int
    iid: int
    project_id: int
    sha: str
    ref: str
    status: str
    source: str
    created_at: str
    updated_at: str


@dataclass
class MergeRequest:
    id: int
    iid: int
    project_id: int  # the target project
    source_project_id: int
    source_branch: str
    target_branch: str
    title: str
    description: str
    labels: list[str]
    draft: bool
    squash: bool
    author: JSONDict
    created_at: str
    updated_at: str
    state: str = "opened"
    # gitlabhq/gitlabhq: lib/api/entities/merge_request_basic.rb `expose :diff_head_sha,
    # as: :sha`; app/models/merge_request.rb `diff_head_sha` is nil while GitLab has not
    # prepared the MR's diff yet (contract 2.10). True: the API answers `"sha": null`.
    preparing: bool = False
    notes: list[JSONDict] = field(default_factory=list, repr=False)
    _last_head: str = field(default="", repr=False)
    _fake: FakeGitLab | None = field(default=None, repr=False, compare=False)

    def _f(self) -> FakeGitLab:
        assert self._fake is not None
        return self._fake

    @property
    def head_sha(self) -> str:
        """Current head of the source branch (in the source project, which may be a fork)."""
        head = self._f()._projects[self.source_project_id].branches.get(self.source_branch)
        if head:
            self._last_head = head
        return self._last_head

    @property
    def start_sha(self) -> str:
        """Current head of the target branch."""
        return self._f()._projects[self.project_id].branches.get(self.target_branch, "")

    @property
    def base_sha(self) -> str:
        """Merge base of the target branch head and the source branch head."""
        return self._f()._merge_base(self.start_sha, self.head_sha) or ""

    def commits(self) -> list[Commit]:
        """Commits reachable from the head but not from the target branch, newest first.

        https://docs.gitlab.com/api/merge_requests/#get-single-merge-request-commits
        """
        return self._f()._commits_between(self.start_sha, self.head_sha)[::-1]

    def diffs(self, *, unidiff: bool = False) -> list[JSONDict]:
        """Changes between the merge base and the head, in GitLab's diff item shape."""
        fake = self._f()
        old = fake._commits[self.base_sha].tree if self.base_sha else {}
        new = fake._commits[self.head_sha].tree if self.head_sha else {}
        return fake._diff_trees(old, new, unidiff=unidiff)

    @property
    def web_url(self) -> str:
        # https://docs.gitlab.com/api/merge_requests/#get-single-mr (`web_url`)
        project = self._f()._projects[self.project_id]
        return f"{project.web_url}/-/merge_requests/{self.iid}"


@dataclass
class LoggedRequest:
    method: str
    path: str  # as sent on the wire (still percent-encoded), without the query
    query: dict[str, str]
    status: int  # 0 while in flight, and for dropped connections
    client_port: int  # TCP peer port: one distinct port == one TCP connection
    headers: dict[str, str]  # lower-case keys
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Fault:
    method: str
    pattern: re.Pattern[str]
    drop: bool
    status: int
    remaining: int | None
    retry_after: int | None
    body: str | None
    probability: float = 1.0  # chance that a matching request is hit (chaos runs)
    # A drop after GitLab processed the request: the write happened, the answer was lost.
    after_processing: bool = False
    # An error page from the proxy in front of GitLab (text/html), not GitLab's JSON.
    html: bool = False

    def matches(self, method: str, path: str) -> bool:
        if self.method not in ("*", method):
            return False
        return bool(self.pattern.search(path) or self.pattern.search(unquote(path)))


class _FakeGitLabApp(Starlette):
    """Starlette with a pre-routing hook that sees uvicorn's own `send`.

    The hook needs the unwrapped `send` to reach the TCP transport (for `drop()`),
    and it routes on the raw, still percent-encoded path because GitLab's `:id`
    may be `group%2Fproject` and `:file_path` is URL-encoded too.
    """

    def __init__(
        self, hook: Callable[[Scope, Receive, Send, ASGIApp], Awaitable[None]], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._hook = hook

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return

        async def route(s: Scope, r: Receive, se: Send) -> None:
            await Starlette.__call__(self, s, r, se)

        await self._hook(scope, receive, send, route)


# --------------------------------------------------------------------------- the fake


class FakeGitLab(ProjectHooksMixin):
    def __init__(
        self,
        *,
        token: str = "glpat-fake-token",  # noqa: S107 -- a fake's token
        bot_username: str = "compliance-bot",
    ) -> None:
        self.token = token
        self.base_url = "http://fake-gitlab.invalid"
        self.latency: float = 0.0
        # https://docs.gitlab.com/api/rest/#pagination-response-headers
        # Whether MR /commits sends x-total / x-total-pages.  Off by default, like the
        # repository Commits API, so clients must page with x-next-page; current GitLab
        # (lib/api/merge_requests.rb: Kaminari.paginate_array with total_count) does
        # send them for MR commits, so set True to model that.
        self.mr_commits_send_totals: bool = False
        self.requests: list[LoggedRequest] = []
        self.award_emoji: list[JSONDict] = []
        # Pushes of more refs than PUSH_EVENT_HOOKS_LIMIT: GitLab sent no push hook for them.
        self.pushes_without_hooks: list[JSONDict] = []
        # sha -> GitLab's verification_status ("verified", "unverified", ...); absent: unsigned
        self.signed: dict[str, str] = {}
        # The GitLab version whose response shapes the fake gives, where they differ:
        # - 17.7: a tree listing of a missing path is a 404 (it was 200 with []);
        # - 18.4: diff entries carry `collapsed` and `too_large` (lib/api/entities/diff.rb;
        #   gitlab-org/gitlab!199633). Before, a collapsed or too-large patch is just `""`.
        self.version: tuple[int, int] = (18, 6)
        # GitLab's diff limits, small in tests that cross them. Hard limits:
        # gitlabhq/gitlabhq app/models/commit.rb `max_diff_options` (`diff_max_files` 1000 and
        # `diff_max_lines` 50000 by default; 3000 and 100000 with `increased_diff_limits`, as
        # on GitLab.com). A patch of `diff_max_patch_bytes` (200 KiB,
        # lib/gitlab/git/diff.rb DEFAULT_MAX_PATCH_BYTES) or more is "too large".
        self.diff_max_files: int = 1000
        self.diff_max_lines: int = 50_000
        self.diff_max_patch_bytes: int = 200 * 1024
        # GET /merge_requests/:iid/commits: most GitLab versions build these commits from
        # the MR diff's database rows (lib/api/merge_requests.rb `merge_request.commits`;
        # app/models/merge_request_diff.rb `load_commits` without `load_from_gitaly` maps
        # rows through `Commit.from_hash`), and those rows are stored without parents
        # (app/models/merge_request_diff_commit.rb `prepare_commits_for_bulk_insert`:
        # `commit.to_hash.except(:parent_ids, ...)`), so `parent_ids` is `[]`. Only the newest
        # handler (the one with the MCP `route_setting`) loads them from Gitaly with parents:
        # set True to model it.
        self.mr_commits_with_parents: bool = False

        self._projects: dict[int, Project] = {}
        self._commits: dict[str, Commit] = {}
        self._mrs: dict[int, MergeRequest] = {}  # by global id
        self._pipelines: dict[int, Pipeline] = {}
        self._statuses: list[JSONDict] = []  # internal records, see _status_entity
        self._faults: list[_Fault] = []
        self._chaos = random.Random(0)
        # Requests GitLab handled whose answer a drop(after_processing=True) then lost.
        self.processed_then_dropped: list[tuple[str, str, int]] = []
        self._holds: list[tuple[str, re.Pattern[str], asyncio.Event, asyncio.Event]] = []
        # RateLimit-* headers on every answer, as GitLab sends them (see _rate_limit_headers).
        self.send_rate_limit_headers = True
        # GitLab.com's window; a self-managed instance's default is 3600 (Admin > Network).
        self.rate_limit_period_seconds = RATE_LIMIT_PERIOD_SECONDS
        self._rate_window = 0
        self._rate_observed = 0
        self._users: dict[str, JSONDict] = {}
        self._groups: dict[int, Group] = {}
        # Global id sequences, one per kind of object, as in GitLab's database tables.
        self._ids: dict[str, itertools.count[int]] = {}
        self._seq = itertools.count(1)
        self._mr_iids: dict[int, itertools.count[int]] = {}
        self._pipeline_iids: dict[int, itertools.count[int]] = {}
        self._last_time = datetime(2000, 1, 1, tzinfo=UTC)
        # https://docs.gitlab.com/api/users/#get-the-current-user
        self.bot_user: JSONDict = self._user(bot_username, name="Compliance Bot", user_id=99)
        self._init_hooks()
        self.app: Starlette = self._build_app()

    # ------------------------------------------------------------------ helpers

    def _now(self) -> str:
        # Strictly increasing, so created_at/updated_at orderings are never ties.
        moment = datetime.now(UTC)
        moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        if moment <= self._last_time:
            moment = self._last_time + timedelta(milliseconds=1)
        self._last_time = moment
        return _iso(moment)

    def _next_id(self, kind: str) -> int:
        return next(self._ids.setdefault(kind, itertools.count(1)))

    def _user(
        self, username: str, *, name: str | None = None, user_id: int | None = None
    ) -> JSONDict:
        # https://docs.gitlab.com/api/users/ -- the "UserBasic" shape used for authors.
        if username not in self._users:
            uid = user_id if user_id is not None else 1000 + len(self._users)
            self._users[username] = {
                "id": uid,
                "username": username,
                "name": name or username.replace(".", " ").replace("-", " ").title(),
                "state": "active",
                "locked": False,
                "avatar_url": None,
            }
        user = dict(self._users[username])
        user["web_url"] = f"{self.base_url}/{username}"
        return user

    def _get_project(self, project_id: int) -> Project:
        try:
            return self._projects[project_id]
        except KeyError:
            raise ValueError(f"no project with id {project_id}") from None

    def _ancestors(self, sha: str) -> set[str]:
        seen: set[str] = set()
        stack = [sha] if sha else []
        while stack:
            current = stack.pop()
            if current in seen or current not in self._commits:
                continue
            seen.add(current)
            stack.extend(self._commits[current].parent_ids)
        return seen

    def _merge_base(self, a: str, b: str) -> str | None:
        # The common ancestor created last can't be an ancestor of another common
        # ancestor (parents always have a lower seq), so it is a best merge base.
        common = self._ancestors(a) & self._ancestors(b)
        if not common:
            return None
        return max(common, key=lambda s: self._commits[s].seq)

    def _commits_between(self, exclude_from: str, include_to: str) -> list[Commit]:
        """`git log exclude_from..include_to`, oldest first."""
        shas = self._ancestors(include_to) - self._ancestors(exclude_from)
        return sorted((self._commits[s] for s in shas), key=lambda c: c.seq)

    def _repo_objects(self, project: Project) -> set[str]:
        objects = set(project.objects)
        # https://docs.gitlab.com/user/project/merge_requests/#merge-request-refs
        # GitLab fetches a fork MR's head into refs/merge-requests/:iid/head of the
        # target project, so the target repo can read those commits.
        for mr in self._mrs.values():
            if mr.project_id == project.id and mr.source_project_id != project.id:
                objects |= self._ancestors(mr.head_sha)
        return objects

    def _resolve(self, project: Project, rev: str | None) -> str | None:
        """A branch name, full or abbreviated sha, or HEAD -> commit sha."""
        # https://docs.gitlab.com/api/repository_files/#get-file-from-repository
        # "HEAD" means the default branch.
        if rev is None or rev == "HEAD":
            rev = project.default_branch
        rev = rev.removeprefix("refs/heads/")
        if rev in project.branches:
            return project.branches[rev]
        if re.fullmatch(r"[0-9a-fA-F]{7,40}", rev):
            rev = rev.lower()
            hits = [s for s in self._repo_objects(project) if s.startswith(rev)]
            if len(hits) == 1:
                return hits[0]
        return None

    def _last_commit_touching(self, sha: str, path: str) -> str:
        """`git log -1 --format=%H <sha> -- <path>`."""
        content = self._commits[sha].tree.get(path)
        for commit in sorted(
            (self._commits[s] for s in self._ancestors(sha)), key=lambda c: c.seq, reverse=True
        ):
            if commit.tree.get(path) != content:
                continue
            parents = [self._commits[p] for p in commit.parent_ids]
            if not parents or all(p.tree.get(path) != content for p in parents):
                return commit.sha
        return sha

    def _diff_trees(
        self, old: dict[str, str], new: dict[str, str], *, unidiff: bool = False
    ) -> list[JSONDict]:
        """Diff items in GitLab's shape.

        https://docs.gitlab.com/api/merge_requests/#list-merge-request-diffs
        Items carry old_path, new_path, a_mode, b_mode, diff, new_file, renamed_file,
        deleted_file, generated_file (16.9+), collapsed and too_large (18.4+).  New
        files have a_mode "0", deleted files b_mode "0".
        """
        deleted = sorted(old.keys() - new.keys())
        added = sorted(new.keys() - old.keys())
        renames: dict[str, str] = {}  # new path -> old path
        for gone in deleted:
            for fresh in added:
                if fresh not in renames and new[fresh] == old[gone]:
                    renames[fresh] = gone
                    break
        renamed_old = set(renames.values())

        def item(
            old_path: str,
            new_path: str,
            *,
            new_file: bool = False,
            deleted_file: bool = False,
            renamed_file: bool = False,
        ) -> JSONDict:
            before = None if new_file else old[old_path]
            after = None if deleted_file else new[new_path]
            return {
                "diff": _unified_diff(before, after, old_path, new_path, unidiff=unidiff),
                "collapsed": False,
                "too_large": False,
                "new_path": new_path,
                "old_path": old_path,
                "a_mode": "0" if new_file else FILE_MODE,
                "b_mode": "0" if deleted_file else FILE_MODE,
                "new_file": new_file,
                "renamed_file": renamed_file,
                "deleted_file": deleted_file,
                "generated_file": False,
            }

        items: list[JSONDict] = []
        for path in sorted(old.keys() & new.keys()):
            if old[path] != new[path]:
                items.append(item(path, path))
        for path in added:
            if path in renames:
                items.append(item(renames[path], path, renamed_file=True))
            else:
                items.append(item(path, path, new_file=True))
        for path in deleted:
            if path not in renamed_old:
                items.append(item(path, path, deleted_file=True))
        return sorted(items, key=lambda i: (i["new_path"], i["old_path"]))

    def _limited_diffs(
        self, items: list[JSONDict], *, expanded: bool
    ) -> tuple[list[JSONDict], bool]:
        """GitLab's diff limits applied to diff items in order: (the items kept, overflow).

        gitlabhq/gitlabhq lib/gitlab/git/diff_collection.rb `each_serialized_patch` (Gitaly
        enforces the same limits for `each_gitaly_patch`), with the patch limits of
        lib/gitlab/git/diff.rb `prune_diff_if_eligible`:
        - a patch of `diff_max_patch_bytes` or more is `too_large` and its text dropped;
        - unless `expanded`, a patch of a tenth of that (`patch_safe_limit_bytes`) or more is
          `collapsed`, and so is every patch once the "safe" limits are passed: a tenth of
          the hard limits in files and lines (app/models/commit.rb DIFF_SAFE_LIMIT_FACTOR),
          and `safe_max_files` * 5 KiB in bytes;
        - past `max_files` files, or once the lines reach `max_lines` or the bytes
          `max_files` * 5 KiB, the collection stops: `overflow`, the rest is not listed.
        A collection of one file is always expanded (`expand_diff?`).
        """
        max_files, max_lines = self.diff_max_files, self.diff_max_lines
        max_bytes = max_files * 5 * 1024
        safe_files, safe_lines = max_files // 10, max_lines // 10
        safe_bytes = safe_files * 5 * 1024
        patch_safe_bytes = self.diff_max_patch_bytes // 10
        expand = expanded or len(items) == 1
        kept: list[JSONDict] = []
        lines = size = 0
        for index, item in enumerate(items):
            if index >= max_files:
                return kept, True
            patch = str(item["diff"])
            patch_bytes = len(patch.encode())
            too_large = patch_bytes >= self.diff_max_patch_bytes
            collapsed = not too_large and not expand and patch_bytes >= patch_safe_bytes
            if too_large or collapsed:
                patch = ""
            over_safe = index >= safe_files or lines > safe_lines or size >= safe_bytes
            if not expand and over_safe and patch.count("\n") > 0:
                collapsed, patch = True, ""
            lines += patch.count("\n")
            size += len(patch.encode())
            if lines >= max_lines or size >= max_bytes:
                return kept, True  # this diff crossed the limit: discarded
            kept.append({**item, "diff": patch, "collapsed": collapsed, "too_large": too_large})
        return kept, False

    def _diff_entity(self, item: JSONDict) -> JSONDict:
        # `collapsed` and `too_large` are exposed from 18.4 on (lib/api/entities/diff.rb,
        # gitlab-org/gitlab!199633); before, a collapsed or too-large entry is only `diff: ""`.
        if self.version >= (18, 4):
            return item
        return {k: v for k, v in item.items() if k not in ("collapsed", "too_large")}

    def mr_stored_diffs(
        self, mr: MergeRequest, *, unidiff: bool = False
    ) -> tuple[list[JSONDict], bool]:
        """What GitLab stored of the MR's diff: (files, overflow).

        app/models/merge_request_diff.rb `save_diffs` stores
        `compare.diffs(Commit.max_diff_options)`: the hard limits, expanded (no collapsing,
        but a too-large patch is dropped). Files past the limits are never stored, and the
        diff's state becomes `overflow`.
        """
        return self._limited_diffs(mr.diffs(unidiff=unidiff), expanded=True)

    # ------------------------------------------------------------------ state setup

    def add_project(
        self,
        *,
        path_with_namespace: str,
        default_branch: str = "main",
        description: str = "",
        topics: list[str] | None = None,
        id: int | None = None,
        archived: bool = False,
        visibility: str = "private",
    ) -> Project:
        if id is None:
            # Skip ids taken by projects created with an explicit id.
            project_id = self._next_id("project")
            while project_id in self._projects:
                project_id = self._next_id("project")
        else:
            project_id = id
        if project_id in self._projects:
            raise ValueError(f"project id {project_id} already exists")
        project = Project(
            id=project_id,
            path_with_namespace=path_with_namespace,
            default_branch=default_branch,
            description=description,
            topics=list(topics or []),
            created_at=self._now(),
            visibility=visibility,
            archived=archived,
            _fake=self,
        )
        self._projects[project_id] = project
        self._mr_iids[project_id] = itertools.count(1)
        self._pipeline_iids[project_id] = itertools.count(1)
        return project

    def add_group(
        self,
        full_path: str,
        *,
        description: str = "",
        visibility: str = "private",
        id: int | None = None,
    ) -> Group:
        """A group, or a subgroup when `full_path` has slashes (missing ancestors are created).

        Projects join it by namespace: `add_project(path_with_namespace=f"{full_path}/app")`.
        """
        existing = self._group_by_path(full_path)
        if existing is not None:
            return existing
        parent = self.add_group(full_path.rsplit("/", 1)[0]) if "/" in full_path else None
        group_id = id if id is not None else self._next_id("group")
        while id is None and group_id in self._groups:
            group_id = self._next_id("group")
        if group_id in self._groups:
            raise ValueError(f"group id {group_id} already exists")
        group = Group(
            id=group_id,
            full_path=full_path,
            name=full_path.rsplit("/", 1)[-1].replace("-", " ").title(),
            description=description,
            visibility=visibility,
            created_at=self._now(),
            parent_id=parent.id if parent else None,
        )
        self._groups[group_id] = group
        return group

    def add_group_member(
        self, group_id: int, username: str, *, access_level: int = 30, state: str = "active"
    ) -> JSONDict:
        """Make a user a direct member of a group; `state` is the user's (active, blocked...)."""
        group = self._groups[group_id]
        user = self._user(username)
        self._users[username]["state"] = state
        group.members[username] = access_level
        return user

    def share_project_with_group(self, project_id: int, group_id: int) -> None:
        """Invite a group to a project of another namespace: it then appears in the group's
        project listing unless `with_shared=false`."""
        self._get_project(project_id)
        self._groups[group_id].shared_project_ids.append(project_id)

    def archive_project(self, project_id: int) -> None:
        self._get_project(project_id).archived = True

    def _group_by_path(self, full_path: str) -> Group | None:
        # Paths are matched case-insensitively, as GitLab routes them.
        wanted = full_path.lower()
        return next((g for g in self._groups.values() if g.full_path.lower() == wanted), None)

    def commit(
        self,
        project_id: int,
        branch: str,
        *,
        message: str,
        files: dict[str, str | None] | None = None,
        author_name: str = "Ada Lovelace",
        author_email: str = "ada@example.com",
        parent: str | None = None,
    ) -> str:
        """Create a commit on `branch` and move the branch head to it; return its sha.

        The parent is `parent` if given, else the branch head, else the default
        branch head, else none (a root commit in an empty project).  `files` maps a
        path to its new content, or to None to delete it.
        """
        project = self._get_project(project_id)
        if parent is None:
            parent = project.branches.get(branch) or project.branches.get(project.default_branch)
        elif parent not in self._commits:
            raise ValueError(f"unknown parent commit {parent}")
        tree = dict(self._commits[parent].tree) if parent else {}
        for path, content in (files or {}).items():
            if content is None:
                tree.pop(path, None)
            else:
                tree[path] = content
        seq = next(self._seq)
        now = self._now()
        seed = f"{seq}\0{project_id}\0{branch}\0{message}\0{parent}\0{time.time_ns()}"
        sha = hashlib.sha1(seed.encode(), usedforsecurity=False).hexdigest()
        self._commits[sha] = Commit(
            sha=sha,
            seq=seq,
            message=message,
            author_name=author_name,
            author_email=author_email,
            committer_name=author_name,
            committer_email=author_email,
            authored_date=now,
            committed_date=now,
            parent_ids=[parent] if parent else [],
            tree=tree,
        )
        if parent and parent not in project.objects:
            project.objects |= self._ancestors(parent)
        project.objects.add(sha)
        project.branches[branch] = sha
        self._touch_merge_requests(project_id, branch)
        return sha

    def merge(self, project_id: int, branch: str, other: str, *, message: str) -> str:
        """A merge commit on `branch` with parents (branch head, `other`); return its sha.

        Its tree is the branch's, with every file `other` changed since their merge base
        taken from `other` (no conflicts are modelled).
        """
        head = self.branch_head(project_id, branch)
        base = self._merge_base(head, other)
        base_tree = self._commits[base].tree if base else {}
        theirs = self._commits[other].tree
        files: dict[str, str | None] = {
            path: content for path, content in theirs.items() if base_tree.get(path) != content
        }
        files.update({path: None for path in base_tree if path not in theirs})
        sha = self.commit(project_id, branch, message=message, files=files)
        self._commits[sha].parent_ids.append(other)
        self._get_project(project_id).objects |= self._ancestors(other)
        return sha

    def _touch_merge_requests(self, project_id: int, branch: str) -> None:
        # A push to an MR's source branch updates the MR (updated_at moves).
        for mr in self._mrs.values():
            if mr.source_project_id == project_id and mr.source_branch == branch:
                mr.updated_at = self._now()

    def force_branch(self, project_id: int, branch: str, sha: str) -> None:
        """Move a branch head to any commit (a force-push)."""
        project = self._get_project(project_id)
        if sha not in self._commits:
            raise ValueError(f"unknown commit {sha}")
        project.objects |= self._ancestors(sha)
        project.branches[branch] = sha
        self._touch_merge_requests(project_id, branch)

    def open_mr(
        self,
        project_id: int,
        *,
        source_branch: str,
        target_branch: str | None = None,
        title: str = "Add a feature",
        description: str = "",
        labels: list[str] | None = None,
        draft: bool = False,
        source_project_id: int | None = None,
        squash: bool = False,
        author_username: str = "ada",
    ) -> MergeRequest:
        project = self._get_project(project_id)
        source = self._get_project(
            source_project_id if source_project_id is not None else project_id
        )
        if source_branch not in source.branches:
            raise ValueError(f"source branch {source_branch!r} does not exist")
        target = target_branch or project.default_branch
        # https://docs.gitlab.com/user/project/merge_requests/drafts/
        # Draft status *is* the title prefix: marking a draft prepends "Draft: ".
        if draft and not _DRAFT_TITLE.match(title):
            title = f"Draft: {title}"
        now = self._now()
        mr = MergeRequest(
            id=self._next_id("merge_request"),
            iid=next(self._mr_iids[project_id]),
            project_id=project_id,
            source_project_id=source.id,
            source_branch=source_branch,
            target_branch=target,
            title=title,
            description=description,
            labels=list(labels or []),
            draft=bool(_DRAFT_TITLE.match(title)),
            squash=squash,
            author=self._user(author_username),
            created_at=now,
            updated_at=now,
            _fake=self,
        )
        _ = mr.head_sha  # remember the head in case the branch disappears later
        self._mrs[mr.id] = mr
        return mr

    def add_pipeline(
        self, project_id: int, sha: str, ref: str, *, status: str = "running", source: str = "push"
    ) -> int:
        project = self._get_project(project_id)
        if sha not in self._commits:
            raise ValueError(f"unknown commit {sha}")
        return self._create_pipeline(project, sha, ref, status=status, source=source).id

    def add_job(
        self,
        pipeline_id: int,
        name: str,
        *,
        status: str = "running",
        stage: str = "test",
        allow_failure: bool = False,
        username: str = "ada",
    ) -> JSONDict:
        """A CI job (a `Ci::Build`, as .gitlab-ci.yml defines it) in a pipeline.

        gitlabhq/gitlabhq: lib/api/commit_statuses.rb lists CI jobs among a commit's
        statuses, and app/models/generic_commit_status.rb refuses an external status named
        like one of them (`name_uniqueness_across_types`). Its author is the user the
        pipeline runs for, not the bot.
        """
        pipeline = self._pipelines[pipeline_id]
        now = self._now()
        record: JSONDict = {
            "id": self._next_id("commit_status"),
            "project_id": pipeline.project_id,
            "sha": pipeline.sha,
            "ref": pipeline.ref,
            "status": status,
            "name": name,
            "target_url": None,
            "description": None,
            "coverage": None,
            "created_at": now,
            "started_at": now if status != "created" else None,
            "finished_at": now if status in ("success", "failed", "canceled") else None,
            "pipeline_id": pipeline.id,
            "author": self._user(username),
            "user_id": self._user(username)["id"],
            "retried": False,
            "allow_failure": allow_failure,
            "type": CI_BUILD,
            "stage": stage,
        }
        self._statuses.append(record)
        pipeline.updated_at = now
        return self._status_entity(record)

    def push(
        self, project_id: int, commits: dict[str, dict[str, Any]]
    ) -> tuple[dict[str, str], frozenset[str]]:
        """One `git push` that moves several branches: `commits` maps a branch to the
        `commit()` arguments of its new head. Returns the new heads, and the branches
        GitLab sends no push hook for.

        gitlabhq/gitlabhq: app/services/git/process_ref_changes_service.rb groups a push's
        branch changes by action (created, pushed, removed) and runs the push hooks of a
        group only when `changes.size <= Gitlab::CurrentSettings.push_event_hooks_limit`
        (3 by default; doc/user/project/integrations/webhooks.md "Push event limits"). So
        four updated branches in one push fire no push hook at all. Each such push is
        recorded in `pushes_without_hooks`. (MR hooks still fire: MergeRequests::
        RefreshService runs for every pushed branch.)
        """
        project = self._get_project(project_id)
        created = {branch for branch in commits if branch not in project.branches}
        heads = {
            branch: self.commit(project_id, branch, **arguments)
            for branch, arguments in commits.items()
        }
        groups = (created, set(heads) - created)
        unhooked = frozenset(
            branch for group in groups if len(group) > PUSH_EVENT_HOOKS_LIMIT for branch in group
        )
        if unhooked:
            self.pushes_without_hooks.append(
                {"project_id": project_id, "heads": {b: heads[b] for b in sorted(unhooked)}}
            )
        return heads, unhooked

    def retarget_mr(self, project_id: int, mr_iid: int, target_branch: str) -> JSONDict:
        """Change an MR's target branch (Edit > Target branch); returns the hook's `changes`.

        gitlabhq/gitlabhq: lib/gitlab/data_builder/issuable.rb reports changed
        `safe_hook_attributes` (target_branch among them) as {"previous", "current"}.
        """
        mr = self._get_mr(project_id, mr_iid)
        if target_branch not in self._projects[project_id].branches:
            raise ValueError(f"target branch {target_branch!r} does not exist")
        previous, mr.target_branch = mr.target_branch, target_branch
        mr.updated_at = self._now()
        return {"target_branch": {"previous": previous, "current": target_branch}}

    def edit_note(self, project_id: int, mr_iid: int, note_id: int, body: str) -> JSONDict:
        """A human edits their comment; GitLab then sends a Note Hook with action `update`
        (gitlabhq/gitlabhq: lib/gitlab/data_builder/note.rb, VALID_ACTIONS)."""
        mr = self._get_mr(project_id, mr_iid)
        note = next(n for n in mr.notes if n["id"] == note_id)
        note["body"] = body
        note["updated_at"] = self._now()
        return dict(note)

    def delete_note(self, project_id: int, mr_iid: int, note_id: int) -> None:
        """A note deleted by someone in the UI."""
        mr = self._get_mr(project_id, mr_iid)
        mr.notes[:] = [n for n in mr.notes if n["id"] != note_id]

    def add_note(
        self, project_id: int, mr_iid: int, body: str, *, author_username: str
    ) -> JSONDict:
        """A note written by a human (not the bot)."""
        mr = self._get_mr(project_id, mr_iid)
        return dict(self._create_note(mr, body, self._user(author_username)))

    # ------------------------------------------------------------------ inspection

    def branch_head(self, project_id: int, branch: str) -> str:
        return self._get_project(project_id).branches[branch]

    def tree_at(self, sha: str) -> dict[str, str]:
        """Path -> content of every file at a commit."""
        return dict(self._commits[sha].tree)

    def compare_commits(self, project_id: int, base: str, head: str) -> list[Commit]:
        """`git log base..head`, oldest first: what a push of `head` over `base` added."""
        project = self._get_project(project_id)
        return self._commits_between(self._resolve(project, base) or "", head)

    def statuses(self, project_id: int, sha: str) -> list[JSONDict]:
        """Every commit status ever created for `sha`, oldest first (retried ones too)."""
        return [
            self._status_entity(s)
            for s in self._statuses
            if s["project_id"] == project_id and s["sha"] == sha
        ]

    def pipelines(self, project_id: int, sha: str | None = None) -> list[JSONDict]:
        """Pipelines of the project (optionally of one sha), oldest first."""
        return [
            self._pipeline_entity(p)
            for p in sorted(self._pipelines.values(), key=lambda p: p.id)
            if p.project_id == project_id and (sha is None or p.sha == sha)
        ]

    def notes(self, project_id: int, mr_iid: int) -> list[JSONDict]:
        """Notes of an MR in GitLab's note shape, oldest first."""
        return [dict(n) for n in self._get_mr(project_id, mr_iid).notes]

    def merge_request(self, project_id: int, mr_iid: int) -> MergeRequest:
        return self._get_mr(project_id, mr_iid)

    def calls(
        self, method: str | None = None, path_contains: str | None = None
    ) -> list[LoggedRequest]:
        """Logged requests filtered by method and by a substring of the (raw or decoded) path."""
        return [
            r
            for r in self.requests
            if (method is None or r.method == method.upper())
            and (
                path_contains is None or path_contains in r.path or path_contains in unquote(r.path)
            )
        ]

    def connections(self) -> int:
        """Number of TCP connections opened to the fake (distinct client ports)."""
        return len({r.client_port for r in self.requests})

    # ------------------------------------------------------------------ faults

    def fail(
        self,
        method: str,
        path_regex: str,
        status: int,
        *,
        times: int | None = None,
        retry_after: int | None = None,
        body: str | None = None,
        probability: float = 1.0,
        html: bool | None = None,
    ) -> None:
        """Answer the next `times` matching requests (None: all) with `status`.

        `method` may be "*" for any method; `path_regex` is `re.search`ed against the
        raw and the percent-decoded path. With `probability` below 1 each matching request
        is hit at that rate (seeded: see `seed_chaos`). `html` answers with the HTML error
        page of the proxy in front of GitLab; by default a 502 or 504 does (only a gateway
        answers those), any other status GitLab's own JSON error.
        """
        self._faults.append(
            _Fault(
                method.upper(),
                re.compile(path_regex),
                False,
                status,
                times,
                retry_after,
                body,
                probability,
                html=status in (502, 504) if html is None else html,
            )
        )

    def drop(
        self,
        method: str,
        path_regex: str,
        *,
        times: int | None = 1,
        probability: float = 1.0,
        after_processing: bool = False,
    ) -> None:
        """Close the connection without answering the next `times` matching requests.

        By default the request never reaches GitLab (a reset on the way in). With
        `after_processing` GitLab handles it first (a POST creates its note, a PUT edits)
        and the connection is reset on the way back, so the client sees the same transport
        error but the write happened: a client that retries a POST blindly writes twice.
        """
        self._faults.append(
            _Fault(
                method.upper(),
                re.compile(path_regex),
                True,
                0,
                times,
                None,
                None,
                probability,
                after_processing=after_processing,
            )
        )

    def hold(self, method: str, path_regex: str) -> tuple[asyncio.Event, asyncio.Event]:
        """Hold the next matching request before GitLab handles it, until released.

        Returns (arrived, release): `arrived` is set once the request is held; setting
        `release` lets it through. Tests use it to land an event at an exact point of a
        check instead of guessing with sleeps."""
        arrived, release = asyncio.Event(), asyncio.Event()
        self._holds.append((method.upper(), re.compile(path_regex), arrived, release))
        return arrived, release

    def seed_chaos(self, seed: int) -> None:
        self._chaos = random.Random(seed)

    def clear_faults(self) -> None:
        self._faults.clear()

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        for fault in self._faults:
            if fault.remaining == 0 or not fault.matches(method, path):
                continue
            if fault.probability < 1.0 and self._chaos.random() >= fault.probability:
                continue
            if fault.remaining is not None:
                fault.remaining -= 1
            return fault
        return None

    def _fault_response(self, fault: _Fault) -> Response:
        if fault.status == 429:
            # https://docs.gitlab.com/administration/settings/user_and_ip_rate_limits/#response-headers
            # A throttled request gets a plain-text "Retry later\n" body
            # (Gitlab::Throttle::DEFAULT_RATE_LIMITING_RESPONSE_TEXT + "\n"), the
            # RateLimit-* headers, and on 429 also RateLimit-ResetTime and Retry-After.
            reset = int(time.time()) + (fault.retry_after if fault.retry_after is not None else 60)
            headers = {
                "RateLimit-Name": "throttle_authenticated_api",
                "RateLimit-Limit": "2000",
                "RateLimit-Observed": "2001",
                "RateLimit-Remaining": "0",
                "RateLimit-Reset": str(reset),
                "RateLimit-ResetTime": email.utils.formatdate(reset, usegmt=True),
            }
            if fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
            body = fault.body if fault.body is not None else "Retry later\n"
            return Response(body, status_code=429, headers=headers, media_type="text/plain")
        if fault.html:
            return self._proxy_error_page(fault.status)
        if fault.body is not None:
            try:
                json.loads(fault.body)
            except ValueError:
                return Response(fault.body, status_code=fault.status, media_type="text/plain")
            return Response(fault.body, status_code=fault.status, media_type="application/json")
        # https://docs.gitlab.com/api/rest/troubleshooting/#status-codes
        # GitLab's API errors are {"message": "<code> <reason>"}.
        reasons = {
            400: "Bad request",
            401: "Unauthorized",
            403: "Forbidden",
            404: "Not Found",
            409: "Conflict",
            422: "Unprocessable Entity",
            500: "Internal Server Error",
            502: "Bad Gateway",
            503: "Service Unavailable",
            504: "Gateway Timeout",
        }
        message = f"{fault.status} {reasons.get(fault.status, 'Error')}"
        return JSONResponse({"message": message}, status_code=fault.status)

    @staticmethod
    def _proxy_error_page(status: int) -> Response:
        # When Puma is down or slow, the answer comes from what stands in front of it, not
        # from GitLab's API: an HTML page with `Content-Type: text/html`, never GitLab's
        # {"message": ...} JSON. Workhorse swaps a 5xx for the static page
        # public/<status>.html ("text/html; charset=utf-8",
        # gitlabhq/gitlabhq:workhorse/internal/staticpages/error_pages.go writeHTML), and a
        # load balancer such as NGINX in front of Workhorse answers with its own default
        # page, modelled here.
        reasons = {
            502: "Bad Gateway",
            503: "Service Temporarily Unavailable",
            504: "Gateway Time-out",
        }
        title = f"{status} {reasons.get(status, 'Error')}"
        page = (
            f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
            "</body>\r\n</html>\r\n"
        )
        return Response(page, status_code=status, media_type="text/html")

    def _rate_limit_headers(self) -> dict[str, str]:
        """The RateLimit-* headers GitLab puts on every API answer, not only on a 429.

        doc/administration/settings/user_and_ip_rate_limits.md, "Headers returned for all
        requests": RateLimit-Limit, -Name, -Observed, -Remaining and -Reset, where Reset is
        the Unix time the window ends. Only a throttled answer (429) adds Retry-After and
        RateLimit-ResetTime. Modelled on GitLab.com's authenticated API throttle: 2,000
        requests in a window of 60 seconds.
        """
        now = int(time.time())
        period = self.rate_limit_period_seconds
        window = now - now % period
        if window != self._rate_window:
            self._rate_window, self._rate_observed = window, 0
        self._rate_observed += 1
        return {
            "RateLimit-Limit": str(RATE_LIMIT_REQUESTS),
            "RateLimit-Name": "throttle_authenticated_api",
            "RateLimit-Observed": str(self._rate_observed),
            "RateLimit-Remaining": str(max(0, RATE_LIMIT_REQUESTS - self._rate_observed)),
            "RateLimit-Reset": str(window + period),
        }

    async def _drop_connection(self, receive: Receive, send: Send) -> None:
        # uvicorn hands the app a bound method of its per-request cycle object, which
        # holds the asyncio transport: closing it sends no response bytes at all, so
        # the client sees the server hang up ("Server disconnected without sending a
        # response").  We then wait for uvicorn to notice the disconnect, so it does
        # not try to send its own 500.
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        if isinstance(transport, asyncio.BaseTransport):
            transport.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    while (await receive())["type"] != "http.disconnect":
                        pass
            return
        # Fallback for other servers: promise a body and never finish it.
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")],
            }
        )
        await send({"type": "http.response.body", "body": b"{", "more_body": True})

    # ------------------------------------------------------------------ ASGI entry

    def _authorized(self, headers: dict[str, str]) -> bool:
        # https://docs.gitlab.com/api/rest/authentication/#personalprojectgroup-access-tokens
        # A token goes in the PRIVATE-TOKEN header or as an OAuth-style bearer token.
        if headers.get("private-token") == self.token:
            return True
        return headers.get("authorization", "") == f"Bearer {self.token}"

    async def _hook(self, scope: Scope, receive: Receive, send: Send, route: ASGIApp) -> None:
        raw_path = scope.get("raw_path") or scope["path"].encode()
        path = raw_path.decode("latin-1").split("?", 1)[0]
        query = dict(
            parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        )
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client")
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        entry = LoggedRequest(
            method=scope["method"],
            path=path,
            query=query,
            status=0,
            client_port=client[1] if client else 0,
            headers=headers,
            body=body,
        )
        self.requests.append(entry)

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        rate_limit = self._rate_limit_headers() if self.send_rate_limit_headers else {}

        async def logging_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry.status = message["status"]
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [
                    (k.lower().encode(), v.encode())
                    for k, v in rate_limit.items()
                    if k.lower().encode() not in present
                ]
                message = {**message, "headers": headers}
            await send(message)

        if self.latency:
            await asyncio.sleep(self.latency)
        for held in list(self._holds):
            held_method, pattern, arrived, release = held
            if held_method in ("*", entry.method) and pattern.search(path):
                self._holds.remove(held)
                arrived.set()
                await release.wait()
                break

        fault = self._take_fault(entry.method, path)
        if fault is not None and fault.drop and fault.after_processing:
            # GitLab does the work; the answer is lost on the way back.
            async def discard(message: Message) -> None:
                if message["type"] == "http.response.start":
                    self.processed_then_dropped.append((entry.method, path, message["status"]))

            if self._authorized(headers):
                await route(dict(scope, path=path), replay, discard)
            await self._drop_connection(receive, send)
            return
        if fault is not None and fault.drop:
            await self._drop_connection(receive, send)
            return
        if fault is not None:
            await self._fault_response(fault)(scope, replay, logging_send)
            return
        if path.startswith("/api/v4/") and not self._authorized(headers):
            # https://docs.gitlab.com/api/rest/troubleshooting/#status-codes
            response = JSONResponse({"message": "401 Unauthorized"}, status_code=401)
            await response(scope, replay, logging_send)
            return
        await route(dict(scope, path=path), replay, logging_send)

    def _build_app(self) -> Starlette:
        p = "/api/v4/projects/{pid}"
        mr = p + "/merge_requests/{iid}"
        routes = [
            ("GET", "/api/v4/user", self._h_user),
            ("GET", p, self._h_project),
            ("GET", p + "/repository/tree", self._h_tree),
            ("GET", p + "/repository/files/{file_path}/raw", self._h_file_raw),
            ("GET", p + "/repository/files/{file_path}", self._h_file),
            ("GET", p + "/repository/compare", self._h_compare),
            ("GET", p + "/repository/branches", self._h_branches),
            ("GET", p + "/repository/branches/{branch}", self._h_branch),
            ("GET", p + "/repository/commits/{sha}", self._h_commit),
            ("GET", p + "/repository/commits/{sha}/merge_requests", self._h_commit_mrs),
            ("GET", p + "/repository/commits/{sha}/statuses", self._h_list_statuses),
            ("GET", p + "/repository/commits/{sha}/signature", self._h_signature),
            ("POST", p + "/statuses/{sha}", self._h_post_status),
            ("GET", p + "/pipelines", self._h_pipelines),
            ("GET", p + "/pipelines/{pipeline_id}", self._h_pipeline),
            ("GET", p + "/merge_requests", self._h_mrs),
            ("GET", mr, self._h_mr),
            ("GET", mr + "/commits", self._h_mr_commits),
            ("GET", mr + "/diffs", self._h_mr_diffs),
            ("GET", mr + "/notes", self._h_notes),
            ("POST", mr + "/notes", self._h_post_note),
            ("GET", mr + "/notes/{note_id}", self._h_note),
            ("PUT", mr + "/notes/{note_id}", self._h_put_note),
            ("GET", mr + "/notes/{note_id}/award_emoji", self._h_awards),
            ("POST", mr + "/notes/{note_id}/award_emoji", self._h_post_award),
            ("GET", "/api/v4/groups/{gid}", self._h_group),
            ("GET", "/api/v4/groups/{gid}/projects", self._h_group_projects),
            ("GET", "/api/v4/groups/{gid}/members/all", self._h_group_members_all),
            *self._hook_routes(p),
        ]

        def endpoint(handler: Handler) -> Handler:
            async def run(request: Request) -> Response:
                try:
                    return await handler(request)
                except _ApiError as error:
                    return JSONResponse(error.payload, status_code=error.status)

            return run

        async def not_found(request: Request, exc: Exception) -> Response:
            # Unknown API routes: Grape answers {"error": "404 Not Found"}.
            assert isinstance(exc, HTTPException)
            if exc.status_code == 405:
                return JSONResponse({"error": "405 Method Not Allowed"}, status_code=405)
            return JSONResponse({"error": "404 Not Found"}, status_code=404)

        return _FakeGitLabApp(
            self._hook,
            routes=[Route(path, endpoint(h), methods=[m]) for m, path, h in routes],
            exception_handlers={404: not_found, 405: not_found},
        )

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator[FakeGitLab]:
        """Run uvicorn on 127.0.0.1 (a free port) in this event loop; set base_url."""
        async with serving(self.app, lifespan="off") as url:
            self.base_url = url
            yield self

    # ------------------------------------------------------------------ request helpers

    def _project_from(self, request: Request) -> Project:
        # https://docs.gitlab.com/api/rest/#namespaced-paths
        # `:id` is the numeric id or the URL-encoded full path (matched case-insensitively).
        key = unquote(request.path_params["pid"])
        project: Project | None = None
        if key.isdigit():
            project = self._projects.get(int(key))
        else:
            project = next(
                (
                    pr
                    for pr in self._projects.values()
                    if pr.path_with_namespace.lower() == key.lower()
                ),
                None,
            )
        if project is None:
            raise _not_found("Project")
        return project

    def _get_mr(self, project_id: int, iid: int) -> MergeRequest:
        for mr in self._mrs.values():
            if mr.project_id == project_id and mr.iid == iid:
                return mr
        raise KeyError(f"no merge request !{iid} in project {project_id}")

    def _mr_from(self, request: Request) -> MergeRequest:
        project = self._project_from(request)
        iid = self._int_path(request, "iid", "merge_request_iid")
        try:
            return self._get_mr(project.id, iid)
        except KeyError:
            raise _not_found("Merge Request") from None

    @staticmethod
    def _int_path(request: Request, key: str, name: str) -> int:
        raw = unquote(request.path_params[key])
        if not raw.isdigit():
            raise _param_error(f"{name} is invalid")
        return int(raw)

    @staticmethod
    def _int_query(request: Request, key: str, default: int) -> int:
        raw = request.query_params.get(key)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise _param_error(f"{key} is invalid") from None

    @staticmethod
    async def _params(request: Request) -> dict[str, Any]:
        """Query parameters merged with a JSON, urlencoded or multipart body.

        Grape merges all of them into `params`; python-gitlab sends JSON, curl
        examples in the docs send form fields or query parameters.
        """
        params: dict[str, Any] = dict(request.query_params)
        raw = await request.body()
        if not raw:
            return params
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            parsed = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + raw
            )
            for part in parsed.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True)
                if isinstance(name, str) and isinstance(payload, bytes):
                    params[name] = payload.decode("utf-8")
            return params
        if "json" in ctype or raw.lstrip()[:1] in (b"{", b"["):
            try:
                data = json.loads(raw)
            except ValueError:
                raise _param_error(
                    "The provided content-type is not supported or "
                    "the request body is not valid JSON"
                ) from None
            if not isinstance(data, dict):
                raise _param_error("The request body must be a JSON object")
            params.update(data)
            return params
        params.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        return params

    def _paginate(
        self, request: Request, items: list[Any], *, with_totals: bool = True
    ) -> tuple[list[Any], dict[str, str]]:
        """Slice `items` and build GitLab's offset-pagination headers.

        https://docs.gitlab.com/api/rest/#pagination-response-headers
        x-page, x-per-page, x-next-page ("" on the last page), x-prev-page ("" on the
        first), x-total, x-total-pages (at least 1) and a Link header with
        rel="prev"/"next"/"first"/"last" absolute URLs that keep the other query
        parameters.
        """
        page = max(self._int_query(request, "page", 1), 1)
        per_page = self._int_query(request, "per_page", DEFAULT_PER_PAGE)
        if per_page < 1:
            per_page = DEFAULT_PER_PAGE
        per_page = min(per_page, MAX_PER_PAGE)
        total = len(items)
        with_totals = with_totals and total <= TOTALS_OMITTED_ABOVE
        total_pages = max(1, math.ceil(total / per_page))
        start = (page - 1) * per_page
        chunk = items[start : start + per_page]
        has_next = start + per_page < total
        headers = {
            "x-page": str(page),
            "x-per-page": str(per_page),
            "x-next-page": str(page + 1) if has_next else "",
            "x-prev-page": str(page - 1) if page > 1 else "",
        }
        if with_totals:
            headers["x-total"] = str(total)
            headers["x-total-pages"] = str(total_pages)

        host = request.headers.get("host", "127.0.0.1")
        base = f"{request.url.scheme}://{host}{request.scope['path']}"
        others = [
            (k, v) for k, v in request.query_params.multi_items() if k not in ("page", "per_page")
        ]

        def link(target: int, rel: str) -> str:
            query = urlencode([*others, ("page", str(target)), ("per_page", str(per_page))])
            return f'<{base}?{query}>; rel="{rel}"'

        links: list[str] = []
        if page > 1:
            links.append(link(page - 1, "prev"))
        if has_next:
            links.append(link(page + 1, "next"))
        links.append(link(1, "first"))
        if with_totals:
            links.append(link(total_pages, "last"))
        headers["link"] = ", ".join(links)
        return chunk, headers

    def _paged_json(
        self,
        request: Request,
        items: list[Any],
        render: Callable[[Any], Any],
        *,
        with_totals: bool = True,
    ) -> Response:
        chunk, headers = self._paginate(request, items, with_totals=with_totals)
        return JSONResponse([render(i) for i in chunk], headers=headers)

    # ------------------------------------------------------------------ entities

    def _project_entity(self, project: Project) -> JSONDict:
        # https://docs.gitlab.com/api/projects/#get-a-single-project
        url = project.web_url
        host = self.base_url.split("://", 1)[-1]
        namespace = project.namespace
        return {
            "id": project.id,
            "description": project.description,
            "name": project.path,
            "name_with_namespace": project.path_with_namespace.replace("/", " / "),
            "path": project.path,
            "path_with_namespace": project.path_with_namespace,
            "created_at": project.created_at,
            "default_branch": project.default_branch if project.branches else None,
            # `tag_list` is the deprecated alias of `topics`.
            "tag_list": list(project.topics),
            "topics": list(project.topics),
            "ssh_url_to_repo": f"git@{host}:{project.path_with_namespace}.git",
            "http_url_to_repo": f"{url}.git",
            "web_url": url,
            "readme_url": None,
            "avatar_url": None,
            "forks_count": 0,
            "star_count": 0,
            "last_activity_at": project.created_at,
            "namespace": self._namespace_entity(namespace),
            "empty_repo": not project.branches,
            "archived": project.archived,
            "visibility": project.visibility,
        }

    def _namespace_entity(self, namespace: str) -> JSONDict:
        # https://docs.gitlab.com/api/projects/#get-a-single-project (`namespace`)
        group = self._group_by_path(namespace)
        if group is None:
            return {
                "id": 1,
                "name": namespace.rsplit("/", 1)[-1],
                "path": namespace.rsplit("/", 1)[-1],
                "kind": "group",
                "full_path": namespace,
                "parent_id": None,
                "avatar_url": None,
                "web_url": f"{self.base_url}/groups/{namespace}",
            }
        return {
            "id": group.id,
            "name": group.name,
            "path": group.path,
            "kind": "group",
            "full_path": group.full_path,
            "parent_id": group.parent_id,
            "avatar_url": None,
            "web_url": f"{self.base_url}/groups/{group.full_path}",
        }

    def _group_entity(self, group: Group) -> JSONDict:
        # https://docs.gitlab.com/api/groups/#get-a-single-group (without `projects`)
        return {
            "id": group.id,
            "web_url": f"{self.base_url}/groups/{group.full_path}",
            "name": group.name,
            "path": group.path,
            "description": group.description,
            "visibility": group.visibility,
            "full_name": group.full_path.replace("/", " / "),
            "full_path": group.full_path,
            "created_at": group.created_at,
            "parent_id": group.parent_id,
            "avatar_url": None,
        }

    def _member_entity(self, username: str, access_level: int, since: str) -> JSONDict:
        # https://docs.gitlab.com/api/members/#list-all-members-of-a-group-or-project-including-inherited-and-invited-members
        user = self._user(username)
        return {
            "id": user["id"],
            "username": user["username"],
            "name": user["name"],
            "state": user["state"],
            "locked": user["locked"],
            "avatar_url": user["avatar_url"],
            "web_url": user["web_url"],
            "access_level": access_level,
            "created_at": since,
            "created_by": None,
            "expires_at": None,
            "membership_state": "active",
        }

    def _commit_entity(self, project: Project, commit: Commit) -> JSONDict:
        # https://docs.gitlab.com/api/commits/#get-a-single-commit
        trailers, extended = _trailers(commit.message)
        return {
            "id": commit.sha,
            "short_id": commit.sha[:8],
            "created_at": commit.committed_date,
            "parent_ids": list(commit.parent_ids),
            "title": commit.title,
            "message": commit.message,
            "author_name": commit.author_name,
            "author_email": commit.author_email,
            "authored_date": commit.authored_date,
            "committer_name": commit.committer_name,
            "committer_email": commit.committer_email,
            "committed_date": commit.committed_date,
            "trailers": trailers,
            "extended_trailers": extended,
            "web_url": f"{project.web_url}/-/commit/{commit.sha}",
        }

    def _pipeline_status(self, pipeline: Pipeline) -> str:
        # External statuses are jobs of the pipeline; its status is their composite.
        # https://docs.gitlab.com/ci/pipelines/#pipeline-statuses (simplified)
        states = {
            s["status"]
            for s in self._statuses
            if s["pipeline_id"] == pipeline.id and not s["retried"]
        }
        if not states:
            return pipeline.status
        for state in ("running", "pending", "failed", "canceled"):
            if state in states:
                return state
        return "skipped" if states == {"skipped"} else "success"

    def _pipeline_entity(self, pipeline: Pipeline) -> JSONDict:
        # https://docs.gitlab.com/api/pipelines/#list-project-pipelines
        project = self._projects[pipeline.project_id]
        return {
            "id": pipeline.id,
            "iid": pipeline.iid,
            "project_id": pipeline.project_id,
            "sha": pipeline.sha,
            "ref": pipeline.ref,
            "status": self._pipeline_status(pipeline),
            "source": pipeline.source,
            "created_at": pipeline.created_at,
            "updated_at": pipeline.updated_at,
            "web_url": f"{project.web_url}/-/pipelines/{pipeline.id}",
        }

    def _status_entity(self, record: JSONDict) -> JSONDict:
        # https://docs.gitlab.com/api/commits/#list-the-statuses-of-a-commit
        # (lib/api/entities/commit_status.rb). The entity exposes neither the record's type
        # (a CI job or an external status) nor its stage: only these fields. The listing
        # tells them apart by the `stage` filter and by `author` (the user who posted an
        # external status; the pipeline's user for a CI job).
        return {
            "id": record["id"],
            "sha": record["sha"],
            "ref": record["ref"],
            "status": record["status"],
            "name": record["name"],
            "target_url": record["target_url"],
            "description": record["description"],
            "created_at": record["created_at"],
            "started_at": record["started_at"],
            "finished_at": record["finished_at"],
            "allow_failure": record.get("allow_failure", False),
            "coverage": record["coverage"],
            "pipeline_id": record["pipeline_id"],
            "author": dict(record["author"]),
        }

    def _mr_entity(self, mr: MergeRequest, *, single: bool = False) -> JSONDict:
        # https://docs.gitlab.com/api/merge_requests/#list-project-merge-requests
        # https://docs.gitlab.com/api/merge_requests/#get-single-mr
        project = self._projects[mr.project_id]
        head = mr.head_sha
        entity: JSONDict = {
            "id": mr.id,
            "iid": mr.iid,
            "project_id": mr.project_id,
            "title": mr.title,
            "description": mr.description,
            "state": mr.state,
            "created_at": mr.created_at,
            "updated_at": mr.updated_at,
            "merged_by": None,
            "merge_user": None,
            "merged_at": None,
            "closed_by": None,
            "closed_at": None,
            "target_branch": mr.target_branch,
            "source_branch": mr.source_branch,
            "user_notes_count": len(mr.notes),
            "upvotes": 0,
            "downvotes": 0,
            "author": dict(mr.author),
            "assignees": [],
            "assignee": None,
            "reviewers": [],
            "source_project_id": mr.source_project_id,
            "target_project_id": mr.project_id,
            "labels": list(mr.labels),
            "draft": mr.draft,
            # `work_in_progress` is the deprecated alias of `draft`.
            "work_in_progress": mr.draft,
            "milestone": None,
            "merge_when_pipeline_succeeds": False,
            "merge_status": "can_be_merged",
            "detailed_merge_status": "mergeable",
            "sha": None if mr.preparing else head,
            "merge_commit_sha": None,
            "squash_commit_sha": None,
            "discussion_locked": None,
            "should_remove_source_branch": None,
            "force_remove_source_branch": False,
            "prepared_at": mr.created_at,
            "reference": f"!{mr.iid}",
            "references": {
                "short": f"!{mr.iid}",
                "relative": f"!{mr.iid}",
                "full": f"{project.path_with_namespace}!{mr.iid}",
            },
            "web_url": mr.web_url,
            "time_stats": {
                "time_estimate": 0,
                "total_time_spent": 0,
                "human_time_estimate": None,
                "human_total_time_spent": None,
            },
            "squash": mr.squash,
            "squash_on_merge": mr.squash,
            "task_completion_status": {"count": 0, "completed_count": 0},
            "has_conflicts": False,
            "blocking_discussions_resolved": True,
        }
        if single:
            entity.update(
                {
                    "subscribed": False,
                    # lib/api/entities/merge_request.rb: `changes_count` is
                    # `merge_request_diff.real_size`, a string; past the diff limits it
                    # ends in "+" ("1000+", lib/gitlab/git/diff_collection.rb `real_size`).
                    "changes_count": self._changes_count(mr),
                    "latest_build_started_at": None,
                    "latest_build_finished_at": None,
                    "first_deployed_to_production_at": None,
                    "pipeline": None,
                    "head_pipeline": None,
                    # MergeRequest#diff_refs is nil until the diff is prepared.
                    "diff_refs": None
                    if mr.preparing
                    else {
                        "base_sha": mr.base_sha,
                        "head_sha": head,
                        "start_sha": mr.start_sha,
                    },
                    "merge_error": None,
                    "first_contribution": False,
                    "user": {"can_merge": True},
                }
            )
        return entity

    def _changes_count(self, mr: MergeRequest) -> str:
        stored, overflow = self.mr_stored_diffs(mr)
        return f"{len(stored)}+" if overflow else str(len(stored))

    # ------------------------------------------------------------------ handlers

    async def _h_user(self, request: Request) -> Response:
        # https://docs.gitlab.com/api/users/#get-the-current-user
        return JSONResponse(self._user(self.bot_user["username"]))

    async def _h_project(self, request: Request) -> Response:
        return JSONResponse(self._project_entity(self._project_from(request)))

    # ---- groups: https://docs.gitlab.com/api/groups/

    def _group_from(self, request: Request) -> Group:
        # https://docs.gitlab.com/api/rest/#namespaced-paths
        # `:id` is the numeric id or the URL-encoded full path of the group.
        key = unquote(request.path_params["gid"])
        group = self._groups.get(int(key)) if key.isdigit() else self._group_by_path(key)
        if group is None:
            raise _not_found("Group")
        return group

    def _in_group(self, project: Project, group: Group, *, subgroups: bool) -> bool:
        namespace = project.namespace.lower()
        own = group.full_path.lower()
        return namespace == own or (subgroups and namespace.startswith(own + "/"))

    async def _h_group(self, request: Request) -> Response:
        return JSONResponse(self._group_entity(self._group_from(request)))

    async def _h_group_projects(self, request: Request) -> Response:
        # https://docs.gitlab.com/api/groups/#list-projects
        # include_subgroups (default false), with_shared (default true), archived (unset: both),
        # order_by (default created_at), sort (default desc), simple.
        # Offset pagination only: lib/api/groups.rb answers with `paginate(projects)`, and the
        # keyset table (https://docs.gitlab.com/api/rest/#supported-resources) does not list
        # this endpoint, so `pagination=keyset` is ignored here exactly as GitLab ignores it.
        group = self._group_from(request)
        params = request.query_params
        subgroups = _as_bool(params.get("include_subgroups", "false"))
        projects = [
            p for p in self._projects.values() if self._in_group(p, group, subgroups=subgroups)
        ]
        if _as_bool(params.get("with_shared", "true")):
            groups = [group]
            if subgroups:
                groups += [
                    g
                    for g in self._groups.values()
                    if g.full_path.lower().startswith(group.full_path.lower() + "/")
                ]
            listed = {p.id for p in projects}
            for member_group in groups:
                for project_id in member_group.shared_project_ids:
                    if project_id not in listed:
                        listed.add(project_id)
                        projects.append(self._projects[project_id])
        if params.get("archived") not in (None, ""):
            archived = _as_bool(params["archived"])
            projects = [p for p in projects if p.archived == archived]
        order_by = params.get("order_by") or "created_at"
        key_of: dict[str, Callable[[Project], Any]] = {
            "id": lambda p: p.id,
            "name": lambda p: (p.path.lower(), p.id),
            "path": lambda p: (p.path, p.id),
            "created_at": lambda p: (p.created_at, p.id),
            "updated_at": lambda p: (p.created_at, p.id),
            "last_activity_at": lambda p: (p.created_at, p.id),
        }
        if order_by not in key_of:
            raise _param_error("order_by does not have a valid value")
        sort = params.get("sort") or "desc"
        if sort not in ("asc", "desc"):
            raise _param_error("sort does not have a valid value")
        projects.sort(key=key_of[order_by], reverse=sort == "desc")
        simple = _as_bool(params.get("simple", "false"))

        def render(project: Project) -> JSONDict:
            full = self._project_entity(project)
            return {k: v for k, v in full.items() if not simple or k not in _NOT_IN_SIMPLE}

        return self._paged_json(request, projects, render)

    async def _h_group_members_all(self, request: Request) -> Response:
        # https://docs.gitlab.com/api/members/#list-all-members-of-a-group-or-project-including-inherited-and-invited-members
        # Direct members and those inherited from ancestor groups; a user who is a member at
        # several levels is listed once, with the highest access level.
        group = self._group_from(request)
        chain: list[Group] = []
        current: Group | None = group
        while current is not None:
            chain.append(current)
            current = self._groups.get(current.parent_id) if current.parent_id else None
        best: dict[str, tuple[int, str]] = {}
        for level in chain:
            for username, access in level.members.items():
                if username not in best or access > best[username][0]:
                    best[username] = (access, level.created_at)
        members = sorted(best, key=lambda name: self._users[name]["id"])
        return self._paged_json(
            request, members, lambda name: self._member_entity(name, *best[name])
        )

    async def _h_tree(self, request: Request) -> Response:
        # https://docs.gitlab.com/api/repositories/#list-repository-tree
        project = self._project_from(request)
        sha = self._resolve(project, request.query_params.get("ref") or None)
        if sha is None:
            raise _not_found("Tree")
        tree = self._commits[sha].tree
        path = request.query_params.get("path", "").strip("/")
        recursive = _as_bool(request.query_params.get("recursive", "false"))
        prefix = f"{path}/" if path else ""
        under = [f for f in tree if f.startswith(prefix)]
        if path and not under:
            # Since GitLab 17.7 a missing path is a 404 (it used to be 200 with []).
            if self.version < (17, 7):
                return self._paged_json(request, [], lambda i: i)
            raise _ApiError(404, {"message": "404 invalid revision or path Not Found"})
        dirs: set[str] = set()
        blobs: list[str] = []
        for file_path in under:
            rest = file_path[len(prefix) :]
            parts = rest.split("/")
            if recursive:
                dirs.update(prefix + "/".join(parts[:i]) for i in range(1, len(parts)))
                blobs.append(file_path)
            elif len(parts) > 1:
                dirs.add(prefix + parts[0])
            else:
                blobs.append(file_path)

        def tree_id(directory: str) -> str:
            listing = "\n".join(
                f"{f}\0{_git_blob_sha(tree[f].encode())}"
                for f in sorted(tree)
                if f.startswith(directory + "/")
            )
            return hashlib.sha1(listing.encode(), usedforsecurity=False).hexdigest()

        # Trees are listed before blobs, each group by path.
        items = [
            {
                "id": tree_id(d),
                "name": d.rsplit("/", 1)[-1],
                "type": "tree",
                "path": d,
                "mode": TREE_MODE,
            }
            for d in sorted(dirs)
        ]
        items += [
            {
                "id": _git_blob_sha(tree[b].encode()),
                "name": b.rsplit("/", 1)[-1],
                "type": "blob",
                "path": b,
                "mode": FILE_MODE,
            }
            for b in sorted(blobs)
        ]
        return self._paged_json(request, items, lambda i: i)

    def _blob(self, request: Request, *, ref_required: bool) -> tuple[str, str, str, str]:
        """(file_path, ref as given, commit sha, content) or a GitLab error."""
        project = self._project_from(request)
        file_path = unquote(request.path_params["file_path"])
        ref = request.query_params.get("ref")
        if ref is None:
            if ref_required:
                raise _param_error("ref is missing")
            ref = "HEAD"
        sha = self._resolve(project, ref)
        if sha is None:
            raise _not_found("Commit")
        content = self._commits[sha].tree.get(file_path)
        if content is None:
            raise _not_found("File")
        return file_path, ref, sha, content

    def _blob_headers(self, file_path: str, ref: str, sha: str, data: bytes) -> dict[str, str]:
        # https://docs.gitlab.com/api/repository_files/#get-file-metadata-only
        return {
            "X-Gitlab-Blob-Id": _git_blob_sha(data),
            "X-Gitlab-Commit-Id": sha,
            "X-Gitlab-Content-Sha256": hashlib.sha256(data).hexdigest(),
            "X-Gitlab-Encoding": "base64",
            "X-Gitlab-File-Name": file_path.rsplit("/", 1)[-1],
            "X-Gitlab-File-Path": file_path,
            "X-Gitlab-Last-Commit-Id": self._last_commit_touching(sha, file_path),
            "X-Gitlab-Ref": ref,
            "X-Gitlab-Size": str(len(data)),
            "X-Gitlab-Execute-Filemode": "false",
        }

    async def _h_file(self, request: Request) -> Response:
        # https://docs.gitlab.com/api/repository_files/#get-file-from-repository
        # `ref` is required; content is base64.
        file_path, ref, sha, content = self._blob(request, ref_required=True)
        data = content.encode("utf-8")
        headers = self._blob_headers(file_path, ref, sha, data)
        return JSONResponse(
            {
                "file_name": file_path.rsplit("/", 1)[-1],
                "file_path": file_path,
                "size": len(data),
                "encoding": "base64",
                "content_sha256": headers["X-Gitlab-Content-Sha256"],
                "ref": ref,
                "blob_id": headers["X-Gitlab-Blob-Id"],
                "commit_id": sha,
                "last_commit_id": headers["X-Gitlab-Last-Commit-Id"],
                "execute_filemode": False,
                "content": base64.b64encode(data).decode("ascii"),
            },
            headers=headers,
        )

    async def _h_file_raw(self, request: Request) -> Response:
        # https://docs.gitlab.com/api/repository_files/#get-raw-file-from-repository
        # `ref` is optional here (default HEAD); the body is the file's bytes.
        file_path, ref, sha, content = self._blob(request, ref_required=False)
        data = content.encode("utf-8")
        return Response(
            data,
            media_type="text/plain; charset=utf-8",
            headers=self._blob_headers(file_path, ref, sha, data),
        )

    async def _h_signature(self, request: Request) -> Response:
        # https://docs.gitlab.com/api/commits/#get-signature-of-a-commit
        # An unsigned commit answers 404 "Signature Not Found".
        project = self._project_from(request)
        sha = self._resolve(project, request.path_params["sha"])
        if sha is None:
            raise _not_found("Commit")
        status = self.signed.get(sha)
        if status is None:
            raise _not_found("Signature")
        if status == "verified_ca":
            # An X.509 signature whose certificate a group's CA issued: EE adds
            # `verified_ca` to the statuses of app/models/enums/commit_signature.rb
            # (ee/app/models/concerns/ee/enums/commit_signature.rb); its entity is
            # lib/api/entities/x509_signature.rb with the signature type.
            return JSONResponse(
                {
                    "signature_type": "X509",
                    "verification_status": status,
                    "x509_certificate": {
                        "id": 1,
                        "subject": "CN=Ada Lovelace,O=Example",
                        "subject_key_identifier": "AB:CD:EF",
                        "email": "ada@example.com",
                        "serial_number": 1,
                        "certificate_status": "good",
                        "x509_issuer": {"id": 1, "subject": "CN=Example CA"},
                    },
                    "commit_source": "gitaly",
                }
            )
        return JSONResponse(
            {
                "signature_type": "PGP",
                "verification_status": status,
                "gpg_key_id": 1,
                "gpg_key_primary_keyid": "8254AAB3FBD54AC9",
                "gpg_key_user_name": "Ada Lovelace",
                "gpg_key_user_email": "ada@example.com",
                "gpg_key_subkey_id": None,
                "commit_source": "gitaly",
            }
        )

    def _branch_entity(self, project: Project, name: str) -> JSONDict:
        # gitlabhq/gitlabhq: lib/api/entities/branch.rb (`commit` is Entities::Commit;
        # `default` is `options[:project].default_branch == repo_branch.name`).
        sha = project.branches[name]
        return {
            "name": name,
            "commit": self._commit_entity(project, self._commits[sha]),
            "merged": False,
            "protected": name == project.default_branch,
            "default": name == project.default_branch,
            "developers_can_push": False,
            "developers_can_merge": False,
            "can_push": True,
            "web_url": f"{project.web_url}/-/tree/{name}",
        }

    async def _h_branch(self, request: Request) -> Response:
        # https://docs.gitlab.com/api/branches/#get-single-repository-branch
        # The name is URL-encoded (`feature%2Fx`); an unknown one is "404 Branch Not Found".
        project = self._project_from(request)
        name = unquote(request.path_params["branch"])
        if name not in project.branches:
            raise _not_found("Branch")
        return JSONResponse(self._branch_entity(project, name))

    async def _h_branches(self, request: Request) -> Response:
        # https://docs.gitlab.com/api/branches/#list-repository-branches
        # gitlabhq/gitlabhq: lib/api/branches.rb with BranchesFinder: `search` (a substring),
        # `sort` one of name_asc (the default), updated_asc, updated_desc, where "updated"
        # is the head commit's committer date (Gitaly's FindLocalBranches SortBy), not
        # the time of the push; paginated. (GitLab also caches this listing for 30
        # seconds per user and parameters; the fake does not.)
        project = self._project_from(request)
        params = request.query_params
        names = list(project.branches)
        if params.get("search"):
            names = [n for n in names if params["search"].lower() in n.lower()]
        sort = params.get("sort") or "name_asc"
        if sort not in ("name_asc", "updated_asc", "updated_desc"):
            raise _param_error("sort does not have a valid value")
        if sort == "name_asc":
            names.sort()
        else:

            def updated(name: str) -> tuple[str, int]:
                head = self._commits[project.branches[name]]
                return head.committed_date, head.seq

            names.sort(key=updated, reverse=sort == "updated_desc")
        return self._paged_json(request, names, lambda n: self._branch_entity(project, n))

    async def _h_compare(self, request: Request) -> Response:
        # https://docs.gitlab.com/api/repositories/#compare-branches-tags-or-commits
        # straight=false (default) diffs from merge-base(from, to), i.e. `from...to`.
        project = self._project_from(request)
        params = request.query_params
        for name in ("from", "to"):
            if not params.get(name):
                raise _param_error(f"{name} is missing")
        ref_from, ref_to = params["from"], params["to"]
        straight = _as_bool(params.get("straight", "false"))
        sha_from, sha_to = self._resolve(project, ref_from), self._resolve(project, ref_to)
        if sha_from is None or sha_to is None:
            raise _not_found("Ref")
        base = sha_from if straight else (self._merge_base(sha_from, sha_to) or "")
        commits = self._commits_between(sha_from, sha_to)
        old_tree = self._commits[base].tree if base else {}
        # lib/api/entities/compare.rb: `compare.diffs` with Gitlab::Diff::FileCollection::Base
        # `default_options`: the hard limits and `expanded: false`, so large patches and
        # everything past the safe limits come back collapsed; `compare_timeout` is the
        # collection's `overflow?`.
        diffs, overflow = self._limited_diffs(
            self._diff_trees(
                old_tree,
                self._commits[sha_to].tree,
                unidiff=_as_bool(params.get("unidiff", "false")),
            ),
            expanded=False,
        )
        # Entities::Compare: `commit` is the last of `commits` (null when empty).
        rendered = [self._commit_entity(project, c) for c in commits]
        dots = ".." if straight else "..."
        return JSONResponse(
            {
                "commit": rendered[-1] if rendered else None,
                "commits": rendered,
                "diffs": [self._diff_entity(d) for d in diffs],
                "compare_timeout": overflow,
                "compare_same_ref": ref_from == ref_to,
                "web_url": f"{project.web_url}/-/compare/{ref_from}{dots}{ref_to}",
            }
        )

    def _commit_from(self, request: Request) -> tuple[Project, Commit]:
        project = self._project_from(request)
        sha = self._resolve(project, unquote(request.path_params["sha"]))
        if sha is None:
            raise _not_found("Commit")
        return project, self._commits[sha]

    async def _h_commit(self, request: Request) -> Response:
        # https://docs.gitlab.com/api/commits/#get-a-single-commit
        # Adds `stats`, `status` and `last_pipeline` to the commit shape.
        project, commit = self._commit_from(request)
        entity = self._commit_entity(project, commit)
        parent_tree = self._commits[commit.parent_ids[0]].tree if commit.parent_ids else {}
        additions = deletions = 0
        for item in self._diff_trees(parent_tree, commit.tree):
            for line in item["diff"].splitlines():
                if line.startswith("+"):
                    additions += 1
                elif line.startswith("-"):
                    deletions += 1
        pipelines = sorted(
            (
                p
                for p in self._pipelines.values()
                if p.project_id == project.id and p.sha == commit.sha
            ),
            key=lambda p: p.id,
        )
        last = self._pipeline_entity(pipelines[-1]) if pipelines else None
        entity.update(
            {
                "stats": {
                    "additions": additions,
                    "deletions": deletions,
                    "total": additions + deletions,
                },
                "status": last["status"] if last else None,
                "project_id": project.id,
                "last_pipeline": last,
            }
        )
        return JSONResponse(entity)

    async def _h_commit_mrs(self, request: Request) -> Response:
        # https://docs.gitlab.com/api/commits/#list-merge-requests-associated-with-a-commit
        project, commit = self._commit_from(request)
        mrs = [
            mr
            for mr in sorted(self._mrs.values(), key=lambda m: m.id, reverse=True)
            if mr.project_id == project.id and any(c.sha == commit.sha for c in mr.commits())
        ]
        return self._paged_json(request, mrs, self._mr_entity)

    async def _h_list_statuses(self, request: Request) -> Response:
        # https://docs.gitlab.com/api/commits/#list-the-statuses-of-a-commit
        # lib/api/commit_statuses.rb: only the latest status per name and pipeline
        # unless all=true; filters ref/stage/name/pipeline_id; order_by id|pipeline_id,
        # sort asc by default; paginated. It lists `::CommitStatus.where(pipeline:
        # pipelines)`: CI jobs (Ci::Build) of the sha's pipelines too, not only external
        # statuses. `stage` matches the job's stage name (`joins(:ci_stage)`; the `stage`
        # column on older GitLab), which is "external" for every external status.
        project, commit = self._commit_from(request)
        params = request.query_params
        records = [
            s for s in self._statuses if s["project_id"] == project.id and s["sha"] == commit.sha
        ]
        if not _as_bool(params.get("all", "false")):
            records = [s for s in records if not s["retried"]]
        if params.get("ref"):
            records = [s for s in records if s["ref"] == params["ref"]]
        if params.get("stage"):
            records = [s for s in records if s.get("stage", EXTERNAL_STAGE) == params["stage"]]
        if params.get("name"):
            records = [s for s in records if s["name"] == params["name"]]
        if params.get("pipeline_id"):
            pipeline_id = self._int_query(request, "pipeline_id", 0)
            records = [s for s in records if s["pipeline_id"] == pipeline_id]
        order_by = params.get("order_by") or "id"
        sort = params.get("sort") or "asc"
        if order_by not in ("id", "pipeline_id"):
            raise _param_error("order_by does not have a valid value")
        if sort not in ("asc", "desc"):
            raise _param_error("sort does not have a valid value")
        records.sort(key=lambda s: (s[order_by], s["id"]), reverse=sort == "desc")
        return self._paged_json(request, records, self._status_entity)

    def _create_pipeline(
        self, project: Project, sha: str, ref: str, *, status: str, source: str
    ) -> Pipeline:
        now = self._now()
        pipeline = Pipeline(
            id=self._next_id("pipeline"),
            iid=next(self._pipeline_iids[project.id]),
            project_id=project.id,
            sha=sha,
            ref=ref,
            status=status,
            source=source,
            created_at=now,
            updated_at=now,
        )
        self._pipelines[pipeline.id] = pipeline
        return pipeline

    async def _h_post_status(self, request: Request) -> Response:
        # https://docs.gitlab.com/api/commits/#set-commit-pipeline-status
        # Mirrors app/services/ci/create_commit_status_service.rb: find the newest
        # pipeline for the sha (and ref / pipeline_id when given) or create one with
        # source "external"; reuse a `pending`/`running` status of the same pipeline,
        # ref, name and user, else build a new one; then fire the state event, whose
        # invalid transitions answer 400 "Cannot transition status via :X from :Y".
        project = self._project_from(request)
        params = await self._params(request)

        # Grape parameter validation runs first.
        state = _str_or_none(params.get("state"))
        if state is None:
            raise _param_error("state is missing")
        if state not in COMMIT_STATUS_STATES:
            raise _param_error("state does not have a valid value")
        pipeline_id: int | None = None
        if params.get("pipeline_id") not in (None, ""):
            try:
                pipeline_id = int(str(params["pipeline_id"]))
            except ValueError:
                raise _param_error("pipeline_id is invalid") from None

        sha = self._resolve(project, unquote(request.path_params["sha"]))
        if sha is None:
            raise _not_found("Commit")
        given_ref = _str_or_none(params.get("ref"))
        name = _str_or_none(params.get("name"))
        if name is None:
            name = _str_or_none(params.get("context"))
        if name is None:
            name = "default"

        candidates = sorted(
            (
                p
                for p in self._pipelines.values()
                if p.project_id == project.id
                and p.sha == sha
                and (given_ref is None or p.ref == given_ref)
                and (pipeline_id is None or p.id == pipeline_id)
            ),
            key=lambda p: p.id,
            reverse=True,
        )
        matching = candidates[0] if candidates else None
        ref = given_ref
        if ref is None and matching is not None:
            ref = matching.ref
        if ref is None:
            ref = next(
                (
                    b
                    for b in sorted(project.branches)
                    if sha in self._ancestors(project.branches[b])
                ),
                None,
            )
        if not ref:
            raise _not_found("References for commit")
        if pipeline_id is not None and matching is None:
            raise _not_found("Pipeline for pipeline_id, sha and ref")

        errors: dict[str, list[str]] = {}
        if not name:
            errors["name"] = ["can't be blank"]
        for key in ("ref", "target_url", "description"):
            value = _str_or_none(params.get(key))
            if value is not None and len(value) > COMMIT_STATUS_FIELD_MAX:
                errors[key] = [f"is too long (maximum is {COMMIT_STATUS_FIELD_MAX} characters)"]
        target_url = _str_or_none(params.get("target_url"))
        if (
            target_url
            and "target_url" not in errors
            and not re.match(r"^https?://[^\s/]+", target_url)
        ):
            errors["target_url"] = ["is blocked: Only allowed schemes are http, https"]
        # app/models/generic_commit_status.rb `name_uniqueness_across_types`: a pipeline
        # that holds a job of another type (a CI job, Ci::Build) with this name refuses the
        # external status; app/services/ci/create_commit_status_service.rb answers
        # `bad_request(commit_status.errors.messages)`, i.e. 400
        # {"message": {"name": ["has already been taken"]}}.
        if (
            name
            and matching is not None
            and any(
                s["pipeline_id"] == matching.id
                and s["name"] == name
                and s.get("type", GENERIC_COMMIT_STATUS) != GENERIC_COMMIT_STATUS
                for s in self._statuses
            )
        ):
            errors["name"] = ["has already been taken"]
        if errors:
            raise _ApiError(400, {"message": errors})

        pipeline = matching or self._create_pipeline(
            project, sha, ref, status="created", source="external"
        )
        existing = next(
            (
                s
                for s in reversed(self._statuses)
                if s["pipeline_id"] == pipeline.id
                and s.get("type", GENERIC_COMMIT_STATUS) == GENERIC_COMMIT_STATUS
                and s["ref"] == pipeline.ref
                and s["name"] == name
                and s["user_id"] == self.bot_user["id"]
                and s["status"] in ("pending", "running")
                and not s["retried"]
            ),
            None,
        )
        current = existing["status"] if existing else "created"

        # CommitStatus state machine (app/models/commit_status.rb): events and the
        # states they may fire from, for the states a reused status can be in.
        event, allowed, target = {
            "pending": ("enqueue", {"created"}, "pending"),
            "running": ("run", {"created", "pending"}, "running"),
            "success": ("success", {"created", "pending", "running"}, "success"),
            "failed": ("drop", {"created", "pending", "running"}, "failed"),
            "canceled": ("cancel", {"created", "pending", "running"}, "canceled"),
            "skipped": ("skip", {"created", "pending"}, "skipped"),
        }[state]
        if current not in allowed:
            raise _ApiError(
                400, {"message": f"Cannot transition status via :{event} from :{current}"}
            )

        now = self._now()
        if existing is None:
            record: JSONDict = {
                "id": self._next_id("commit_status"),
                "project_id": project.id,
                "sha": sha,
                "ref": pipeline.ref,
                "status": "created",
                "name": name,
                "target_url": None,
                "description": None,
                "coverage": None,
                "created_at": now,
                "started_at": None,
                "finished_at": None,
                "pipeline_id": pipeline.id,
                "author": self._user(self.bot_user["username"]),
                "user_id": self.bot_user["id"],
                "retried": False,
                "type": GENERIC_COMMIT_STATUS,
                "stage": EXTERNAL_STAGE,
            }
            self._statuses.append(record)
        else:
            record = existing
        # Only the optional attributes actually sent are assigned.
        for key in ("target_url", "description"):
            if key in params:
                record[key] = _str_or_none(params[key])
        if params.get("coverage") not in (None, ""):
            record["coverage"] = float(params["coverage"])
        if target == "running" and record["started_at"] is None:
            record["started_at"] = now
        if target in ("success", "failed", "canceled"):
            record["finished_at"] = now
        record["status"] = target
        # Ci::Pipelines::AddJobService -> update_older_statuses_retried!: older
        # statuses with the same name in the pipeline become "retried".
        for other in self._statuses:
            if (
                other is not record
                and other["pipeline_id"] == pipeline.id
                and other["name"] == name
            ):
                other["retried"] = True
        pipeline.updated_at = now
        return JSONResponse(self._status_entity(record), status_code=201)

    async def _h_pipelines(self, request: Request) -> Response:
        # https://docs.gitlab.com/api/pipelines/#list-project-pipelines
        # Filters sha/ref/status/source; order_by id by default, sort desc.
        project = self._project_from(request)
        params = request.query_params
        pipelines = [p for p in self._pipelines.values() if p.project_id == project.id]
        for key in ("sha", "ref", "source"):
            if params.get(key):
                pipelines = [p for p in pipelines if getattr(p, key) == params[key]]
        if params.get("status"):
            pipelines = [p for p in pipelines if self._pipeline_status(p) == params["status"]]
        order_by = params.get("order_by") or "id"
        if order_by not in ("id", "status", "ref", "updated_at", "user_id"):
            raise _param_error("order_by does not have a valid value")
        key_of: Callable[[Pipeline], Any] = {
            "id": lambda p: p.id,
            "status": lambda p: (self._pipeline_status(p), p.id),
            "ref": lambda p: (p.ref, p.id),
            "updated_at": lambda p: (p.updated_at, p.id),
            "user_id": lambda p: p.id,
        }[order_by]
        pipelines.sort(key=key_of, reverse=(params.get("sort") or "desc") == "desc")
        return self._paged_json(request, pipelines, self._pipeline_entity)

    async def _h_pipeline(self, request: Request) -> Response:
        # https://docs.gitlab.com/api/pipelines/#get-a-single-pipeline
        project = self._project_from(request)
        pipeline = self._pipelines.get(self._int_path(request, "pipeline_id", "pipeline_id"))
        if pipeline is None or pipeline.project_id != project.id:
            raise _ApiError(404, {"message": "404 Not Found"})
        return JSONResponse(self._pipeline_entity(pipeline))

    async def _h_mrs(self, request: Request) -> Response:
        # https://docs.gitlab.com/api/merge_requests/#list-project-merge-requests
        # state (default all), source_branch, target_branch, labels; newest first.
        project = self._project_from(request)
        params = request.query_params
        mrs = [mr for mr in self._mrs.values() if mr.project_id == project.id]
        state = params.get("state") or "all"
        if state not in ("opened", "closed", "locked", "merged", "all"):
            raise _param_error("state does not have a valid value")
        if state != "all":
            mrs = [mr for mr in mrs if mr.state == state]
        for key in ("source_branch", "target_branch"):
            if params.get(key):
                mrs = [mr for mr in mrs if getattr(mr, key) == params[key]]
        if params.get("labels"):
            wanted = {label.strip() for label in params["labels"].split(",")}
            mrs = [mr for mr in mrs if wanted <= set(mr.labels)]
        if params.get("updated_after"):
            try:
                after = datetime.fromisoformat(params["updated_after"])
            except ValueError:
                raise _param_error("updated_after is invalid") from None
            mrs = [mr for mr in mrs if datetime.fromisoformat(mr.updated_at) > after]
        order_by = params.get("order_by") or "created_at"
        if order_by not in ("created_at", "updated_at", "title"):
            raise _param_error("order_by does not have a valid value")
        mrs.sort(
            key=lambda m: (getattr(m, order_by), m.id),
            reverse=(params.get("sort") or "desc") == "desc",
        )
        return self._paged_json(request, mrs, self._mr_entity)

    async def _h_mr(self, request: Request) -> Response:
        return JSONResponse(self._mr_entity(self._mr_from(request), single=True))

    async def _h_mr_commits(self, request: Request) -> Response:
        # https://docs.gitlab.com/api/merge_requests/#get-single-merge-request-commits
        mr = self._mr_from(request)
        project = self._projects[mr.project_id]

        def entity(commit: Commit) -> JSONDict:
            rendered = self._commit_entity(project, commit)
            if not self.mr_commits_with_parents:
                rendered["parent_ids"] = []  # see `mr_commits_with_parents`
            return rendered

        return self._paged_json(
            request, mr.commits(), entity, with_totals=self.mr_commits_send_totals
        )

    async def _h_mr_diffs(self, request: Request) -> Response:
        # https://docs.gitlab.com/api/merge_requests/#list-merge-request-diffs
        # Lists the files GitLab stored of the MR's diff (`mr_stored_diffs`), no more.
        mr = self._mr_from(request)
        unidiff = _as_bool(request.query_params.get("unidiff", "false"))
        diffs, _ = self.mr_stored_diffs(mr, unidiff=unidiff)
        return self._paged_json(request, diffs, self._diff_entity)

    # ---- notes: https://docs.gitlab.com/api/notes/#merge-requests

    def _create_note(self, mr: MergeRequest, body: str, author: JSONDict) -> JSONDict:
        now = self._now()
        note: JSONDict = {
            "id": self._next_id("note"),
            "type": None,
            "body": body,
            "attachment": None,
            "author": author,
            "created_at": now,
            "updated_at": now,
            "system": False,
            "noteable_id": mr.id,
            "noteable_type": "MergeRequest",
            "project_id": mr.project_id,
            "resolvable": False,
            "confidential": False,
            "internal": False,
            "imported": False,
            "imported_from": "none",
            "noteable_iid": mr.iid,
            "commands_changes": {},
        }
        mr.notes.append(note)
        return note

    def _note_from(self, request: Request) -> tuple[MergeRequest, JSONDict]:
        mr = self._mr_from(request)
        note_id = self._int_path(request, "note_id", "note_id")
        note = next((n for n in mr.notes if n["id"] == note_id), None)
        if note is None:
            raise _not_found("Note")
        return mr, note

    @staticmethod
    def _check_note_body(body: str) -> None:
        # Notes::CreateService validation errors come back through bad_request!:
        # "400 Bad request - Note {:note=>[...]}".
        problem = None
        if not body.strip():
            problem = "can't be blank"
        elif len(body) > NOTE_BODY_MAX:
            problem = f"is too long (maximum is {NOTE_BODY_MAX} characters)"
        if problem:
            raise _ApiError(400, {"message": f'400 Bad request - Note {{:note=>["{problem}"]}}'})

    async def _h_notes(self, request: Request) -> Response:
        # Defaults: order_by created_at, sort desc (with an id tie-breaker).
        mr = self._mr_from(request)
        params = request.query_params
        order_by = params.get("order_by") or "created_at"
        sort = params.get("sort") or "desc"
        if order_by not in ("created_at", "updated_at"):
            raise _param_error("order_by does not have a valid value")
        if sort not in ("asc", "desc"):
            raise _param_error("sort does not have a valid value")
        notes = sorted(mr.notes, key=lambda n: (n[order_by], n["id"]), reverse=sort == "desc")
        return self._paged_json(request, notes, dict)

    async def _h_note(self, request: Request) -> Response:
        _, note = self._note_from(request)
        return JSONResponse(note)

    async def _h_post_note(self, request: Request) -> Response:
        mr = self._mr_from(request)
        params = await self._params(request)
        body = _str_or_none(params.get("body"))
        if body is None:
            raise _param_error("body is missing")
        self._check_note_body(body)
        note = self._create_note(mr, body, self._user(self.bot_user["username"]))
        mr.updated_at = note["created_at"]
        return JSONResponse(note, status_code=201)

    async def _h_put_note(self, request: Request) -> Response:
        mr, note = self._note_from(request)
        params = await self._params(request)
        # Only the author (or an admin) may edit a note: `authorize! :admin_note`.
        if note["author"]["id"] != self.bot_user["id"]:
            raise _ApiError(403, {"message": "403 Forbidden"})
        body = _str_or_none(params.get("body"))
        if body is not None:
            if body == "":
                raise _param_error("body is empty")
            self._check_note_body(body)
            note["body"] = body
        note["updated_at"] = self._now()
        mr.updated_at = note["updated_at"]
        return JSONResponse(note)

    # ---- emoji reactions: https://docs.gitlab.com/api/emoji_reactions/

    async def _h_awards(self, request: Request) -> Response:
        _, note = self._note_from(request)
        awards = [a for a in self.award_emoji if a["awardable_id"] == note["id"]]
        return self._paged_json(request, awards, dict)

    async def _h_post_award(self, request: Request) -> Response:
        _, note = self._note_from(request)
        params = await self._params(request)
        name = _str_or_none(params.get("name"))
        if not name:
            raise _param_error("name is missing")
        if any(
            a["awardable_id"] == note["id"]
            and a["name"] == name
            and a["user"]["id"] == self.bot_user["id"]
            for a in self.award_emoji
        ):
            # lib/api/award_emoji.rb renders AddService errors via not_found!.
            raise _not_found("Award Emoji Name has already been taken")
        now = self._now()
        award: JSONDict = {
            "id": self._next_id("award_emoji"),
            "name": name,
            "user": self._user(self.bot_user["username"]),
            "created_at": now,
            "updated_at": now,
            "awardable_id": note["id"],
            "awardable_type": "Note",
        }
        self.award_emoji.append(award)
        return JSONResponse(award, status_code=201)


__all__ = [
    "Commit",
    "FakeGitLab",
    "Group",
    "LoggedRequest",
    "MergeRequest",
    "Pipeline",
    "Project",
]
