"""The sans-I/O webhook core, tested with literal headers and GitLab's published payloads."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from hypothesis import HealthCheck, given, settings

from bot import webhook
from bot.webhook import JobTarget
from tests.hostile_payloads import mutated_payloads
from tests.payloads import fixture


def test_token_compared_and_refused_when_missing_or_wrong() -> None:
    webhook.verify_token("s3cret", "s3cret")
    with pytest.raises(webhook.InvalidToken):
        webhook.verify_token("s3cret", "s3cre")
    with pytest.raises(webhook.InvalidToken):
        webhook.verify_token("s3cret", None)


def test_published_merge_request_payload_parses() -> None:
    event = webhook.parse_event("Merge Request Hook", fixture("merge_request.json"))
    assert isinstance(event, webhook.MergeRequestEvent)
    # The published example's project.id is 1 but the MR lives in target_project_id 14.
    assert event.project_id == 14
    assert event.source_project_id == 14
    assert event.iid == 1
    assert event.head_sha == "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
    assert event.labels == ("API",)
    assert event.action == "open"
    assert event.oldrev is None
    assert event.changed_fields == {"labels", "draft"}
    assert event.target == JobTarget(14, 1)
    assert str(event.target) == "14!1"


def test_v18_merge_request_payload_parses() -> None:
    event = webhook.parse_event("Merge Request Hook", fixture("merge_request_open_v18.json"))
    assert isinstance(event, webhook.MergeRequestEvent)


@pytest.mark.parametrize("action", ["close", "merge", "approved", "unapproved", "approval"])
def test_merge_request_actions_that_cannot_change_the_verdict_are_ignored(action: str) -> None:
    payload = fixture("merge_request.json")
    payload["object_attributes"]["action"] = action
    result = webhook.parse_event("Merge Request Hook", payload)
    assert isinstance(result, webhook.Ignored)
    assert not result.malformed


def test_update_without_new_commits_or_metadata_changes_is_ignored() -> None:
    payload = fixture("merge_request.json")
    payload["object_attributes"]["action"] = "update"
    payload["changes"] = {"milestone_id": {"previous": None, "current": 3}}
    assert isinstance(webhook.parse_event("Merge Request Hook", payload), webhook.Ignored)
    payload["changes"] = {"title": {"previous": "a", "current": "b"}}
    event = webhook.parse_event("Merge Request Hook", payload)
    assert isinstance(event, webhook.MergeRequestEvent)
    assert event.changed_fields == {"title"}


def test_update_with_oldrev_is_checked() -> None:
    payload = fixture("merge_request.json")
    payload["object_attributes"].update(action="update", oldrev="e" * 40)
    payload["changes"] = {}
    event = webhook.parse_event("Merge Request Hook", payload)
    assert isinstance(event, webhook.MergeRequestEvent)
    assert event.oldrev == "e" * 40


def test_partial_payload_is_ignored_with_a_warning_not_an_error() -> None:
    result = webhook.parse_event(
        "Merge Request Hook", fixture("merge_request_update_oldrev_partial.json")
    )
    assert isinstance(result, webhook.Ignored)
    assert result.malformed


def test_push_payload_parses_with_its_quirks() -> None:
    event = webhook.parse_event("Push Hook", fixture("push.json"))
    assert isinstance(event, webhook.PushEvent)
    assert event.branch == "master"
    # total_commits_count is 4 but only 2 are listed: the rest must be read.
    assert event.total_commits_count == 4
    assert len(event.commits) == 2
    assert event.commits[1].author_email == "gitlabdev@dv6700.(none)"


def test_tag_push_and_branch_deletion_are_ignored() -> None:
    assert isinstance(
        webhook.parse_event("Tag Push Hook", fixture("tag_push.json")), webhook.Ignored
    )
    payload = fixture("push.json")
    payload["after"] = webhook.ZERO_SHA
    assert isinstance(webhook.parse_event("Push Hook", payload), webhook.Ignored)


def test_note_on_merge_request_uses_the_iid_not_the_noteable_id() -> None:
    event = webhook.parse_event("Note Hook", fixture("note_merge_request.json"))
    assert isinstance(event, webhook.NoteEvent)
    assert event.mr_iid == 1
    assert event.body == "This MR needs work."


def test_system_hook_routes_on_object_kind() -> None:
    event = webhook.parse_event("System Hook", fixture("merge_request.json"))
    assert isinstance(event, webhook.MergeRequestEvent)
    result = webhook.parse_event("System Hook", {"object_kind": "user_create"})
    assert isinstance(result, webhook.Ignored)


def test_unknown_events_are_ignored() -> None:
    result = webhook.parse_event("Pipeline Hook", fixture("pipeline.json"))
    assert isinstance(result, webhook.Ignored)
    assert not result.malformed


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_body_that_is_not_a_json_object_is_malformed(body: bytes) -> None:
    with pytest.raises(webhook.MalformedBody):
        webhook.decode_body(body)


def test_idempotency_key_prefers_gitlabs_header_and_ignores_event_uuid() -> None:
    body = b"{}"
    with_key = webhook.idempotency_key({"idempotency-key": "abc"}, "Push Hook", body)
    assert with_key == webhook.idempotency_key(
        {"idempotency-key": "abc", "x-gitlab-event-uuid": "other"}, "Push Hook", b"[]"
    )
    fallback = webhook.idempotency_key({"x-gitlab-event-uuid": "u1"}, "Push Hook", body)
    assert fallback == webhook.idempotency_key({"x-gitlab-event-uuid": "u2"}, "Push Hook", body)
    assert fallback != webhook.idempotency_key({}, "Merge Request Hook", body)


def _sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def test_standard_webhooks_signature() -> None:
    key = bytes(range(32))
    token = "whsec_" + base64.b64encode(key).decode()
    body = json.dumps({"object_kind": "push"}).encode()
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": "1700000000",
        "webhook-signature": "v1,bm90LXRoaXM= " + _sign(key, "msg_1", 1700000000, body),
    }
    webhook.verify_signature(token, headers, body, now=1700000010)
    with pytest.raises(webhook.InvalidSignature):
        webhook.verify_signature(token, headers, body + b" ", now=1700000010)
    with pytest.raises(webhook.InvalidSignature, match="too old"):
        webhook.verify_signature(token, headers, body, now=1700000000 + 301)
    # Without the header (signing not enabled on the hook) only the token is checked.
    webhook.verify_signature(token, {}, body, now=0)


# -- hostile bodies: a 400 or an `Ignored`, never an exception ------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"object_attributes": {"iid": 1' + b"0" * 5000 + b"}}",
        b'{"a": "\xff"}',
    ],
    ids=["deep", "deep-value", "5000-digits", "not-utf8"],
)
def test_a_body_python_cannot_read_is_malformed(body: bytes) -> None:
    with pytest.raises(webhook.MalformedBody) as caught:
        webhook.decode_body(body)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 300


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("target_project_id", True),
        ("target_project_id", 1.9),
        ("target_project_id", 2**63),
        ("target_project_id", "14"),
        ("iid", -1),
        ("iid", 0),
        ("iid", False),
        ("source_project_id", None),
        ("title", {"a": 1}),
        ("source_branch", 3),
        ("action", ["open"]),
    ],
)
def test_a_field_of_the_wrong_type_or_range_is_ignored(field: str, value: object) -> None:
    payload = fixture("merge_request.json")
    payload["object_attributes"][field] = value
    result = webhook.parse_event("Merge Request Hook", payload)
    assert isinstance(result, webhook.Ignored)


def test_a_system_hook_kind_that_is_not_a_string_is_ignored() -> None:
    deep: object = []
    for _ in range(5000):
        deep = [deep]
    result = webhook.parse_event("System Hook", {"object_kind": deep})
    assert isinstance(result, webhook.Ignored) and len(result.reason) < 100


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_payloads())
def test_a_mutated_payload_is_refused_ignored_or_a_well_typed_event(
    delivery: tuple[str, bytes],
) -> None:
    event_name, body = delivery
    try:
        payload = webhook.decode_body(body)
    except webhook.MalformedBody:
        return
    result = webhook.parse_event(event_name, payload)
    if isinstance(result, webhook.Ignored):
        assert len(result.reason) < 400
        return
    ids = [result.project_id]
    if isinstance(result, webhook.MergeRequestEvent):
        ids += [result.source_project_id, result.iid]
        assert all(isinstance(t, str) for t in (result.title, result.source_branch))
    elif isinstance(result, webhook.NoteEvent):
        ids += [result.note_id] + ([result.mr_iid] if result.mr_iid is not None else [])
    assert all(type(i) is int and 1 <= i < 2**63 for i in ids), ids
    # What the journal stores reads back as the same event.
    kind = webhook.event_kind(result)
    assert webhook.event_from_json(kind, webhook.event_to_json(result)) == result


@pytest.mark.parametrize(
    ("target", "text"),
    [
        (JobTarget(14, 1), "14!1"),
        (JobTarget(14, 1, command=True), "14!1#command"),
        (JobTarget(14, branch="main"), "14:main"),
        # A branch name may hold every separator: the project id's digits end it.
        (JobTarget(7, branch="fix!3#command:x"), "7:fix!3#command:x"),
        (JobTarget(7, branch=""), "7:"),
    ],
)
def test_a_job_target_reads_back_from_the_text_the_store_keeps(
    target: JobTarget, text: str
) -> None:
    assert str(target) == text
    assert JobTarget.parse(text) == target


@pytest.mark.parametrize("text", ["", "!1", "x:main", "14", "14!", "14!x", "14!1#help", "14?1"])
def test_text_no_target_writes_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a job target"):
        JobTarget.parse(text)
