"""Settings, read from the environment.

Secrets are `SecretStr`: pydantic masks them in `repr`, `str` and validation errors, so a
settings object can be logged without leaking the token or the webhook secret.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024


class GitLabSettings(BaseSettings):
    """How to reach GitLab: what the server and the CLI commands that call GitLab share.

    Each setting is one environment variable (its name in capitals): its type and bounds, its
    default (none: required) and, as the docstring below it, its meaning. The README's table of
    settings is held to these declarations by `tests/test_settings.py`.
    """

    model_config = SettingsConfigDict(
        env_prefix="", case_sensitive=False, extra="ignore", use_attribute_docstrings=True
    )

    gitlab_url: AnyHttpUrl
    """Base URL of the GitLab instance, without `/api/v4`."""
    gitlab_token: SecretStr
    """Token the bot calls the API with. Never logged."""
    http_pool_size: int = Field(16, ge=1, le=256)
    """Maximum TCP connections to GitLab, shared by all checks."""
    http_timeout: float = Field(30.0, gt=0)
    """Seconds one GitLab request may take."""
    gitlab_ca_bundle: Path | None = None
    """CA bundle file for a self-hosted GitLab with a private CA."""
    gitlab_verify_tls: bool = True
    """Verify GitLab's certificate. Turn off only for testing."""
    retry_attempts: int = Field(5, ge=1)
    """Attempts per GitLab request, the first included."""
    retry_total_seconds: float = Field(60.0, gt=0)
    """Time one GitLab request may spend retrying."""
    retry_base_delay: float = Field(0.5, ge=0)
    """First backoff delay; it doubles per attempt, with jitter."""
    gitlab_concurrency: int = Field(16, ge=1)
    """GitLab requests in flight at the same time."""

    @field_validator("gitlab_token")
    @classmethod
    def _token_is_clean(cls, value: SecretStr) -> SecretStr:
        return _clean_secret(value)

    @field_validator("gitlab_url")
    @classmethod
    def _no_trailing_api(cls, value: AnyHttpUrl) -> AnyHttpUrl:
        if str(value).rstrip("/").endswith("/api/v4"):
            raise ValueError("give the instance URL, without /api/v4")
        return value

    @property
    def api_url(self) -> str:
        return str(self.gitlab_url).rstrip("/") + "/api/v4"


