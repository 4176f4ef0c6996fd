"""MR commands: `/compliance recheck` runs the check again; `/compliance help` replies.

The bot acknowledges each command with an award emoji on the comment and ignores its own
comments, so its help reply can never trigger it.
"""

from __future__ import annotations

import logging

from bot import commands
from bot.checks import Services
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
    await gitlab.award_emoji(note.project_id, note.mr_iid, note.note_id, ACKNOWLEDGE_EMOJI)
    if command is commands.Command.HELP:
        await gitlab.create_note(note.project_id, note.mr_iid, commands.HELP_TEXT)
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
