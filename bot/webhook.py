"""Webhook deliveries in, typed events out. No I/O (the gidgethub sans-I/O shape).

The app hands this module the headers and the body bytes; it answers with a typed event, or
with `Ignored` and a reason, or raises `WebhookError` for a delivery that must be refused.

    WebhookError
    ├── InvalidToken        -> 401, nothing processed
    ├── InvalidSignature    -> 401, nothing processed
    └── MalformedBody       -> 400 with a one-line reason

GitLab docs: https://docs.gitlab.com/user/project/integrations/webhooks/
Payloads:    https://docs.gitlab.com/user/project/integrations/webhook_events/
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter

from bot import commands
from bot.model import Commit
from bot.rules.base import MergeRequestFacts

ZERO_SHA = "0" * 40

# Standard Webhooks allows five minutes of clock skew either way.
# https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
SIGNATURE_TOLERANCE_SECONDS = 300

# The MR fields whose change can alter the metadata rules' verdict.
# https://docs.gitlab.com/user/project/integrations/webhook_events/#merge-request-events
METADATA_FIELDS = frozenset({"title", "description", "labels", "draft", "assignees", "reviewers"})
# A changed target branch changes the rules (read from it) and the merge-base: the MR is
# checked again, in full. gitlabhq/gitlabhq: lib/gitlab/data_builder/issuable.rb reports it
# in `changes` (target_branch is one of MergeRequest's `safe_hook_attributes`).
RETARGET_FIELDS = frozenset({"target_branch"})


class WebhookError(Exception):
    """A delivery the bot refuses."""


class InvalidToken(WebhookError):
    pass


class InvalidSignature(WebhookError):
    pass


class MalformedBody(WebhookError):
    pass


@dataclass(frozen=True)
class JobTarget:
    """What a job is about; one job per target runs at a time, and a newer job of a target
    replaces its queued one.

    The store keeps it as text (`str`): `1!2` for MR 2 of project 1, `1!2#command` for the
    MR's commands other than a recheck, `1:main` for pushes to branch `main` of project 1.
    `parse` reads that text back, so no code takes the string apart by hand.
    """

    project_id: int
    merge_request_iid: int | None = None  # None: a branch's pushes
    branch: str = ""
    command: bool = False

    def __str__(self) -> str:
        if self.merge_request_iid is None:
            return f"{self.project_id}:{self.branch}"
        return f"{self.project_id}!{self.merge_request_iid}" + ("#command" if self.command else "")

    @classmethod
    def parse(cls, text: str) -> JobTarget:
        """The target a job's text names; ValueError for text no target writes."""
        # The project id is digits, so the first other character says which kind: a branch
        # name may hold `!`, `#` or `:` itself.
        digits = len(text) - len(text.lstrip("0123456789"))
        project, kind, rest = text[:digits], text[digits : digits + 1], text[digits + 1 :]
        if not project or kind not in {":", "!"}:
            raise ValueError(f"not a job target: {text!r}")
        if kind == ":":
            return cls(int(project), branch=rest)
        iid, hash_, suffix = rest.partition("#")
        if not iid.isdigit() or (hash_ and suffix != "command"):
            raise ValueError(f"not a job target: {text!r}")
        return cls(int(project), int(iid), command=bool(hash_))


@dataclass(frozen=True)
class MergeRequestEvent:
    project_id: int  # the target project: the MR lives there
    source_project_id: int  # the head commit lives there (differs for forks)
    iid: int
    action: str
    head_sha: str
    oldrev: str | None
    title: str
    description: str
    labels: tuple[str, ...]
    draft: bool
    source_branch: str
    target_branch: str
    web_url: str
    changed_fields: frozenset[str]
    assignees: tuple[str, ...] = ()
    reviewers: tuple[str, ...] = ()

    @property
    def target(self) -> JobTarget:
        return JobTarget(self.project_id, self.iid)

    def facts(self, *, squash: bool) -> MergeRequestFacts:
        """What the merge request rules judge. Whether it will be squashed is not in the
        payload: GitLab's API says (`squash_on_merge`)."""
        return MergeRequestFacts(
            title=self.title,
            description=self.description,
            labels=self.labels,
            draft=self.draft,
            source_branch=self.source_branch,
            target_branch=self.target_branch,
            squash=squash,
            assignees=self.assignees,
            reviewers=self.reviewers,
        )


