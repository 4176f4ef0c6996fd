"""`/compliance waive` and `/compliance unwaive`: a permitted user overrides findings of one
rule on one MR, with a reason and an expiry, or withdraws that.

Who may: the commenter's membership of the MR's target project, read from GitLab
(`GET /projects/:id/members/all/:user_id`): an active user with at least the access level
the target branch's config asks for the rule (40, Maintainer, by default). Not a member, a
404 and a blocked user are refused; so is the MR's author on their own MR unless the config
allows it, and a rule with `waivable: false`. A refusal is one short reply saying why, and
changes nothing. The waiver covers the findings of the rule on the MR's current head (their
fingerprints), so what a later push brings is judged anew.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from bot import commands, policy
from bot.checks import Services
from bot.checks import merge_request as merge_request_check
from bot.commands import Refused, Unwaive, Waive
from bot.config import Config, ConfigError
from bot.gitlab import GitLabError, NotFound
from bot.jobs import job_for
from bot.report import bot_text, escape
from bot.rules.catalog import all_rules
from bot.source import GitLabSource
from bot.store import Store
from bot.waivers import MAX_FINGERPRINTS, NewWaiver, finding_fingerprint, findings_to_waive
from bot.webhook import MergeRequestEvent, NoteEvent, merge_request_from_api

log = logging.getLogger(__name__)

# https://docs.gitlab.com/api/members/#roles
ROLES = {10: "Guest", 15: "Planner", 20: "Reporter", 30: "Developer", 40: "Maintainer"}
ROLES |= {50: "Owner", 60: "Admin"}


def _role(level: int) -> str:
    name = ROLES.get(level)
    return f"{name} ({level})" if name else f"access level {level}"


def known_rules() -> frozenset[str]:
    return frozenset(rule.id for rule in all_rules())


async def run(services: Services, note: NoteEvent) -> None:
    """Carry out (or refuse, with one reply) a waive or unwaive command."""
    assert note.mr_iid is not None
    parsed = commands.parse_waiver(note.body, known_rules())
    if isinstance(parsed, Refused):
        await _refuse(services, note, parsed.reason)
        return
    raw = await services.gitlab.merge_request(note.project_id, note.mr_iid)
    current = merge_request_from_api(raw)
    if current is None:
        await _refuse(services, note, "GitLab is still preparing this merge request; try again")
        return
    if services.memory is None:
        await _refuse(services, note, "this bot keeps no journal, so it records no waivers")
        return
    try:
        config = await _rules_of(services, current)
    except ConfigError as exc:
        await _refuse(services, note, f"the rules on the target branch are invalid ({exc})")
        return
    refusal = await _not_permitted(services, note, raw, config, parsed.rule)
    if refusal is not None:
        await _refuse(services, note, refusal)
        return
    if isinstance(parsed, Unwaive):
        await _unwaive(services, note, current, parsed)
    else:
        await _waive(services, note, current, config, parsed)


async def _rules_of(services: Services, event: MergeRequestEvent) -> Config:
    """The config the MR is judged by: its target branch's, never the MR's own files."""
    source = GitLabSource(services.gitlab, event.project_id, trees=services.trees)
    target_sha = await source.branch_head(event.target_branch)
    # With the group policies above it (a policy may lock `waivable: false`), as the check.
    resolved = await policy.resolve_for_project(
        services.gitlab,
        event.project_id,
        target_sha,
        await source.config_file(target_sha),
        services.base_config,
    )
    config: Config = resolved.config
    return config


async def _not_permitted(
    services: Services, note: NoteEvent, raw: dict[str, Any], config: Config, rule: str
) -> str | None:
    """Why the commenter may not waive `rule` on this MR; None when they may."""
    if not config.rule(rule).waivable:
        return f"`{rule}` cannot be waived here (`waivable: false` in {config.source})"
    needed = config.waiver_access_level(rule)
    if note.author_id is None:
        return "GitLab did not say who wrote the command"
    member = await services.gitlab.project_member(note.project_id, note.author_id)
    if member is None:
        return f"waiving needs {_role(needed)} on this project; you are not a member of it"
    if member.get("state") != "active":
        return "your GitLab account is not active"
    level = member.get("access_level")
    if not isinstance(level, int) or level < needed:
        shown = _role(level) if isinstance(level, int) else "no access level"
        return f"waiving `{rule}` needs {_role(needed)} on this project; you have {shown}"
    author = raw.get("author")
    author_id = author.get("id") if isinstance(author, dict) else None
    if author_id == note.author_id and not config.waivers.authors_may_waive:
        return "the merge request's author cannot waive findings on it"
    return None


async def _waive(
    services: Services, note: NoteEvent, current: MergeRequestEvent, config: Config, asked: Waive
) -> None:
    assert note.mr_iid is not None and services.memory is not None
    now = services.clock()
    options = config.waivers
    expires = commands.waiver_expiry(
        asked, now=now, default_days=options.default_days, max_days=options.max_days
    )
    if isinstance(expires, Refused):
        await _refuse(services, note, expires.reason)
        return
    judged = await merge_request_check.judge(services, current)
    checked = judged.report
    head = current.head_sha[:8]
    if checked.superseded_by is not None:
        await _refuse(services, note, "the merge request's head moved on; try again")
        return
    if checked.error is not None:
        await _refuse(services, note, f"the check of {head} could not complete, so no finding")
        return
    findings = findings_to_waive(checked, asked.rule, asked.location)
    if not findings:
        where = f" at `{asked.location}`" if asked.location else ""
        await _refuse(services, note, f"`{asked.rule}` found nothing{where} on {head} to waive")
        return
    if len(findings) > MAX_FINGERPRINTS:
        await _refuse(
            services, note, f"more than {MAX_FINGERPRINTS} findings: waive them by location"
        )
        return
    waiver_id = await services.memory.add_waiver(
        NewWaiver(
            project_id=current.project_id,
            mr_iid=current.iid,
            rule=asked.rule,
            location=asked.location or "",
            fingerprints=tuple(dict.fromkeys(finding_fingerprint(f) for f in findings)),
            reason=asked.reason,
            author=note.author_username,
            created_at=now,
            expires_at=expires,
            head_sha=current.head_sha,
        )
    )
    log.info(
        "waiver recorded",
        extra={"mr": current.target, "rule": asked.rule, "waiver": waiver_id, "sha": head},
    )
    await merge_request_check.check(services, current, judged=judged)


async def _unwaive(
    services: Services, note: NoteEvent, current: MergeRequestEvent, asked: Unwaive
) -> None:
    assert services.memory is not None
    withdrawn = await services.memory.withdraw_waivers(
        current.project_id, current.iid, asked.rule, by=note.author_username, now=services.clock()
    )
    if not withdrawn:
        await _refuse(services, note, f"no active waiver of `{asked.rule}` on this merge request")
        return
    log.info("waivers withdrawn", extra={"mr": current.target, "rule": asked.rule})
    await merge_request_check.check(services, current)


async def _refuse(services: Services, note: NoteEvent, reason: str) -> None:
    """One short reply: what was refused, and why. The command limits bound these."""
    assert note.mr_iid is not None
    log.info(
        "waiver command refused",
        extra={"project": note.project_id, "mr": note.mr_iid, "user": note.author_username},
    )
    body = f":no_entry: {escape('@' + note.author_username)}: not done: {bot_text(reason)}."
    await services.gitlab.create_note(note.project_id, note.mr_iid, body)


# Expired waivers looked at per sweep: each costs one GitLab read and queues one check.
EXPIRIES_PER_SWEEP = 50
# Ended waivers stay in the journal, for the audit's trail, this long.
WAIVER_RETENTION_DAYS = 400


async def queue_expired(services: Services, store: Store) -> int:
    """Queue a check of each open MR whose waivers expired, so its status turns back to
    `failed` without waiting for a push; returns how many were queued. Bounded per sweep;
    an MR GitLab cannot be read for now is tried again on the next sweep."""
    now = services.clock()
    queued = 0
    for project_id, mr_iid in await store.expired_waivers(now=now, limit=EXPIRIES_PER_SWEEP):
        read_at = time.time()
        try:
            raw = await services.gitlab.merge_request(project_id, mr_iid)
            event = merge_request_from_api(raw) if raw.get("state") == "opened" else None
        except NotFound:
            event = None  # the MR is gone: nothing to re-check
        except (GitLabError, KeyError, TypeError, ValueError) as exc:
            log.warning(
                "could not read an MR whose waiver expired; trying again later",
                extra={"project": project_id, "mr": mr_iid, "error": str(exc)[:200]},
            )
            continue
        if event is not None:
            job = job_for(event)
            if await store.enqueue(job, seen_at=read_at, now=time.time()) is not None:
                queued += 1
        await store.mark_expiry_handled(project_id, mr_iid, now=now)
    await store.prune_waivers(ended_before=now - WAIVER_RETENTION_DAYS * 86400)
    return queued
