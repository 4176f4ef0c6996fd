"""Typed async calls to GitLab's REST API over the one shared `httpx.AsyncClient`.

This module never creates a client, a loop or a thread: the app's lifespan (or the CLI) owns
the client and passes it in. Every request goes through `GitLab.request`, which bounds
concurrency, retries what is worth retrying and turns every failure into an exception, so a
failed read can never look like an empty answer.

    GitLabError                    any failure to get what was asked for
    ├── GitLabUnavailable          no usable answer after bounded retries: transport errors,
    │   │                          5xx, 429 (rate limited)
    │   └── OutcomeUnknown         a write whose answer was lost: GitLab may have done it
    ├── GitLabHTTPError            GitLab answered with an error that retrying cannot fix (4xx)
    │   └── NotFound               404
    └── ResponseTooLarge           a listing passed the bound the bot sets on what it reads

REST API overview: https://docs.gitlab.com/api/rest/
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import email.utils
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import httpx

from bot.errors import Retryable
from bot.http_pool import pooled_transport
from bot.model import ChangedFile, Commit
from bot.redaction import redact

if TYPE_CHECKING:
    from bot.settings import GitLabSettings

log = logging.getLogger(__name__)

# Offset pagination allows at most 100 per page.
# https://docs.gitlab.com/api/rest/#offset-based-pagination
PER_PAGE = 100
DEFAULT_MAX_ITEMS = 10_000
# How long a GET /projects/:id answer stands in for another read (`GitLab.project`), and for
# how many projects at once.
PROJECT_MEMO_SECONDS = 5.0
PROJECT_MEMO_SIZE = 256
# External statuses of one sha read when looking for the bot's own (`has_status`).
MAX_STATUSES_READ = 500


# Signature verification statuses that count as verified (see commit_signature_verified).
VERIFIED_SIGNATURES = frozenset({"verified", "verified_system", "verified_ca"})


@dataclass(frozen=True)
class Comparison:
    """What the compare API gave: commits oldest first, the changed files, and whether
    GitLab's diff limits left files out (`compare_timeout`)."""

    commits: list[Commit]
    changes: list[ChangedFile]
    overflow: bool = False


class GitLabError(Retryable):
    """GitLab could not give the bot what it asked for; a check that met it runs again."""

    def __init__(self, message: str, *, method: str = "", path: str = "") -> None:
        super().__init__(message)
        self.method = method
        self.path = path


class GitLabUnavailable(GitLabError):
    pass


class OutcomeUnknown(GitLabUnavailable):
    """A write (POST) reached GitLab, or may have, and its answer was lost: the connection
    broke after the request was sent, or a gateway answered instead of GitLab. Sending it
    again blindly could write twice (a second note); the caller looks first."""


class GitLabHTTPError(GitLabError):
    def __init__(self, message: str, *, status: int, method: str = "", path: str = "") -> None:
        super().__init__(message, method=method, path=path)
        self.status = status


class NotFound(GitLabHTTPError):
    pass


