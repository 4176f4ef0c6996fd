"""Project webhooks in the fake GitLab: list, add, edit, test, and GitLab's auto-disabling.

A mixin of `tests.fake_gitlab.FakeGitLab`, kept in its own module. Each behaviour cites the
GitLab source it follows (gitlabhq/gitlabhq):
- lib/api/project_hooks.rb: the routes, their parameters and answers; every route first
  `authorize_admin_project` (403 below Maintainer).
- lib/api/entities/hook.rb and lib/api/entities/project_hook.rb: the entity; the `token` is
  write-only ("this will not be returned in the response").
- app/models/concerns/web_hooks/auto_disabling.rb: `recent_failures`, `disabled_until`,
  `alert_status` (:executable, :temporarily_disabled, :disabled) and `enable!`.
- app/services/test_hooks/project_service.rb with lib/gitlab/data_builder/push.rb
  `build_sample`: the test request sends a sample push of the default branch; a 2xx answer
  re-enables the hook (WebHookService runs `enable!` on success) and the API answers 201,
  anything else 422 with the reason.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

JSONDict = dict[str, Any]

# The events a project hook can have (lib/api/project_hooks.rb `common_hook_parameters`);
# GitLab's defaults: push events on, the others off (db/structure.sql `web_hooks`).
HOOK_EVENTS = {
    "push_events": True,
    "issues_events": False,
    "confidential_issues_events": False,
    "merge_requests_events": False,
    "tag_push_events": False,
    "note_events": False,
    "confidential_note_events": False,
    "job_events": False,
    "pipeline_events": False,
    "wiki_page_events": False,
    "deployment_events": False,
    "releases_events": False,
    "emoji_events": False,
    "resource_access_token_events": False,
}
# app/models/concerns/web_hooks/auto_disabling.rb
TEMPORARILY_DISABLED_FAILURE_THRESHOLD = 3
PERMANENTLY_DISABLED_FAILURE_THRESHOLD = 39
TEST_TRIGGERS = frozenset(HOOK_EVENTS)
ZERO_SHA = "0" * 40


@dataclass
class ProjectHook:
    id: int
    project_id: int
    url: str
    created_at: str
    token: str = ""
    events: dict[str, bool] = field(default_factory=lambda: dict(HOOK_EVENTS))
    enable_ssl_verification: bool = True
    push_events_branch_filter: str = ""
    recent_failures: int = 0
    disabled_until: datetime | None = None
    test_requests: list[JSONDict] = field(default_factory=list)

    def alert_status(self, now: datetime) -> str:
        if (
            self.disabled_until is not None
            and self.disabled_until >= now
            and TEMPORARILY_DISABLED_FAILURE_THRESHOLD
            < self.recent_failures
            <= PERMANENTLY_DISABLED_FAILURE_THRESHOLD
        ):
            return "temporarily_disabled"
        if self.recent_failures > PERMANENTLY_DISABLED_FAILURE_THRESHOLD:
            return "disabled"
        return "executable"


def _api_error(status: int, payload: JSONDict) -> Exception:
    # The fake's own error type, answered as JSON by its endpoint wrapper (imported here, as
    # tests.fake_gitlab imports this module).
    from tests.fake_gitlab import _ApiError

    return _ApiError(status, payload)


def _boolean(value: Any) -> bool:
    # Grape's Boolean coercion: true/false, 1/0, "true"/"false".
    return value in (True, 1, "1", "true", "True")


class ProjectHooksMixin:
    """Adds project hooks to the fake; `FakeGitLab.__init__` calls `_init_hooks`."""

    _projects: dict[int, Any]

    def _init_hooks(self) -> None:
        self.hooks: dict[int, ProjectHook] = {}
        # Projects whose hooks the bot's token may not administer (a Developer there).
        self.hooks_forbidden: set[int] = set()

    # -- what tests set up and read --------------------------------------------------------

    def add_hook(self, project_id: int, url: str, **attributes: Any) -> ProjectHook:
        fake: Any = self
        hook = ProjectHook(
            id=fake._next_id("hook"), project_id=project_id, url=url, created_at=fake._now()
        )
        self._apply_hook(hook, attributes)
        self.hooks[hook.id] = hook
        return hook

    def project_hooks(self, project_id: int) -> list[ProjectHook]:
        return [h for h in self.hooks.values() if h.project_id == project_id]

    def fail_hook(self, hook_id: int, failures: int) -> None:
        """GitLab's backoff after `failures` failed deliveries in a row (`backoff!`)."""
        hook = self.hooks[hook_id]
        hook.recent_failures = min(failures, PERMANENTLY_DISABLED_FAILURE_THRESHOLD + 1)
        if hook.recent_failures > TEMPORARILY_DISABLED_FAILURE_THRESHOLD:
            backoff = 60 * 2 ** (hook.recent_failures - TEMPORARILY_DISABLED_FAILURE_THRESHOLD)
            hook.disabled_until = datetime.now(UTC) + timedelta(seconds=min(backoff, 86_400))

    # -- the API -----------------------------------------------------------------------------

    def _hook_routes(self, project_path: str) -> list[tuple[str, str, Any]]:
        hooks = project_path + "/hooks"
        return [
            ("GET", hooks, self._h_hooks),
            ("POST", hooks, self._h_post_hook),
            ("GET", hooks + "/{hook_id}", self._h_hook),
            ("PUT", hooks + "/{hook_id}", self._h_put_hook),
            ("POST", hooks + "/{hook_id}/test/{trigger}", self._h_test_hook),
        ]

    def _hook_entity(self, hook: ProjectHook) -> JSONDict:
        # lib/api/entities/hook.rb + project_hook.rb; no `token`.
        disabled_until = hook.disabled_until
        return {
            "id": hook.id,
            "url": hook.url,
            "name": None,
            "description": None,
            "created_at": hook.created_at,
            "project_id": hook.project_id,
            **hook.events,
            "repository_update_events": False,
            "enable_ssl_verification": hook.enable_ssl_verification,
            "alert_status": hook.alert_status(datetime.now(UTC)),
            "disabled_until": (
                disabled_until.isoformat().replace("+00:00", "Z") if disabled_until else None
            ),
            "push_events_branch_filter": hook.push_events_branch_filter,
            "branch_filter_strategy": "wildcard",
            "custom_webhook_template": None,
        }

    def _admin_project(self, request: Request) -> Any:
        fake: Any = self
        project = fake._project_from(request)
        if project.id in self.hooks_forbidden:
            # lib/api/helpers.rb `authorize_admin_project` -> `forbidden!`
            raise _api_error(403, {"message": "403 Forbidden"})
        return project

    def _hook_from(self, request: Request) -> ProjectHook:
        fake: Any = self
        project = self._admin_project(request)
        hook_id = fake._int_path(request, "hook_id", "hook_id")
        hook = self.hooks.get(hook_id)
        if hook is None or hook.project_id != project.id:
            # `user_project.hooks.find` -> ActiveRecord::RecordNotFound -> 404
            raise _api_error(404, {"message": "404 Not found"})
        return hook

    def _apply_hook(self, hook: ProjectHook, params: JSONDict) -> None:
        for key in HOOK_EVENTS:
            if key in params:
                hook.events[key] = _boolean(params[key])
        if "url" in params:
            hook.url = str(params["url"])
        if "token" in params:
            hook.token = str(params["token"])
        if "enable_ssl_verification" in params:
            hook.enable_ssl_verification = _boolean(params["enable_ssl_verification"])
        if "push_events_branch_filter" in params:
            hook.push_events_branch_filter = str(params["push_events_branch_filter"] or "")

    async def _h_hooks(self, request: Request) -> Response:
        fake: Any = self
        project = self._admin_project(request)
        return fake._paged_json(request, self.project_hooks(project.id), self._hook_entity)  # type: ignore[no-any-return]

    async def _h_hook(self, request: Request) -> Response:
        return JSONResponse(self._hook_entity(self._hook_from(request)))

    async def _h_post_hook(self, request: Request) -> Response:
        fake: Any = self
        project = self._admin_project(request)
        params = await fake._params(request)
        url = str(params.get("url") or "")
        if not url:
            raise _api_error(400, {"error": "url is missing"})
        if not url.startswith(("http://", "https://")):
            raise _api_error(422, {"error": "Invalid url given"})
        hook = self.add_hook(project.id, url)
        self._apply_hook(hook, params)
        return JSONResponse(self._hook_entity(hook), status_code=201)

    async def _h_put_hook(self, request: Request) -> Response:
        fake: Any = self
        hook = self._hook_from(request)
        params = await fake._params(request)
        self._apply_hook(hook, params)
        return JSONResponse(self._hook_entity(hook))

    async def _h_test_hook(self, request: Request) -> Response:
        fake: Any = self
        hook = self._hook_from(request)
        trigger = request.path_params["trigger"]
        if trigger not in TEST_TRIGGERS:
            raise _api_error(400, {"error": "trigger does not have a valid value"})
        project = fake._get_project(hook.project_id)
        head = project.branches.get(project.default_branch, ZERO_SHA)
        # lib/gitlab/data_builder/push.rb `build_sample`: a push of the default branch.
        payload = {
            "object_kind": "push",
            "event_name": "push",
            "before": ZERO_SHA,
            "after": head,
            "ref": f"refs/heads/{project.default_branch}",
            "ref_protected": True,
            "checkout_sha": head,
            "user_id": fake.bot_user["id"],
            "user_name": fake.bot_user["name"],
            "user_username": fake.bot_user["username"],
            "project_id": project.id,
            "project": fake._project_entity(project),
            "commits": [],
            "total_commits_count": 0,
            "repository": {"name": project.path, "homepage": project.web_url},
        }
        headers = {
            "Content-Type": "application/json",
            "X-Gitlab-Event": "Push Hook",
            "X-Gitlab-Token": hook.token,
            "X-Gitlab-Event-UUID": str(uuid.uuid4()),
            "X-Gitlab-Webhook-UUID": str(uuid.uuid4()),
            "Idempotency-Key": str(uuid.uuid4()),
        }
        hook.test_requests.append(payload)
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                answer = await client.post(hook.url, json=payload, headers=headers)
            status, reason = answer.status_code, f"Hook execution failed: {answer.status_code}"
        except httpx.HTTPError as exc:
            status, reason = 0, f"Hook execution failed: {type(exc).__name__}"
        if 200 <= status < 300:
            hook.recent_failures, hook.disabled_until = 0, None  # `enable!`
            return JSONResponse({"message": "201 Created"}, status_code=201)
        raise _api_error(422, {"message": reason})
