"""Which behaviour handles which event: a module-level router, in the spirit of gidgethub's
`routing.Router` (https://gidgethub.readthedocs.io/en/latest/routing.html).

The app hands each journaled event to `router.dispatch`; adding a behaviour is one
`router.add` here, not a branch inside the app's factory.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bot.checks import Services
from bot.checks import command as command_check
from bot.checks import merge_request as merge_request_check
from bot.checks import push as push_check
from bot.store import JobRecord
from bot.webhook import Event, MergeRequestEvent, NoteEvent, PushEvent

Handler = Callable[[Services, Any, JobRecord], Awaitable[None]]


class Router:
    def __init__(self) -> None:
        self._handlers: dict[type[Any], Handler] = {}

    def register(self, event_type: type[Any]) -> Callable[[Handler], Handler]:
        def add(handler: Handler) -> Handler:
            self._handlers[event_type] = handler
            return handler

        return add

    async def dispatch(self, services: Services, event: Event, job: JobRecord) -> None:
        await self._handlers[type(event)](services, event, job)


router = Router()


@router.register(MergeRequestEvent)
async def _merge_request(services: Services, event: MergeRequestEvent, job: JobRecord) -> None:
    # A job that replaced one of another head reads the MR's head (see `check`).
    await merge_request_check.check(services, event, verify_head=job.contested)


@router.register(PushEvent)
async def _push(services: Services, event: PushEvent, job: JobRecord) -> None:
    await push_check.check(services, event)


@router.register(NoteEvent)
async def _command(services: Services, event: NoteEvent, job: JobRecord) -> None:
    await command_check.run(services, event)
