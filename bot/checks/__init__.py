"""The bot's behaviours, one module per behaviour (the bedevere shape).

Each behaviour takes the typed event and the app's shared services, runs the engine, and
publishes the verdict. Each is documented in the README under its own heading.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.commands import CommandLimiter
from bot.gitlab import GitLab
from bot.source import TreeCache
from bot.store import Store


@dataclass(frozen=True)
class Services:
    """What a behaviour may use: everything is owned and closed by the app's lifespan."""

    gitlab: GitLab
    status_name: str
    # The instance-wide defaults (COMPLIANCE_CONFIG), merged under each project's config.
    base_config: Mapping[str, Any] = field(default_factory=dict)
    # Where each MR's last check is remembered, so the next event reads only what changed.
    memory: Store | None = None
    # A check still running after this long shows a `running` status meanwhile.
    running_status_delay: float = 1.0
    # What target-branch commits showed (config, tree, CODEOWNERS), shared by their MRs.
    trees: TreeCache = field(default_factory=TreeCache)
    # How many MR commands are answered, per MR and per commenter.
    command_limiter: CommandLimiter = field(default_factory=CommandLimiter)
    # The time waivers are created, applied and expired by (tests move it forward).
    clock: Callable[[], float] = time.time