class Settings(GitLabSettings):
    """The webhook server's settings."""

    webhook_secret: SecretStr
    """The webhook's secret token, compared with `X-Gitlab-Token` in constant time. Never
    logged."""
    webhook_signing_token: SecretStr | None = None
    """A `whsec_…` signing token; when set, a `webhook-signature` GitLab sends is verified too
    (Standard Webhooks, 5 minutes of clock skew)."""
    compliance_status_name: str = "compliance"
    """Name of the commit status (`<name> (bot)` where a CI job of the pipeline has the name,
    see below)."""
    max_body_bytes: int = Field(25 * MiB, ge=1)
    """Largest webhook body accepted (GitLab's own 25 MiB cap)."""
    compliance_config: Path | None = None
    """Instance-wide defaults, in the `.gitlab/compliance.yml` format, merged under each
    project's file."""
    compliance_policy_project: str = Field("compliance-policy", min_length=1, max_length=255)
    """Name of the project in a group that holds the group's policy (see [Group
    policy](#group-policy))."""
    policy_cache_seconds: float = Field(300.0, ge=0, le=3600)
    """How long a group policy lookup is trusted without a new look (0 to 3600); a push to the
    policy project clears it."""
    compliance_db: str = "compliance-bot.db"
    """The journal of deliveries and checks: a SQLite file path (one process), or a
    `postgresql://` URL shared by several replicas."""
    job_lease_seconds: float = Field(30.0, gt=0)
    """With PostgreSQL: how long a replica's claim on a running check lasts unrenewed; a dead
    replica's checks are taken over after it."""
    db_pool_size: int = Field(8, ge=1)
    """With PostgreSQL: connections in each process's pool."""
    shutdown_grace_seconds: float = Field(20.0, ge=0)
    """Time running checks get to finish on SIGTERM."""
    catchup_interval_seconds: float = Field(300.0, gt=0)
    """How often open MRs are checked for missed events."""
    retry_failed_after_seconds: float = Field(60.0, gt=0)
    """Wait before a check GitLab failed runs again."""
    retry_failed_attempts: int = Field(5, ge=1)
    """Runs of one check, `RETRY_FAILED_AFTER_SECONDS` apart, before it runs only every
    `RETRY_EXHAUSTED_AFTER_SECONDS`."""
    retry_exhausted_after_seconds: float = Field(3600.0, gt=0)
    """Wait between the further runs of a check that used up `RETRY_FAILED_ATTEMPTS`, for as
    long as the journal keeps it (`JOURNAL_RETENTION_DAYS`)."""
    dedup_ttl_days: float = Field(7.0, gt=0)
    """How long a delivery's `Idempotency-Key` is remembered."""
    journal_retention_days: float = Field(7.0, gt=0)
    """How long finished and failed checks, and projects GitLab answers 404/403 for, stay in
    the journal before the sweeper prunes them. Queued and running checks are never pruned."""
    sqlite_busy_timeout_ms: int = Field(250, ge=0, le=10_000)
    """With SQLite: how long a delivery's journal write (and `/readyz`'s) waits for a lock held
    by another process (a backup, an `sqlite3` shell) before it fails; the delivery then gets
    503. Background writes (workers, sweeper) wait up to 30 s. Either way the event loop never
    sleeps more than 5 ms of it at a time."""
    workers: int = Field(8, ge=1)
    """Checks that run at the same time."""
    command_limit_per_mr: int = Field(5, ge=1)
    """MR commands answered per MR per window."""
    command_limit_per_user: int = Field(10, ge=1)
    """MR commands answered per commenter per window."""
    command_limit_window_seconds: float = Field(600.0, gt=0)
    """The window of the two command limits."""
    request_timeout_seconds: float = Field(10.0, gt=0)
    """Time a client has to send one whole request, headers and body; a slower or idle one
    gets 408 and is disconnected."""
    max_connections: int = Field(256, ge=1)
    """Open client connections at most, lowered to what the open-file limit leaves room for;
    past it, the connection waiting longest for a whole request is closed to make room."""
    running_status_delay_seconds: float = Field(1.0, ge=0)
    """A check still running after this long shows a `running` status; a quicker one posts
    only its verdict."""

    @field_validator("webhook_secret", "webhook_signing_token")
    @classmethod
    def _secret_is_clean(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else _clean_secret(value)

    @field_validator("compliance_db", mode="before")
    @classmethod
    def _path_as_text(cls, value: object) -> object:
        # A file path given as a Path (the CLI, tests) is the same SQLite journal.
        return str(value) if isinstance(value, Path) else value


def _clean_secret(value: SecretStr) -> SecretStr:
    """Refuse a secret with surrounding whitespace or control characters, naming the problem
    but never the value.

    A token read from a file often ends in a newline. Sent as it is, httpx refuses the header
    (`Illegal header value b'glpat-...\\n'`, the whole token in the message) and every call
    fails; stripping it silently would make the bot use a value other than the one configured.
    So the bot stops at start, and says what to fix.
    """
    text = value.get_secret_value()
    if text != text.strip():
        raise ValueError("has leading or trailing whitespace (a newline from a file?); remove it")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise ValueError("contains a control character; it cannot be sent in an HTTP header")
    return value


def settings_error_line(error: ValidationError) -> str:
    """One line naming every missing or invalid variable, without echoing any value."""
    parts = []
    for item in error.errors():
        name = ".".join(str(p) for p in item["loc"]).upper() or "settings"
        # pydantic prefixes a validator's own message with "Value error, ".
        reason = "is not set" if item["type"] == "missing" else item["msg"]
        reason = reason.removeprefix("Value error, ")
        parts.append(f"{name} {reason}")
    return "configuration error: " + "; ".join(parts)