class ResponseTooLarge(GitLabError):
    pass


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries, in the manner of stamina: by attempts and by total time."""

    attempts: int = 5
    total_seconds: float = 60.0
    base_delay: float = 0.5
    max_delay: float = 30.0

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter for the given retry number (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 (jitter, not crypto)


def retry_after_seconds(response: httpx.Response, *, now: float) -> float | None:
    """How long GitLab asked the bot to wait: None when it did not ask.

    Only a 429, or an explicit Retry-After on any answer, asks to wait. GitLab sends the
    RateLimit-* headers on every answer, a 502 or a 200 included, and RateLimit-Reset is the
    Unix time when the throttle's window ends (up to an hour away on a self-managed
    instance): on anything but a 429 it says nothing about when to retry.
    https://docs.gitlab.com/administration/settings/user_and_ip_rate_limits/#response-headers
    """
    value = response.headers.get("retry-after", "").strip()
    if value:
        if value.isdigit():
            return float(value)
        with contextlib.suppress(TypeError, ValueError, IndexError):
            parsed = email.utils.parsedate_to_datetime(value)
            return max(0.0, parsed.timestamp() - now)
    if response.status_code != 429:
        return None
    reset = response.headers.get("ratelimit-reset", "").strip()
    if reset.isdigit():
        return max(0.0, float(reset) - now)
    return None


# Transport errors raised before the request left the bot: retrying cannot write twice.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Answers from a gateway in front of GitLab (Workhorse, a load balancer): GitLab may have
# done the work and the gateway lost the answer, as when Puma is slower than its timeout.
_GATEWAY_STATUSES = frozenset({502, 504})


def _is_retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _describe(response: httpx.Response) -> str:
    try:
        body = response.json()
        message = body.get("message") or body.get("error") if isinstance(body, dict) else None
    except ValueError:
        message = None
    if message is None:
        text = response.text[:200].strip()
        # A proxy in front of GitLab (nginx's 502 page) answers HTML: its reason phrase says
        # the same in two words, and no markup reaches a note or a status.
        markup = "html" in response.headers.get("content-type", "") or text.startswith("<")
        message = response.reason_phrase if markup else text
    # GitLab (or a proxy before it) may echo the request, token included.
    return redact(f"{response.status_code} {message}".strip())


class CallObserver(Protocol):
    """Told of every attempt and retry, for metrics."""

    def observe_call(self, method: str, path: str, status: int) -> None: ...

    def observe_retry(self, status: int, wait: float) -> None: ...


# The delivery a job works for. Calls made for it carry its X-Gitlab-Event-UUID, so GitLab's
# recursion detection stops hook loops (a hook firing on the bot's own note, and so on).
# https://docs.gitlab.com/user/project/integrations/webhooks/#delivery-headers
current_event_uuid: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_event_uuid", default=None
)


class GitLab:
    """GitLab's REST API v4, over a client whose base URL is `<GITLAB_URL>/api/v4`."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        retry: RetryPolicy | None = None,
        concurrency: int = 16,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        observer: CallObserver | None = None,
    ) -> None:
        self._http = http
        self._observer = observer
        self._retry = retry or RetryPolicy()
        self._slots = asyncio.Semaphore(concurrency)
        self._sleep = sleep
        self._user: dict[str, Any] | None = None
        # GET /projects/:id answers of the last few seconds (see `project`), bounded.
        self._projects: collections.OrderedDict[int, tuple[float, dict[str, Any]]] = (
            collections.OrderedDict()
        )
        self._api_prefix = str(http.base_url).rstrip("/")

    @property
    def http(self) -> httpx.AsyncClient:
        return self._http

    # -- transport -------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        """One API call with bounded retries on 5xx, 429 and transport errors only.

        A call that is not `idempotent` (creating a note) is retried only when GitLab
        surely did not do it; otherwise it raises OutcomeUnknown at once."""
        policy = self._retry
        started = time.monotonic()
        attempt = 0
        event_uuid = current_event_uuid.get()
        if event_uuid:
            headers = {**(headers or {}), "X-Gitlab-Event-UUID": event_uuid}
        while True:
            attempt += 1
            status = 0
            try:
                async with self._slots:
                    response = await self._http.request(
                        method, path, params=params, json=json, headers=headers
                    )
                status = response.status_code
            except httpx.TransportError as exc:
                # httpx quotes a refused header value whole: `Illegal header value b'...'`.
                failure = redact(f"{type(exc).__name__}: {exc}".rstrip(": "))
                wait = policy.backoff(attempt)
                if self._observer is not None:
                    self._observer.observe_call(method, path, 0)
                if not idempotent and not isinstance(exc, _NOT_SENT):
                    raise OutcomeUnknown(
                        f"GitLab's answer to {method} {path} was lost: {failure}",
                        method=method,
                        path=path,
                    ) from exc
            else:
                if self._observer is not None:
                    self._observer.observe_call(method, path, status)
                if response.is_success:
                    return response
                failure = _describe(response)
                if not _is_retryable(response.status_code):
                    error_type = NotFound if response.status_code == 404 else GitLabHTTPError
                    raise error_type(
                        f"GitLab answered {failure} to {method} {path}",
                        status=response.status_code,
                        method=method,
                        path=path,
                    )
                if not idempotent and response.status_code in _GATEWAY_STATUSES:
                    raise OutcomeUnknown(
                        f"a gateway answered {failure} to {method} {path}",
                        method=method,
                        path=path,
                    )
                asked = retry_after_seconds(response, now=time.time())
                wait = policy.backoff(attempt) if asked is None else asked
            elapsed = time.monotonic() - started
            if attempt >= policy.attempts or elapsed + wait > policy.total_seconds:
                raise GitLabUnavailable(
                    f"GitLab did not answer {method} {path} after {attempt} attempt(s) "
                    f"in {elapsed:.1f}s: {failure}",
                    method=method,
                    path=path,
                )
            if self._observer is not None:
                self._observer.observe_retry(status, wait)
            log.info(
                "retrying GitLab call",
                extra={"method": method, "path": path, "attempt": attempt, "wait": wait},
            )
            await self._sleep(wait)

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return (await self.request("GET", path, params=params)).json()

    async def get_all(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        max_items: int = DEFAULT_MAX_ITEMS,
    ) -> list[Any]:
        """Every page of a listing, following `Link: rel="next"`.

        Following the Link header works for offset and keyset pagination alike.
        https://docs.gitlab.com/api/rest/#pagination-link-header
        """
        items: list[Any] = []
        async for page in self.pages(path, params):
            items.extend(page)
            if len(items) > max_items:
                raise ResponseTooLarge(
                    f"{path} lists more than {max_items} items; not read further",
                    method="GET",
                    path=path,
                )
        return items

    async def pages(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """Yield each page of a listing, so a caller can stop once it found what it needs."""
        query: dict[str, Any] | None = {"per_page": PER_PAGE, **(params or {})}
        url = path
        while True:
            response = await self.request("GET", url, params=query)
            page = response.json()
            if not isinstance(page, list):
                raise GitLabError(f"GitLab answered GET {path} with a non-list", path=path)
            yield page
            next_url = response.links.get("next", {}).get("url")
            if not next_url:
                return
            # The Link URL is absolute; refuse to send the token anywhere but the API.
            if not next_url.startswith(self._api_prefix):
                raise GitLabError(f"pagination link leaves the API: {next_url}", path=path)
            url, query = next_url, None

    # -- typed calls -----------------------------------------------------------------------

    def remember_current_user(self, user: dict[str, Any]) -> None:
        """GitLab's answer to GET /user, read elsewhere (once, as `serve` starts)."""
        self._user = user

    async def current_user(self) -> dict[str, Any]:
        """The bot's own user, read once per process."""
        # https://docs.gitlab.com/api/users/#get-the-current-user
        if self._user is None:
            self._user = await self.get("/user")
        return self._user

    async def project(self, project_id: int) -> dict[str, Any]:
        """The project, as GitLab answered in the last PROJECT_MEMO_SECONDS: one check asks
        for it twice (the group policy's namespace, then the description and topics), and
        the MRs of one push ask at once; a second read would say the same."""
        now = time.monotonic()
        known = self._projects.get(project_id)
        if known is not None and now - known[0] < PROJECT_MEMO_SECONDS:
            return known[1]
        # https://docs.gitlab.com/api/projects/#get-a-single-project
        result: dict[str, Any] = await self.get(f"/projects/{project_id}")
        self._projects[project_id] = (now, result)
        self._projects.move_to_end(project_id)
        while len(self._projects) > PROJECT_MEMO_SIZE:
            self._projects.popitem(last=False)
        return result

    async def tree(
        self, project_id: int, ref: str, path: str = "", *, recursive: bool = False
    ) -> list[dict[str, Any]]:
        """A directory listing at `ref`. A missing path raises NotFound (GitLab 17.7+)."""
        # https://docs.gitlab.com/api/repositories/#list-repository-tree
        params: dict[str, Any] = {"ref": ref}
        if path:
            params["path"] = path
        if recursive:
            params["recursive"] = "true"
        return await self.get_all(f"/projects/{project_id}/repository/tree", params)

    async def merge_request_diffs(self, project_id: int, iid: int) -> list[ChangedFile]:
        # `/changes` is deprecated since 15.7; `/diffs` is paginated.
        # https://docs.gitlab.com/api/merge_requests/#list-merge-request-diffs
        raw = await self.get_all(f"/projects/{project_id}/merge_requests/{iid}/diffs")
        return [changed_file_from_api(d) for d in raw]

    async def compare(self, project_id: int, base: str, head: str) -> Comparison:
        """Commits (oldest first, with their parents) and changed files from the merge-base
        of base..head, and whether GitLab's diff limits cut the file list short."""
        # https://docs.gitlab.com/api/repositories/#compare-branches-tags-or-commits
        # gitlabhq/gitlabhq lib/api/entities/compare.rb: `commits` come from Gitaly (parents
        # included); `compare_timeout` is the diff collection's `overflow?`: past the diff
        # limits (app/models/commit.rb `max_diff_options`) the rest of the files is left out.
        data = await self.get(
            f"/projects/{project_id}/repository/compare", {"from": base, "to": head}
        )
        return Comparison(
            commits=[commit_from_api(c) for c in data.get("commits") or []],
            changes=[changed_file_from_api(d) for d in data.get("diffs") or []],
            overflow=bool(data.get("compare_timeout")),
        )

    async def branch_head(self, project_id: int, branch: str) -> str:
        """The sha a branch points at; NotFound when there is no such branch."""
        # The single-branch endpoint is the cheapest read of a ref (no diff stats).
        # https://docs.gitlab.com/api/branches/#get-single-repository-branch
        data = await self.get(f"/projects/{project_id}/repository/branches/{encode_path(branch)}")
        return str(data["commit"]["id"])

    async def merge_request(self, project_id: int, iid: int) -> dict[str, Any]:
        # https://docs.gitlab.com/api/merge_requests/#get-single-mr
        result: dict[str, Any] = await self.get(f"/projects/{project_id}/merge_requests/{iid}")
        return result

    async def raw_file(self, project_id: int, path: str, ref: str, *, max_bytes: int) -> bytes:
        """A file's bytes at `ref`; NotFound when absent, ResponseTooLarge past `max_bytes`."""
        # https://docs.gitlab.com/api/repository_files/#get-raw-file-from-repository
        file_path = f"/projects/{project_id}/repository/files/{encode_path(path)}/raw"
        response = await self.request("GET", file_path, params={"ref": ref})
        if len(response.content) > max_bytes:
            raise ResponseTooLarge(f"{path} is larger than {max_bytes} bytes", path=file_path)
        return response.content

    async def file_size(self, project_id: int, path: str, ref: str) -> int:
        """A file's size from a HEAD request: GitLab sends metadata in X-Gitlab-* headers."""
        # https://docs.gitlab.com/api/repository_files/#get-file-metadata-only
        file_path = f"/projects/{project_id}/repository/files/{encode_path(path)}"
        response = await self.request("HEAD", file_path, params={"ref": ref})
        size = response.headers.get("x-gitlab-size", "")
        if not size.isdigit():
            raise GitLabError(f"GitLab sent no X-Gitlab-Size for {path}", path=file_path)
        return int(size)

    async def commit_signature_verified(self, project_id: int, sha: str) -> bool:
        """Whether GitLab verified the commit's signature; an unsigned commit answers 404."""
        # https://docs.gitlab.com/api/commits/#get-signature-of-a-commit
        try:
            data = await self.get(f"/projects/{project_id}/repository/commits/{sha}/signature")
        except NotFound:
            return False
        # `verified_system`: signed by GitLab itself (web UI and API commits, 15.4+).
        # https://docs.gitlab.com/user/project/repository/signed_commits/web_commits/
        # `verified_ca` (EE): an X.509 signature whose certificate the top-level group's CA
        # issued, the committer's email verified (gitlabhq/gitlabhq
        # ee/app/models/concerns/ee/enums/commit_signature.rb).
        return str(data.get("verification_status", "")) in VERIFIED_SIGNATURES

    async def open_merge_requests_for_branch(
        self, project_id: int, branch: str
    ) -> list[dict[str, Any]]:
        # https://docs.gitlab.com/api/merge_requests/#list-project-merge-requests
        return await self.get_all(
            f"/projects/{project_id}/merge_requests",
            {"state": "opened", "source_branch": branch},
        )

    async def has_status(self, project_id: int, sha: str, *names: str) -> bool:
        """Whether the bot itself posted an external commit status of one of these names on
        the sha.

        The listing holds the CI jobs of the sha's pipelines too, and a job may share the
        name (gitlabhq/gitlabhq: lib/api/commit_statuses.rb lists `::CommitStatus.where(
        pipeline: pipelines)`); lib/api/entities/commit_status.rb does not expose the type.
        So: only the stage `external`, where GitLab puts every external status
        (app/services/ci/create_commit_status_service.rb `find_or_create_external_stage`;
        `stage ||= 'external'` in older app/models/generic_commit_status.rb), and only
        those whose `author` is the bot (GitLab records the poster as the status's user).
        """
        # https://docs.gitlab.com/api/commits/#list-the-statuses-of-a-commit
        me = await self.current_user()
        wanted = set(names)
        read = 0
        async for page in self.pages(
            f"/projects/{project_id}/repository/commits/{sha}/statuses",
            {"stage": "external", "all": "true", "per_page": PER_PAGE},
        ):
            for status in page:
                author = status.get("author") or {}
                if status.get("name") in wanted and author.get("id") == me.get("id"):
                    return True
            read += len(page)
            if read >= MAX_STATUSES_READ:
                # Not found among the first ones: a check too many is harmless, an
                # unbounded read is not.
                return False
        return False

    async def post_status(
        self,
        project_id: int,
        sha: str,
        *,
        state: str,
        name: str,
        description: str,
        target_url: str | None = None,
        pipeline_id: int | None = None,
    ) -> dict[str, Any]:
        # https://docs.gitlab.com/api/commits/#set-commit-pipeline-status
        body: dict[str, Any] = {"state": state, "name": name, "description": description}
        if target_url:
            body["target_url"] = target_url
        if pipeline_id is not None:
            body["pipeline_id"] = pipeline_id
        response = await self.request("POST", f"/projects/{project_id}/statuses/{sha}", json=body)
        result: dict[str, Any] = response.json()
        return result

    def merge_request_notes(self, project_id: int, iid: int) -> Any:
        """Pages of the MR's notes, oldest first, so the bot's early note comes soonest."""
        # https://docs.gitlab.com/api/notes/#list-all-merge-request-notes
        return self.pages(
            f"/projects/{project_id}/merge_requests/{iid}/notes",
            {"sort": "asc", "order_by": "created_at"},
        )

    async def award_emoji(self, project_id: int, iid: int, note_id: int, name: str) -> None:
        """React to a comment; a reaction the bot already gave counts as given."""
        # https://docs.gitlab.com/api/emoji_reactions/#add-a-new-emoji-reaction-to-a-comment
        try:
            await self.request(
                "POST",
                f"/projects/{project_id}/merge_requests/{iid}/notes/{note_id}/award_emoji",
                json={"name": name},
            )
        except NotFound as exc:
            # gitlabhq/gitlabhq: lib/api/award_emoji.rb renders AddService's errors with
            # `not_found!("Award Emoji #{service[:message]}")`, so the same award twice (a
            # retried job) answers 404 "Award Emoji Name has already been taken".
            if "has already been taken" not in str(exc):
                raise

    async def recently_updated_branches(self, project_id: int, count: int) -> list[Any]:
        """The `count` branches whose head commits are newest: one page, one call."""
        # https://docs.gitlab.com/api/branches/#list-repository-branches
        # gitlabhq/gitlabhq: lib/api/branches.rb `sort` name_asc|updated_asc|updated_desc;
        # "updated" is the head commit's date (BranchesFinder, Gitaly FindLocalBranches).
        response = await self.request(
            "GET",
            f"/projects/{project_id}/repository/branches",
            params={"sort": "updated_desc", "per_page": min(count, PER_PAGE)},
        )
        branches = response.json()
        if not isinstance(branches, list):
            raise GitLabError("GitLab answered the branch listing with a non-list")
        return branches

    async def project_member(self, project_id: int, user_id: int) -> dict[str, Any] | None:
        """The user's membership of the project, inherited from its groups included; None
        when GitLab answers 404 (not a member, or no such user)."""
        # https://docs.gitlab.com/api/members/#get-a-member-of-a-group-or-project-including-inherited-and-invited-members
        # gitlabhq/gitlabhq lib/api/members.rb `get ":id/members/all/:user_id"`; the entity
        # (lib/api/entities/member.rb) merges UserBasic: `state` is the user's own state.
        try:
            result: dict[str, Any] = await self.get(f"/projects/{project_id}/members/all/{user_id}")
        except NotFound:
            return None
        return result

    async def create_note(self, project_id: int, iid: int, body: str) -> dict[str, Any]:
        """Create a note; raises OutcomeUnknown when it may exist though the answer was lost
        (a second POST would make a second note)."""
        # https://docs.gitlab.com/api/notes/#create-new-merge-request-note
        response = await self.request(
            "POST",
            f"/projects/{project_id}/merge_requests/{iid}/notes",
            json={"body": body},
            idempotent=False,
        )
        result: dict[str, Any] = response.json()
        return result

    async def edit_note(self, project_id: int, iid: int, note_id: int, body: str) -> dict[str, Any]:
        # https://docs.gitlab.com/api/notes/#modify-existing-merge-request-note
        response = await self.request(
            "PUT",
            f"/projects/{project_id}/merge_requests/{iid}/notes/{note_id}",
            json={"body": body},
        )
        result: dict[str, Any] = response.json()
        return result


