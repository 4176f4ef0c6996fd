"""Hostile input through the real server: a `compliance-bot serve` process, the fake GitLab,
real HTTP (issue 16, items 1 and 4).

A config file on a target branch and a webhook body are both written by people the bot does
not trust. Whatever they hold, the one event loop keeps answering, nothing crashes, every
check ends with a verdict, and no status lands on a commit a malformed delivery names.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings

from bot import config
from bot.report import NOTE_MARKER
from tests.conftest import WEBHOOK_SECRET, running_bot
from tests.fake_gitlab import FakeGitLab, MergeRequest
from tests.hostile_payloads import mutated_payloads
from tests.payloads import fixture, push_hook
from tests.processes import BotProcess, deliver
from tests.scenarios import compliant_project, hook_for

MR_HOOK = "Merge Request Hook"
HEALTHZ_BOUND = 0.1  # seconds: what "the loop keeps answering" means here


def _reproduction_config() -> str:
    """The probe's file: valid YAML, 120 KB, one list of 60,000 items."""
    items = ",".join(["a"] * 60_000)
    return f"rules:\n  merge_request.labels:\n    severity: error\n    any_of: [{items}]\n"


def _largest_accepted_config() -> str:
    """A valid file at the caps: as many values as allowed, in lists as long as allowed."""
    per_list = config.MAX_CONFIG_VALUES // 4 - 10
    assert per_list <= config.MAX_CONFIG_LIST_ITEMS

    def names(prefix: str) -> str:
        return "[" + ",".join(f"{prefix}{i:03}" for i in range(per_list)) + "]"

    text = (
        "rules:\n"
        f"  merge_request.labels: {{severity: error, any_of: {names('l')}}}\n"
        f"  commit.dco: {{severity: 'off', exempt_authors: {names('a')}}}\n"
        f"  commit.author_email: {{severity: 'off', allowed_domains: {names('d')}}}\n"
        f"  merge_request.target_branch: {{severity: 'off', allowed: {names('b')}}}\n"
    )
    assert len(text.encode()) <= config.MAX_CONFIG_BYTES
    assert 4 * per_list > config.MAX_CONFIG_VALUES - 100
    return text


