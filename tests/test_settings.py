from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from bot.settings import Settings


def test_secrets_are_masked_in_repr_and_str() -> None:
    settings = Settings(
        gitlab_url="https://gitlab.example.com",
        gitlab_token="glpat-secret-value",
        webhook_secret="hook-secret-value",
    )
    for text in (repr(settings), str(settings), str(settings.model_dump())):
        assert "glpat-secret-value" not in text
        assert "hook-secret-value" not in text
    assert settings.api_url == "https://gitlab.example.com/api/v4"
    assert settings.compliance_status_name == "compliance"


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITLAB_URL", "https://git.internal/")
    monkeypatch.setenv("GITLAB_TOKEN", "t")
    monkeypatch.setenv("WEBHOOK_SECRET", "s")
    monkeypatch.setenv("COMPLIANCE_STATUS_NAME", "policy")
    monkeypatch.setenv("HTTP_POOL_SIZE", "4")
    settings = Settings()  # type: ignore[call-arg]
    assert settings.api_url == "https://git.internal/api/v4"
    assert settings.compliance_status_name == "policy"
    assert settings.http_pool_size == 4


def test_api_suffix_in_the_url_is_refused() -> None:
    with pytest.raises(ValidationError, match="without /api/v4"):
        Settings(
            gitlab_url="https://gitlab.example.com/api/v4", gitlab_token="t", webhook_secret="s"
        )


def _readme_settings_table() -> dict[str, tuple[str, str]]:
    """The README's `### Settings` table: variable -> (default, meaning) as written there."""
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n### Settings\n", 1)[1].split("\n#", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.fullmatch(r"\| `([A-Z_0-9]+)` \| (.+?) \| (.+) \|", line)
        if match:
            rows[match[1]] = (match[2], match[3])
    return rows


def _as_documented(field: FieldInfo) -> str:
    """A default as the README writes it: `30` for 30.0, `true`, unset, (required)."""
    if field.is_required():
        return "(required)"
    value = field.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    return f"`{value}`"


def test_the_readme_documents_every_setting_as_declared() -> None:
    """The declarations are the one table of settings: the README shows each variable with its
    declared default and its declared meaning, and no variable the bot does not read."""
    declared = {
        name.upper(): (_as_documented(field), " ".join((field.description or "").split()))
        for name, field in Settings.model_fields.items()
    }
    assert _readme_settings_table() == declared