def _tls(settings: GitLabSettings) -> ssl.SSLContext | bool:
    if not settings.gitlab_verify_tls:
        return False
    if settings.gitlab_ca_bundle is not None:
        return ssl.create_default_context(cafile=str(settings.gitlab_ca_bundle))
    return True


@contextlib.asynccontextmanager
async def open_gitlab(
    settings: GitLabSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    observer: CallObserver | None = None,
) -> AsyncIterator[GitLab]:
    """The process's one pooled client, wrapped in the API; closed when the block ends.

    The server's lifespan and each CLI run open it exactly once. The pool size is the cap on
    TCP connections to GitLab; `transport` replaces the network (tests). Otherwise it is
    `bot.http_pool`'s: httpx's with a pool whose cost per request does not grow with the
    connections.
    """
    limits = httpx.Limits(
        max_connections=settings.http_pool_size,
        max_keepalive_connections=settings.http_pool_size,
    )
    if transport is None:
        transport = pooled_transport(verify=_tls(settings), limits=limits)
    http = httpx.AsyncClient(
        base_url=settings.api_url,
        headers={
            # https://docs.gitlab.com/api/rest/authentication/#personalprojectgroup-access-tokens
            "PRIVATE-TOKEN": settings.gitlab_token.get_secret_value(),
            "User-Agent": "compliance-bot",
        },
        limits=limits,
        timeout=httpx.Timeout(settings.http_timeout, connect=10.0),
        transport=transport,
    )
    async with http:
        yield GitLab(
            http,
            retry=RetryPolicy(
                attempts=settings.retry_attempts,
                total_seconds=settings.retry_total_seconds,
                base_delay=settings.retry_base_delay,
            ),
            concurrency=settings.gitlab_concurrency,
            observer=observer,
        )


