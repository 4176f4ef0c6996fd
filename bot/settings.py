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
    """How to reach GitLab: what the server and the CLI commands that call GitLab share."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    gitlab_url: AnyHttpUrl = Field(description="Base URL of the GitLab instance.")
    gitlab_token: SecretStr = Field(
        description="Token the bot uses for the API (api scope; Developer role or higher)."
    )
    http_pool_size: int = Field(
        default=16, ge=1, le=256, description="Maximum TCP connections to GitLab."
    )
    http_timeout: float = Field(
        default=30.0, gt=0, description="Seconds before one GitLab request times out."
    )
    gitlab_ca_bundle: Path | None = Field(
        default=None, description="CA bundle for a self-hosted GitLab with a private CA."
    )
    gitlab_verify_tls: bool = Field(
        default=True, description="Verify GitLab's TLS certificate. Turn off only for testing."
    )
    retry_attempts: int = Field(
        default=5, ge=1, description="Attempts per GitLab request, the first included."
    )
    retry_total_seconds: float = Field(
        default=60.0, gt=0, description="Total time one GitLab request may spend in retries."
    )
    retry_base_delay: float = Field(
        default=0.5, ge=0, description="First backoff delay; doubles per attempt, with jitter."
    )
    gitlab_concurrency: int = Field(
        default=16, ge=1, description="GitLab requests in flight at the same time."
    )

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

    webhook_secret: SecretStr = Field(
        description="Secret token set on the GitLab webhook; compared with X-Gitlab-Token."
    )
    webhook_signing_token: SecretStr | None = Field(
        default=None,
        description="Optional Standard Webhooks signing token (whsec_...) to verify "
        "webhook-signature as well.",
    )
    compliance_status_name: str = Field(
        default="compliance", description="Name of the commit status the bot posts."
    )
    max_body_bytes: int = Field(
        default=25 * MiB, ge=1, description="Largest webhook body accepted (GitLab's own cap)."
    )
    compliance_config: Path | None = Field(
        default=None,
        description="Instance-wide defaults file (YAML, the .gitlab/compliance.yml schema), "
        "merged under each project's own config.",
    )
    compliance_policy_project: str = Field(
        default="compliance-policy",
        min_length=1,
        max_length=255,
        description="Name of the project, in any ancestor group, whose "
        ".gitlab/compliance-policy.yml is that group's enforced policy.",
    )
    policy_cache_seconds: float = Field(
        default=300.0,
        ge=0,
        le=3600,
        description="How long a policy read is trusted without a new look; a push to the "
        "policy project clears it at once.",
    )
    compliance_db: str = Field(
        default="compliance-bot.db",
        description="The journal: a SQLite file path (one process), or a postgresql:// URL "
        "shared by several replicas.",
    )
    job_lease_seconds: float = Field(
        default=30.0,
        gt=0,
        description="With PostgreSQL: how long a replica's claim on a running check lasts "
        "without renewal; a dead replica's checks are taken over after it.",
    )
    db_pool_size: int = Field(
        default=8, ge=1, description="With PostgreSQL: connections in the process's pool."
    )
    shutdown_grace_seconds: float = Field(
        default=20.0, ge=0, description="Time running checks get to finish on SIGTERM."
    )
    catchup_interval_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How often open MRs of known projects are checked for missed events.",
    )
    retry_failed_after_seconds: float = Field(
        default=60.0, gt=0, description="Wait before a check GitLab failed is run again."
    )
    retry_failed_attempts: int = Field(
        default=5, ge=1, description="Runs of one check before it stays failed."
    )
    dedup_ttl_days: float = Field(
        default=7.0, gt=0, description="How long a delivery's Idempotency-Key is remembered."
    )
    journal_retention_days: float = Field(
        default=7.0,
        gt=0,
        description="How long finished and failed checks, and projects GitLab answers "
        "404/403 for, stay in the journal before they are pruned.",
    )
    sqlite_busy_timeout_ms: int = Field(
        default=250,
        ge=0,
        le=10_000,
        description="With SQLite: how long a delivery's journal write waits for a lock held "
        "by another process before it fails (the delivery then gets 503).",
    )
    workers: int = Field(default=8, ge=1, description="Checks that run at the same time.")
    command_limit_per_mr: int = Field(
        default=5, ge=1, description="MR commands answered per MR per window."
    )
    command_limit_per_user: int = Field(
        default=10, ge=1, description="MR commands answered per commenter per window."
    )
    command_limit_window_seconds: float = Field(
        default=600.0, gt=0, description="The window of the command limits, in seconds."
    )
    request_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Time a client has to send one whole request (headers and body); a "
        "slower or idle one is disconnected.",
    )
    max_connections: int = Field(
        default=256,
        ge=1,
        description="Open client connections at most (lowered to what the open-file limit "
        "allows); past it, the longest-waiting incomplete request is closed.",
    )

    @field_validator("webhook_secret", "webhook_signing_token")
    @classmethod
    def _secret_is_clean(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else _clean_secret(value)

    @field_validator("compliance_db", mode="before")
    @classmethod
    def _path_as_text(cls, value: object) -> object:
        # A file path given as a Path (the CLI, tests) is the same SQLite journal.
        return str(value) if isinstance(value, Path) else value

    running_status_delay_seconds: float = Field(
        default=1.0,
        ge=0,
        description="A check still running after this long shows a `running` status; "
        "a quicker one posts only its verdict.",
    )


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