@dataclass(frozen=True)
class PushEvent:
    project_id: int
    branch: str
    before: str
    after: str
    commits: tuple[Commit, ...]  # oldest first, at most the newest 20 (GitLab's cap)
    total_commits_count: int
    default_branch: str
    web_url: str

    @property
    def target(self) -> JobTarget:
        return JobTarget(self.project_id, branch=self.branch)

    @property
    def new_branch(self) -> bool:
        return self.before == ZERO_SHA


@dataclass(frozen=True)
class NoteEvent:
    project_id: int
    note_id: int
    mr_iid: int | None
    body: str
    author_username: str
    # The commenter's user id (`user.id`): whose membership a waiver is checked against.
    author_id: int | None = None


@dataclass(frozen=True)
class Ignored:
    """A valid delivery the bot does not act on; it still gets a 2xx."""

    reason: str
    malformed: bool = False  # the body lacked fields the bot needs: worth a warning log


Event = MergeRequestEvent | PushEvent | NoteEvent


def verify_token(expected: str, received: str | None) -> None:
    """Compare the X-Gitlab-Token header with the secret in constant time."""
    # https://docs.gitlab.com/user/project/integrations/webhooks/#create-a-webhook (secret token)
    if received is None or not hmac.compare_digest(
        expected.encode("utf-8"), received.encode("utf-8")
    ):
        raise InvalidToken("missing or wrong X-Gitlab-Token")


def verify_signature(
    signing_token: str, headers: Mapping[str, str], body: bytes, *, now: float
) -> None:
    """Verify a Standard Webhooks `webhook-signature`, when GitLab sends one.

    GitLab signs `{webhook-id}.{webhook-timestamp}.{body}` with HMAC-SHA256; the key is the
    base64 part of the `whsec_` token, as the Standard Webhooks spec defines.
    See gitlab-org/gitlab!230944 and
    https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
    """
    signature_header = headers.get("webhook-signature")
    if signature_header is None:
        return
    msg_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise InvalidSignature("webhook-timestamp is not a number") from None
    if abs(now - sent_at) > SIGNATURE_TOLERANCE_SECONDS:
        raise InvalidSignature("webhook-timestamp is too old or in the future")
    secret = signing_token.removeprefix("whsec_")
    try:
        key = base64.b64decode(secret, validate=True)
    except ValueError:
        key = secret.encode("utf-8")
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    # The header holds space-separated `v1,<sig>` entries (several during key rotation).
    for entry in signature_header.split():
        version, _, candidate = entry.partition(",")
        if version == "v1" and hmac.compare_digest(expected, candidate.encode()):
            return
    raise InvalidSignature("webhook-signature does not match")


def idempotency_key(headers: Mapping[str, str], event_name: str, body: bytes) -> str:
    """The key that makes a redelivery a no-op.

    GitLab keeps `Idempotency-Key` across retries and manual resends (17.4+). Older GitLab
    sends none, so fall back to a hash of event name and body. `X-Gitlab-Event-UUID` is not
    usable: hooks triggered by other hooks share it.
    https://docs.gitlab.com/user/project/integrations/webhooks/#delivery-headers
    """
    key = headers.get("idempotency-key", "").strip()
    if key:
        return "key:" + key[:200]
    digest = hashlib.sha256(event_name.encode() + b"\n" + body).hexdigest()
    return "sha256:" + digest