def encode_path(path: str) -> str:
    """URL-encode a file path or a project path for use as one path segment."""
    return quote(path, safe="")


def commit_from_api(raw: Mapping[str, Any]) -> Commit:
    """A commit as GitLab's commits, MR commits and compare APIs give it."""
    return Commit(
        sha=str(raw["id"]),
        message=str(raw.get("message") or raw.get("title") or ""),
        author_name=str(raw.get("author_name") or ""),
        author_email=str(raw.get("author_email") or ""),
        parent_ids=tuple(str(p) for p in raw.get("parent_ids") or ()),
        committer_name=str(raw.get("committer_name") or ""),
        committer_email=str(raw.get("committer_email") or ""),
    )


def changed_file_from_api(raw: Mapping[str, Any]) -> ChangedFile:
    """One entry of an MR's diffs or a compare's diffs."""
    return ChangedFile(
        old_path=str(raw["old_path"]),
        new_path=str(raw["new_path"]),
        new_file=bool(raw.get("new_file")),
        deleted_file=bool(raw.get("deleted_file")),
        renamed_file=bool(raw.get("renamed_file")),
        diff=str(raw.get("diff") or ""),
        diff_complete=_diff_complete(raw),
    )


def _diff_complete(raw: Mapping[str, Any]) -> bool:
    """Whether the entry's `diff` holds the whole patch.

    GitLab 18.4+ says so with `collapsed` and `too_large`
    (https://docs.gitlab.com/api/merge_requests/#list-merge-request-diffs; gitlabhq/gitlabhq
    lib/api/entities/diff.rb). Older versions send neither key, and a collapsed or too-large
    patch is just `""` (lib/gitlab/git/diff.rb `prune!`). Then an empty diff is complete
    only where an empty patch is normal: a deletion, a rename, or a change of mode alone.
    A new empty file is taken as incomplete too; reading it shows it is empty.
    """
    if "collapsed" in raw or "too_large" in raw:
        return not (raw.get("collapsed") or raw.get("too_large"))
    if raw.get("diff") or raw.get("deleted_file") or raw.get("renamed_file"):
        return True
    modes = raw.get("a_mode"), raw.get("b_mode")
    mode_only = not raw.get("new_file") and None not in modes and modes[0] != modes[1]
    return mode_only
