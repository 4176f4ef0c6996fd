"""MR commands: `/compliance recheck` runs the check again; `/compliance help` replies;
`/compliance waive` and `unwaive` are carried out by `bot.checks.waive`.

The bot acknowledges each command with an award emoji on the comment and ignores its own
comments, so its help reply can never trigger it.
"""

from __future__ import annotations

import logging
import time

from bot import commands
from bot.checks import Services, waive
from bot.checks import merge_request as merge_request_check
from bot.webhook import NoteEvent, merge_request_from_api

log = logging.getLogger(__name__)

# https://docs.gitlab.com/api/emoji_reactions/
ACKNOWLEDGE_EMOJI = "eyes"


async def run(services: Services, note: NoteEvent) -> None:
    gitlab = services.gitlab
    command = commands.parse(note.body)
    if command is None or note.mr_iid is None:
        return
    me = await gitlab.current_user()
    if note.author_username == me.get("username"):
        return
    if not within_limits(services, note):
        return
    await gitlab.award_emoji(note.project_id, note.mr_iid, note.note_id, ACKNOWLEDGE_EMOJI)
    if command is commands.Command.HELP:
        await gitlab.create_note(note.project_id, note.mr_iid, commands.HELP_TEXT)
        return
    if command in (commands.Command.WAIVE, commands.Command.UNWAIVE):
        await waive.run(services, note)
        return
    # The MR as GitLab has it now: the current head, title and description.
    current = merge_request_from_api(await gitlab.merge_request(note.project_id, note.mr_iid))
    if current is None:
        # GitLab is still preparing the MR (no head yet): nothing to check yet, and not an
        # error. Catch-up checks the MR once GitLab lists its head without a bot status.
        log.info("recheck: no head yet", extra={"project": note.project_id, "mr": note.mr_iid})
        return
    # A recheck reads everything afresh: it is how a user says "don't trust what you knew".
    await merge_request_check.check(services, current, reuse=False)
    log.info("recheck done", extra={"project": note.project_id, "mr": note.mr_iid})


def within_limits(services: Services, note: NoteEvent) -> bool:
    """Whether this command may be answered: anyone who can comment may run a command, so a
    burst of comments (careless or hostile) gets a bounded number of answers, per MR and per
    commenter. Past the limit the command is ignored, without a reaction: any answer would
    itself be a GitLab write the burst caused."""
    assert note.mr_iid is not None
    allowed = services.command_limiter.allow(
        project_id=note.project_id, mr_iid=note.mr_iid, user=note.author_username, now=time.time()
    )
    if not allowed:
        log.warning(
            "command ignored",
            extra={
                "project": note.project_id,
                "mr": note.mr_iid,
                "user": note.author_username,
                "outcome": "rate limited",
            },
        )
    return allowed