def decode_body(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except RecursionError:
        # Python's json recurses per nesting level; no GitLab payload nests deeply.
        raise MalformedBody("body is not valid JSON: nested too deeply") from None
    except ValueError as exc:
        # JSONDecodeError and UnicodeDecodeError are ValueErrors; so is int()'s refusal of
        # a number of 4,300+ digits, which json.loads raises as it reads one.
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise MalformedBody(f"body is not valid JSON: {reason}") from None
    if not isinstance(payload, dict):
        raise MalformedBody("body is not a JSON object")
    return payload


def parse_event(event_name: str, payload: dict[str, Any]) -> Event | Ignored:
    """Turn a decoded payload into the event the bot acts on, or say why it is ignored."""
    # System hooks carry the same payloads, told apart by object_kind.
    # https://docs.gitlab.com/administration/system_hooks/
    if event_name == "System Hook":
        kind = payload.get("object_kind")
        kind = kind[:50] if isinstance(kind, str) else type(kind).__name__
        event_name = {"push": "Push Hook", "merge_request": "Merge Request Hook"}.get(kind, "")
        if not event_name:
            return Ignored(f"system hook of kind {kind!r}")
    try:
        if event_name == "Merge Request Hook":
            return _merge_request(payload)
        if event_name == "Push Hook":
            return _push(payload)
        if event_name == "Note Hook":
            return _note(payload)
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        # A field of the wrong type or out of range is as unusable as a missing one.
        reason = repr(exc)[:200]
        return Ignored(f"{event_name} payload lacks a needed field: {reason}", malformed=True)
    return Ignored(f"event {event_name!r} is not handled")


# Only these actions can change a verdict; close, merge and approvals cannot.
# https://docs.gitlab.com/user/project/integrations/webhook_events/#merge-request-events
_CHECKED_ACTIONS = frozenset({"open", "reopen", "update"})


def _merge_request(payload: dict[str, Any]) -> MergeRequestEvent | Ignored:
    attrs = payload["object_attributes"]
    action = _text(attrs.get("action"))
    if action not in _CHECKED_ACTIONS:
        return Ignored(f"merge request action {action[:50]!r}")
    changes = payload.get("changes") or {}
    changed = frozenset(str(k) for k in changes) & (METADATA_FIELDS | RETARGET_FIELDS)
    oldrev = attrs.get("oldrev") or None
    if action == "update" and oldrev is None and not changed:
        return Ignored("merge request update without new commits or metadata changes")
    labels = payload.get("labels")
    if labels is None:
        labels = attrs.get("labels") or []
    return MergeRequestEvent(
        project_id=_id(attrs["target_project_id"]),
        source_project_id=_id(attrs["source_project_id"]),
        iid=_id(attrs["iid"]),
        action=action,
        head_sha=_sha(attrs["last_commit"]["id"]),
        oldrev=_sha(oldrev) if oldrev else None,
        title=_text(attrs.get("title")),
        description=_text(attrs.get("description")),
        labels=tuple(_string(label["title"]) for label in labels),
        draft=bool(attrs.get("draft", attrs.get("work_in_progress", False))),
        source_branch=_string(attrs["source_branch"]),
        target_branch=_string(attrs["target_branch"]),
        web_url=_text(attrs.get("url")),
        changed_fields=changed,
        assignees=_usernames(payload.get("assignees")),
        reviewers=_usernames(payload.get("reviewers")),
    )


def _usernames(users: object) -> tuple[str, ...]:
    if not isinstance(users, list):
        return ()
    return tuple(
        _text(u.get("username")) or str(_id(u.get("id"))) for u in users if isinstance(u, dict)
    )


def _push(payload: dict[str, Any]) -> PushEvent | Ignored:
    ref = _string(payload["ref"])
    # Tag pushes come as "Tag Push Hook"; a branch ref is refs/heads/<name>.
    # https://docs.gitlab.com/user/project/integrations/webhook_events/#push-events
    if not ref.startswith("refs/heads/"):
        return Ignored(f"push to {ref[:100]!r} is not a branch")
    after = _string(payload["after"])
    if after == ZERO_SHA:
        return Ignored("branch deleted")
    project = payload["project"]
    commits = tuple(
        Commit(
            sha=_sha(c["id"]),
            message=_text(c.get("message")),
            author_name=_text((c.get("author") or {}).get("name")),
            author_email=_text((c.get("author") or {}).get("email")),
        )
        for c in payload.get("commits") or []
    )
    return PushEvent(
        project_id=_id(payload.get("project_id") or project["id"]),
        branch=ref.removeprefix("refs/heads/"),
        before=_sha(payload["before"]),
        after=_sha(after),
        commits=commits,
        total_commits_count=_count(payload.get("total_commits_count", len(commits))),
        default_branch=_text(project.get("default_branch")),
        web_url=_text(project.get("web_url")),
    )


def _note(payload: dict[str, Any]) -> NoteEvent | Ignored:
    attrs = payload["object_attributes"]
    # GitLab sends a Note Hook when a comment is edited too, with `action: update`
    # (gitlabhq/gitlabhq: lib/gitlab/data_builder/note.rb, VALID_ACTIONS = create, update);
    # older GitLab sends no `action`, and only for new comments. Only a new comment gives
    # a command: an edit (of a command, or of any comment into one) does nothing.
    action = attrs.get("action")
    if action is not None and action != "create":
        return Ignored(f"note {str(action)[:20]!r}: only new comments give commands")
    mr = payload.get("merge_request")
    # noteable_id is the MR's global id; the iid is under merge_request.
    # https://docs.gitlab.com/user/project/integrations/webhook_events/#comment-on-a-merge-request
    mr_iid = _id(mr["iid"]) if attrs.get("noteable_type") == "MergeRequest" and mr else None
    return NoteEvent(
        project_id=_id(payload.get("project_id") or payload["project"]["id"]),
        note_id=_id(attrs["id"]),
        mr_iid=mr_iid,
        body=_text(attrs.get("note")),
        author_username=_text((payload.get("user") or {}).get("username")),
        author_id=_user_id(payload.get("user")),
    )


def _user_id(user: object) -> int | None:
    if not isinstance(user, dict) or user.get("id") is None:
        return None
    try:
        return _id(user["id"])
    except (TypeError, ValueError):
        return None


def _sha(value: object) -> str:
    text = _string(value)
    if len(text) != 40 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"not a commit sha: {text[:50]!r}")
    return text


