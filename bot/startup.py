"""What `serve` checks once as it starts: whether GitLab takes the bot's token.

A wrong, expired or revoked token would otherwise show only as every check failing with a
401, long after the operator looked away. An unreachable GitLab is no reason to refuse to
start: the journal accepts deliveries, and the checks and catch-up run once it answers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger(__name__)

# One attempt, short: the server starts serving either way, unless GitLab says no.
PROBE_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class TokenCheck:
    """`refused` says why GitLab will not take the token; then `serve` stops (exit 2)."""

    refused: str | None = None
    user: dict[str, Any] | None = None  # GitLab's answer, which the client keeps


async def check_token(http: httpx.AsyncClient) -> TokenCheck:
    """Ask GitLab who the token belongs to, and log the answer.

    https://docs.gitlab.com/api/users/#get-the-current-user : 401 for a token GitLab does not
    accept (lib/api/helpers.rb `unauthorized!`); `is_admin` is in the answer for an
    administrator's token only, and `bot` marks a project or group access token's user.
    A role in each project is not part of it: GitLab tells it per project, on the first call.
    """
    try:
        response = await http.get("/user", timeout=PROBE_TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        log.warning(
            "GitLab did not answer at start (%s): serving anyway; deliveries are journaled, "
            "and checks and catch-up run once it answers",
            type(exc).__name__,
        )
        return TokenCheck()
    if response.status_code == 401:
        return TokenCheck(
            refused="GitLab answered 401 Unauthorized to GITLAB_TOKEN: the token is wrong, "
            "expired or revoked, or lacks the api scope"
        )
    if response.status_code != 200:
        log.warning(
            "GitLab answered %d to GET /user at start: serving anyway; checks run once it answers",
            response.status_code,
        )
        return TokenCheck()
    try:
        user = response.json()
        username = str(user["username"])
    except (ValueError, KeyError, TypeError):
        log.warning("GitLab's answer to GET /user at start was not a user: serving anyway")
        return TokenCheck()
    if user.get("is_admin") is True:
        role = "an administrator"
    elif user.get("bot") is True:
        role = "a project or group access token's bot user"
    else:
        role = "a user"
    log.info(
        "acting on GitLab as @%s, %s; its role in each project is what the project gives it",
        username,
        role,
    )
    return TokenCheck(user=user)
