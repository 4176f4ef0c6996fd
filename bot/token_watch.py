"""Whether GitLab accepts the bot's token, as `/readyz` reports it.

GitLab answers 401 to a request whose token is unknown, expired or revoked
(gitlabhq lib/api/api_guard.rb, `install_error_responders`: TokenNotFoundError, ExpiredError
and RevokedError become Rack::OAuth2 `Bearer::Unauthorized`); a token with too small a scope
gets 403 (InsufficientScopeError), and one without access to a project 403 or 404, which say
nothing about whether the token itself is accepted. So every answer the bot gets tells it
something: a 401 means the token is refused, any 2xx means it is accepted. While the token is
refused, `/readyz` answers 503 and re-asks GitLab (`GET /user`) at most every
`RECHECK_SECONDS`, so a renewed token makes the bot ready again without a restart.
"""

from __future__ import annotations

import asyncio
import time

from bot.gitlab import CallObserver, GitLab, GitLabError

# How often a refused token is tried again while /readyz is asked.
RECHECK_SECONDS = 3.0
# /readyz must answer quickly, whatever GitLab does meanwhile.
RECHECK_TIMEOUT_SECONDS = 2.0


class TokenWatch:
    """A call observer (forwarding to `forward`, the metrics) that remembers whether the last
    authenticated answer was a 401."""

    def __init__(self, forward: CallObserver | None = None) -> None:
        self._forward = forward
        self.refused = False
        self._rechecked_at = 0.0

    def observe_call(self, method: str, path: str, status: int) -> None:
        if status == 401:
            self.refused = True
        elif 200 <= status < 300:
            self.refused = False
        if self._forward is not None:
            self._forward.observe_call(method, path, status)

    def observe_retry(self, status: int, wait: float) -> None:
        if self._forward is not None:
            self._forward.observe_retry(status, wait)

    async def still_refused(self, gitlab: GitLab) -> bool:
        """False once GitLab accepts the token again; asks GitLab at most every
        RECHECK_SECONDS, and never for longer than RECHECK_TIMEOUT_SECONDS."""
        if not self.refused:
            return False
        now = time.monotonic()
        if now - self._rechecked_at >= RECHECK_SECONDS:
            self._rechecked_at = now
            try:
                # https://docs.gitlab.com/api/users/#get-the-current-user: any valid token.
                async with asyncio.timeout(RECHECK_TIMEOUT_SECONDS):
                    await gitlab.request("GET", "/user")
            except (GitLabError, TimeoutError):
                pass  # observe_call has recorded what GitLab answered, if it answered
        return self.refused