# The journal keeps ids in 64-bit signed columns (SQLite INTEGER, PostgreSQL bigint): a
# larger number would fail there, after the delivery was read as valid.
MAX_BIGINT = 2**63 - 1


def _count(value: object) -> int:
    """A JSON integer in the bigint range; `true`, `1.9` and `"1"` are not integers."""
    if type(value) is not int or not 0 <= value <= MAX_BIGINT:
        raise ValueError(f"not a count: {_shown(value)}")
    return value


def _id(value: object) -> int:
    """An id or iid: a JSON integer from 1 to the bigint maximum."""
    if type(value) is not int or not 1 <= value <= MAX_BIGINT:
        raise ValueError(f"not an id: {_shown(value)}")
    return value


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"not a string: {_shown(value)}")
    return value


def _text(value: object) -> str:
    """An optional string field: absent or null is empty."""
    return "" if value is None else _string(value)


def _shown(value: object) -> str:
    """A value in an error message: short, and never a recursive repr of a deep list."""
    if isinstance(value, bool | float) or value is None:
        return repr(value)
    if isinstance(value, int):
        return "an integer out of range"
    if isinstance(value, str):
        return repr(value[:50])
    return f"a JSON {'object' if isinstance(value, dict) else 'array'}"


# -- events as journal records ------------------------------------------------------------


_EVENT_TYPES: dict[str, type[Event]] = {
    "merge_request": MergeRequestEvent,
    "push": PushEvent,
    "command": NoteEvent,
}


@functools.cache
def _journal_format(kind: str) -> TypeAdapter[Event]:
    return TypeAdapter(_EVENT_TYPES[kind])


def event_to_json(event: Event) -> str:
    """The event as the journal stores it, so a restart can replay it: every field by name."""
    return _journal_format(event_kind(event)).dump_json(event).decode()


def event_from_json(kind: str, text: str) -> Event:
    """The journaled event, as it was before it was stored (and as older records stored it:
    sorted keys, lists for tuples and sets)."""
    return _journal_format(kind).validate_json(text)


def event_kind(event: Event) -> str:
    if isinstance(event, NoteEvent):
        return "command"
    return "merge_request" if isinstance(event, MergeRequestEvent) else "push"