class HealthProbe:
    """Polls /healthz back to back and keeps each answer's latency, until stopped.

    `idle()` first measures the idle server for a while: on a shared machine, the
    scheduler alone can delay an answer by tens of milliseconds, which is no stall."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.latencies: list[float] = []
        self.idle_latencies: list[float] = []
        self._stop = asyncio.Event()
        self._samples = asyncio.Condition()

    async def idle(self, samples: int = 20) -> None:
        """Wait for `samples` answers of the idle server, and keep them apart."""
        async with self._samples:
            await self._samples.wait_for(lambda: len(self.latencies) >= samples)
            self.idle_latencies, self.latencies = self.latencies, []

    async def at_least(self, samples: int) -> None:
        """Wait until `samples` answers were measured since `idle()` (a quick check may end
        before the probe has seen many)."""
        async with self._samples:
            await self._samples.wait_for(lambda: len(self.latencies) >= samples)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[HealthProbe]:
        task = asyncio.get_running_loop().create_task(self._poll())
        try:
            yield self
        finally:
            self._stop.set()
            await task

    async def _poll(self) -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                response = await client.get(f"{self.url}/healthz")
                async with self._samples:
                    self.latencies.append(time.perf_counter() - started)
                    self._samples.notify_all()
                assert response.status_code == 200
                await asyncio.sleep(0.005)

    @property
    def slowest(self) -> float:
        return max(self.latencies)

    @property
    def slowest_idle(self) -> float:
        return max(self.idle_latencies)


async def _final_status(fake: FakeGitLab, mr: MergeRequest, seconds: float = 60) -> dict[str, Any]:
    """The MR head's status once it is no longer `running` (waits on GitLab's state)."""
    deadline = time.monotonic() + seconds
    while True:
        statuses = fake.statuses(mr.source_project_id, mr.head_sha)
        if statuses and statuses[-1]["status"] != "running":
            return statuses[-1]
        assert time.monotonic() < deadline, statuses
        await asyncio.sleep(0.05)


def _bot_note(fake: FakeGitLab, mr: MergeRequest) -> str:
    [note] = [n for n in fake.notes(mr.project_id, mr.iid) if NOTE_MARKER in str(n["body"])]
    return str(note["body"])


def _project_with_config(fake: FakeGitLab, path: str, text: str) -> MergeRequest:
    project = compliant_project(fake, path)
    fake.commit(project.id, "main", message="chore: rules", files={".gitlab/compliance.yml": text})
    fake.commit(project.id, "topic", message="feat: a topic")
    return fake.open_mr(project.id, source_branch="topic", description="A topic.")


@pytest.mark.parametrize(
    ("make_config", "verdict", "says"),
    [
        # Refused at the size cap, before any parsing.
        (_reproduction_config, "failed", f"larger than {config.MAX_CONFIG_BYTES // 1024} KiB"),
        # Parsed and validated in full (the MR has none of the labels: 1 error).
        (_largest_accepted_config, "failed", "merge_request.labels"),
    ],
    ids=["120KB-reproduction", "largest-accepted"],
)
async def test_a_big_config_does_not_stall_the_loop(
    fake: FakeGitLab,
    tmp_path: Path,
    make_config: Callable[[], str],
    verdict: str,
    says: str,
) -> None:
    big = _project_with_config(fake, "acme/big", make_config())
    other = compliant_project(fake, "acme/other")
    fake.commit(other.id, "topic", message="feat: other topic")
    other_mr = fake.open_mr(other.id, source_branch="topic", description="Other.")
    bot = BotProcess(fake, tmp_path / "journal.db")
    await bot.start()
    try:
        async with HealthProbe(bot.url).running() as probe, httpx.AsyncClient(timeout=30) as http:
            await probe.idle()
            assert (await deliver(http, bot.url, MR_HOOK, hook_for(big))).status_code == 202
            assert (await deliver(http, bot.url, MR_HOOK, hook_for(other_mr))).status_code == 202
            big_status = await _final_status(fake, big)
            other_status = await _final_status(fake, other_mr)
            await probe.at_least(6)
    finally:
        await bot.stop()

    assert len(probe.latencies) > 5
    # 100 ms on a quiet machine; on a busy one, plus what the idle server took at worst.
    bound = HEALTHZ_BOUND + probe.slowest_idle
    assert probe.slowest < bound, (
        f"/healthz took {probe.slowest * 1000:.0f} ms, idle at most {probe.slowest_idle * 1000:.0f}"
    )
    assert big_status["status"] == verdict
    assert says in _bot_note(fake, big)
    assert other_status["status"] == "success", other_status


HOSTILE_CONFIGS = {
    # About 1,000 deep in 5 KB: RecursionError before, and no status at all.
    "deep": ("rules:\n  merge_request.labels:\n    any_of: " + "[" * 990 + "]" * 990 + "\n", ":3:"),
    # A 5,000-digit integer: ValueError before.
    "number": ("rules:\n  commit.subject_length:\n    max_length: " + "9" * 5000 + "\n", ":3:17:"),
    # "Billion laughs": nine aliases of nine aliases of ... of nine strings.
    "aliases": (
        'rules:\n  merge_request.labels:\n    any_of: &a ["lol","lol","lol","lol","lol"]\n'
        + "".join(f"x{i}: &b{i} [{','.join(['*a'] * 9)}]\n" for i in range(9)),
        ":3:13:",
    ),
}


async def test_a_deep_or_huge_config_fails_the_mr_naming_its_line(
    fake: FakeGitLab, tmp_path: Path
) -> None:
    mrs = {
        name: _project_with_config(fake, f"acme/{name}", text)
        for name, (text, _) in HOSTILE_CONFIGS.items()
    }
    bot = BotProcess(fake, tmp_path / "journal.db")
    await bot.start()
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            for mr in mrs.values():
                assert (await deliver(http, bot.url, MR_HOOK, hook_for(mr))).status_code == 202
            finals = {name: await _final_status(fake, mr) for name, mr in mrs.items()}
            assert (await http.get(f"{bot.url}/healthz")).status_code == 200
    finally:
        output = await bot.stop()

    for name, (_, where) in HOSTILE_CONFIGS.items():
        assert finals[name]["status"] == "failed", (name, finals[name])
        assert "invalid .gitlab/compliance.yml" in str(finals[name]["description"]), name
        assert f".gitlab/compliance.yml{where}" in _bot_note(fake, mrs[name]), name
    assert "Traceback" not in output


# -- webhook bodies ------------------------------------------------------------------------


def _nested_json(depth: int) -> bytes:
    return (
        b'{"object_kind": "merge_request", "object_attributes": '
        + b"[" * depth
        + b"]" * depth
        + b"}"
    )


def _with(payload: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(payload))
    node = copy
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return copy


HUGE = "1" + "0" * 4999  # a 5,000-digit number, as JSON text
# Stands for a list nested 990 deep, which Python's own json could not even encode.
DEEP = "\x00deep\x00"


def _encode(payload: dict[str, Any]) -> bytes:
    deep = "[" * 990 + "]" * 990
    return json.dumps(payload).replace(json.dumps(DEEP), deep).encode()


def _hostile_bodies(mr: MergeRequest, branch_head: str) -> list[tuple[str, str, bytes]]:
    """(name, event, body): each names the real project, MR and commit in some field."""
    bodies: list[tuple[str, str, bytes]] = []
    for depth in (500, 990, 5000, 100_000):
        bodies.append((f"deep JSON {depth}", MR_HOOK, _nested_json(depth)))
    hook = hook_for(mr)
    mr_values: dict[str, list[Any]] = {
        "target_project_id": [True, 1.9, 2**63, 2**64, -1, 0, str(mr.project_id), None, [1]],
        "source_project_id": [True, 2**63, "x"],
        "iid": [True, 1.9, -1, 0, 2**63, str(mr.iid), {"a": 1}],
        "title": [DEEP, {"a": 1}, 12],
        "source_branch": [DEEP, 3],
        "target_branch": [["main"], 0],
    }
    for field, values in mr_values.items():
        for value in values:
            body = _with(hook, ("object_attributes", field), value)
            bodies.append((f"{field}={str(value)[:20]}", MR_HOOK, _encode(body)))
    # Python's json reads a 5,000-digit number only to raise ValueError on it.
    huge = json.dumps(hook).replace(
        f'"target_project_id": {mr.project_id}', f'"target_project_id": {HUGE}'
    )
    bodies.append(("target_project_id=5000 digits", MR_HOOK, huge.encode()))
    bodies.append(("labels=deep", MR_HOOK, _encode(dict(hook, labels=[{"title": DEEP}]))))
    push = push_hook(
        project_id=mr.project_id, branch="topic", before="0" * 40, after=branch_head, commits=[]
    )
    for value in (True, 1.9, -5, 2**63, str(mr.project_id)):
        body = dict(push, project_id=value)
        body["project"] = dict(push["project"], id=value)
        bodies.append((f"push project_id={value}", "Push Hook", json.dumps(body).encode()))
    bodies.append(
        ("push total=huge", "Push Hook", json.dumps(dict(push, total_commits_count=2**70)).encode())
    )
    note = fixture("note_merge_request.json")
    note["project_id"] = note["project"]["id"] = mr.project_id
    note["object_attributes"].update(note="/compliance recheck", noteable_type="MergeRequest")
    for value in (True, -1, 1.9, 2**63, str(mr.iid)):
        body = json.loads(json.dumps(note))
        body["merge_request"]["iid"] = value
        bodies.append((f"note iid={value}", "Note Hook", json.dumps(body).encode()))
    body = json.loads(json.dumps(note))
    body["object_attributes"]["id"] = 2**64
    bodies.append(("note id=2**64", "Note Hook", json.dumps(body).encode()))
    return bodies


async def test_hostile_webhook_bodies_get_400_or_ignored_and_no_status(
    fake: FakeGitLab, tmp_path: Path
) -> None:
    project = compliant_project(fake, "acme/widget")
    assert project.id == 1  # so `true` and 1.9 read as ints would name it
    head = fake.commit(project.id, "topic", message="feat: a topic")
    mr = fake.open_mr(project.id, source_branch="topic", description="A topic.")
    assert mr.iid == 1
    control_project = compliant_project(fake, "acme/control")
    fake.commit(control_project.id, "topic", message="feat: control")
    control = fake.open_mr(control_project.id, source_branch="topic", description="Control.")

    bot = BotProcess(fake, tmp_path / "journal.db")
    await bot.start()
    answers = []
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            for name, event, body in _hostile_bodies(mr, head):
                try:
                    response = await http.post(
                        f"{bot.url}/webhook",
                        content=body,
                        headers={
                            "Content-Type": "application/json",
                            "X-Gitlab-Event": event,
                            "X-Gitlab-Token": WEBHOOK_SECRET,
                            "Idempotency-Key": str(uuid.uuid4()),
                        },
                    )
                except httpx.TransportError as exc:  # the server dropped the connection
                    answers.append((name, 0, type(exc).__name__))
                    continue
                ok = response.status_code < 300
                answers.append(
                    (name, response.status_code, response.json()["status"] if ok else "")
                )
            # The server still answers, and still checks a valid delivery.
            assert (await http.get(f"{bot.url}/healthz")).status_code == 200
            control_hook = hook_for(control)
            assert (await deliver(http, bot.url, MR_HOOK, control_hook)).status_code == 202
            assert (await _final_status(fake, control))["status"] == "success"
    finally:
        output = await bot.stop()

    wrong = [a for a in answers if not (a[1] == 400 or (a[1] == 202 and a[2] == "ignored"))]
    assert wrong == [], "\n".join(map(str, wrong))
    assert fake.statuses(project.id, head) == []
    assert "Traceback" not in output


def _fuzz_corpus(count: int) -> list[tuple[str, bytes]]:
    """`count` mutated published payloads, drawn by Hypothesis (derandomized: the same
    corpus on every run)."""
    corpus: list[tuple[str, bytes]] = []

    @settings(max_examples=count, database=None, derandomize=True, deadline=None)
    @given(mutated_payloads())
    def collect(delivery: tuple[str, bytes]) -> None:
        corpus.append(delivery)

    collect()
    return corpus


async def test_mutated_published_payloads_never_get_a_5xx(fake: FakeGitLab) -> None:
    """Never a 5xx, never a dropped connection, and the server still answers."""
    async with running_bot(fake) as bot:
        answers = []
        for event, body in _fuzz_corpus(150):
            try:
                response = await bot.send(event, body)
                answers.append(response.status_code)
            except httpx.TransportError as exc:
                answers.append(type(exc).__name__)
        assert (await bot.client.get(f"{bot.url}/healthz")).status_code == 200
    assert {a for a in answers if a not in (200, 202, 400)} == set()