def event_head(event: Event) -> str:
    """The head a job checks; empty for commands, which read the MR's current head."""
    if isinstance(event, MergeRequestEvent):
        return event.head_sha
    return event.after if isinstance(event, PushEvent) else ""


def event_target(event: Event) -> JobTarget:
    """What a job is about; one job per target runs at a time.

    A recheck shares its MR's target (it replaces a waiting check of the same MR); other
    commands get their own, so a help reply never replaces a check."""
    if isinstance(event, NoteEvent):
        recheck = commands.parse(event.body) is commands.Command.RECHECK
        return JobTarget(event.project_id, event.mr_iid, command=not recheck)
    return event.target


def merge_request_from_api(mr: dict[str, Any]) -> MergeRequestEvent | None:
    """An MR as the REST API lists it, as the event the bot would have received for it;
    None when GitLab has no head for it yet (nothing to check yet).

    Catch-up uses this for MRs whose events were missed, and a recheck for the MR's
    current state. https://docs.gitlab.com/api/merge_requests/#list-project-merge-requests
    """
    # `sha` is `diff_head_sha` (gitlabhq/gitlabhq: lib/api/entities/merge_request_basic.rb),
    # which is null while GitLab is still preparing the MR's diff.
    if mr.get("sha") is None:
        return None
    return MergeRequestEvent(
        project_id=int(mr["project_id"]),
        source_project_id=int(mr.get("source_project_id") or mr["project_id"]),
        iid=int(mr["iid"]),
        action="catch-up",
        head_sha=_sha(mr["sha"]),
        oldrev=None,
        title=str(mr.get("title") or ""),
        description=str(mr.get("description") or ""),
        labels=tuple(
            str(label["name"] if isinstance(label, dict) else label)
            for label in mr.get("labels") or []
        ),
        draft=bool(mr.get("draft", mr.get("work_in_progress", False))),
        source_branch=str(mr["source_branch"]),
        target_branch=str(mr["target_branch"]),
        web_url=str(mr.get("web_url") or ""),
        changed_fields=frozenset(),
        assignees=_usernames(mr.get("assignees")),
        reviewers=_usernames(mr.get("reviewers")),
    )


def squash_on_merge(mr: Mapping[str, Any]) -> bool:
    """Whether GitLab will squash the MR, from GET /projects/:id/merge_requests/:iid.

    `squash_on_merge` accounts for the project's squash setting ("always").
    https://docs.gitlab.com/api/merge_requests/#get-single-mr
    """
    return bool(mr.get("squash_on_merge", mr.get("squash", False)))


def merge_request_facts_from_ci(env: Mapping[str, str]) -> MergeRequestFacts:
    """The MR as a GitLab CI merge request pipeline's predefined variables tell it.

    https://docs.gitlab.com/ci/variables/predefined_variables/#predefined-variables-for-merge-request-pipelines
    GitLab cuts CI_MERGE_REQUEST_DESCRIPTION at 2,700 characters (16.7+), and tells no
    reviewers: the caller says so.
    """
    return MergeRequestFacts(
        title=env.get("CI_MERGE_REQUEST_TITLE", ""),
        description=env.get("CI_MERGE_REQUEST_DESCRIPTION", ""),
        labels=ci_names(env.get("CI_MERGE_REQUEST_LABELS", "")),
        # Without the variable (before 17.10), the draft rule still sees the title's
        # `Draft:` prefix, which is how GitLab marks a draft.
        draft=bool(ci_flag(env, "CI_MERGE_REQUEST_DRAFT")),  # GitLab 17.10+
        source_branch=env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", ""),
        target_branch=env.get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", ""),
        squash=bool(ci_flag(env, "CI_MERGE_REQUEST_SQUASH_ON_MERGE")),  # GitLab 16.4+
        assignees=ci_names(env.get("CI_MERGE_REQUEST_ASSIGNEES", "")),
    )


def ci_flag(env: Mapping[str, str], name: str) -> bool | None:
    value = env.get(name)
    return None if value is None or value == "" else value.strip().lower() == "true"


def ci_names(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())
